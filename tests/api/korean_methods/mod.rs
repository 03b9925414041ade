//! Korean payment methods: virtual accounts (issue, deposit, expiry, deposit error, cancel
//! before the deposit, refunds to a refund account), cancelling unpaid payments, tax-free
//! amounts, and what Toss reports about the method (receipt, card).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    API_KEY, Backend, Options, Reply, TestApp, deliver, due_now, into_reply, spawn_app,
    spawn_impatient, spawn_with,
};
use crate::on_both_databases;

mod amounts;
mod cancels;
mod virtual_accounts;

const ACCOUNT: &str = "110123456789";

async fn create(app: &TestApp, order_id: &str, amount: i64, tax_free: Option<i64>) -> String {
    let mut body = json!({"user_id": "u-1", "order_id": order_id, "amount_krw": amount, "payment_method": "virtual_account"});
    if let Some(tax_free) = tax_free {
        body["tax_free_amount_krw"] = json!(tax_free);
    }
    let reply = app.post("/payments", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["payment_id"].as_str().unwrap().to_owned()
}

/// A payment whose buyer chose a virtual account: the confirm issues it, due (KST) at
/// [`DUE_DATE`].
async fn issued(app: &TestApp, order_id: &str, key: &str, amount: i64) -> (String, Reply) {
    issued_due(app, order_id, key, amount, DUE_DATE).await
}

/// A virtual account's due date far away, as Toss writes it (KST, no offset).
const DUE_DATE: &str = "2099-12-08T23:59:59";

async fn issued_due(
    app: &TestApp,
    order_id: &str,
    key: &str,
    amount: i64,
    due: &str,
) -> (String, Reply) {
    let id = create(app, order_id, amount, None).await;
    app.toss.authenticate_virtual_account(key, order_id, amount);
    app.toss.set_due_date(key, due);
    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"order_id": order_id, "payment_key": key, "amount_krw": amount}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    (id, reply)
}

async fn cancel(app: &TestApp, id: &str, reason: &str) -> Reply {
    app.post(&format!("/payments/{id}/cancel"), json!({"reason": reason}))
        .await
}

fn event_types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect()
}

fn refund_account(number: &str) -> Value {
    json!({"bank": "88", "account_number": number, "holder_name": "홍길동"})
}

async fn refund(app: &TestApp, id: &str, body: Value) -> Reply {
    app.post(&format!("/payments/{id}/refund"), body).await
}
