//! NUL (U+0000): valid in JSON (`\u0000`) and in a URL (`%00`), refused by PostgreSQL's text.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use super::{payment_count, request, send, valid_create};
use crate::helpers::{API_KEY, Backend, spawn_app};
use crate::hostile::snapshot::Snapshot;
use crate::on_both_databases;

on_both_databases!(
    nul_in_any_body_string_query_or_path_is_refused_and_changes_nothing,
    nul_in_a_header_never_reaches_the_service,
);

/// `text` with a NUL in its middle.
fn with_nul(text: &str) -> String {
    let at = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(at, _)| at);
    format!("{}\u{0}{}", &text[..at], &text[at..])
}

/// Copies of `value`, one for each string in it (values and object keys, nested too), with a
/// NUL put into that string; labelled by where it went.
fn nul_variants(value: &Value) -> Vec<(String, Value)> {
    match value {
        Value::String(text) => vec![(String::new(), Value::String(with_nul(text)))],
        Value::Object(map) => {
            let mut variants = Vec::new();
            for (key, inner) in map {
                for (label, spoiled) in nul_variants(inner) {
                    let mut copy = map.clone();
                    copy.insert(key.clone(), spoiled);
                    let label = if label.is_empty() {
                        key.clone()
                    } else {
                        format!("{key}.{label}")
                    };
                    variants.push((label, Value::Object(copy)));
                }
                let mut copy = map.clone();
                let inner = copy.remove(key).expect("present");
                copy.insert(with_nul(key), inner);
                variants.push((format!("the key {key:?}"), Value::Object(copy)));
            }
            variants
        }
        _ => Vec::new(),
    }
}

/// One query `name=value&...` per parameter, with `%00` in that parameter's value, and one
/// with `%00` in its name.
fn nul_queries(params: &[(&str, &str)]) -> Vec<(String, String)> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let query = |spoil_value: Option<usize>, spoil_name: Option<usize>| {
        params
            .iter()
            .enumerate()
            .map(|(n, (name, value))| {
                let name = if spoil_name == Some(n) {
                    with_nul(name)
                } else {
                    (*name).to_owned()
                };
                let value = if spoil_value == Some(n) {
                    with_nul(value)
                } else {
                    (*value).to_owned()
                };
                format!("{}={}", encode(&name), encode(&value))
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    let mut queries = Vec::new();
    for (n, (name, _)) in params.iter().enumerate() {
        queries.push((format!("{name}=<NUL>"), query(Some(n), None)));
        queries.push((format!("<NUL> in {name}"), query(None, Some(n))));
    }
    queries
}

/// Every route, with a NUL in each string of its JSON body (422), in each query parameter and
/// in each path segment (400): a problem document, never a 500, nothing changed in the
/// database, and Toss not called. The strings are otherwise those of requests that would be
/// accepted, so that a NUL that slipped past validation would reach the database.
async fn nul_in_any_body_string_query_or_path_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let pending = app.create_payment("order_nul_pending_1", 10_000).await;
    let pending_id = pending["payment_id"].as_str().unwrap().to_owned();
    app.toss
        .authenticate("pk_nul_pending_1", "order_nul_pending_1", 10_000);
    let paid = app
        .completed_payment("order_nul_paid_01", 15_000, "pk_nul_paid_01")
        .await;
    let paid_id = paid["payment_id"].as_str().unwrap().to_owned();
    // What the fake Toss returns as the payment's `secret`.
    let secret = "ps_fakesecret0001";
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();

    // (route, needs the API key, body that would be accepted)
    let bodies: Vec<(String, bool, Value)> = vec![
        (
            "/payments".into(),
            true,
            json!({
            "user_id": "u-1", "order_id": "order_nul_new_01", "order_name": "Vitamin D x 3",
            "subscription_id": "sub-1", "payment_type": "ONE_TIME", "amount_krw": 1000,
            "payment_method": "card"}),
        ),
        (
            "/payments/confirm".into(),
            false,
            json!({
            "order_id": "order_nul_pending_1", "payment_key": "pk_nul_pending_1", "amount_krw": 10_000}),
        ),
        (
            "/payments/confirm".into(),
            false,
            json!({
            "payment_id": pending_id, "payment_key": "pk_nul_pending_1"}),
        ),
        (
            "/payments/confirm".into(),
            true,
            json!({
            "order_id": "order_nul_pending_1", "pg_transaction_id": "tx-1", "pg_provider": "kcp"}),
        ),
        (
            format!("/payments/{paid_id}/refund"),
            true,
            json!({"reason": "one item returned", "refund_amount_krw": 1000}),
        ),
        (
            "/webhooks/toss".into(),
            false,
            json!({
            "eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-11-23T12:18:15.000000",
            "data": {"paymentKey": "pk_nul_paid_01", "orderId": "order_nul_paid_01", "status": "DONE",
                     "secret": secret, "totalAmount": 15_000}}),
        ),
        (
            "/webhooks/toss".into(),
            false,
            json!({
            "eventType": "CANCEL_STATUS_CHANGED", "createdAt": "2026-11-23T12:18:15.000000",
            "data": {"transactionKey": "tx_1", "paymentKey": "pk_nul_paid_01", "orderId": "order_nul_paid_01",
                     "cancelStatus": "DONE"}}),
        ),
        (
            "/webhooks/toss".into(),
            false,
            json!({
            "createdAt": "2026-11-23T12:18:15.000000", "secret": secret, "status": "DONE",
            "orderId": "order_nul_paid_01", "transactionKey": "tx_1"}),
        ),
    ];
    // (path, needs the API key, query parameters that would be accepted)
    type Params = Vec<(&'static str, &'static str)>;
    let queries: Vec<(String, bool, Params)> = vec![
        (
            "/payments".into(),
            true,
            vec![("user_id", "u-1"), ("limit", "20"), ("offset", "0")],
        ),
        (
            "/events".into(),
            true,
            vec![("after", "0"), ("limit", "10")],
        ),
        (
            "/payments/toss/success".into(),
            false,
            vec![
                ("paymentKey", "pk_nul_pending_1"),
                ("orderId", "order_nul_pending_1"),
                ("amount", "10000"),
                ("paymentType", "NORMAL"),
            ],
        ),
        (
            "/payments/toss/fail".into(),
            false,
            vec![
                ("code", "PAY_PROCESS_CANCELED"),
                ("message", "cancelled"),
                ("orderId", "order_nul_pending_1"),
            ],
        ),
        (format!("/payments/{pending_id}"), true, vec![("x", "1")]),
        (
            format!("/payments/{paid_id}/refunds"),
            true,
            vec![("x", "1")],
        ),
        ("/health".into(), false, vec![("x", "1")]),
        ("/ready".into(), false, vec![("x", "1")]),
        ("/metrics".into(), false, vec![("x", "1")]),
        ("/openapi.json".into(), false, vec![("x", "1")]),
    ];
    // (method, path with a NUL in one segment, needs the API key, body)
    let refund = json!({"reason": "one item returned", "refund_amount_krw": 1000});
    let paths: Vec<(Method, String, bool, Option<Value>)> = vec![
        (Method::GET, format!("/payments/{pending_id}%00"), true, None),
        (Method::GET, format!("/payments/%00{pending_id}"), true, None),
        (Method::GET, format!("/payments/{paid_id}%00/refunds"), true, None),
        (Method::POST, format!("/payments/{paid_id}%00/refund"), true, Some(refund.clone())),
        (Method::POST, "/payments/%00/refund".into(), true, Some(refund)),
        (Method::POST, "/payments%00".into(), true, Some(valid_create("order_nul_new_02"))),
        (Method::POST, "/payments/confirm%00".into(), false,
            Some(json!({"order_id": "order_nul_pending_1", "payment_key": "pk_nul_pending_1"}))),
        (Method::GET, "/payments/toss/success%00?paymentKey=pk_nul_pending_1&orderId=order_nul_pending_1&amount=10000".into(), false, None),
        (Method::GET, "/payments/toss/fail%00?code=X&orderId=order_nul_pending_1".into(), false, None),
        (Method::POST, "/webhooks/toss%00".into(), false,
            Some(json!({"eventType": "PAYMENT_STATUS_CHANGED", "data": {"paymentKey": "pk_nul_paid_01"}}))),
        (Method::GET, "/events%00".into(), true, None),
        (Method::GET, "/health%00".into(), false, None),
        (Method::GET, "/%00".into(), false, None),
        (Method::GET, "/swagger-ui/%00".into(), false, None),
    ];

    let mut cases: Vec<(String, u16, RequestBuilder)> = Vec::new();
    for (path, auth, body) in &bodies {
        for (label, spoiled) in nul_variants(body) {
            let mut request = request(&app, Method::POST, path)
                .header(CONTENT_TYPE, "application/json")
                .body(spoiled.to_string());
            if *auth {
                request = request.bearer_auth(API_KEY);
            }
            cases.push((format!("POST {path}: NUL in {label}"), 422, request));
        }
    }
    for (path, auth, params) in &queries {
        for (label, query) in nul_queries(params) {
            let mut request = request(&app, Method::GET, &format!("{path}?{query}"));
            if *auth {
                request = request.bearer_auth(API_KEY);
            }
            cases.push((format!("GET {path}?{label}"), 400, request));
        }
    }
    for (method, path, auth, body) in paths {
        let mut request = request(&app, method.clone(), &path);
        if auth {
            request = request.bearer_auth(API_KEY);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        cases.push((format!("{method} {path}"), 400, request));
    }

    let mut failures = Vec::new();
    for (label, status, request) in cases {
        let before = Snapshot::take(&db).await;
        let toss_before = app
            .toss_server
            .received_requests()
            .await
            .unwrap_or_default()
            .len();
        let reply = send(request).await;
        let changes = before.diff(&Snapshot::take(&db).await, None);
        let toss_after = app
            .toss_server
            .received_requests()
            .await
            .unwrap_or_default()
            .len();
        let is_problem = reply
            .headers
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json")
            && reply.body["code"] == "VALIDATION_ERROR"
            && reply.body["status"] == status;
        if reply.status.as_u16() != status
            || !is_problem
            || !changes.is_empty()
            || toss_after != toss_before
        {
            failures.push(format!(
                "{label}: {} {} (expected {status} VALIDATION_ERROR); {} database change(s){}; Toss called {} time(s)",
                reply.status,
                reply.text.chars().take(300).collect::<String>(),
                changes.len(),
                changes.iter().map(|c| format!("\n    {c}")).collect::<String>(),
                toss_after - toss_before,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{backend:?}: {} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        app.payment(&pending_id).await,
        pending,
        "the pending payment is unchanged"
    );
    let _ = db.close().await;
    app.stop().await;
}

/// HTTP does not allow a NUL in a header value: hyper refuses the request (its own 400, the
/// known exception in docs/operations.md, "Errors") before the service sees it, so nothing is stored.
async fn nul_in_a_header_never_reaches_the_service(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app(backend).await;
    app.completed_payment("order_nul_header1", 5000, "pk_nul_header1")
        .await;
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let authority = app.address.trim_start_matches("http://").to_owned();
    let webhook = json!({"eventType": "PAYMENT_STATUS_CHANGED",
        "data": {"paymentKey": "pk_nul_header1", "orderId": "order_nul_header1", "status": "DONE"}})
    .to_string();
    let create = valid_create("order_nul_header2").to_string();
    let cases = [
        (
            "/webhooks/toss",
            "tosspayments-webhook-transmission-id: tx\0one",
            webhook.clone(),
        ),
        ("/payments", "idempotency-key: key\0one", create.clone()),
        ("/payments", "x-request-id: id\0one", create.clone()),
        ("/payments", "authorization: Bearer \0", create),
    ];
    for (path, header, body) in cases {
        let before = Snapshot::take(&db).await;
        let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {API_KEY}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n{header}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut answer),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{header:?}: expected hyper's 400, got {answer:?}"
        );
        let changes = before.diff(&Snapshot::take(&db).await, None);
        assert!(
            changes.is_empty(),
            "{header:?} changed the database: {}",
            changes.len()
        );
    }
    assert_eq!(payment_count(&app).await, 1, "nothing was created");
    let _ = db.close().await;
    app.stop().await;
}
