//! `POST /payments/confirm` and refund bodies.

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::{assert_problem, raw_json, request, send};
use crate::helpers::{API_KEY, Backend, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    confirm_refuses_bad_bodies_and_changes_nothing,
    refund_refuses_bad_bodies_and_changes_nothing,
);

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
