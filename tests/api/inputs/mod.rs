//! Hostile and malformed input, and authentication: every such request is answered with a
//! problem document (never a 500) and changes nothing.

mod auth;
mod confirm_and_refund_bodies;
mod create_bodies;
mod idempotency_keys;
mod nul;
mod routes;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, Reply, TestApp, into_reply};

// ---------------------------------------------------------------------------------------------
// Helpers shared by the files of this folder, and with `listing.rs`.

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
