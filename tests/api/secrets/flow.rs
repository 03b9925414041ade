//! The flow, every answer kept for the scan.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use super::{API_KEY_ONE, API_KEY_TWO, REFUND_ACCOUNT_NUMBER};

pub(super) struct Flow {
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    /// Every answer: request line, status, headers and body.
    pub(super) transcript: String,
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

impl Flow {
    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub(super) async fn send(&mut self, what: &str, request: RequestBuilder) -> Reply {
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let mut record = format!("--- {what}: {status}\n");
        for (name, value) in response.headers() {
            record.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        let text = response.text().await.expect("body");
        record.push_str(&text);
        record.push('\n');
        self.transcript.push_str(&record);
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    /// Sends, and checks the status; a problem document for every 4xx/5xx.
    async fn expect(&mut self, what: &str, request: RequestBuilder, expected: &[u16]) -> Value {
        let reply = self.send(what, request).await;
        assert!(
            expected.contains(&reply.status.as_u16()),
            "{what}: expected one of {expected:?}, got {}: {}",
            reply.status,
            reply.body
        );
        reply.body
    }

    async fn create(&mut self, key: &str, order_id: &str, amount: i64) -> String {
        let body = self
            .expect(
                &format!("create {order_id}"),
                self.request(Method::POST, "/payments")
                    .bearer_auth(key)
                    .json(&json!({"user_id": "u-secrets", "order_id": order_id, "amount_krw": amount, "payment_method": "card"})),
                &[201],
            )
            .await;
        body["payment_id"].as_str().expect("payment_id").to_owned()
    }

    async fn confirm(&mut self, order_id: &str, payment_key: &str, expected: &[u16]) -> Value {
        self.expect(
            &format!("confirm {order_id} with {payment_key}"),
            self.request(Method::POST, "/payments/confirm")
                .json(&json!({"order_id": order_id, "payment_key": payment_key})),
            expected,
        )
        .await
    }

    async fn refund(&mut self, key: &str, id: &str, amount: Option<i64>, expected: &[u16]) {
        let mut body = json!({"reason": "secrets scan refund"});
        if let Some(amount) = amount {
            body["refund_amount_krw"] = json!(amount);
        }
        self.expect(
            &format!("refund {amount:?} of {id}"),
            self.request(Method::POST, &format!("/payments/{id}/refund"))
                .bearer_auth(key)
                .json(&body),
            expected,
        )
        .await;
    }
}

pub(super) async fn drive_full_flow(flow: &mut Flow) {
    // Public routes.
    for path in ["/health", "/ready", "/openapi.json", "/swagger-ui/"] {
        flow.expect(path, flow.request(Method::GET, path), &[200])
            .await;
    }

    // Wrong keys, and near misses of the right ones.
    let basic_of_key = STANDARD.encode(format!("{API_KEY_ONE}:"));
    for attempt in [
        None,
        Some("Bearer wrong-key".to_owned()),
        Some(format!("Bearer {API_KEY_ONE}x")),
        Some(format!("Bearer {}", &API_KEY_TWO[..API_KEY_TWO.len() - 1])),
        Some(format!("Basic {basic_of_key}")),
        Some(API_KEY_TWO.to_owned()),
        Some(format!("Token {API_KEY_ONE}")),
    ]
    .into_iter()
    .enumerate()
    {
        // The label goes into the transcript that is scanned: it must not hold the header.
        let (n, authorization) = attempt;
        let mut request = flow.request(Method::GET, "/payments");
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        flow.expect(
            &format!("list with wrong authorization #{n}"),
            request,
            &[401],
        )
        .await;
        let mut request = flow
            .request(Method::POST, "/payments")
            .json(&json!({"user_id": "u-1", "order_id": "order_secret_denied", "amount_krw": 1000, "payment_method": "card"}));
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        flow.expect(
            &format!("create with wrong authorization #{n}"),
            request,
            &[401],
        )
        .await;
    }

    // The right keys with malformed requests.
    flow.expect(
        "malformed JSON",
        flow.request(Method::POST, "/payments")
            .bearer_auth(API_KEY_ONE)
            .header(CONTENT_TYPE, "application/json")
            .body("{\"user_id\": "),
        &[400],
    )
    .await;
    flow.expect(
        "not JSON",
        flow.request(Method::POST, "/payments")
            .bearer_auth(API_KEY_TWO)
            .header(CONTENT_TYPE, "text/plain")
            .body("user_id=u-1"),
        &[415],
    )
    .await;
    flow.expect(
        "invalid fields",
        flow.request(Method::POST, "/payments")
            .bearer_auth(API_KEY_ONE)
            .json(&json!({"user_id": "", "order_id": "x", "amount_krw": -1, "payment_method": "card"})),
        &[422],
    )
    .await;
    flow.expect(
        "bad query",
        flow.request(Method::GET, "/payments?limit=abc")
            .bearer_auth(API_KEY_TWO),
        &[400],
    )
    .await;
    flow.expect(
        "unknown payment",
        flow.request(Method::GET, &format!("/payments/{}", uuid::Uuid::nil()))
            .bearer_auth(API_KEY_ONE),
        &[404],
    )
    .await;
    flow.expect(
        "unknown route",
        flow.request(Method::GET, "/admin").bearer_auth(API_KEY_ONE),
        &[404],
    )
    .await;

    // Confirms: ok, declined, our key refused by Toss, Toss 5xx, Toss too slow.
    let paid = flow.create(API_KEY_ONE, "order_secret_paid", 50_000).await;
    flow.confirm("order_secret_paid", "pk_ok_paid", &[200])
        .await;
    flow.confirm("order_secret_paid", "pk_ok_paid", &[200])
        .await;
    flow.create(API_KEY_TWO, "order_secret_decline", 20_000)
        .await;
    flow.confirm("order_secret_decline", "pk_decline_1", &[402])
        .await;
    flow.create(API_KEY_ONE, "order_secret_badkey", 30_000)
        .await;
    flow.confirm("order_secret_badkey", "pk_badkey_1", &[502])
        .await;
    flow.create(API_KEY_TWO, "order_secret_5xx", 40_000).await;
    flow.confirm("order_secret_5xx", "pk_5xx_1", &[202]).await;
    flow.create(API_KEY_ONE, "order_secret_slow", 45_000).await;
    flow.confirm("order_secret_slow", "pk_slow_1", &[200, 202])
        .await;
    flow.create(API_KEY_ONE, "order_secret_mismatch", 10_000)
        .await;
    flow.expect(
        "amount mismatch",
        flow.request(Method::POST, "/payments/confirm").json(
            &json!({"order_id": "order_secret_mismatch", "payment_key": "pk_ok_mm", "amount_krw": 1}),
        ),
        &[422],
    )
    .await;
    flow.expect(
        "unverified confirm without a key",
        flow.request(Method::POST, "/payments/confirm").json(
            &json!({"order_id": "order_secret_mismatch", "pg_transaction_id": "tx-1", "pg_provider": "kcp"}),
        ),
        &[401],
    )
    .await;

    // Refunds: partial, refused (over the balance; by Toss), the rest, once too often.
    flow.refund(API_KEY_TWO, &paid, Some(10_000), &[200]).await;
    flow.refund(API_KEY_ONE, &paid, Some(1_000_000), &[409])
        .await;
    let no_refund = flow
        .create(API_KEY_TWO, "order_secret_norefund", 9_000)
        .await;
    flow.confirm("order_secret_norefund", "pk_norefund_1", &[200])
        .await;
    flow.refund(API_KEY_TWO, &no_refund, None, &[402]).await;
    flow.refund(API_KEY_ONE, &paid, None, &[200]).await;
    flow.refund(API_KEY_ONE, &paid, None, &[409]).await;

    // A virtual-account payment: refunded to the buyer's account, whose number is a secret.
    let by_account = flow.create(API_KEY_TWO, "order_secret_va", 12_000).await;
    flow.confirm("order_secret_va", "pk_va_1", &[200]).await;
    flow.refund(API_KEY_TWO, &by_account, Some(2_000), &[422])
        .await;
    for (amount, account, expected) in [
        (2_000, REFUND_ACCOUNT_NUMBER, 200),
        // Malformed: refused, and the number is not echoed.
        (2_000, "98765-43210-1234", 422),
        (1_000_000, REFUND_ACCOUNT_NUMBER, 409),
        (10_000, REFUND_ACCOUNT_NUMBER, 200),
    ] {
        flow.expect(
            "refund to an account",
            flow.request(Method::POST, &format!("/payments/{by_account}/refund"))
                .bearer_auth(API_KEY_ONE)
                .json(&json!({"reason": "secrets scan refund", "refund_amount_krw": amount,
                    "refund_receive_account": {"bank": "88", "account_number": account, "holder_name": "홍길동"}})),
            &[expected],
        )
        .await;
    }
    flow.expect(
        "refunds of the virtual-account payment",
        flow.request(Method::GET, &format!("/payments/{by_account}/refunds"))
            .bearer_auth(API_KEY_ONE),
        &[200],
    )
    .await;

    // Idempotent replay with each key. Both API keys are the same caller (the merchant), so
    // each create has its own Idempotency-Key.
    for key in [API_KEY_ONE, API_KEY_TWO] {
        for _ in 0..2 {
            flow.expect(
                "idempotent create",
                flow.request(Method::POST, "/payments")
                    .bearer_auth(key)
                    .header("idempotency-key", format!("secrets-scan-{}", &key[key.len() - 3..]))
                    .json(&json!({"user_id": "u-1", "order_id": format!("order_secret_idem_{}", &key[key.len() - 3..]), "amount_krw": 1000, "payment_method": "card"})),
                &[201],
            )
            .await;
        }
    }

    // Toss's redirects, and a webhook.
    flow.create(API_KEY_ONE, "order_secret_redirect", 12_000)
        .await;
    for _ in 0..2 {
        flow.expect(
            "success redirect",
            flow.request(
                Method::GET,
                "/payments/toss/success?paymentKey=pk_ok_redirect&orderId=order_secret_redirect&amount=12000&paymentType=NORMAL",
            ),
            &[200],
        )
        .await;
    }
    flow.expect(
        "success redirect, wrong amount",
        flow.request(
            Method::GET,
            "/payments/toss/success?paymentKey=pk_ok_x&orderId=order_secret_redirect&amount=1",
        ),
        &[409, 422],
    )
    .await;
    flow.create(API_KEY_TWO, "order_secret_failredirect", 13_000)
        .await;
    flow.expect(
        "fail redirect",
        flow.request(
            Method::GET,
            "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=%EA%B2%B0%EC%A0%9C%20%EC%B7%A8%EC%86%8C&orderId=order_secret_failredirect",
        ),
        &[200],
    )
    .await;
    flow.expect(
        "webhook",
        flow.request(Method::POST, "/webhooks/toss")
            .header("tosspayments-webhook-transmission-id", "wh-secrets-1")
            .json(&json!({"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-11-23T12:18:15.000000",
                "data": {"paymentKey": "pk_ok_paid", "orderId": "order_secret_paid", "status": "CANCELED"}})),
        &[200],
    )
    .await;
    flow.expect(
        "webhook, not JSON",
        flow.request(Method::POST, "/webhooks/toss")
            .body("nonsense"),
        &[400],
    )
    .await;

    // Reads.
    let events = flow
        .send(
            "events",
            flow.request(Method::GET, "/events?after=0&limit=1000")
                .bearer_auth(API_KEY_ONE),
        )
        .await;
    assert_eq!(events.status.as_u16(), 200);
    // Every change names who made it; the keys show by name only (the scan checks the rest).
    let actors: Vec<&Value> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["actor"])
        .collect();
    assert!(
        !actors.is_empty() && actors.iter().all(|a| a["type"].is_string()),
        "{actors:?}"
    );
    assert!(
        actors
            .iter()
            .any(|a| a["type"] == "api_key"
                && a["name"].as_str().is_some_and(|n| n.starts_with("key-"))),
        "{actors:?}"
    );
    flow.expect(
        "list",
        flow.request(Method::GET, "/payments?limit=100")
            .bearer_auth(API_KEY_TWO),
        &[200],
    )
    .await;
    flow.expect(
        "refunds",
        flow.request(Method::GET, &format!("/payments/{paid}/refunds"))
            .bearer_auth(API_KEY_ONE),
        &[200],
    )
    .await;
    flow.expect(
        "payment",
        flow.request(Method::GET, &format!("/payments/{paid}"))
            .bearer_auth(API_KEY_TWO),
        &[200],
    )
    .await;
}
