//! Money rules 2-5 under the faults we can produce: races, retries, instances, unknown outcomes,
//! crashes at each step, and Toss replies that contradict our records.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::fake_toss::{self, FakePayment};
use crate::helpers::{
    API_KEY, Backend, Options, deliver, into_reply, spawn_app, spawn_impatient, spawn_with,
    store_on,
};
use crate::on_both_databases;

on_both_databases!(
    fifty_concurrent_confirms_and_reloads_confirm_once,
    background_reconciler_settles_a_timed_out_confirm,
    already_processed_on_retry_is_settled_from_read_back,
    retry_after_timeout_reads_back_instead_of_confirming_again,
    crash_after_claim_before_toss_then_toss_expires,
    crash_after_claim_before_toss_is_sent_within_the_window,
    crash_after_claim_and_toss_never_heard_of_it,
    crash_after_toss_done_before_commit,
    concurrent_refunds_never_exceed_balance,
    a_refund_adopted_by_a_webhook_while_its_answer_is_on_the_way_counts_once,
    confirm_reply_that_contradicts_us_is_set_aside,
);

async fn fifty_concurrent_confirms_and_reloads_confirm_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_race_00001", 15000).await;
    app.toss.authenticate("pk_race", "order_race_00001", 15000);
    app.toss
        .slow_confirm(&app.toss_server, Duration::from_millis(300))
        .await;

    let requests = (0..50).map(|i| {
        let client = app.client.clone();
        let base = app.address.clone();
        async move {
            let request = if i % 2 == 0 {
                client
                    .post(format!("{base}/payments/confirm"))
                    .json(&json!({"order_id": "order_race_00001", "payment_key": "pk_race"}))
            } else {
                client.get(format!(
                    "{base}/payments/toss/success?paymentKey=pk_race&orderId=order_race_00001&amount=15000"
                ))
            };
            into_reply(request.send().await.expect("sent")).await
        }
    });
    let replies = join_all(requests).await;

    assert_eq!(
        app.confirms_sent().await,
        1,
        "exactly one confirm reached Toss"
    );
    let id = created["payment_id"].as_str().unwrap();
    let last = app.payment(id).await;
    assert_eq!(last["status"], "COMPLETED");
    for reply in &replies {
        match reply.status {
            StatusCode::OK => {
                assert_eq!(reply.body["status"], "COMPLETED");
                assert_eq!(reply.body["pg_transaction_id"], "pk_race");
            }
            StatusCode::ACCEPTED => assert_eq!(reply.body["status"], "IN_PROGRESS"),
            other => panic!("inconsistent answer {other}: {}", reply.text),
        }
    }
    assert_eq!(app.events_of(id).await.len(), 1, "one completed event");
    app.stop().await;
}

async fn background_reconciler_settles_a_timed_out_confirm(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            read_timeout_secs: 1,
            reconciler: true,
            ..Options::default()
        },
    )
    .await;
    let created = app.create_payment("order_bgrec_0001", 5000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss.authenticate("pk_bg", "order_bgrec_0001", 5000);
    app.toss_hangs("POST", "^/v1/payments/confirm$", None).await;
    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_bg"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    // The charge goes through at Toss later; the reconciler finds out by itself.
    app.toss.set_status("pk_bg", "DONE");
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app.payment(id).await["status"].clone();
        if status == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "COMPLETED");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.events_of(id).await.len(), 1);
    assert_eq!(app.confirms_sent().await, 1);
    app.stop().await;
}

async fn already_processed_on_retry_is_settled_from_read_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_already_01", 6000).await;
    let id = created["payment_id"].as_str().unwrap();
    // Toss already confirmed this attempt (say our earlier reply was lost); a confirm now gets
    // ALREADY_PROCESSED_PAYMENT, which means "read back", not "failed".
    app.toss
        .authenticate("pk_already", "order_already_01", 6000);
    app.toss.set_status("pk_already", "DONE");
    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_already"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED");
    assert_eq!(app.events_of(id).await.len(), 1);
    app.stop().await;
}

async fn retry_after_timeout_reads_back_instead_of_confirming_again(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let created = app.create_payment("order_retry_0001", 7000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss.authenticate("pk_retry", "order_retry_0001", 7000);
    app.toss_hangs("POST", "^/v1/payments/confirm$", None).await;
    let body = json!({"payment_id": id, "payment_key": "pk_retry"});
    let first = app.post_public("/payments/confirm", body.clone()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let early = app.post_public("/payments/confirm", body.clone()).await;
    assert_eq!(early.status, StatusCode::ACCEPTED, "{}", early.text);
    app.toss.set_status("pk_retry", "DONE");
    // While Toss showed the attempt unapproved, the early retry could send it again (money
    // rules: within the window, a confirm Toss does not have is resent). Now Toss has it.
    let sent_before = app.confirms_sent().await;
    // The client retries once our claim on the attempt has lapsed.
    app.execute_sql(
        "UPDATE payments SET next_reconcile_at = $1 WHERE id = $2",
        vec![Utc::now().into(), id.into()],
    )
    .await;
    let retry = app.post_public("/payments/confirm", body).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.body["status"], "COMPLETED");
    assert_eq!(
        app.confirms_sent().await,
        sent_before,
        "the retry read back, it did not confirm again"
    );
    assert_eq!(app.events_of(id).await.len(), 1);
    app.stop().await;
}

/// The state a confirm commits before calling Toss (see `claim`), with its claim lapsed: the
/// process died right there.
async fn simulate_crash_after_claim(
    app: &crate::helpers::TestApp,
    id: &str,
    payment_key: &str,
    started: chrono::DateTime<Utc>,
) {
    app.execute_sql(
        "UPDATE payments SET status = 'IN_PROGRESS', payment_key = $1, pg_provider = 'toss', \
         confirm_attempt = 1, confirm_started_at = $2, next_reconcile_at = $3 WHERE id = $4",
        vec![
            payment_key.into(),
            started.into(),
            Utc::now().into(),
            id.into(),
        ],
    )
    .await;
}

/// The process died after the claim and before the send: the buyer authenticated, Toss holds
/// the payment unapproved, and the sale must not be lost. Within Toss's window the reconciler
/// sends the confirm itself.
async fn crash_after_claim_before_toss_is_sent_within_the_window(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_crash_0003", 9000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss.authenticate("pk_crash3", "order_crash_0003", 9000);
    simulate_crash_after_claim(&app, id, "pk_crash3", Utc::now()).await;
    app.service.settle_due().await.unwrap();
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(app.confirms_sent().await, 1);
    assert_eq!(app.toss.payment("pk_crash3").unwrap().status, "DONE");
    let events = app.events_of(id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "payment.completed");
    app.stop().await;
}

async fn crash_after_claim_before_toss_then_toss_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_crash_0001", 9000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss.authenticate("pk_crash1", "order_crash_0001", 9000);
    // Claimed longer ago than Toss's window: too late to send.
    simulate_crash_after_claim(
        &app,
        id,
        "pk_crash1",
        Utc::now() - chrono::Duration::minutes(12),
    )
    .await;

    // Toss still holds the authenticated payment: nothing to decide yet.
    app.service.settle_due().await.unwrap();
    assert_eq!(app.payment(id).await["status"], "IN_PROGRESS");
    // Ten minutes later Toss expires it: the buyer was never charged.
    app.toss.set_status("pk_crash1", "EXPIRED");
    app.execute_sql(
        "UPDATE payments SET next_reconcile_at = $1 WHERE id = $2",
        vec![Utc::now().into(), id.into()],
    )
    .await;
    app.service.settle_due().await.unwrap();
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["failure"]["code"], "PG_EXPIRED");
    let events = app.events_of(id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "payment.failed");
    assert_eq!(
        app.confirms_sent().await,
        0,
        "settled by reading, never by confirming"
    );
    app.stop().await;
}

/// A key Toss has no record of was never authenticated, so it can never be approved: the
/// reconciler releases its claim at once (not after the confirm window), recording nothing.
async fn crash_after_claim_and_toss_never_heard_of_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_crash_0002", 9000).await;
    let id = created["payment_id"].as_str().unwrap();
    simulate_crash_after_claim(&app, id, "pk_unknown_to_toss", Utc::now()).await;
    app.service.settle_due().await.unwrap();
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PENDING", "released at once: {payment}");
    assert!(payment["failure"].is_null(), "{payment}");
    assert!(app.events_of(id).await.is_empty());
    assert_eq!(app.confirms_sent().await, 0);
    app.stop().await;
}

async fn crash_after_toss_done_before_commit(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_crash_0003", 9000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss.authenticate("pk_crash3", "order_crash_0003", 9000);
    app.toss.set_status("pk_crash3", "DONE");
    simulate_crash_after_claim(&app, id, "pk_crash3", Utc::now()).await;
    app.service.settle_due().await.unwrap();
    app.service.settle_due().await.unwrap();
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["pg_transaction_id"], "pk_crash3");
    let events = app.events_of(id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "payment.completed");
    assert_eq!(app.confirms_sent().await, 0);
    app.stop().await;
}

async fn concurrent_refunds_never_exceed_balance(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_rrace_0001", 10000, "pk_rrace")
        .await;
    let id = paid["payment_id"].as_str().unwrap().to_owned();
    app.toss
        .slow_cancel(&app.toss_server, Duration::from_millis(300))
        .await;

    // Two refunds that together exceed the balance.
    let pair = join_all([6000, 7000].map(|amount| {
        let (client, base, id) = (app.client.clone(), app.address.clone(), id.clone());
        async move {
            let request = client
                .post(format!("{base}/payments/{id}/refund"))
                .bearer_auth(API_KEY)
                .json(&json!({"reason": "race", "refund_amount_krw": amount}));
            into_reply(request.send().await.unwrap()).await
        }
    }))
    .await;
    let mut statuses: Vec<u16> = pair.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![200, 409],
        "{:?}",
        pair.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let refused = pair
        .iter()
        .find(|r| r.status == StatusCode::CONFLICT)
        .unwrap();
    refused.problem(409, "REFUND_EXCEEDS_BALANCE");
    assert_eq!(
        app.toss_requests("POST", "/cancel").await.len(),
        1,
        "Toss saw one cancel"
    );

    // Many small ones racing for what is left: exactly the balance goes.
    let left = 10000
        - app.payment(&id).await["refunded_amount_krw"]
            .as_i64()
            .unwrap();
    let many = join_all((0..8).map(|_| {
        let (client, base, id) = (app.client.clone(), app.address.clone(), id.clone());
        async move {
            let request = client
                .post(format!("{base}/payments/{id}/refund"))
                .bearer_auth(API_KEY)
                .json(&json!({"reason": "small", "refund_amount_krw": 1000}));
            into_reply(request.send().await.unwrap()).await
        }
    }))
    .await;
    let ok = many.iter().filter(|r| r.status == StatusCode::OK).count() as i64;
    assert_eq!(ok, left / 1000);
    assert!(
        many.iter()
            .all(|r| r.status == StatusCode::OK || r.status == StatusCode::CONFLICT)
    );
    let payment = app.payment(&id).await;
    assert_eq!(payment["refunded_amount_krw"], 10000 - left % 1000);
    let fake = app.toss.payment("pk_rrace").unwrap();
    assert_eq!(
        fake.balance,
        10000 - payment["refunded_amount_krw"].as_i64().unwrap(),
        "our books match Toss"
    );
    assert_eq!(
        app.toss_requests("POST", "/cancel").await.len() as i64,
        1 + ok
    );
    app.stop().await;
}

/// A refund's cancel lands at Toss, and before its answer comes back a webhook makes the
/// service read Toss's record and adopt the cancel. The answer's adoption, prepared from the
/// rows as the reservation left them, must not write them over the webhook's: the refund is
/// completed once, with one `payment.refunded`, and the balance moves once.
async fn a_refund_adopted_by_a_webhook_while_its_answer_is_on_the_way_counts_once(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_rwhk_0001", 10000, "pk_rwhk")
        .await;
    let id = paid["payment_id"].as_str().unwrap().to_owned();
    app.toss
        .slow_cancel(&app.toss_server, Duration::from_millis(1500))
        .await;
    let refund = {
        let request = app
            .client
            .post(format!("{}/payments/{id}/refund", app.address))
            .bearer_auth(API_KEY)
            .json(&json!({"reason": "race", "refund_amount_krw": 4000}));
        tokio::spawn(async move { into_reply(request.send().await.unwrap()).await })
    };
    // The cancel is at Toss (its answer on the way) once Toss shows it.
    for _ in 0..100 {
        if app.toss.payment("pk_rwhk").unwrap().balance == 6000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hint = json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-11-23T12:18:15.000000",
        "data": {"paymentKey": "pk_rwhk", "orderId": "order_rwhk_0001",
                 "status": "PARTIAL_CANCELED", "totalAmount": 10000}
    });
    let hinted = deliver(&app, Some("whtrans_rwhk"), &hint).await;
    assert_eq!(hinted.status, StatusCode::OK, "{}", hinted.text);
    let during = app.payment(&id).await;
    assert_eq!(
        during["refunded_amount_krw"], 4000,
        "the webhook adopted it"
    );
    let reply = refund.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED", "{}", reply.text);
    let payment = app.payment(&id).await;
    assert_eq!(payment["refunded_amount_krw"], 4000);
    assert_eq!(payment["status"], "PARTIAL_REFUND");
    assert_eq!(payment["needs_review"], false);
    let refunded: Vec<Value> = app
        .events_of(&id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "payment.refunded")
        .collect();
    assert_eq!(refunded.len(), 1, "{refunded:?}");
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds.as_array().unwrap().len(), 1, "{refunds}");
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);
    app.stop().await;
}

async fn confirm_reply_that_contradicts_us_is_set_aside(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_liar_00001", 10000).await;
    let id = created["payment_id"].as_str().unwrap();
    let wrong = FakePayment {
        payment_key: "pk_liar".to_owned(),
        order_id: "order_liar_00001".to_owned(),
        total: 100,
        balance: 100,
        status: "DONE".to_owned(),
        cancels: Vec::new(),
        approved_at: None,
        last_transaction_key: "tx".to_owned(),
        ..Default::default()
    };
    Mock::given(method("POST"))
        .and(path("/v1/payments/confirm"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fake_toss::to_json(&wrong)))
        .mount(&app.toss_server)
        .await;
    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_liar"}),
        )
        .await;
    reply.problem(502, "PG_RESPONSE_MISMATCH");
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "IN_PROGRESS", "never silently completed");
    assert_eq!(payment["needs_review"], true);
    assert!(app.events_of(id).await.is_empty());
    // Flagged for a person, but a flag never stops the engine: the reconciler goes on reading
    // Toss back. Toss has no record of the key, so the claim is released (nothing recorded).
    app.service.settle_due().await.unwrap();
    assert!(
        !app.toss_requests("GET", "/v1/payments/pk_liar")
            .await
            .is_empty()
    );
    let released = app.payment(id).await;
    assert_eq!(released["status"], "PENDING", "{released}");
    assert_eq!(released["failure"], Value::Null);
    // A retry is answered as for any payment: its own reply contradicts ours again.
    let again = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_liar"}),
        )
        .await;
    again.problem(502, "PG_RESPONSE_MISMATCH");
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "IN_PROGRESS", "never silently completed");
    assert_eq!(payment["needs_review"], true, "the note stays for a person");
    assert!(app.events_of(id).await.is_empty());
    app.stop().await;
}

/// Two instances of the service on one PostgreSQL: the database is the only lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_confirm_once() {
    let mut app = spawn_app(Backend::Postgres).await;
    let second = app.spawn_instance().await;
    let created = app.create_payment("order_2inst_0001", 15000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss.authenticate("pk_2inst", "order_2inst_0001", 15000);
    app.toss
        .slow_confirm(&app.toss_server, Duration::from_millis(300))
        .await;
    let replies = join_all((0..40).map(|i| {
        let client = app.client.clone();
        let base = if i % 2 == 0 { app.address.clone() } else { second.clone() };
        async move {
            let request = if i % 4 < 2 {
                client
                    .request(Method::POST, format!("{base}/payments/confirm"))
                    .json(&json!({"order_id": "order_2inst_0001", "payment_key": "pk_2inst"}))
            } else {
                client.get(format!(
                    "{base}/payments/toss/success?paymentKey=pk_2inst&orderId=order_2inst_0001&amount=15000"
                ))
            };
            into_reply(request.send().await.unwrap()).await
        }
    }))
    .await;
    assert_eq!(app.confirms_sent().await, 1);
    for reply in &replies {
        assert!(
            reply.status == StatusCode::OK || reply.status == StatusCode::ACCEPTED,
            "{}",
            reply.text
        );
    }
    assert_eq!(app.payment(id).await["status"], "COMPLETED");
    assert_eq!(app.events_of(id).await.len(), 1);
    app.stop().await;
}

/// `seq` is drawn only under the outbox lock, which its transaction holds until it commits, so a
/// consumer paging `GET /events` by cursor can never pass a number that commits later. Checked
/// by holding the lock: a completion (one statement) or a refund (a transaction) waiting for it
/// has drawn no `seq` yet, and nothing of it is visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_seq_is_drawn_under_the_outbox_lock() {
    use sea_orm::TransactionTrait;
    use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

    async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
        db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "v")
            .unwrap()
    }
    const DRAWN: &str = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS v \
                         FROM events_seq_seq";
    const WAITING: &str = "SELECT count(*) AS v FROM pg_locks \
                           WHERE locktype = 'advisory' AND objid = 727100002 AND NOT granted";

    let app = spawn_app(Backend::Postgres).await;
    let created = app.create_payment("order_seqlock_01", 15000).await;
    let id = created["payment_id"].as_str().unwrap().to_owned();
    app.toss
        .authenticate("pk_seqlock", "order_seqlock_01", 15000);
    let db = Database::connect(&app.database_url).await.unwrap();

    let requests = [
        (
            "/payments/confirm".to_owned(),
            json!({"payment_id": id, "payment_key": "pk_seqlock"}),
        ),
        (
            format!("/payments/{id}/refund"),
            json!({"refund_amount_krw": 5000, "reason": "partial"}),
        ),
    ];
    for (drawn_before, (path, body)) in (0..).zip(requests) {
        assert_eq!(scalar(&db, DRAWN).await, drawn_before);
        let holder = db.begin().await.unwrap();
        holder
            .execute_unprepared("SELECT pg_advisory_xact_lock(727100002)")
            .await
            .unwrap();
        let request = {
            let client = app.client.clone();
            let url = format!("{}{path}", app.address);
            tokio::spawn(async move {
                let request = client.post(url).bearer_auth(API_KEY).json(&body);
                into_reply(request.send().await.unwrap()).await
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while scalar(&db, WAITING).await == 0 {
            if std::time::Instant::now() > deadline || request.is_finished() {
                holder.rollback().await.unwrap();
                let reply = request.await.unwrap();
                panic!(
                    "{path} never waited for the lock: {} {}",
                    reply.status, reply.text
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            scalar(&db, DRAWN).await,
            drawn_before,
            "{path}: seq drawn before the outbox lock"
        );
        assert_eq!(app.events().await.len() as i64, drawn_before, "{path}");

        holder.commit().await.unwrap();
        let reply = request.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(scalar(&db, DRAWN).await, drawn_before + 1);
        assert_eq!(app.events().await.len() as i64, drawn_before + 1);
    }
    assert_eq!(app.payment(&id).await["status"], "PARTIAL_REFUND");
    let _ = db.close().await;
    app.stop().await;
}

/// An adoption rewrites a payment's refunds whole from what it read; a write of one refund row
/// alone (here its send counted, as a resend does) that comes while the adoption holds the
/// payment waits for it, then counts on the row as the adoption left it: never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_counted_during_an_adoption_keeps_its_count() {
    use payment_service::domain::PaymentId;
    use payment_service::store::{Plan, RefundWrite};

    let app = spawn_app(Backend::Postgres).await;
    let paid = app
        .completed_payment("order_adopt_lock_01", 15000, "pk_adopt_lock")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    // The slot is taken: the refund is recorded PENDING, never sent.
    app.hold_cancel_slot(id).await;
    let reply = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"refund_amount_krw": 5000, "reason": "partial"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let store = store_on(&app.database_url, 2).await;
    let payment_id: PaymentId = id.parse().unwrap();
    let refund = store.refunds_of(payment_id).await.unwrap().remove(0);
    assert_eq!(refund.sends, 0);

    let mut counting = None;
    store
        .adopt(payment_id, |payment, refunds| {
            let writer = store.clone();
            let refund_id = refunds[0].id;
            counting = Some(tokio::spawn(async move {
                let now = Utc::now();
                writer
                    .mark_refund_sent(refund_id, now, now + chrono::Duration::minutes(1))
                    .await
            }));
            // Time for the count to commit, unless it waits for the adoption.
            std::thread::sleep(Duration::from_millis(500));
            let plan = Plan {
                payment: payment.clone(),
                refunds: vec![RefundWrite::Update(refunds[0].clone())],
                events: Vec::new(),
            };
            (Some(plan), ())
        })
        .await
        .unwrap()
        .expect("the payment");
    let counted = counting.unwrap().await.unwrap().unwrap();
    assert!(counted, "still PENDING after the adoption: counted");
    let after = store.refund(refund.id).await.unwrap().unwrap();
    assert_eq!(after.sends, 1, "the count survives the adoption");
    assert!(after.last_sent_at.is_some());
    store.close().await;
    app.stop().await;
}
