//! Hostile and malformed input, and authentication: every such request is answered with a
//! problem document (never a 500) and changes nothing.

use base64::Engine;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, Backend, Reply, TestApp, into_reply, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    metrics_is_public,
    idempotent_replay_needs_the_api_key,
    create_refuses_a_positional_json_array,
    unauthenticated_bad_body_is_401,
    privileged_routes_refuse_missing_or_wrong_keys,
    privileged_routes_accept_bearer_in_any_case,
    public_routes_need_no_key,
    create_refuses_malformed_bodies_and_creates_nothing,
    create_refuses_invalid_fields_and_creates_nothing,
    create_accepts_boundary_values,
    markup_in_order_name_round_trips_as_json,
    duplicate_order_id_is_409_and_keeps_the_first,
    unknown_routes_methods_and_oversized_bodies_are_problems,
    confirm_refuses_bad_bodies_and_changes_nothing,
    refund_refuses_bad_bodies_and_changes_nothing,
    malformed_idempotency_keys_are_refused,
);

// ---------------------------------------------------------------------------------------------
// Helpers shared with `listing.rs`.

/// A request to the app, with nothing set (no key, no body).
pub fn request(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    app.client.request(method, format!("{}{path}", app.address))
}

pub async fn send(request: RequestBuilder) -> Reply {
    into_reply(request.send().await.expect("request sent")).await
}

/// Like `Reply::problem`, plus: never a 500, and `detail` is a non-empty string.
pub fn assert_problem<'a>(reply: &'a Reply, status: u16, code: &str) -> &'a Value {
    assert_ne!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        reply.text
    );
    let body = reply.problem(status, code);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "detail of {}",
        reply.text
    );
    body
}

/// `total_count` of `GET /payments`.
pub async fn payment_count(app: &TestApp) -> u64 {
    let reply = app.get("/payments").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["total_count"].as_u64().expect("total_count")
}

fn raw_json(app: &TestApp, path: &str, body: &str) -> RequestBuilder {
    request(app, Method::POST, path)
        .bearer_auth(API_KEY)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_owned())
}

fn valid_create(order_id: &str) -> Value {
    json!({"user_id": "u-1", "order_id": order_id, "amount_krw": 15000, "payment_method": "card"})
}

/// `valid_create` with `field` set to `value`.
fn create_with(field: &str, value: Value) -> Value {
    let mut body = valid_create("order_input_0001");
    body[field] = value;
    body
}

fn create_without(field: &str) -> Value {
    let mut body = valid_create("order_input_0001");
    body.as_object_mut().unwrap().remove(field);
    body
}

// ---------------------------------------------------------------------------------------------
// Authentication.

/// Authorization headers that must not open a privileged route.
fn bad_authorizations() -> Vec<Option<String>> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:"));
    vec![
        None,
        Some("Bearer wrong-key".to_owned()),
        Some(format!("Bearer {API_KEY}x")),
        Some(format!("Bearer {}", &API_KEY[..API_KEY.len() - 1])),
        Some(format!("Basic {basic}")),
        Some(format!("Basic {API_KEY}")),
        Some("Bearer ".to_owned()),
        Some("Bearer".to_owned()),
        Some(API_KEY.to_owned()),
        Some(format!("Token {API_KEY}")),
    ]
}

/// The privileged routes, as (method, path, body) for a payment `id` that can be refunded.
fn privileged_routes(id: &str, order_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/payments".to_owned(),
            Some(valid_create(order_id)),
        ),
        (Method::GET, "/payments".to_owned(), None),
        (Method::GET, "/payments?user_id=u-1".to_owned(), None),
        (Method::GET, format!("/payments/{id}"), None),
        (
            Method::POST,
            format!("/payments/{id}/refund"),
            Some(json!({"reason": "auth test", "refund_amount_krw": 1000})),
        ),
        (Method::GET, format!("/payments/{id}/refunds"), None),
        (Method::GET, "/events".to_owned(), None),
        (Method::GET, "/events?after=0&limit=10".to_owned(), None),
    ]
}

async fn privileged_routes_refuse_missing_or_wrong_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_auth_0001", 10000, "pk_auth_0001")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let events_before = app.events().await.len();

    for (method, path, body) in privileged_routes(id, "order_auth_new01") {
        for authorization in bad_authorizations() {
            let mut req = request(&app, method.clone(), &path);
            if let Some(value) = &authorization {
                req = req.header("authorization", value);
            }
            if let Some(body) = &body {
                req = req.json(body);
            }
            let reply = send(req).await;
            let context = format!("{method} {path} with {authorization:?}");
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{context}: {}",
                reply.text
            );
            assert_problem(&reply, 401, "UNAUTHORIZED");
            assert!(
                !reply.text.contains(API_KEY),
                "{context}: the key leaks: {}",
                reply.text
            );
            if let Some(value) = &authorization
                && let Some(token) = value.split_once(' ').map(|(_, t)| t.trim())
                && token.len() >= 4
            {
                assert!(
                    !reply.text.contains(token),
                    "{context}: echoes the token: {}",
                    reply.text
                );
            }
        }
    }

    // Nothing happened.
    assert_eq!(payment_count(&app).await, 1);
    assert_eq!(app.payment(id).await, paid);
    assert_eq!(app.events().await.len(), events_before);
    assert!(app.toss_requests("POST", "/cancel").await.is_empty());
    app.stop().await;
}

async fn privileged_routes_accept_bearer_in_any_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_auth_0002", 10000, "pk_auth_0002")
        .await;
    let id = paid["payment_id"].as_str().unwrap();

    for (n, scheme) in ["Bearer", "bearer", "BEARER"].into_iter().enumerate() {
        for (method, path, body) in privileged_routes(id, &format!("order_auth_new_{n}")) {
            let mut req = request(&app, method.clone(), &path)
                .header("authorization", format!("{scheme} {API_KEY}"));
            if let Some(body) = &body {
                req = req.json(body);
            }
            let reply = send(req).await;
            let expected = match (&method, path.as_str()) {
                (&Method::POST, "/payments") => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            assert_eq!(
                reply.status, expected,
                "{scheme}: {method} {path}: {}",
                reply.text
            );
        }
    }
    // Three payments created and three refunds of 1000 made.
    assert_eq!(payment_count(&app).await, 4);
    assert_eq!(app.payment(id).await["refunded_amount_krw"], 3000);
    app.stop().await;
}

async fn public_routes_need_no_key(backend: Backend) {
    let app = spawn_app(backend).await;

    let health = app.get_public("/health").await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    assert_eq!(health.body, json!({"status": "ok"}));

    let ready = app.get_public("/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["database"], "ok");

    let openapi = app.get_public("/openapi.json").await;
    assert_eq!(openapi.status, StatusCode::OK, "{}", openapi.text);
    assert!(openapi.body["openapi"].is_string());
    assert!(openapi.body["paths"]["/payments"].is_object());

    let swagger = send(request(&app, Method::GET, "/swagger-ui/")).await;
    assert_eq!(swagger.status, StatusCode::OK, "{}", swagger.text);
    assert!(
        swagger.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        swagger.headers
    );

    // Toss's redirects.
    app.create_payment("order_public_001", 5000).await;
    app.toss
        .authenticate("pk_public_001", "order_public_001", 5000);
    let success = app
        .get_public(
            "/payments/toss/success?paymentKey=pk_public_001&orderId=order_public_001&amount=5000",
        )
        .await;
    assert_eq!(success.status, StatusCode::OK, "{}", success.text);
    assert_eq!(success.body["status"], "COMPLETED");

    app.create_payment("order_public_002", 5000).await;
    let fail = app
        .get_public(
            "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=cancelled&orderId=order_public_002",
        )
        .await;
    assert_eq!(fail.status, StatusCode::OK, "{}", fail.text);
    assert_eq!(fail.body["failure"]["code"], "PAY_PROCESS_CANCELED");

    // A confirm that Toss verifies.
    app.create_payment("order_public_003", 7000).await;
    app.toss
        .authenticate("pk_public_003", "order_public_003", 7000);
    let confirm = app
        .post_public(
            "/payments/confirm",
            json!({"order_id": "order_public_003", "payment_key": "pk_public_003"}),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.text);
    assert_eq!(confirm.body["status"], "COMPLETED");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// POST /payments bodies.

async fn create_refuses_malformed_bodies_and_creates_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_payment("order_existing_1", 1000).await;

    let cases: Vec<(&str, &str, u16)> = vec![
        ("truncated JSON", r#"{"user_id":"#, 400),
        ("not JSON", "user_id=u-1&amount_krw=1", 400),
        ("empty body", "", 400),
        (
            "trailing garbage",
            r#"{"user_id":"u-1","order_id":"order_trail_01","amount_krw":15000,"payment_method":"card"} x"#,
            400,
        ),
        (
            "two objects",
            r#"{"user_id":"u-1","order_id":"order_trail_02","amount_krw":15000,"payment_method":"card"}{}"#,
            400,
        ),
        ("empty array", "[]", 422),
        (
            "array of an object",
            r#"[{"user_id":"u-1","order_id":"order_array_01","amount_krw":15000,"payment_method":"card"}]"#,
            422,
        ),
        ("null", "null", 422),
        ("number", "15000", 422),
        ("string", r#""order""#, 422),
        ("empty object", "{}", 422),
        (
            "duplicated key",
            r#"{"amount_krw":1,"amount_krw":2,"user_id":"u-1","order_id":"order_dupkey_01","payment_method":"card"}"#,
            422,
        ),
    ];
    for (name, body, status) in cases {
        let reply = send(raw_json(&app, "/payments", body)).await;
        assert_eq!(reply.status.as_u16(), status, "{name}: {}", reply.text);
        assert_problem(&reply, status, "VALIDATION_ERROR");
    }

    let valid = valid_create("order_ctype_0001").to_string();
    let text_plain = send(
        request(&app, Method::POST, "/payments")
            .bearer_auth(API_KEY)
            .header(CONTENT_TYPE, "text/plain")
            .body(valid.clone()),
    )
    .await;
    assert_problem(&text_plain, 415, "UNSUPPORTED_MEDIA_TYPE");
    let form = send(
        request(&app, Method::POST, "/payments")
            .bearer_auth(API_KEY)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(valid.clone()),
    )
    .await;
    assert_problem(&form, 415, "UNSUPPORTED_MEDIA_TYPE");
    let no_content_type = send(
        request(&app, Method::POST, "/payments")
            .bearer_auth(API_KEY)
            .body(valid.clone()),
    )
    .await;
    assert_problem(&no_content_type, 415, "UNSUPPORTED_MEDIA_TYPE");
    let no_body = send(request(&app, Method::POST, "/payments").bearer_auth(API_KEY)).await;
    assert_problem(&no_body, 415, "UNSUPPORTED_MEDIA_TYPE");

    assert_eq!(payment_count(&app).await, 1, "nothing was created");
    app.stop().await;
}

async fn create_refuses_invalid_fields_and_creates_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_payment("order_existing_1", 1000).await;

    let mut cases: Vec<(String, Value)> = Vec::new();
    for field in ["user_id", "order_id", "amount_krw", "payment_method"] {
        cases.push((format!("missing {field}"), create_without(field)));
    }
    let mut unknown = create_without("amount_krw");
    unknown["amount"] = json!(15000);
    cases.push(("amount instead of amount_krw".to_owned(), unknown));
    cases.push((
        "extra field".to_owned(),
        create_with("status", json!("COMPLETED")),
    ));
    for amount in [
        json!(0),
        json!(-1),
        json!(1_000_000_001),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(1e3),
        json!(15000.5),
        json!("15000"),
        json!(null),
        json!(true),
        json!([15000]),
        json!({"value": 15000}),
    ] {
        cases.push((
            format!("amount_krw {amount}"),
            create_with("amount_krw", amount),
        ));
    }
    for order_id in [
        "ord_5".to_owned(),
        "o".repeat(65),
        "order 000001".to_owned(),
        "'; DROP TABLE payments;--".to_owned(),
        "order_주문_0001".to_owned(),
        "order_ñ_00001".to_owned(),
        "order/000001".to_owned(),
        "order.000001".to_owned(),
        "order_000001\n".to_owned(),
        String::new(),
    ] {
        cases.push((
            format!("order_id {order_id:?}"),
            create_with("order_id", json!(order_id)),
        ));
    }
    cases.push((
        "order_id number".to_owned(),
        create_with("order_id", json!(12345678)),
    ));
    for user_id in [
        String::new(),
        "   ".to_owned(),
        "u".repeat(65),
        "u-\u{0}1".to_owned(),
        "u-\n1".to_owned(),
    ] {
        cases.push((
            format!("user_id {user_id:?}"),
            create_with("user_id", json!(user_id)),
        ));
    }
    for payment_type in [json!("WEEKLY"), json!("one_time"), json!(""), json!(1)] {
        cases.push((
            format!("payment_type {payment_type}"),
            create_with("payment_type", payment_type),
        ));
    }
    for method in [json!(""), json!(" "), json!("m".repeat(65)), json!(null)] {
        cases.push((
            format!("payment_method {method}"),
            create_with("payment_method", method),
        ));
    }
    cases.push((
        "order_name of 101 chars".to_owned(),
        create_with("order_name", json!("n".repeat(101))),
    ));
    cases.push((
        "order_name with a control character".to_owned(),
        create_with("order_name", json!("name\u{7}")),
    ));
    cases.push((
        "subscription_id of 129 chars".to_owned(),
        create_with("subscription_id", json!("s".repeat(129))),
    ));

    for (name, body) in cases {
        let reply = app.post("/payments", body).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{name}: {} {}",
            reply.status,
            reply.text
        );
        assert_problem(&reply, reply.status.as_u16(), "VALIDATION_ERROR");
    }

    // Oversize integers, which serde_json cannot even hold.
    for raw in [
        r#"{"user_id":"u-1","order_id":"order_big_0001","amount_krw":99999999999999999999999,"payment_method":"card"}"#,
        r#"{"user_id":"u-1","order_id":"order_big_0002","amount_krw":-99999999999999999999999,"payment_method":"card"}"#,
        r#"{"user_id":"u-1","order_id":"order_big_0003","amount_krw":1e400,"payment_method":"card"}"#,
    ] {
        let reply = send(raw_json(&app, "/payments", raw)).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{raw}: {}",
            reply.text
        );
        assert_problem(&reply, reply.status.as_u16(), "VALIDATION_ERROR");
    }

    assert_eq!(payment_count(&app).await, 1, "nothing was created");
    // The table survived its would-be injection.
    let list = app.get("/payments").await;
    assert_eq!(list.body["payments"][0]["order_id"], "order_existing_1");
    app.stop().await;
}

async fn create_accepts_boundary_values(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        json!({"user_id": "u", "order_id": "abc-_9", "amount_krw": 1, "payment_method": "c"}),
        json!({"user_id": "u".repeat(64), "order_id": "O".repeat(64), "amount_krw": 1_000_000_000,
               "payment_method": "m".repeat(64), "order_name": "n".repeat(100),
               "subscription_id": "s".repeat(128), "payment_type": "SUBSCRIPTION"}),
        json!({"user_id": "사용자-1", "order_id": "order_unicode_user", "amount_krw": 15000,
               "payment_method": "kakao_pay", "order_name": "비타민 D × 3"}),
    ];
    for body in cases {
        let reply = app.post("/payments", body.clone()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{body}: {}", reply.text);
        for (field, value) in body.as_object().unwrap() {
            assert_eq!(&reply.body[field], value, "{field} round-trips");
        }
        let id = reply.body["payment_id"].as_str().unwrap();
        assert_eq!(app.payment(id).await, reply.body);
    }
    assert_eq!(payment_count(&app).await, 3);
    app.stop().await;
}

async fn markup_in_order_name_round_trips_as_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let name = r#"<script>alert("x")</script> & 'quotes'"#;
    let reply = app
        .post(
            "/payments",
            json!({"user_id": "u-1", "order_id": "order_markup_01", "order_name": name,
                   "amount_krw": 1000, "payment_method": "card"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(reply.body["order_name"], name);
    let id = reply.body["payment_id"].as_str().unwrap();
    let read = app.get(&format!("/payments/{id}")).await;
    assert_eq!(read.body["order_name"], name);
    assert!(
        read.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // JSON, not HTML-escaped.
    assert!(read.text.contains("<script>"), "{}", read.text);
    assert!(!read.text.contains("&lt;"), "{}", read.text);
    app.stop().await;
}

async fn duplicate_order_id_is_409_and_keeps_the_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.create_payment("order_dup_00001", 15000).await;
    let id = first["payment_id"].as_str().unwrap();

    for body in [
        valid_create("order_dup_00001"),
        json!({"user_id": "u-2", "order_id": "order_dup_00001", "amount_krw": 1,
               "payment_method": "bank_transfer", "order_name": "other"}),
    ] {
        let reply = app.post("/payments", body).await;
        assert_problem(&reply, 409, "DUPLICATE_ORDER_ID");
    }
    // Order ids are case-sensitive, like Toss's: another case is another order.
    let other_case = app.post("/payments", valid_create("ORDER_DUP_00001")).await;
    assert_eq!(
        other_case.status,
        StatusCode::CREATED,
        "{}",
        other_case.text
    );

    assert_eq!(
        app.payment(id).await,
        first,
        "the first payment is unchanged"
    );
    assert_eq!(payment_count(&app).await, 2);
    app.stop().await;
}

async fn unknown_routes_methods_and_oversized_bodies_are_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_payment("order_existing_1", 1000).await;

    for path in [
        "/nope",
        "/payments/",
        "/payment",
        "/v1/payments",
        "/payments/toss",
        "/events/1",
    ] {
        let reply = app.get(path).await;
        assert_problem(&reply, 404, "NOT_FOUND");
    }
    let unknown_public = app.get_public("/definitely/not/here").await;
    assert_problem(&unknown_public, 404, "NOT_FOUND");

    for path in [
        "/payments/not-a-uuid",
        "/payments/00000000-0000-0000-0000-000000000000",
        "/payments/019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a",
        "/payments/not-a-uuid/refunds",
        "/payments/019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a/refunds",
        "/payments/'%20OR%201=1--",
    ] {
        let reply = app.get(path).await;
        assert_problem(&reply, 404, "NOT_FOUND");
    }
    for path in [
        "/payments/not-a-uuid/refund",
        "/payments/019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a/refund",
    ] {
        let reply = app.post(path, json!({"reason": "x"})).await;
        assert_problem(&reply, 404, "NOT_FOUND");
    }

    for (method, path) in [
        (Method::DELETE, "/payments"),
        (Method::PUT, "/payments"),
        (Method::PATCH, "/payments"),
        (Method::PUT, "/payments/confirm"),
        (Method::GET, "/payments/confirm"),
        (
            Method::DELETE,
            "/payments/019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a",
        ),
        (Method::POST, "/health"),
        (Method::POST, "/events"),
        (
            Method::GET,
            "/payments/019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a/refund",
        ),
    ] {
        for auth in [true, false] {
            let reply = app.request(method.clone(), path, None, auth).await;
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {}",
                reply.text
            );
            assert_problem(&reply, 405, "METHOD_NOT_ALLOWED");
        }
    }

    // Bodies over 64 KiB, with and without an Idempotency-Key.
    let mut big = valid_create("order_big_body_1");
    big["order_name"] = json!("x".repeat(70 * 1024));
    let big = big.to_string();
    let reply = send(raw_json(&app, "/payments", &big)).await;
    assert_problem(&reply, 413, "PAYLOAD_TOO_LARGE");
    let reply =
        send(raw_json(&app, "/payments", &big).header("idempotency-key", "big-body-1")).await;
    assert_problem(&reply, 413, "PAYLOAD_TOO_LARGE");
    let reply = send(raw_json(&app, "/payments/confirm", &big)).await;
    assert_problem(&reply, 413, "PAYLOAD_TOO_LARGE");

    assert_eq!(payment_count(&app).await, 1, "nothing was created");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// POST /payments/confirm and refund bodies.

async fn confirm_refuses_bad_bodies_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_confirm_bad", 15000).await;
    let id = created["payment_id"].as_str().unwrap().to_owned();
    app.toss
        .authenticate("pk_confirm_bad", "order_confirm_bad", 15000);

    let cases: Vec<(&str, Value)> = vec![
        (
            "both payment_id and order_id",
            json!({"payment_id": id, "order_id": "order_confirm_bad", "payment_key": "pk_confirm_bad"}),
        ),
        ("neither", json!({"payment_key": "pk_confirm_bad"})),
        ("empty object", json!({})),
        (
            "payment_id not a UUID",
            json!({"payment_id": "not-a-uuid", "payment_key": "pk_confirm_bad"}),
        ),
        (
            "payment_id a number",
            json!({"payment_id": 12, "payment_key": "pk_confirm_bad"}),
        ),
        (
            "order_id invalid",
            json!({"order_id": "bad order", "payment_key": "pk_confirm_bad"}),
        ),
        (
            "payment_key of 201 chars",
            json!({"payment_id": id, "payment_key": "k".repeat(201)}),
        ),
        (
            "payment_key with a space",
            json!({"payment_id": id, "payment_key": "pk confirm"}),
        ),
        (
            "payment_key empty",
            json!({"payment_id": id, "payment_key": ""}),
        ),
        (
            "payment_key non-ASCII",
            json!({"payment_id": id, "payment_key": "pk_키"}),
        ),
        (
            "pg_provider of 33 chars",
            json!({"payment_id": id, "pg_transaction_id": "tx-1", "pg_provider": "p".repeat(33)}),
        ),
        (
            "pg_transaction_id of 201 chars",
            json!({"payment_id": id, "pg_transaction_id": "t".repeat(201), "pg_provider": "kcp"}),
        ),
        (
            "amount_krw a string",
            json!({"payment_id": id, "payment_key": "pk_confirm_bad", "amount_krw": "15000"}),
        ),
        (
            "amount_krw a float",
            json!({"payment_id": id, "payment_key": "pk_confirm_bad", "amount_krw": 15000.5}),
        ),
        (
            "unknown field",
            json!({"payment_id": id, "payment_key": "pk_confirm_bad", "amount": 15000}),
        ),
    ];
    for (name, body) in cases {
        let reply = app.post("/payments/confirm", body).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{name}: {} {}",
            reply.status,
            reply.text
        );
        assert_problem(&reply, reply.status.as_u16(), "VALIDATION_ERROR");
    }
    for (name, body) in [("malformed", r#"{"payment_id":"#), ("array", "[]")] {
        let reply = send(raw_json(&app, "/payments/confirm", body)).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{name}: {}",
            reply.text
        );
        assert_problem(&reply, reply.status.as_u16(), "VALIDATION_ERROR");
    }
    let text_plain = send(
        request(&app, Method::POST, "/payments/confirm")
            .header(CONTENT_TYPE, "text/plain")
            .body(json!({"payment_id": id, "payment_key": "pk_confirm_bad"}).to_string()),
    )
    .await;
    assert_problem(&text_plain, 415, "UNSUPPORTED_MEDIA_TYPE");

    assert_eq!(app.confirms_sent().await, 0, "Toss was never called");
    assert_eq!(app.payment(&id).await, created, "nothing changed");
    assert!(app.events().await.is_empty());
    app.stop().await;
}

async fn refund_refuses_bad_bodies_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_refund_bad", 15000, "pk_refund_bad")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let path = format!("/payments/{id}/refund");
    let events_before = app.events().await.len();

    let cases: Vec<(&str, Value)> = vec![
        ("reason empty", json!({"reason": ""})),
        ("reason blank", json!({"reason": "   "})),
        ("reason of 201 chars", json!({"reason": "r".repeat(201)})),
        ("reason with a NUL", json!({"reason": "a\u{0}b"})),
        ("reason missing", json!({"refund_amount_krw": 1000})),
        ("reason null", json!({"reason": null})),
        ("reason a number", json!({"reason": 5})),
        (
            "refund_amount_krw -5",
            json!({"reason": "x", "refund_amount_krw": -5}),
        ),
        (
            "refund_amount_krw \"5000\"",
            json!({"reason": "x", "refund_amount_krw": "5000"}),
        ),
        (
            "refund_amount_krw 1.5",
            json!({"reason": "x", "refund_amount_krw": 1.5}),
        ),
        ("unknown field", json!({"reason": "x", "amount_krw": 1000})),
        ("empty object", json!({})),
    ];
    for (name, body) in cases {
        let reply = app.post(&path, body).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{name}: {} {}",
            reply.status,
            reply.text
        );
        assert_problem(&reply, reply.status.as_u16(), "VALIDATION_ERROR");
    }
    for raw in [
        r#"{"reason":"#,
        "null",
        "",
        r#"{"reason":"x","refund_amount_krw":99999999999999999999999}"#,
    ] {
        let reply = send(raw_json(&app, &path, raw)).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{raw}: {}",
            reply.text
        );
        assert_problem(&reply, reply.status.as_u16(), "VALIDATION_ERROR");
    }
    let no_content_type = send(
        request(&app, Method::POST, &path)
            .bearer_auth(API_KEY)
            .body(r#"{"reason":"x"}"#),
    )
    .await;
    assert_problem(&no_content_type, 415, "UNSUPPORTED_MEDIA_TYPE");

    assert_eq!(app.payment(id).await, paid, "nothing changed");
    let refunds = app.get(&format!("/payments/{id}/refunds")).await;
    assert_eq!(refunds.body["refunds"], json!([]));
    assert!(app.toss_requests("POST", "/cancel").await.is_empty());
    assert_eq!(app.events().await.len(), events_before);
    app.stop().await;
}

async fn malformed_idempotency_keys_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut keys = vec![
        HeaderValue::from_static(""),
        HeaderValue::from_str(&"k".repeat(256)).unwrap(),
        HeaderValue::from_str(&"k".repeat(1000)).unwrap(),
        HeaderValue::from_static("key\twith-tab"),
    ];
    // Non-ASCII bytes (obs-text), which `http` lets through.
    if let Ok(value) = HeaderValue::from_bytes("키-é".as_bytes()) {
        keys.push(value);
    }
    if let Ok(value) = HeaderValue::from_bytes(b"key-\xff-latin1") {
        keys.push(value);
    }
    for (n, key) in keys.into_iter().enumerate() {
        let reply = send(
            request(&app, Method::POST, "/payments")
                .bearer_auth(API_KEY)
                .header("idempotency-key", key.clone())
                .json(&valid_create(&format!("order_idem_bad_{n}"))),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{key:?}: {}",
            reply.text
        );
        assert_problem(&reply, 400, "VALIDATION_ERROR");
    }
    assert_eq!(payment_count(&app).await, 0, "nothing was created");

    // The longest key allowed works.
    let longest = "k".repeat(255);
    let reply = send(
        request(&app, Method::POST, "/payments")
            .bearer_auth(API_KEY)
            .header("idempotency-key", longest.as_str())
            .json(&valid_create("order_idem_ok_01")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(payment_count(&app).await, 1);
    app.stop().await;
}

async fn create_refuses_a_positional_json_array(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = send(raw_json(
        &app,
        "/payments",
        r#"["u-1","order_array_02",null,null,null,15000,"card"]"#,
    ))
    .await;
    assert_problem(&reply, 422, "VALIDATION_ERROR");
    assert_eq!(payment_count(&app).await, 0, "nothing was created");
    app.stop().await;
}

async fn idempotent_replay_needs_the_api_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = valid_create("order_idem_auth1");
    let first = send(
        request(&app, Method::POST, "/payments")
            .bearer_auth(API_KEY)
            .header("idempotency-key", "idem-auth-0001")
            .json(&body),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);

    for authorization in bad_authorizations() {
        let mut req = request(&app, Method::POST, "/payments")
            .header("idempotency-key", "idem-auth-0001")
            .json(&body);
        if let Some(value) = &authorization {
            req = req.header("authorization", value);
        }
        let replay = send(req).await;
        assert_problem(&replay, 401, "UNAUTHORIZED");
        assert!(!replay.text.contains("order_idem_auth1"), "{}", replay.text);
    }
    // With another body: still 401, not a hint that the key exists.
    let other = send(
        request(&app, Method::POST, "/payments")
            .header("idempotency-key", "idem-auth-0001")
            .json(&valid_create("order_idem_auth2")),
    )
    .await;
    assert_problem(&other, 401, "UNAUTHORIZED");
    app.stop().await;
}

async fn unauthenticated_bad_body_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_auth_body1", 10000, "pk_auth_body1")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    for path in ["/payments".to_owned(), format!("/payments/{id}/refund")] {
        for body in [json!({}), json!({"reason": ""}), json!(null)] {
            let reply = app.post_public(&path, body.clone()).await;
            assert_problem(&reply, 401, "UNAUTHORIZED");
        }
        let reply = send(request(&app, Method::POST, &path).body("x")).await;
        assert_problem(&reply, 401, "UNAUTHORIZED");
    }
    app.stop().await;
}

async fn metrics_is_public(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.get_public("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    app.stop().await;
}
