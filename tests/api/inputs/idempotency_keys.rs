//! Malformed `Idempotency-Key`s.

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};

use super::{assert_problem, payment_count, request, send, valid_create};
use crate::helpers::{API_KEY, Backend, spawn_app};
use crate::on_both_databases;

on_both_databases!(malformed_idempotency_keys_are_refused);

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
