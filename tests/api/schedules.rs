//! Scheduled charges (subscription renewals): charged at their time by the worker of any
//! instance, retried only after a `retryable` decline and only after its delay, ended
//! `EXHAUSTED` by a final decline, the end of the delays or a missing consent, never charged
//! once cancelled, and approved at Toss at most once across instances and a SIGKILL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::billing::{charge, issued_key};
use crate::consents::{charges_sent, consent, subscription_payment};
use crate::crash::{key_and_payment, started};
use crate::fake_toss::FakeToss;
use crate::helpers::{
    API_KEY, Backend, Reply, TestApp, TestDatabase, init_process, into_reply, spawn_app,
};
use crate::on_both_databases;

on_both_databases!(
    a_soft_decline_is_retried_after_its_delay_then_paid_once,
    a_hard_decline_is_not_retried,
    the_end_of_the_delays_exhausts_it,
    a_schedule_cancelled_before_its_time_is_never_charged,
    a_scheduled_charge_above_the_consent_is_exhausted_without_toss,
    scheduling_checks_as_a_charge_and_replaces_only_before_an_attempt,
    due_charges_across_two_instances_are_each_approved_once,
    sigkill_during_a_scheduled_charge_settles_without_a_second_approval,
    a_taker_that_died_after_a_decline_is_replaced_without_a_second_charge_of_that_attempt,
    a_payment_cancelled_with_a_schedule_ends_it_with_the_cancel,
);

fn at(offset_ms: i64) -> String {
    (Utc::now() + chrono::Duration::milliseconds(offset_ms)).to_rfc3339()
}

pub(crate) async fn schedule(app: &TestApp, payment_id: &str, body: Value) -> Reply {
    app.post(&format!("/payments/{payment_id}/schedule"), body)
        .await
}

async fn unschedule(app: &TestApp, payment_id: &str) -> Reply {
    app.request(
        Method::DELETE,
        &format!("/payments/{payment_id}/schedule"),
        None,
        true,
    )
    .await
}

/// Polls the payment until `done` holds (at most `secs`), and returns it.
pub(crate) async fn wait_for(
    app: &TestApp,
    payment_id: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut payment = Value::Null;
    for _ in 0..secs * 20 {
        payment = app.payment(payment_id).await;
        if done(&payment) {
            return payment;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting; the payment is {payment}");
}

fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

async fn a_soft_decline_is_retried_after_its_delay_then_paid_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = subscription_payment(&app, "u-1", "sub-s1", "order_sched_01", 19_900).await;
    app.toss.decline_next_charge(
        "REJECT_CARD_PAYMENT",
        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
    );
    let reply = schedule(
        &app,
        &id,
        json!({"billing_key_id": key, "charge_at": at(0), "retry_after_seconds": [3, 600]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["schedule"]["status"], "SCHEDULED");
    assert_eq!(reply.body["schedule"]["attempts_made"], 0);
    assert_eq!(
        reply.body["schedule"]["retry_after_seconds"],
        json!([3, 600])
    );
    assert_eq!(reply.body["schedule"]["billing_key_id"], key.as_str());

    let declined = wait_for(&app, &id, 10, |p| p["schedule"]["attempts_made"] == 1).await;
    assert_eq!(declined["status"], "PENDING");
    assert_eq!(declined["schedule"]["status"], "SCHEDULED");
    assert_eq!(declined["failure"]["retryable"], true);
    let next = timestamp(&declined["schedule"]["next_attempt_at"]);
    let events = app.events_of(&id).await;
    assert_eq!(
        event_types(&events),
        ["payment.failed", "payment.retry_scheduled"]
    );
    let retry = &events[1];
    assert_eq!(retry["payload"]["attempt"], 1);
    assert_eq!(retry["payload"]["order_id"], "order_sched_01");
    assert_eq!(retry["payload"]["subscription_id"], "sub-s1");
    assert_eq!(retry["payload"]["failure"]["code"], "REJECT_CARD_PAYMENT");
    assert_eq!(retry["payload"]["failure"]["retryable"], true);
    assert_eq!(timestamp(&retry["payload"]["next_attempt_at"]), next);
    assert_eq!(retry["actor"]["type"], "system");
    let declined_at = timestamp(&events[0]["timestamp"]);
    let delay = next - declined_at;
    assert!(
        delay >= chrono::Duration::milliseconds(2_900) && delay <= chrono::Duration::seconds(4),
        "the retry waits the first delay: {delay}"
    );
    // Not charged again before its time.
    while Utc::now() < next - chrono::Duration::milliseconds(300) {
        assert_eq!(charges_sent(&app).await, 1, "no retry before the delay");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    wait_for(&app, &id, 10, |p| p["status"] == "COMPLETED").await;
    let paid = wait_for(&app, &id, 5, |p| p["schedule"]["status"] == "DONE").await;
    assert_eq!(paid["schedule"]["attempts_made"], 2);
    assert_eq!(paid["schedule"]["next_attempt_at"], Value::Null);
    assert_eq!(app.toss.approvals("order_sched_01"), 1);
    assert_eq!(charges_sent(&app).await, 2);
    assert_eq!(
        event_types(&app.events_of(&id).await),
        [
            "payment.failed",
            "payment.retry_scheduled",
            "payment.completed"
        ]
    );
    // Nothing more happens afterwards.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(charges_sent(&app).await, 2);
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains("scheduled_charges_retried_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scheduled_charge_start_late_seconds"),
        "{metrics}"
    );
    app.stop().await;
}

async fn a_hard_decline_is_not_retried(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = subscription_payment(&app, "u-1", "sub-s2", "order_sched_02", 19_900).await;
    app.toss
        .decline_next_charge("INVALID_STOPPED_CARD", "정지된 카드 입니다.");
    let reply = schedule(
        &app,
        &id,
        json!({"billing_key_id": key, "charge_at": at(0), "retry_after_seconds": [1]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let exhausted = wait_for(&app, &id, 10, |p| p["schedule"]["status"] == "EXHAUSTED").await;
    assert_eq!(exhausted["schedule"]["attempts_made"], 1);
    assert_eq!(exhausted["schedule"]["next_attempt_at"], Value::Null);
    assert_eq!(exhausted["status"], "PENDING");
    let events = app.events_of(&id).await;
    assert_eq!(
        event_types(&events),
        ["payment.failed", "payment.retries_exhausted"]
    );
    let payload = &events[1]["payload"];
    assert_eq!(payload["attempts_made"], 1);
    assert_eq!(payload["failure"]["code"], "INVALID_STOPPED_CARD");
    assert_eq!(payload["failure"]["retryable"], false);
    assert_eq!(payload["subscription_id"], "sub-s2");
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        charges_sent(&app).await,
        1,
        "a hard decline is never retried"
    );
    // An exhausted schedule is not replaced, nor cancelled.
    schedule(
        &app,
        &id,
        json!({"billing_key_id": key, "charge_at": at(0)}),
    )
    .await
    .problem(409, "INVALID_STATE");
    unschedule(&app, &id).await.problem(409, "INVALID_STATE");
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains("scheduled_charges_exhausted_total"),
        "{metrics}"
    );
    app.stop().await;
}

async fn the_end_of_the_delays_exhausts_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = subscription_payment(&app, "u-1", "sub-s3", "order_sched_03", 9_900).await;
    for _ in 0..2 {
        app.toss.decline_next_charge(
            "REJECT_CARD_PAYMENT",
            "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
        );
    }
    schedule(
        &app,
        &id,
        json!({"billing_key_id": key, "charge_at": at(0), "retry_after_seconds": [1]}),
    )
    .await;
    let exhausted = wait_for(&app, &id, 15, |p| p["schedule"]["status"] == "EXHAUSTED").await;
    assert_eq!(exhausted["schedule"]["attempts_made"], 2);
    assert_eq!(
        event_types(&app.events_of(&id).await),
        [
            "payment.failed",
            "payment.retry_scheduled",
            "payment.failed",
            "payment.retries_exhausted"
        ]
    );
    assert_eq!(charges_sent(&app).await, 2);
    assert_eq!(app.toss.approvals("order_sched_03"), 0);
    app.stop().await;
}

async fn a_schedule_cancelled_before_its_time_is_never_charged(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = subscription_payment(&app, "u-1", "sub-s4", "order_sched_04", 9_900).await;
    let reply = schedule(
        &app,
        &id,
        json!({"billing_key_id": key, "charge_at": at(1_500)}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // The configured default delays.
    assert_eq!(
        reply.body["schedule"]["retry_after_seconds"],
        json!([86400, 259200, 604800])
    );
    let cancelled = unschedule(&app, &id).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.body["schedule"]["status"], "CANCELLED");
    assert_eq!(cancelled.body["status"], "PENDING");
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(charges_sent(&app).await, 0, "never charged");
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["schedule"]["status"], "CANCELLED");
    assert!(app.events_of(&id).await.is_empty());
    // Cancelling again answers it as it is.
    let again = unschedule(&app, &id).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["schedule"]["status"], "CANCELLED");
    // A payment without a schedule: 404.
    let other = subscription_payment(&app, "u-1", "sub-s4", "order_sched_05", 9_900).await;
    unschedule(&app, &other).await.problem(404, "NOT_FOUND");
    // The list shows the schedule too.
    let listed = app.get("/payments?user_id=u-1").await;
    let row = listed.body["payments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["payment_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["schedule"]["status"], "CANCELLED");
    app.stop().await;
}

async fn a_scheduled_charge_above_the_consent_is_exhausted_without_toss(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    consent(&app, "u-1", "sub-s5", 10_000).await;
    let id = subscription_payment(&app, "u-1", "sub-s5", "order_sched_06", 12_000).await;
    schedule(
        &app,
        &id,
        json!({"billing_key_id": key, "charge_at": at(0)}),
    )
    .await;
    let exhausted = wait_for(&app, &id, 10, |p| p["schedule"]["status"] == "EXHAUSTED").await;
    assert_eq!(exhausted["schedule"]["attempts_made"], 0);
    assert_eq!(charges_sent(&app).await, 0, "Toss never called");
    let events = app.events_of(&id).await;
    assert_eq!(event_types(&events), ["payment.retries_exhausted"]);
    assert_eq!(events[0]["payload"]["failure"]["code"], "CONSENT_REQUIRED");

    // Under the consent: charged.
    let under = subscription_payment(&app, "u-1", "sub-s5", "order_sched_07", 10_000).await;
    schedule(
        &app,
        &under,
        json!({"billing_key_id": key, "charge_at": at(0)}),
    )
    .await;
    let done = wait_for(&app, &under, 10, |p| p["schedule"]["status"] == "DONE").await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(app.toss.approvals("order_sched_07"), 1);
    app.stop().await;
}

async fn scheduling_checks_as_a_charge_and_replaces_only_before_an_attempt(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let (other_key, _) = issued_key(&app, "u-2").await;
    let id = subscription_payment(&app, "u-1", "sub-s6", "order_sched_08", 9_900).await;
    let later = at(3_600_000);
    let body = |key: &str| json!({"billing_key_id": key, "charge_at": later});
    schedule(&app, &id, body(&other_key))
        .await
        .problem(422, "BILLING_KEY_MISMATCH");
    schedule(&app, &id, body("019ad0c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"))
        .await
        .problem(404, "NOT_FOUND");
    schedule(&app, "019ad0c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d", body(&key))
        .await
        .problem(404, "NOT_FOUND");
    for (bad, why) in [
        (
            json!({"billing_key_id": key, "charge_at": "tomorrow"}),
            "charge_at",
        ),
        (
            json!({"billing_key_id": "nope", "charge_at": later}),
            "key id",
        ),
        (
            json!({"billing_key_id": key, "charge_at": later, "retry_after_seconds": []}),
            "no delay",
        ),
        (
            json!({"billing_key_id": key, "charge_at": later, "retry_after_seconds": [0]}),
            "zero",
        ),
        (
            json!({"billing_key_id": key, "charge_at": later, "retry_after_seconds": [2592001]}),
            "too long",
        ),
        (
            json!({"billing_key_id": key, "charge_at": later, "retry_after_seconds": [1,1,1,1,1,1,1,1,1,1,1]}),
            "eleven",
        ),
    ] {
        let reply = schedule(&app, &id, bad).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {}",
            reply.text
        );
    }
    assert_eq!(
        app.payment(&id).await["schedule"],
        Value::Null,
        "nothing kept"
    );

    let first = schedule(&app, &id, body(&key)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    // Replaced while no attempt was made.
    let sooner = at(0);
    let replaced = schedule(
        &app,
        &id,
        json!({"billing_key_id": key, "charge_at": sooner, "retry_after_seconds": [60]}),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    assert_eq!(
        replaced.body["schedule"]["retry_after_seconds"],
        json!([60])
    );
    let done = wait_for(&app, &id, 10, |p| p["schedule"]["status"] == "DONE").await;
    assert_eq!(done["status"], "COMPLETED");
    let replaced_at = timestamp(&done["schedule"]["charge_at"]) - timestamp(&json!(sooner));
    assert!(
        replaced_at.num_milliseconds().abs() < 1,
        "the replacement's time: {replaced_at}"
    );
    // Paid: neither replaced nor scheduled.
    schedule(&app, &id, body(&key))
        .await
        .problem(409, "INVALID_STATE");

    // A deleted key.
    let next = subscription_payment(&app, "u-1", "sub-s6", "order_sched_09", 9_900).await;
    let deleted = app
        .request(Method::DELETE, &format!("/billing-keys/{key}"), None, true)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    schedule(&app, &next, body(&key))
        .await
        .problem(409, "BILLING_KEY_INACTIVE");

    // A key deleted after scheduling ends it EXHAUSTED when due, Toss not called.
    let (key3, _) = issued_key(&app, "u-3").await;
    let third = subscription_payment(&app, "u-3", "sub-s7", "order_sched_10", 9_900).await;
    let reply = schedule(
        &app,
        &third,
        json!({"billing_key_id": key3, "charge_at": at(800)}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    app.request(Method::DELETE, &format!("/billing-keys/{key3}"), None, true)
        .await;
    // (Another user's key cannot come to a schedule: the schedule checks the owner, and neither
    // the key's owner nor the payment's ever changes.)
    let exhausted = wait_for(&app, &third, 10, |p| p["schedule"]["status"] == "EXHAUSTED").await;
    assert_eq!(exhausted["status"], "PENDING");
    assert_eq!(exhausted["schedule"]["attempts_made"], 0);
    assert_eq!(exhausted["schedule"]["next_attempt_at"], Value::Null);
    let events = app.events_of(&third).await;
    assert_eq!(event_types(&events), ["payment.retries_exhausted"]);
    assert_eq!(
        events[0]["payload"]["failure"]["code"],
        "BILLING_KEY_INACTIVE"
    );
    assert_eq!(app.toss.approvals("order_sched_10"), 0);
    app.stop().await;
}

async fn due_charges_across_two_instances_are_each_approved_once(backend: Backend) {
    let mut app = spawn_app(backend).await;
    app.spawn_instance().await;
    let (key, _) = issued_key(&app, "u-1").await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let order = format!("order_sched_two_{n:02}");
        let id = subscription_payment(&app, "u-1", &format!("sub-two-{n}"), &order, 5_000).await;
        let reply = schedule(
            &app,
            &id,
            json!({"billing_key_id": key, "charge_at": at(700)}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        ids.push((id, order));
    }
    for (id, order) in &ids {
        let done = wait_for(&app, id, 20, |p| p["schedule"]["status"] == "DONE").await;
        assert_eq!(done["status"], "COMPLETED");
        assert_eq!(done["schedule"]["attempts_made"], 1);
        assert_eq!(app.toss.approvals(order), 1, "{order} approved once");
        assert_eq!(
            event_types(&app.events_of(id).await),
            ["payment.completed"],
            "{order}"
        );
    }
    assert_eq!(charges_sent(&app).await, ids.len(), "one charge each");
    // A charge by hand of a scheduled-and-paid payment is the same charge, not a second.
    let reply = charge(&app, &ids[0].0, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(charges_sent(&app).await, ids.len());
    app.stop().await;
}

async fn sigkill_during_a_scheduled_charge_settles_without_a_second_approval(backend: Backend) {
    init_process();
    let database = TestDatabase::create(backend).await;
    let toss_server = MockServer::start().await;
    let toss = FakeToss::default();
    toss.mount(&toss_server).await;
    // Toss charges at once but answers only after a minute.
    toss.slow_charges(&toss_server, Duration::from_secs(60))
        .await;
    let client = reqwest::Client::new();
    let send = |base: &str, path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
    };
    let read = |base: String, id: String| {
        let client = client.clone();
        async move {
            let reply = client
                .get(format!("{base}/payments/{id}"))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap();
            into_reply(reply).await.body
        }
    };

    let (mut first, base) = started(&database.url, &toss_server.uri(), &client).await;
    let (key, id) = key_and_payment(
        &client,
        &base,
        &toss,
        json!({"user_id": "u-1", "order_id": "order_sched_kill", "amount_krw": 25000,
                   "payment_method": "card", "payment_type": "SUBSCRIPTION", "subscription_id": "sub-kill"}),
    )
    .await;
    let scheduled = into_reply(
        send(
            &base,
            &format!("/payments/{id}/schedule"),
            json!({"billing_key_id": key, "charge_at": at(0), "retry_after_seconds": [1]}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(scheduled.status, StatusCode::OK, "{}", scheduled.text);
    for _ in 0..200 {
        if toss.approvals("order_sched_kill") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        toss.approvals("order_sched_kill"),
        1,
        "Toss approved it; its answer is held"
    );
    let charging = read(base.clone(), id.clone()).await;
    assert_eq!(charging["schedule"]["status"], "CHARGING", "{charging}");
    first.kill().expect("SIGKILL");
    first.wait().unwrap();

    let (mut second, base) = started(&database.url, &toss_server.uri(), &client).await;
    let mut payment = Value::Null;
    for _ in 0..300 {
        payment = read(base.clone(), id.clone()).await;
        if payment["schedule"]["status"] == "DONE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(payment["schedule"]["status"], "DONE", "{payment}");
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(payment["schedule"]["attempts_made"], 1);
    assert_eq!(toss.approvals("order_sched_kill"), 1);
    let charges = toss_server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            r.method.as_str() == "POST"
                && r.url.path().starts_with("/v1/billing/")
                && !r.url.path().contains("authorizations")
        })
        .count();
    assert_eq!(
        charges, 1,
        "the restarted service read back; it did not charge again"
    );
    second.kill().unwrap();
    second.wait().unwrap();
}

/// The instance that took a schedule died after Toss declined its charge (the payment shows
/// the decline) and before it wrote the schedule's end. The instance that takes it over once
/// the lease ran out records that decline (a retry after its delay), and does not charge the
/// same attempt again at once.
async fn a_taker_that_died_after_a_decline_is_replaced_without_a_second_charge_of_that_attempt(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = subscription_payment(&app, "u-1", "sub-s8", "order_sched_11", 9_900).await;
    let reply = schedule(
        &app,
        &id,
        json!({"billing_key_id": key, "charge_at": at(3_600_000), "retry_after_seconds": [2]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // What the dead taker did: its charge (attempt 1), declined.
    app.toss.decline_next_charge(
        "REJECT_CARD_PAYMENT",
        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
    );
    charge(&app, &id, &key).await.problem(402, "PG_DECLINED");
    let past: DateTime<Utc> = Utc::now() - chrono::Duration::seconds(10);
    app.execute_sql(
        "UPDATE payment_schedules SET status = 'CHARGING', lease_until = $1, \
         next_attempt_at = $1, payment_attempt = 1 WHERE payment_id = $2",
        vec![past.into(), id.clone().into()],
    )
    .await;

    let retrying = wait_for(&app, &id, 10, |p| p["schedule"]["attempts_made"] == 1).await;
    assert_eq!(retrying["schedule"]["status"], "SCHEDULED");
    assert_eq!(
        charges_sent(&app).await,
        1,
        "the declined attempt was not charged again"
    );
    let done = wait_for(&app, &id, 10, |p| p["schedule"]["status"] == "DONE").await;
    assert_eq!(done["schedule"]["attempts_made"], 2);
    assert_eq!(charges_sent(&app).await, 2);
    assert_eq!(app.toss.approvals("order_sched_11"), 1);
    assert_eq!(
        event_types(&app.events_of(&id).await),
        [
            "payment.failed",
            "payment.retry_scheduled",
            "payment.completed"
        ]
    );
    app.stop().await;
}

/// The cancel of a `PENDING` payment ends its schedule in the same statement (or transaction)
/// as the payment's cancel and its event: shown `CANCELLED` at once, never charged.
async fn a_payment_cancelled_with_a_schedule_ends_it_with_the_cancel(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = subscription_payment(&app, "u-1", "sub-s9", "order_sched_12", 9_900).await;
    let reply = schedule(
        &app,
        &id,
        json!({"billing_key_id": key, "charge_at": at(3_000)}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["schedule"]["status"], "SCHEDULED");
    let cancelled = app
        .post(
            &format!("/payments/{id}/cancel"),
            json!({"reason": "subscription ended"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "CANCELLED");
    assert_eq!(payment["schedule"]["status"], "CANCELLED");
    assert_eq!(payment["schedule"]["next_attempt_at"], Value::Null);
    assert_eq!(payment["schedule"]["attempts_made"], 0);
    // Past its time: never charged, and no event but the cancel's.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(charges_sent(&app).await, 0, "never charged");
    assert_eq!(app.payment(&id).await["schedule"]["status"], "CANCELLED");
    assert_eq!(
        event_types(&app.events_of(&id).await),
        ["payment.cancelled"]
    );
    // Cancelling the schedule answers it as it is.
    let again = unschedule(&app, &id).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["schedule"]["status"], "CANCELLED");
    app.stop().await;
}
