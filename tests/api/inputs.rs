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
    nul_in_any_body_string_query_or_path_is_refused_and_changes_nothing,
    nul_in_a_header_never_reaches_the_service,
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

// ---------------------------------------------------------------------------------------------
// NUL (U+0000): valid in JSON (`\u0000`) and in a URL (`%00`), refused by PostgreSQL's text.

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
        let before = crate::hostile::snapshot::Snapshot::take(&db).await;
        let toss_before = app
            .toss_server
            .received_requests()
            .await
            .unwrap_or_default()
            .len();
        let reply = send(request).await;
        let changes = before.diff(&crate::hostile::snapshot::Snapshot::take(&db).await, None);
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
/// README's known exception) before the service sees it, so nothing is stored.
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
        let before = crate::hostile::snapshot::Snapshot::take(&db).await;
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
        let changes = before.diff(&crate::hostile::snapshot::Snapshot::take(&db).await, None);
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
