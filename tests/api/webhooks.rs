//! `POST /webhooks/toss`: a hint, verified by reading the payment back from Toss.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Options, TestApp, deliver, into_reply, spawn_app, spawn_with};
use crate::on_both_databases;

on_both_databases!(
    genuine_webhook_settles_an_unsettled_payment,
    forged_webhook_changes_nothing,
    replayed_and_out_of_order_webhooks_are_harmless,
    dashboard_cancel_becomes_a_refund,
    deposit_callback_is_read_back_by_order,
    malformed_unknown_and_foreign_webhooks,
    webhook_asks_for_a_retry_when_toss_is_unreachable,
);

fn status_changed(payment_key: &str, order_id: &str, status: &str) -> Value {
    json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-11-23T12:18:15.000000",
        "data": {"paymentKey": payment_key, "orderId": order_id, "status": status, "totalAmount": 1}
    })
}

/// A payment whose confirm timed out: IN_PROGRESS, Toss has not finished.
async fn unsettled(app: &TestApp, order_id: &str, key: &str, amount: i64) -> String {
    let created = app.create_payment(order_id, amount).await;
    app.toss.authenticate(key, order_id, amount);
    app.fail_next_confirm(500, "UNKNOWN_PAYMENT_ERROR").await;
    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"order_id": order_id, "payment_key": key}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    created["payment_id"].as_str().unwrap().to_owned()
}

async fn genuine_webhook_settles_an_unsettled_payment(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = unsettled(&app, "order_wh_000001", "pk_wh1", 11000).await;
    app.toss.set_status("pk_wh1", "DONE");
    let reply = deliver(
        &app,
        Some("whtrans_1"),
        &status_changed("pk_wh1", "order_wh_000001", "DONE"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["result"], "applied");
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["pg_transaction_id"], "pk_wh1");
    assert_eq!(app.events_of(&id).await.len(), 1);
    app.stop().await;
}

async fn forged_webhook_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = unsettled(&app, "order_wh_000002", "pk_wh2", 11000).await;
    let before = app.payment(&id).await;
    // The body claims DONE; Toss's own record says the payment is still in progress.
    let reply = deliver(
        &app,
        Some("whtrans_forged"),
        &status_changed("pk_wh2", "order_wh_000002", "DONE"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let after = app.payment(&id).await;
    assert_eq!(after["status"], "IN_PROGRESS");
    assert_eq!(after["pg_transaction_id"], before["pg_transaction_id"]);
    assert!(app.events_of(&id).await.is_empty());

    // A paid payment cannot be undone by a body claiming ABORTED, nor by a wrong secret.
    let paid = app
        .completed_payment("order_wh_000003", 5000, "pk_wh3")
        .await;
    let paid_id = paid["payment_id"].as_str().unwrap();
    let before = app.payment(paid_id).await;
    let mut aborted = status_changed("pk_wh3", "order_wh_000003", "ABORTED");
    aborted["data"]["secret"] = json!("ps_not_the_real_secret");
    let reply = deliver(&app, Some("whtrans_forged2"), &aborted).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["result"], "ignored");
    assert_eq!(app.payment(paid_id).await, before);
    assert_eq!(app.events_of(paid_id).await.len(), 1);
    app.stop().await;
}

async fn replayed_and_out_of_order_webhooks_are_harmless(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = unsettled(&app, "order_wh_000004", "pk_wh4", 8000).await;
    app.toss.set_status("pk_wh4", "DONE");
    let done = status_changed("pk_wh4", "order_wh_000004", "DONE");
    assert_eq!(
        deliver(&app, Some("whtrans_4"), &done).await.body["result"],
        "applied"
    );
    let replay = deliver(&app, Some("whtrans_4"), &done).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.body["result"], "duplicate");
    // A stale ABORTED 46 ms later: Toss's record still says DONE.
    let stale = deliver(
        &app,
        Some("whtrans_5"),
        &status_changed("pk_wh4", "order_wh_000004", "ABORTED"),
    )
    .await;
    assert_eq!(stale.status, StatusCode::OK);
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(app.events_of(&id).await.len(), 1);
    // Without a transmission id, a repeat is still harmless.
    deliver(&app, None, &done).await;
    deliver(&app, None, &done).await;
    assert_eq!(app.events_of(&id).await.len(), 1);
    app.stop().await;
}

async fn dashboard_cancel_becomes_a_refund(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_wh_000006", 20000, "pk_wh6")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "ours", "refund_amount_krw": 5000}),
    )
    .await;
    app.toss.cancel_in_dashboard("pk_wh6", 3000);
    let body = status_changed("pk_wh6", "order_wh_000006", "PARTIAL_CANCELED");
    let reply = deliver(&app, Some("whtrans_6"), &body).await;
    assert_eq!(reply.body["result"], "applied", "{}", reply.text);
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PARTIAL_REFUND");
    assert_eq!(payment["refunded_amount_krw"], 8000);
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds.as_array().unwrap().len(), 2);
    assert_eq!(refunds[1]["refund_amount_krw"], 3000);
    assert_eq!(refunds[1]["reason"], "dashboard");
    assert_eq!(refunds[1]["status"], "COMPLETED");
    // Toss retries with another transmission id: still one refund for that cancel.
    deliver(&app, Some("whtrans_7"), &body).await;
    let refunded: Vec<_> = app
        .events_of(id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "payment.refunded")
        .collect();
    assert_eq!(refunded.len(), 2);
    // The rest cancelled in the dashboard: fully refunded here too.
    app.toss.cancel_in_dashboard("pk_wh6", 12000);
    deliver(
        &app,
        Some("whtrans_8"),
        &status_changed("pk_wh6", "order_wh_000006", "CANCELED"),
    )
    .await;
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "REFUNDED");
    assert_eq!(payment["refunded_amount_krw"], 20000);
    app.stop().await;
}

async fn deposit_callback_is_read_back_by_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = unsettled(&app, "order_wh_000009", "pk_wh9", 30000).await;
    app.toss.set_status("pk_wh9", "DONE");
    let body = json!({
        "createdAt": "2026-11-23T12:18:15.000000",
        "secret": crate::fake_toss::secret_of("pk_wh9"),
        "status": "DONE",
        "transactionKey": "9FF15E1A29D0E77C218F57262BFA4986",
        "orderId": "order_wh_000009"
    });
    let reply = deliver(&app, Some("whtrans_9"), &body).await;
    assert_eq!(reply.body["result"], "applied", "{}", reply.text);
    assert_eq!(app.payment(&id).await["status"], "COMPLETED");
    app.stop().await;
}

async fn malformed_unknown_and_foreign_webhooks(backend: Backend) {
    let app = spawn_app(backend).await;
    // An array of as many values as the body has fields would fill it by position.
    let array = "[\"PAYMENT_STATUS_CHANGED\",null,{\"paymentKey\":\"pk\"},null,null,null,null]";
    for raw in ["{", "", "[1,2]", "\"text\"", array] {
        let reply = into_reply(
            app.client
                .post(format!("{}/webhooks/toss", app.address))
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .unwrap(),
        )
        .await;
        reply.problem(400, "VALIDATION_ERROR");
    }
    let unknown = deliver(
        &app,
        Some("whtrans_x"),
        &json!({"eventType": "BILLING_DELETED", "data": {"billingKey": "b"}}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.body["result"], "ignored");
    let foreign = deliver(
        &app,
        Some("whtrans_y"),
        &status_changed("pk_nobody", "order_not_ours_1", "DONE"),
    )
    .await;
    assert_eq!(foreign.status, StatusCode::OK);
    assert_eq!(foreign.body["result"], "ignored");
    let no_data = deliver(&app, None, &json!({"eventType": "PAYMENT_STATUS_CHANGED"})).await;
    assert_eq!(no_data.status, StatusCode::OK);
    assert_eq!(app.toss_calls().await, 0, "nothing to read back");
    app.stop().await;
}

async fn webhook_asks_for_a_retry_when_toss_is_unreachable(backend: Backend) {
    let app = spawn_with(backend, Options::default()).await;
    let id = unsettled(&app, "order_wh_000010", "pk_wh10", 1000).await;
    app.toss_fails(
        "GET",
        "^/v1/payments/",
        500,
        "FAILED_INTERNAL_SYSTEM_PROCESSING",
        Some(1),
    )
    .await;
    app.toss.set_status("pk_wh10", "DONE");
    let body = status_changed("pk_wh10", "order_wh_000010", "DONE");
    deliver(&app, Some("whtrans_10"), &body)
        .await
        .problem(503, "SERVICE_UNAVAILABLE");
    assert_eq!(app.payment(&id).await["status"], "IN_PROGRESS");
    // Toss's retry carries the same transmission id and is handled this time.
    let retry = deliver(&app, Some("whtrans_10"), &body).await;
    assert_eq!(retry.body["result"], "applied", "{}", retry.text);
    assert_eq!(app.payment(&id).await["status"], "COMPLETED");
    app.stop().await;
}
