//! The actor of every change (version 3): each event names who made it, and refunds, cancels
//! and reviews who asked for them; an API key by its name (`key-1`, `key-2`, … in the order of
//! `API_KEYS`), never the key.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{
    API_KEY, Backend, Options, ROTATED_API_KEY, Reply, TestApp, deliver, into_reply, spawn_with,
};
use crate::on_both_databases;

on_both_databases!(
    a_confirm_is_the_buyers_or_the_keys_that_sent_it,
    a_refund_and_a_cancel_name_the_key_that_asked,
    a_webhook_and_a_read_back_are_tosss_a_window_passing_the_systems,
    a_review_names_its_key,
    a_key_of_the_keys_file_is_named_as_the_file_names_it,
);

fn buyer() -> Value {
    json!({"type": "buyer", "name": null})
}

fn key(name: &str) -> Value {
    json!({"type": "api_key", "name": name})
}

fn toss() -> Value {
    json!({"type": "toss", "name": null})
}

fn system() -> Value {
    json!({"type": "system", "name": null})
}

/// Both API keys configured: `API_KEY` is `key-1`, `ROTATED_API_KEY` `key-2`.
async fn spawn(backend: Backend, read_timeout_secs: u64) -> TestApp {
    spawn_with(
        backend,
        Options {
            rotated_api_key: true,
            read_timeout_secs,
            ..Options::default()
        },
    )
    .await
}

/// A request under the second key (`key-2`).
async fn as_key_two(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(ROTATED_API_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    into_reply(request.send().await.unwrap()).await
}

/// The payment's events as `GET /payments/{id}/events` shows them, after checking that the
/// log (`GET /events`) shows the same envelopes and that no key appears in either.
async fn events_of(app: &TestApp, id: &str) -> Vec<Value> {
    let reply = app.get(&format!("/payments/{id}/events")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let events = reply.body["events"].as_array().cloned().unwrap();
    assert_eq!(events, app.events_of(id).await, "one envelope for both");
    never_a_key(&reply.text);
    never_a_key(&app.get("/events?limit=1000").await.text);
    events
}

fn never_a_key(text: &str) {
    assert!(
        !text.contains(API_KEY) && !text.contains(ROTATED_API_KEY),
        "an API key shows: {text}"
    );
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event_type"] == kind).collect()
}

async fn a_confirm_is_the_buyers_or_the_keys_that_sent_it(backend: Backend) {
    let app = spawn(backend, 10).await;
    // The buyer's frontend, without a key.
    let paid = app
        .completed_payment("order_actor_buyer1", 10000, "pk_actor_b1")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let events = events_of(&app, id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "payment.completed");
    assert_eq!(events[0]["actor"], buyer());

    // Toss's success redirect brings the buyer's browser.
    let created = app.create_payment("order_actor_redir1", 7000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss
        .authenticate("pk_actor_r1", "order_actor_redir1", 7000);
    let reply = app
        .get_public(
            "/payments/toss/success?paymentKey=pk_actor_r1&orderId=order_actor_redir1&amount=7000",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(events_of(&app, id).await[0]["actor"], buyer());

    // The fail redirect too.
    let created = app.create_payment("order_actor_fail1", 5000).await;
    let id = created["payment_id"].as_str().unwrap();
    let reply = app
        .get_public(
            "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=no&orderId=order_actor_fail1",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let events = events_of(&app, id).await;
    assert_eq!(events[0]["event_type"], "payment.failed");
    assert_eq!(events[0]["actor"], buyer());

    // A back office confirming with its key (the second one): that key, by name.
    let created = app.create_payment("order_actor_key2", 9000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss
        .authenticate("pk_actor_k2", "order_actor_key2", 9000);
    let reply = as_key_two(
        &app,
        Method::POST,
        "/payments/confirm",
        Some(json!({"order_id": "order_actor_key2", "payment_key": "pk_actor_k2", "amount_krw": 9000})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(events_of(&app, id).await[0]["actor"], key("key-2"));
    app.stop().await;
}

async fn a_refund_and_a_cancel_name_the_key_that_asked(backend: Backend) {
    let app = spawn(backend, 10).await;
    let paid = app
        .completed_payment("order_actor_refund", 10000, "pk_actor_rf")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let refund = as_key_two(
        &app,
        Method::POST,
        &format!("/payments/{id}/refund"),
        Some(json!({"reason": "returned", "refund_amount_krw": 4000})),
    )
    .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    assert_eq!(refund.body["requested_by"], key("key-2"));
    never_a_key(&refund.text);
    // The other key refunds the rest.
    let rest = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "the rest"}),
        )
        .await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    assert_eq!(rest.body["requested_by"], key("key-1"));

    let listed = app.get(&format!("/payments/{id}/refunds")).await;
    never_a_key(&listed.text);
    let refunds = listed.body["refunds"].as_array().unwrap();
    assert_eq!(refunds[0]["requested_by"], key("key-2"));
    assert_eq!(refunds[1]["requested_by"], key("key-1"));

    let events = events_of(&app, id).await;
    let refunded = of_type(&events, "payment.refunded");
    assert_eq!(refunded.len(), 2);
    assert_eq!(refunded[0]["actor"], key("key-2"));
    assert_eq!(refunded[0]["payload"]["requested_by"], key("key-2"));
    assert_eq!(refunded[1]["actor"], key("key-1"));
    assert_eq!(of_type(&events, "payment.completed")[0]["actor"], buyer());

    // A payment nobody paid, cancelled by the second key.
    let created = app.create_payment("order_actor_cancel", 3000).await;
    let id = created["payment_id"].as_str().unwrap();
    let cancelled = as_key_two(
        &app,
        Method::POST,
        &format!("/payments/{id}/cancel"),
        Some(json!({"reason": "order withdrawn"})),
    )
    .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    let events = events_of(&app, id).await;
    assert_eq!(events[0]["event_type"], "payment.cancelled");
    assert_eq!(events[0]["actor"], key("key-2"));
    assert_eq!(events[0]["payload"]["requested_by"], key("key-2"));
    app.stop().await;
}

async fn a_webhook_and_a_read_back_are_tosss_a_window_passing_the_systems(backend: Backend) {
    // A short read timeout: a hung cancel is unknown within a second.
    let app = spawn(backend, 1).await;
    // A confirm whose reply was lost, settled by Toss's webhook.
    for (order, pk, settle_by_webhook) in [
        ("order_actor_wh", "pk_actor_wh", true),
        ("order_actor_rb", "pk_actor_rb", false),
    ] {
        let created = app.create_payment(order, 11000).await;
        let id = created["payment_id"].as_str().unwrap();
        app.toss.authenticate(pk, order, 11000);
        app.fail_next_confirm(500, "UNKNOWN_PAYMENT_ERROR").await;
        let reply = app.confirm_public(order, pk).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
        if settle_by_webhook {
            app.toss.set_status(pk, "DONE");
            let body = json!({
                "eventType": "PAYMENT_STATUS_CHANGED",
                "createdAt": "2026-11-23T12:18:15.000000",
                "data": {"paymentKey": pk, "orderId": order, "status": "DONE"}
            });
            let delivered = deliver(&app, None, &body).await;
            assert_eq!(delivered.status, StatusCode::OK, "{}", delivered.text);
        } else {
            // The reconciler reads Toss's record back and adopts it.
            app.service.settle_due().await.unwrap();
        }
        assert_eq!(app.payment(id).await["status"], "COMPLETED");
        let events = events_of(&app, id).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event_type"], "payment.completed");
        assert_eq!(events[0]["actor"], toss(), "{order}");
    }

    // A cancel made in Toss's dashboard: a refund Toss asked for, whoever reads it.
    let paid = app
        .completed_payment("order_actor_dash", 20000, "pk_actor_dash")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.toss.cancel_in_dashboard("pk_actor_dash", 3000);
    app.client
        .post(format!("{}/webhooks/toss", app.address))
        .json(&json!({
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": "2026-11-23T12:18:15.000000",
            "data": {"paymentKey": "pk_actor_dash", "orderId": "order_actor_dash", "status": "PARTIAL_CANCELED"}
        }))
        .send()
        .await
        .unwrap();
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds[0]["requested_by"], toss(), "{refunds}");
    let events = events_of(&app, id).await;
    let refunded = of_type(&events, "payment.refunded");
    assert_eq!(refunded[0]["actor"], toss());
    assert_eq!(refunded[0]["payload"]["requested_by"], toss());

    // A refund Toss never got, failed by the service when its window passed.
    app.toss_hangs("POST", "/cancel$", Some(2)).await;
    let refund = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "lost", "refund_amount_krw": 4000}),
        )
        .await;
    assert_eq!(refund.status, StatusCode::ACCEPTED, "{}", refund.text);
    let refund_id = refund.body["refund_id"].as_str().unwrap().to_owned();
    app.service.settle_due().await.unwrap();
    let then = chrono::Utc::now() - chrono::Duration::minutes(15);
    app.execute_sql(
        "UPDATE refunds SET created_at = $1, last_sent_at = $1, next_reconcile_at = $2 WHERE id = $3",
        vec![then.into(), chrono::Utc::now().into(), refund_id.as_str().into()],
    )
    .await;
    app.service.settle_due().await.unwrap();
    let events = events_of(&app, id).await;
    let failed = of_type(&events, "refund.failed");
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(
        failed[0]["payload"]["failure"]["code"],
        "PG_CANCEL_NOT_FOUND"
    );
    assert_eq!(failed[0]["actor"], system());
    assert_eq!(failed[0]["payload"]["requested_by"], key("key-1"));
    app.stop().await;
}

async fn a_review_names_its_key(backend: Backend) {
    let app = spawn(backend, 10).await;
    // A refund whose cancel reply contradicts ours: the payment is set aside.
    let paid = app
        .completed_payment("order_actor_review", 10000, "pk_actor_rv")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.contradict_cancels("pk_actor_rv", Some(1)).await;
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "r", "refund_amount_krw": 1000}),
    )
    .await
    .problem(502, "PG_RESPONSE_MISMATCH");
    let reviewed = as_key_two(
        &app,
        Method::POST,
        &format!("/payments/{id}/review"),
        Some(json!({"action": "dismiss", "note": "checked with Toss"})),
    )
    .await;
    assert_eq!(reviewed.status, StatusCode::OK, "{}", reviewed.text);
    let reviews = app.get(&format!("/payments/{id}/reviews")).await;
    never_a_key(&reviews.text);
    let list = reviews.body["reviews"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["requested_by"], key("key-2"));
    assert_eq!(list[0]["reviewer"], "key-2", "version 2's field, by name");
    let refunds = app.get(&format!("/payments/{id}/refunds")).await;
    never_a_key(&refunds.text);
    for event in events_of(&app, id).await {
        assert!(event["actor"]["type"].is_string(), "{event}");
    }
    app.stop().await;
}

const FILE_KEY: &str = "test-actor-file-key-refunds-5f4e3d";

async fn a_key_of_the_keys_file_is_named_as_the_file_names_it(backend: Backend) {
    let digest: String = Sha256::digest(FILE_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = std::env::temp_dir().join(format!(
        "ps_api_keys_{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(
        &path,
        format!(
            "[[api_keys]]\nname = \"back-office\"\nsha256 = \"{digest}\"\nscopes = [\"refunds:write\", \"payments:read\"]\n"
        ),
    )
    .unwrap();
    let app = spawn_with(
        backend,
        Options {
            api_keys_file: Some(path.to_string_lossy().into_owned()),
            ..Options::default()
        },
    )
    .await;
    let paid = app
        .completed_payment("order_actor_file", 10000, "pk_actor_file")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let refund = into_reply(
        app.client
            .post(format!("{}/payments/{id}/refund", app.address))
            .bearer_auth(FILE_KEY)
            .json(&json!({"reason": "returned", "refund_amount_krw": 2500}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    assert_eq!(refund.body["requested_by"], key("back-office"));
    let events = events_of(&app, id).await;
    let refunded = of_type(&events, "payment.refunded");
    assert_eq!(refunded[0]["actor"], key("back-office"));
    assert!(!serde_json::to_string(&events).unwrap().contains(FILE_KEY));
    assert!(!refund.text.contains(FILE_KEY));
    app.stop().await;
    let _ = std::fs::remove_file(path);
}
