//! Unknown routes, methods a route does not take, and bodies over the size limit.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{assert_problem, payment_count, raw_json, send, valid_create};
use crate::helpers::{Backend, spawn_app};
use crate::on_both_databases;

on_both_databases!(unknown_routes_methods_and_oversized_bodies_are_problems);

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
