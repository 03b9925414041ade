//! Subscriptions through Toss billing (자동결제): customer keys, billing keys issued from a card
//! registration (redirect and POST), stored encrypted, listed and deleted (here and by Toss's
//! `BILLING_DELETED`), and charges of a payment with one: approvals, declines with `retryable`,
//! unknown outcomes, races across instances and a crash, all approved at Toss at most once.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures::FutureExt;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::crash::{completed_after_restart, key_and_payment, kill_during, started, stop};
use crate::fake_toss::FakeToss;
use crate::helpers::{
    API_KEY, Backend, Options, Reply, TestApp, TestDatabase, init_process, into_reply, spawn_app,
    spawn_impatient, spawn_with,
};
use crate::on_both_databases;

mod charges;
mod keys;

/// The user's customer key (created on first call).
async fn customer_key(app: &TestApp, user_id: &str) -> String {
    let reply = app
        .post("/billing/customers", json!({"user_id": user_id}))
        .await;
    assert!(matches!(reply.status.as_u16(), 200 | 201), "{}", reply.text);
    reply.body["customer_key"].as_str().unwrap().to_owned()
}

/// `user_id`'s customer key, and the body of `POST /billing-keys` that issues the card the
/// buyer just registered in Toss's window for it.
async fn registration(app: &TestApp, user_id: &str) -> (String, Value) {
    let customer = customer_key(app, user_id).await;
    let auth_key = app.toss.register_card(&customer);
    let body = json!({"customer_key": customer, "auth_key": auth_key});
    (customer, body)
}

/// A billing key of `user_id`, issued through `POST /billing-keys`.
pub(crate) async fn issued_key(app: &TestApp, user_id: &str) -> (String, String) {
    let (customer, body) = registration(app, user_id).await;
    let reply = app.post("/billing-keys", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (
        reply.body["billing_key_id"].as_str().unwrap().to_owned(),
        customer,
    )
}

pub(crate) async fn payment_of(
    app: &TestApp,
    user_id: &str,
    order_id: &str,
    amount: i64,
) -> String {
    let reply = app
        .post(
            "/payments",
            json!({"user_id": user_id, "order_id": order_id, "order_name": "Vitamin D, monthly",
                   "amount_krw": amount, "payment_method": "card", "payment_type": "SUBSCRIPTION",
                   "subscription_id": "sub-1", "tax_free_amount_krw": amount / 10}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["payment_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn charge(app: &TestApp, payment_id: &str, key_id: &str) -> Reply {
    app.post(
        &format!("/payments/{payment_id}/charge"),
        json!({"billing_key_id": key_id}),
    )
    .await
}

/// A charge of payment `id` with `key`, refused with `status` and `code` before Toss is called;
/// the payment stays as it was, `expected` (its status).
async fn refused_charge(
    app: &TestApp,
    id: &str,
    key: &str,
    (status, code): (u16, &str),
    expected: &str,
) {
    charge(app, id, key).await.problem(status, code);
    assert!(
        charges_sent(&app.toss_server).await.is_empty(),
        "Toss not called"
    );
    assert_eq!(app.payment(id).await["status"], expected);
}

/// A charge refused because the billing key no longer opens: 409 `BILLING_KEY_INACTIVE`.
pub(crate) fn assert_undecryptable(reply: &Reply) {
    let problem = reply.problem(409, "BILLING_KEY_INACTIVE");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be decrypted"),
        "{problem}"
    );
}

/// The charges (`POST /v1/billing/{billingKey}`) the fake Toss at `toss_server` received.
async fn charges_sent(toss_server: &MockServer) -> Vec<wiremock::Request> {
    toss_server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.method.as_str() == "POST"
                && r.url.path().starts_with("/v1/billing/")
                && !r.url.path().contains("authorizations")
        })
        .collect()
}

fn idempotency_key(request: &wiremock::Request) -> String {
    request
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
