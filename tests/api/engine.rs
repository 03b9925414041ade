//! The money engine's worst paths: every retry, crash and Toss record ends in Toss's truth.
//! Each scenario here failed on the engine before Toss's record was adopted by one function.

use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::fake_toss::{self, secret_of};
use crate::helpers::{API_KEY, Backend, Options, TestApp, into_reply, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    concurrent_partial_refunds_of_one_payment_all_complete,
    confirm_after_a_passing_toss_error_is_sent_again,
    another_orders_payment_key_never_parks_the_order,
    another_orders_record_in_a_confirm_reply_releases_the_claim,
    dashboard_cancel_seen_on_read_back_becomes_a_refund,
    late_done_after_release_is_adopted_and_blocks_a_second_charge,
    refund_of_a_toss_payment_without_toss_is_refused,
    fail_redirect_records_one_failure_per_attempt,
    each_attempt_has_its_own_webhook_secret,
    refund_retried_with_its_key_after_a_lost_answer_is_never_sent_twice,
);

async fn deliver(app: &TestApp, body: &Value) -> StatusCode {
    crate::helpers::deliver(app, None, body).await.status
}

fn status_changed(payment_key: &str, order_id: &str, status: &str, secret: &str) -> Value {
    json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-11-23T12:18:15.000000",
        "data": {"paymentKey": payment_key, "orderId": order_id, "status": status, "secret": secret}
    })
}

/// A public confirm whose answer from Toss says nothing (a 500): 202, `IN_PROGRESS`.
async fn confirm_with_unknown_outcome(app: &TestApp, id: &str, payment_key: &str) {
    app.fail_next_confirm(500, "UNKNOWN_PAYMENT_ERROR").await;
    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": payment_key}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
}

async fn refunds_of(app: &TestApp, id: &str) -> Vec<Value> {
    app.get(&format!("/payments/{id}/refunds")).await.body["refunds"]
        .as_array()
        .unwrap()
        .clone()
}

fn count(events: &[Value], event_type: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .count()
}

/// Toss takes one cancel of a payment per second; four refunds asked for at once all complete,
/// one cancel at a time, each against the balance the one before left.
async fn concurrent_partial_refunds_of_one_payment_all_complete(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_eng_refund1", 10000, "pk_eng_r1")
        .await;
    let id = paid["payment_id"].as_str().unwrap().to_owned();
    app.toss.space_cancels(Duration::from_secs(1));
    let replies = join_all((0..4).map(|i| {
        let app = &app;
        let id = id.clone();
        async move {
            app.post(
                &format!("/payments/{id}/refund"),
                json!({"reason": format!("item {i}"), "refund_amount_krw": 1000}),
            )
            .await
        }
    }))
    .await;
    for reply in &replies {
        assert!(
            reply.status == StatusCode::OK || reply.status == StatusCode::ACCEPTED,
            "none fails for Toss's pacing: {} {}",
            reply.status,
            reply.text
        );
    }
    for _ in 0..40 {
        if refunds_of(&app, &id)
            .await
            .iter()
            .all(|r| r["status"] == "COMPLETED")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.service.settle_due().await.unwrap();
    }
    let refunds = refunds_of(&app, &id).await;
    assert_eq!(refunds.len(), 4, "{refunds:?}");
    assert!(
        refunds.iter().all(|r| r["status"] == "COMPLETED"),
        "{refunds:?}"
    );
    let payment = app.payment(&id).await;
    assert_eq!(payment["refunded_amount_krw"], 4000);
    assert_eq!(payment["status"], "PARTIAL_REFUND");
    assert_eq!(app.toss.payment("pk_eng_r1").unwrap().balance, 6000);
    assert_eq!(count(&app.events_of(&id).await, "payment.refunded"), 4);
    // Each cancel that Toss applied carried the balance Toss had then.
    let mut balances: Vec<i64> = app
        .toss_requests("POST", "/cancel")
        .await
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["refundableAmount"]
                .as_i64()
                .unwrap()
        })
        .collect();
    balances.dedup();
    assert_eq!(balances, vec![10000, 9000, 8000, 7000]);
    app.stop().await;
}

/// `PROVIDER_ERROR` means nothing happened and a later send may pass. Within Toss's window the
/// confirm is sent again, with a fresh key (Toss would replay the error for the old one).
async fn confirm_after_a_passing_toss_error_is_sent_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_eng_resend1", 5000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss
        .authenticate("pk_eng_c1", "order_eng_resend1", 5000);
    app.fail_next_confirm(400, "PROVIDER_ERROR").await;
    let first = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_eng_c1"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(first.body["status"], "IN_PROGRESS");
    app.service.settle_due().await.unwrap();
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "COMPLETED", "the sale is not lost");
    let sent = app.toss_requests("POST", "/v1/payments/confirm").await;
    assert_eq!(sent.len(), 2);
    assert_ne!(
        sent[0].headers["idempotency-key"],
        sent[1].headers["idempotency-key"]
    );
    assert_eq!(count(&app.events_of(id).await, "payment.completed"), 1);
    app.stop().await;
}

/// A stranger posts another order's `paymentKey` for our order. Toss's read-back is about the
/// other order: it proves nothing, so our order goes back to its buyer, unflagged.
async fn another_orders_payment_key_never_parks_the_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app.create_payment("order_eng_victim", 8000).await;
    let id = victim["payment_id"].as_str().unwrap();
    app.create_payment("order_eng_strngr", 8000).await;
    app.toss
        .authenticate("pk_eng_strngr", "order_eng_strngr", 8000);
    // Toss's confirm reply is lost, so the read-back decides.
    app.toss_hangs("POST", "^/v1/payments/confirm$", Some(1))
        .await;
    let impatient = {
        let mut app = app;
        let options = Options {
            read_timeout_secs: 1,
            ..Options::default()
        };
        let address = app.spawn_instance_with(options).await;
        (app, address)
    };
    let (app, address) = impatient;
    let reply = into_reply(
        app.client
            .post(format!("{address}/payments/confirm"))
            .json(&json!({"order_id": "order_eng_victim", "payment_key": "pk_eng_strngr"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.problem(422, "VALIDATION_ERROR");
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PENDING", "{payment}");
    assert_eq!(payment["needs_review"], false, "never parked for review");
    assert!(app.events_of(id).await.is_empty());
    assert_eq!(
        app.toss.payment("pk_eng_strngr").unwrap().status,
        "IN_PROGRESS",
        "the other order is not touched"
    );
    // The buyer pays their own order.
    app.toss
        .authenticate("pk_eng_victim", "order_eng_victim", 8000);
    let own = app
        .confirm_public("order_eng_victim", "pk_eng_victim")
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.body["status"], "COMPLETED");
    app.stop().await;
}

async fn another_orders_record_in_a_confirm_reply_releases_the_claim(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_eng_reply1", 8000).await;
    let id = created["payment_id"].as_str().unwrap();
    let other = fake_toss::FakePayment {
        payment_key: "pk_eng_other".to_owned(),
        order_id: "order_eng_someone".to_owned(),
        total: 8000,
        balance: 8000,
        status: "DONE".to_owned(),
        cancels: Vec::new(),
        approved_at: None,
        last_transaction_key: "tx".to_owned(),
        ..Default::default()
    };
    Mock::given(method("POST"))
        .and(path("/v1/payments/confirm"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fake_toss::to_json(&other)))
        .up_to_n_times(1)
        .mount(&app.toss_server)
        .await;
    app.post_public(
        "/payments/confirm",
        json!({"payment_id": id, "payment_key": "pk_eng_other"}),
    )
    .await
    .problem(422, "VALIDATION_ERROR");
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["needs_review"], false);
    app.stop().await;
}

/// Toss's read-back of an unsettled confirm shows it approved and partly cancelled already
/// (Toss's dashboard): completed, and the cancel becomes a refund with its event.
async fn dashboard_cancel_seen_on_read_back_becomes_a_refund(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_eng_dash01", 10000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss
        .authenticate("pk_eng_dash", "order_eng_dash01", 10000);
    confirm_with_unknown_outcome(&app, id, "pk_eng_dash").await;
    app.toss.set_status("pk_eng_dash", "DONE");
    app.toss.cancel_in_dashboard("pk_eng_dash", 3000);
    app.service.settle_due().await.unwrap();
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PARTIAL_REFUND", "{payment}");
    assert_eq!(payment["refunded_amount_krw"], 3000);
    let refunds = refunds_of(&app, id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["status"], "COMPLETED");
    assert_eq!(refunds[0]["refund_amount_krw"], 3000);
    let events = app.events_of(id).await;
    assert_eq!(count(&events, "payment.completed"), 1);
    assert_eq!(count(&events, "payment.refunded"), 1);
    // The whole rest, cancelled at Toss: REFUNDED, not CANCELLED.
    app.toss.cancel_in_dashboard("pk_eng_dash", 7000);
    let status = deliver(
        &app,
        &status_changed(
            "pk_eng_dash",
            "order_eng_dash01",
            "CANCELED",
            &secret_of("pk_eng_dash"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "REFUNDED");
    assert_eq!(payment["refunded_amount_krw"], 10000);
    assert_eq!(count(&app.events_of(id).await, "payment.refunded"), 2);
    app.stop().await;
}

/// We had let the attempt go, and Toss approved it after all: the money was taken, so our books
/// say so (with an alert), and the order can never be charged a second time.
async fn late_done_after_release_is_adopted_and_blocks_a_second_charge(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_eng_late01", 6000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss
        .authenticate("pk_eng_late", "order_eng_late01", 6000);
    app.toss.set_status("pk_eng_late", "DONE");
    let status = deliver(
        &app,
        &status_changed(
            "pk_eng_late",
            "order_eng_late01",
            "DONE",
            &secret_of("pk_eng_late"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(payment["pg_transaction_id"], "pk_eng_late");
    assert_eq!(count(&app.events_of(id).await, "payment.completed"), 1);
    app.toss
        .authenticate("pk_eng_late2", "order_eng_late01", 6000);
    app.post_public(
        "/payments/confirm",
        json!({"payment_id": id, "payment_key": "pk_eng_late2"}),
    )
    .await
    .problem(409, "INVALID_STATE");
    assert_eq!(
        app.confirms_sent().await,
        0,
        "no second charge is attempted"
    );
    app.stop().await;
}

/// An instance without Toss must not record a refund of money Toss took.
async fn refund_of_a_toss_payment_without_toss_is_refused(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_eng_noop01", 7000, "pk_eng_noop")
        .await;
    let id = paid["payment_id"].as_str().unwrap().to_owned();
    let noop = app
        .spawn_instance_with(Options {
            toss: false,
            ..Options::default()
        })
        .await;
    let reply = into_reply(
        app.client
            .post(format!("{noop}/payments/{id}/refund"))
            .bearer_auth(API_KEY)
            .json(&json!({"reason": "customer asked"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.problem(503, "PG_NOT_CONFIGURED");
    assert!(refunds_of(&app, &id).await.is_empty(), "nothing recorded");
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["refunded_amount_krw"], 0);
    assert_eq!(count(&app.events_of(&id).await, "payment.refunded"), 0);
    assert!(app.toss_requests("POST", "/cancel").await.is_empty());
    app.stop().await;
}

/// The fail redirect is unauthenticated and unverifiable: it annotates once per attempt, so
/// alternating codes cannot fill the event log.
async fn fail_redirect_records_one_failure_per_attempt(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_eng_fail01", 4000).await;
    let id = created["payment_id"].as_str().unwrap();
    for code in ["A_CODE", "B_CODE", "A_CODE", "C_CODE"] {
        let reply = app
            .get_public(&format!(
                "/payments/toss/fail?code={code}&message=m&orderId=order_eng_fail01"
            ))
            .await;
        assert!(
            reply.status.is_client_error() || reply.status.is_success(),
            "{}",
            reply.text
        );
    }
    assert_eq!(count(&app.events_of(id).await, "payment.failed"), 1);
    assert_eq!(app.payment(id).await["failure"]["code"], "A_CODE");
    // A new attempt (declined by Toss) may be annotated once more.
    app.toss
        .authenticate("pk_eng_fail", "order_eng_fail01", 4000);
    app.fail_next_confirm(403, "REJECT_CARD_PAYMENT").await;
    app.post_public(
        "/payments/confirm",
        json!({"payment_id": id, "payment_key": "pk_eng_fail"}),
    )
    .await
    .problem(402, "PG_DECLINED");
    for code in ["D_CODE", "E_CODE"] {
        app.get_public(&format!(
            "/payments/toss/fail?code={code}&message=m&orderId=order_eng_fail01"
        ))
        .await;
    }
    // One from Toss's decline, one annotation of that attempt.
    assert_eq!(count(&app.events_of(id).await, "payment.failed"), 3);
    app.stop().await;
}

/// A second attempt's webhooks carry its own secret; the first attempt's must not stick.
async fn each_attempt_has_its_own_webhook_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_eng_secret", 9000).await;
    let id = created["payment_id"].as_str().unwrap();
    // Attempt 1: unknown outcome, Toss shows it in progress (and its secret), then aborts it.
    app.toss.authenticate("pk_eng_s1", "order_eng_secret", 9000);
    confirm_with_unknown_outcome(&app, id, "pk_eng_s1").await;
    app.toss.set_status("pk_eng_s1", "ABORTED");
    app.service.settle_due().await.unwrap();
    assert_eq!(app.payment(id).await["status"], "PENDING");
    // Attempt 2: also unknown; Toss approves it and says so by webhook with its secret.
    app.toss.authenticate("pk_eng_s2", "order_eng_secret", 9000);
    confirm_with_unknown_outcome(&app, id, "pk_eng_s2").await;
    app.toss.set_status("pk_eng_s2", "DONE");
    let status = deliver(
        &app,
        &status_changed(
            "pk_eng_s2",
            "order_eng_secret",
            "DONE",
            &secret_of("pk_eng_s2"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.payment(id).await["status"],
        "COMPLETED",
        "the genuine webhook of attempt 2 is not dropped as forged"
    );
    app.stop().await;
}

async fn refund_with_key(
    app: &TestApp,
    id: &str,
    key: &str,
    body: &Value,
) -> crate::helpers::Reply {
    into_reply(
        app.client
            .post(format!("{}/payments/{id}/refund", app.address))
            .bearer_auth(API_KEY)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The first answer of a refund is lost after its money moved (a 5xx between Toss's answer and
/// ours, or a crash whose lease ran out): the retry with the same key answers with that refund,
/// and Toss is never asked twice.
async fn refund_retried_with_its_key_after_a_lost_answer_is_never_sent_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_eng_idemr1", 10000, "pk_eng_idemr")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let body = json!({"reason": "one item", "refund_amount_krw": 3000});
    let first = refund_with_key(&app, id, "refund-key-1", &body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    // The key was let go, as after a 5xx answer.
    app.execute_sql("DELETE FROM idempotency_keys", vec![])
        .await;
    let retry = refund_with_key(&app, id, "refund-key-1", &body).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.body["refund_id"], first.body["refund_id"]);
    // A crash left the key claimed and its lease ran out.
    app.execute_sql(
        "UPDATE idempotency_keys SET state = 'IN_FLIGHT', response_status = NULL, \
         response_body = NULL, response_content_type = NULL, locked_until = $1",
        vec![(chrono::Utc::now() - chrono::Duration::seconds(1)).into()],
    )
    .await;
    let after_crash = refund_with_key(&app, id, "refund-key-1", &body).await;
    assert_eq!(after_crash.status, StatusCode::OK, "{}", after_crash.text);
    assert_eq!(after_crash.body["refund_id"], first.body["refund_id"]);
    assert_eq!(
        app.toss_requests("POST", "/cancel").await.len(),
        1,
        "Toss asked once"
    );
    assert_eq!(app.payment(id).await["refunded_amount_krw"], 3000);
    // A refund still unknown answers 202 with itself.
    app.toss_hangs("POST", "/cancel$", None).await;
    let impatient_body = json!({"reason": "another", "refund_amount_krw": 2000});
    let pending = {
        let mut app = app;
        let address = app
            .spawn_instance_with(Options {
                read_timeout_secs: 1,
                ..Options::default()
            })
            .await;
        let send = |key: &'static str| {
            let client = app.client.clone();
            let address = address.clone();
            let body = impatient_body.clone();
            let id = id.to_owned();
            async move {
                into_reply(
                    client
                        .post(format!("{address}/payments/{id}/refund"))
                        .bearer_auth(API_KEY)
                        .header("idempotency-key", key)
                        .json(&body)
                        .send()
                        .await
                        .unwrap(),
                )
                .await
            }
        };
        let unknown = send("refund-key-2").await;
        assert_eq!(unknown.status, StatusCode::ACCEPTED, "{}", unknown.text);
        app.execute_sql("DELETE FROM idempotency_keys", vec![])
            .await;
        let again = send("refund-key-2").await;
        assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
        assert_eq!(again.body["refund_id"], unknown.body["refund_id"]);
        app
    };
    assert_eq!(
        pending.toss_requests("POST", "/cancel").await.len(),
        2,
        "the unknown refund was sent once, not again for its retry"
    );
    pending.stop().await;
}
