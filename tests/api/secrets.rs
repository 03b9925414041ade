//! Issue 5, point 6: the Toss secret key and the API keys never show, in any form, in what the
//! service prints (every log level of every crate, text and JSON), in its answers (bodies and
//! headers, errors included), in `/metrics`, or in the `Debug` output of its configuration.
//!
//! The real binary runs with `RUST_LOG=trace` against a permissive fake Toss (it accepts any
//! key, so the distinctive key below can be used) through a whole flow with its failures:
//! declines, Toss rejecting our key, Toss 5xx and timeouts, refunds partial, full and refused,
//! wrong and malformed requests, redirects, a webhook, the event log and the reconciler.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use payment_service::config::Settings;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::fake_toss::{FakePayment, error, to_json};
use crate::helpers::{Backend, TestDatabase, init_process};
use crate::on_both_databases;

on_both_databases!(
    text_logs_of_a_full_flow_hold_no_secret,
    json_logs_of_a_full_flow_hold_no_secret
);

const TOSS_SECRET: &str = "test_sk_SECRETSCAN_9f8e7d6c5b4a";
const API_KEY_ONE: &str = "apikey_SECRETSCAN_one";
const API_KEY_TWO: &str = "apikey_SECRETSCAN_two";

/// Everything that must never appear, with a name for the report. Every secret contains
/// `SECRETSCAN`, so a shortened or partly masked one is caught too.
fn forbidden() -> Vec<(String, String)> {
    let mut needles = vec![(
        "the marker of every secret".to_owned(),
        "SECRETSCAN".to_owned(),
    )];
    for (name, secret) in [
        ("the Toss secret key", TOSS_SECRET),
        ("API key one", API_KEY_ONE),
        ("API key two", API_KEY_TWO),
    ] {
        needles.push((name.to_owned(), secret.to_owned()));
        needles.push((format!("Bearer <{name}>"), format!("Bearer {secret}")));
        for with_colon in [format!("{secret}:"), secret.to_owned()] {
            for (engine, encoded) in [
                ("base64", STANDARD.encode(&with_colon)),
                (
                    "base64 without padding",
                    STANDARD_NO_PAD.encode(&with_colon),
                ),
                ("URL-safe base64", URL_SAFE.encode(&with_colon)),
                (
                    "URL-safe base64 without padding",
                    URL_SAFE_NO_PAD.encode(&with_colon),
                ),
            ] {
                needles.push((format!("{engine} of {name:?} + {with_colon:?}"), encoded));
            }
        }
    }
    needles
}

/// The needles found in `text`, with where they were found.
fn leaks(text: &str, place: &str) -> Vec<String> {
    forbidden()
        .into_iter()
        .filter(|(_, needle)| text.to_lowercase().contains(&needle.to_lowercase()))
        .map(|(name, needle)| {
            let at = text
                .to_lowercase()
                .find(&needle.to_lowercase())
                .unwrap_or(0);
            let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
            let line: String = text[line_start..line_end].chars().take(600).collect();
            format!("{name} ({needle:?}) in {place}:\n    {line}")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// `Debug` of the configuration and of the objects built from it.

#[test]
fn debug_output_of_the_configuration_holds_no_secret() {
    init_process();
    let mut settings = Settings::defaults();
    settings.toss.secret_key = Some(TOSS_SECRET.into());
    settings.auth.api_keys = vec![API_KEY_ONE.into(), API_KEY_TWO.into()];
    settings.database.url = Some("postgres://payments:dbpass_SECRETSCAN@127.0.0.1/payments".into());
    settings.nats.url = Some("nats://relay:natspass_SECRETSCAN@127.0.0.1:4222".into());
    let client =
        payment_service::gateway::TossClient::new(payment_service::gateway::TossSettings {
            api_url: "https://api.tosspayments.com".to_owned(),
            secret_key: TOSS_SECRET.into(),
            timeouts: settings.toss.timeouts(),
        })
        .expect("a Toss client");
    let keys = payment_service::http::ApiKeys::new(&settings.auth.api_keys);

    let shown = [
        ("Settings {:?}", format!("{settings:?}")),
        ("Settings {:#?}", format!("{settings:#?}")),
        ("TossConfig", format!("{:?}", settings.toss)),
        ("AuthSettings", format!("{:?}", settings.auth)),
        ("DatabaseSettings", format!("{:?}", settings.database)),
        ("NatsSettings", format!("{:?}", settings.nats)),
        ("TossClient", format!("{client:?}")),
        ("ApiKeys", format!("{keys:?}")),
    ];
    let found: Vec<String> = shown
        .iter()
        .flat_map(|(place, text)| leaks(text, place))
        .collect();
    assert!(
        found.is_empty(),
        "secrets in Debug output:\n{}",
        found.join("\n")
    );
    assert!(
        shown[0].1.contains("api.tosspayments.com"),
        "the Debug output still shows the settings: {}",
        shown[0].1
    );
}

// ---------------------------------------------------------------------------------------------
// A permissive fake Toss: any `Authorization` is accepted (it is recorded), and the payment key
// chooses the behaviour.

const SLOW: Duration = Duration::from_secs(3);

#[derive(Clone, Default)]
struct PermissiveToss {
    payments: Arc<Mutex<HashMap<String, FakePayment>>>,
    authorizations: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Copy)]
enum Endpoint {
    Confirm,
    Cancel,
    ByKey,
    ByOrder,
}

struct Answer(PermissiveToss, Endpoint);

impl Respond for Answer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let toss = &self.0;
        if let Some(value) = request.headers.get("authorization") {
            toss.authorizations
                .lock()
                .unwrap()
                .push(value.to_str().unwrap_or_default().to_owned());
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let segment = |n: usize| {
            request
                .url
                .path_segments()
                .and_then(|mut s| s.nth(n))
                .unwrap_or_default()
                .to_owned()
        };
        let mut payments = toss.payments.lock().unwrap();
        match self.1 {
            Endpoint::Confirm => {
                let key = body["paymentKey"].as_str().unwrap_or_default().to_owned();
                let order = body["orderId"].as_str().unwrap_or_default().to_owned();
                let amount = body["amount"].as_i64().unwrap_or_default();
                if key.starts_with("pk_decline") {
                    return error(
                        403,
                        "REJECT_CARD_PAYMENT",
                        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
                    );
                }
                if key.starts_with("pk_badkey") {
                    return error(
                        401,
                        "UNAUTHORIZED_KEY",
                        "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
                    );
                }
                if key.starts_with("pk_5xx") {
                    return error(
                        500,
                        "FAILED_INTERNAL_SYSTEM_PROCESSING",
                        "내부 시스템 처리 작업이 실패했습니다. 잠시 후 다시 시도해주세요.",
                    );
                }
                let payment = payments.entry(key.clone()).or_insert_with(|| FakePayment {
                    payment_key: key.clone(),
                    order_id: order,
                    total: amount,
                    balance: amount,
                    status: "DONE".to_owned(),
                    cancels: Vec::new(),
                    last_transaction_key: format!("tx_{key}"),
                });
                let reply = ResponseTemplate::new(200).set_body_json(to_json(payment));
                if key.starts_with("pk_slow") {
                    reply.set_delay(SLOW)
                } else {
                    reply
                }
            }
            Endpoint::Cancel => {
                let key = segment(2);
                let Some(payment) = payments.get_mut(&key) else {
                    return error(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다.");
                };
                if key.starts_with("pk_norefund") {
                    return error(
                        403,
                        "NOT_CANCELABLE_PAYMENT",
                        "취소 할 수 없는 결제 입니다.",
                    );
                }
                let amount = body["cancelAmount"].as_i64().unwrap_or(payment.balance);
                if amount > payment.balance {
                    return error(403, "NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
                }
                payment.balance -= amount;
                payment.status = if payment.balance == 0 {
                    "CANCELED"
                } else {
                    "PARTIAL_CANCELED"
                }
                .to_owned();
                let transaction_key = format!("cx_{key}_{}", payment.cancels.len());
                payment.last_transaction_key = transaction_key.clone();
                payment.cancels.push(json!({
                    "transactionKey": transaction_key,
                    "cancelReason": body["cancelReason"],
                    "taxExemptionAmount": 0,
                    "canceledAt": "2026-11-23T12:20:23+09:00",
                    "cancelAmount": amount,
                    "taxFreeAmount": 0,
                    "refundableAmount": payment.balance,
                    "cancelStatus": "DONE",
                    "cancelRequestId": null
                }));
                ResponseTemplate::new(200).set_body_json(to_json(payment))
            }
            Endpoint::ByKey => match payments.get(&segment(2)) {
                Some(payment) => ResponseTemplate::new(200).set_body_json(to_json(payment)),
                None => error(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다."),
            },
            Endpoint::ByOrder => {
                let order = segment(3);
                match payments.values().find(|p| p.order_id == order) {
                    Some(payment) => ResponseTemplate::new(200).set_body_json(to_json(payment)),
                    None => error(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다."),
                }
            }
        }
    }
}

impl PermissiveToss {
    async fn mount(&self, server: &MockServer) {
        let routes = [
            ("POST", "^/v1/payments/confirm$", Endpoint::Confirm, 1),
            ("POST", "^/v1/payments/[^/]+/cancel$", Endpoint::Cancel, 1),
            ("GET", "^/v1/payments/orders/[^/]+$", Endpoint::ByOrder, 1),
            ("GET", "^/v1/payments/[^/]+$", Endpoint::ByKey, 2),
        ];
        for (http_method, pattern, endpoint, priority) in routes {
            Mock::given(method(http_method))
                .and(path_regex(pattern))
                .respond_with(Answer(self.clone(), endpoint))
                .with_priority(priority)
                .mount(server)
                .await;
        }
        // Anything else the client might try.
        Mock::given(path("/"))
            .respond_with(error(404, "NOT_FOUND", "not found"))
            .with_priority(10)
            .mount(server)
            .await;
    }
}

// ---------------------------------------------------------------------------------------------
// The binary, its output captured to files.

struct Service {
    child: Child,
    base: String,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        // SECRETS_KEEP_LOGS=1 keeps the captured output for a look.
        if std::env::var("SECRETS_KEEP_LOGS").is_ok() {
            eprintln!("captured output kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Service {
    fn start(database_url: &str, toss_url: &str, log_format: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("secretscan_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let stdout = dir.join("stdout.log");
        let stderr = dir.join("stderr.log");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_payment-service"))
            // No config/<env>.toml of the working tree may change what is tested.
            .current_dir(&dir)
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("TOSS_SECRET_KEY", TOSS_SECRET)
            .env("TOSS_API_URL", toss_url)
            .env("API_KEYS", format!("{API_KEY_ONE}, {API_KEY_TWO}"))
            .env("RUST_LOG", "trace")
            .env("APP_LOG__FORMAT", log_format)
            .env("APP_TOSS__READ_TIMEOUT_SECS", "1")
            .env("APP_TOSS__LOOKUP_TIMEOUT_SECS", "2")
            .env("APP_RECONCILER__INTERVAL_MS", "200")
            .env("APP_RECONCILER__INITIAL_BACKOFF_SECS", "0")
            .env("APP_RECONCILER__MAX_BACKOFF_SECS", "1")
            .env("APP_SERVER__SHUTDOWN_GRACE_SECS", "2")
            .env_remove("NATS_URL")
            .env_remove("APP_ENV")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("the binary starts");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stdout,
            stderr,
            _dir: TempDir(dir),
        }
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        for _ in 0..150 {
            if let Ok(response) = client.get(format!("{}/ready", self.base)).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the service exited with {status}:\n{}", read(&self.stderr));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} never became ready:\n{}", self.base, read(&self.stderr));
    }

    /// SIGTERM (so the shutdown is logged too), then its output.
    async fn stop(mut self) -> (String, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        (read(&self.stdout), read(&self.stderr))
    }
}

/// A test that fails half-way must not leave the binary running.
impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The flow, every answer kept for the scan.

struct Flow {
    client: reqwest::Client,
    base: String,
    /// Every answer: request line, status, headers and body.
    transcript: String,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

impl Flow {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    async fn send(&mut self, what: &str, request: RequestBuilder) -> Reply {
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

async fn drive_full_flow(flow: &mut Flow) {
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
    flow.expect(
        "events",
        flow.request(Method::GET, "/events?after=0&limit=1000")
            .bearer_auth(API_KEY_ONE),
        &[200],
    )
    .await;
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

// ---------------------------------------------------------------------------------------------
// The scenarios.

async fn text_logs_of_a_full_flow_hold_no_secret(backend: Backend) {
    full_flow_holds_no_secret(backend, "text").await
}

async fn json_logs_of_a_full_flow_hold_no_secret(backend: Backend) {
    full_flow_holds_no_secret(backend, "json").await
}

async fn full_flow_holds_no_secret(backend: Backend, log_format: &str) {
    init_process();
    let database = TestDatabase::create(backend).await;
    let toss_server = MockServer::start().await;
    let toss = PermissiveToss::default();
    toss.mount(&toss_server).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let mut service = Service::start(&database.url, &toss_server.uri(), log_format);
    service.wait_ready(&client).await;
    let mut flow = Flow {
        client,
        base: service.base.clone(),
        transcript: String::new(),
    };
    drive_full_flow(&mut flow).await;

    // Let the reconciler read back the unsettled payment a few times, then scrape the metrics.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let metrics = flow
        .send("metrics", flow.request(Method::GET, "/metrics"))
        .await;
    assert!(
        matches!(metrics.status.as_u16(), 200 | 404),
        "GET /metrics: {}",
        metrics.status
    );
    let (stdout, stderr) = service.stop().await;

    // The secret was really in use: Toss got it, as Basic auth, from the service.
    let basic = format!("Basic {}", STANDARD.encode(format!("{TOSS_SECRET}:")));
    let authorizations = toss.authorizations.lock().unwrap().clone();
    assert!(
        !authorizations.is_empty() && authorizations.iter().all(|a| *a == basic),
        "Toss should have received {basic:?}: {authorizations:?}"
    );

    // The output is the whole trace, not an empty file.
    let output = format!("{stdout}\n{stderr}");
    // (The service turns sqlx's statement log off, so there is no SQL to look at.)
    for marker in [
        "TRACE",
        "hyper_util",
        "reqwest",
        "tower_http",
        "REJECT_CARD_PAYMENT",
        "UNAUTHORIZED_KEY",
    ] {
        assert!(
            output.contains(marker),
            "{marker:?} is missing from the captured output ({} bytes); is RUST_LOG=trace in effect?",
            output.len()
        );
    }
    if log_format == "json" {
        let first = stderr
            .lines()
            .chain(stdout.lines())
            .find(|l| l.starts_with('{'));
        assert!(
            first.is_some_and(|l| serde_json::from_str::<Value>(l).is_ok()),
            "JSON log lines expected"
        );
    }

    // The start-up log names the gateway, and only the gateway.
    let gateway_line = output
        .lines()
        .find(|line| line.contains("payment gateway"))
        .unwrap_or_else(|| panic!("no start-up line names the payment gateway"));
    assert!(
        gateway_line.to_lowercase().contains("toss"),
        "the gateway line does not say Toss: {gateway_line}"
    );

    // API_KEYS is set: no key is generated, and none is printed.
    assert!(
        stdout.contains("Authorization: Bearer <one of API_KEYS>") && !stdout.contains("dev_"),
        "stdout: {stdout}"
    );

    // The scan itself finds what it looks for.
    assert!(
        !leaks(&format!("x-{basic}-x"), "a control").is_empty()
            && !leaks(
                &format!("Bearer {}", API_KEY_TWO.to_uppercase()),
                "a control"
            )
            .is_empty()
    );
    let mut found = leaks(&stdout, "stdout");
    found.extend(leaks(&stderr, "stderr (the logs)"));
    found.extend(leaks(
        &flow.transcript,
        "the answers (status, headers, bodies; /metrics included)",
    ));
    assert!(
        found.is_empty(),
        "{backend:?}, {log_format} logs: secrets leaked:\n{}",
        found.join("\n")
    );
}
