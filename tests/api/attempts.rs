//! Attempts: every try at Toss of a payment, kept (`GET /payments/{id}/attempts`), what one
//! leaves behind staying with it (a virtual account that expired is not the next card payment's),
//! a payment's own events (`GET /payments/{id}/events`), and a version 2 database migrated with
//! nothing lost.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    an_expired_virtual_account_leaves_nothing_to_the_card_payment_after_it,
    a_virtual_account_cancelled_by_someone_else_leaves_nothing_to_the_card_payment_after_it,
);

async fn create(app: &TestApp, order_id: &str, amount: i64, method: &str) -> String {
    let reply = app
        .post(
            "/payments",
            json!({"user_id": "u-1", "order_id": order_id, "amount_krw": amount, "payment_method": method}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["payment_id"].as_str().unwrap().to_owned()
}

async fn confirm(app: &TestApp, order_id: &str, key: &str, amount: i64) -> crate::helpers::Reply {
    app.post_public(
        "/payments/confirm",
        json!({"order_id": order_id, "payment_key": key, "amount_krw": amount}),
    )
    .await
}

/// Makes the payment's next reconciliation due now.
async fn due_now(app: &TestApp, id: &str) {
    app.execute_sql(
        "UPDATE payments SET next_reconcile_at = $1 WHERE id = $2",
        vec![chrono::Utc::now().into(), id.into()],
    )
    .await;
}

/// A virtual account issued for `order_id` (key `va_key`), then ended at Toss by `end`, back to
/// `PENDING`; then a card payment of the same order with `card_key`. Nothing of the account is
/// the card payment's: no account on the payment, and its refund needs none and sends none.
async fn card_after_a_virtual_account(
    app: &TestApp,
    order_id: &str,
    va_key: &str,
    card_key: &str,
    end: impl AsyncFnOnce(&TestApp, &str),
) -> String {
    let id = create(app, order_id, 20000, "virtual_account").await;
    app.toss
        .authenticate_virtual_account(va_key, order_id, 20000);
    let issued = confirm(app, order_id, va_key, 20000).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    assert_eq!(issued.body["status"], "WAITING_FOR_DEPOSIT");
    end(app, &id).await;
    let ended = app.payment(&id).await;
    assert_eq!(ended["status"], "PENDING", "{ended}");
    assert!(ended["failure"]["code"].is_string(), "{ended}");

    app.toss.authenticate(card_key, order_id, 20000);
    let paid = confirm(app, order_id, card_key, 20000).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);
    assert_eq!(paid.body["status"], "COMPLETED");
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(payment["virtual_account"], Value::Null, "{payment}");
    assert_eq!(payment["failure"], Value::Null, "{payment}");
    assert_eq!(payment["pg_method"], "카드", "{payment}");

    let refund = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "returned", "refund_amount_krw": 5000}),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    let sent = app
        .toss_requests("POST", &format!("/v1/payments/{card_key}/cancel"))
        .await;
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert!(body.get("refundReceiveAccount").is_none(), "{body}");
    id
}

async fn an_expired_virtual_account_leaves_nothing_to_the_card_payment_after_it(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    card_after_a_virtual_account(
        &app,
        "order_att_va_01",
        "pk_att_va1",
        "pk_att_card1",
        async |app: &TestApp, id: &str| {
            app.toss.expire("pk_att_va1");
            due_now(app, id).await;
            app.service.reconcile_once().await.unwrap();
        },
    )
    .await;
    app.stop().await;
}

async fn a_virtual_account_cancelled_by_someone_else_leaves_nothing_to_the_card_payment_after_it(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    card_after_a_virtual_account(
        &app,
        "order_att_va_02",
        "pk_att_va2",
        "pk_att_card2",
        async |app: &TestApp, id: &str| {
            app.toss.set_status("pk_att_va2", "CANCELED");
            due_now(app, id).await;
            app.service.reconcile_once().await.unwrap();
        },
    )
    .await;
    app.stop().await;
}
