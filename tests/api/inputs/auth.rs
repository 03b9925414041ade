//! Authentication: the privileged routes need an API key (an idempotent replay too), the
//! public routes need none.

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{assert_problem, payment_count, request, send, valid_create};
use crate::helpers::{API_KEY, Backend, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    metrics_is_public,
    idempotent_replay_needs_the_api_key,
    unauthenticated_bad_body_is_401,
    privileged_routes_refuse_missing_or_wrong_keys,
    privileged_routes_accept_bearer_in_any_case,
    public_routes_need_no_key,
);

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
