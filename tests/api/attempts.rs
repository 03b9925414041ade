//! Attempts: every try at Toss of a payment, kept (`GET /payments/{id}/attempts`), what one
//! leaves behind staying with it (a virtual account that expired is not the next card payment's),
//! a payment's own events (`GET /payments/{id}/events`), and a version 2 database migrated with
//! nothing lost.

use migration::{Migrator, MigratorTrait};
use reqwest::{Method, StatusCode};
use sea_orm::{Database, DatabaseConnection};
use serde_json::{Value, json};

use crate::billing::{charge, issued_key, payment_of};
use crate::helpers::{
    Backend, Options, TestApp, TestDatabase, due_now, execute_on, spawn_app, spawn_on,
};
use crate::on_both_databases;

on_both_databases!(
    an_expired_virtual_account_leaves_nothing_to_the_card_payment_after_it,
    a_virtual_account_cancelled_by_someone_else_leaves_nothing_to_the_card_payment_after_it,
    a_declined_confirm_and_the_one_that_paid_are_two_attempts,
    a_confirm_sent_again_is_one_attempt_sent_twice,
    a_late_approval_is_the_approved_attempt_s,
    a_key_toss_has_no_record_of_is_kept_released_and_fails_nothing,
    an_approval_under_another_key_is_its_own_attempt_and_the_one_in_flight_is_kept,
    billing_charges_are_attempts_of_kind_charge,
    a_virtual_account_cancelled_at_our_request_is_a_cancelled_attempt,
    a_payment_s_events_are_served_in_order,
    unknown_payments_have_no_attempts_or_events,
    a_version_2_database_migrates_with_nothing_lost,
);

async fn attempts(app: &TestApp, id: &str) -> Vec<Value> {
    let reply = app.get(&format!("/payments/{id}/attempts")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["attempts"].as_array().cloned().unwrap()
}

/// Every attempt row the service keeps, released ones too: (status, payment key).
async fn kept(app: &TestApp, id: &str) -> Vec<(String, Option<String>)> {
    let attempts = app.service.attempts(id.parse().unwrap()).await.unwrap();
    attempts
        .iter()
        .map(|a| {
            (
                a.status.as_str().to_owned(),
                a.payment_key.as_ref().map(|k| k.to_string()),
            )
        })
        .collect()
}

fn statuses(attempts: &[Value]) -> Vec<&str> {
    attempts
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect()
}

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

/// A virtual account issued for `order_id` (key `va_key`), then ended at Toss by `end`, back to
/// `PENDING`; then a card payment of the same order with `card_key`. Nothing of the account is
/// the card payment's: no account on the payment, and its refund needs none and sends none.
async fn card_after_a_virtual_account(
    app: &TestApp,
    order_id: &str,
    va_key: &str,
    card_key: &str,
    end: impl AsyncFnOnce(&TestApp, &str),
    ended_as: &str,
) -> String {
    let id = create(app, order_id, 20000, "virtual_account").await;
    app.toss
        .authenticate_virtual_account(va_key, order_id, 20000);
    let issued = confirm(app, order_id, va_key, 20000).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    assert_eq!(issued.body["status"], "WAITING_FOR_DEPOSIT");
    let waiting = attempts(app, &id).await;
    assert_eq!(statuses(&waiting), ["WAITING_FOR_DEPOSIT"]);
    assert_eq!(waiting[0]["virtual_account"]["bank_code"], "20");
    assert_eq!(waiting[0]["method"], "가상계좌");
    assert_eq!(waiting[0]["finished_at"], Value::Null);
    end(app, &id).await;
    let ended = app.payment(&id).await;
    assert_eq!(ended["status"], "PENDING", "{ended}");
    assert!(ended["failure"]["code"].is_string(), "{ended}");
    // The payment shows its latest attempt: the account that ended, and why.
    assert_eq!(ended["virtual_account"]["bank_code"], "20", "{ended}");
    let over = attempts(app, &id).await;
    assert_eq!(statuses(&over), [ended_as]);
    assert_eq!(over[0]["failure"]["code"], ended["failure"]["code"]);
    assert_eq!(over[0]["virtual_account"]["bank_code"], "20", "kept");
    assert!(over[0]["finished_at"].is_string());

    app.toss.authenticate(card_key, order_id, 20000);
    let paid = confirm(app, order_id, card_key, 20000).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);
    assert_eq!(paid.body["status"], "COMPLETED");
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(payment["virtual_account"], Value::Null, "{payment}");
    assert_eq!(payment["failure"], Value::Null, "{payment}");
    assert_eq!(payment["pg_method"], "카드", "{payment}");

    // The refund sends no account; a refund account given anyway is not the card's to receive:
    // Toss is not sent one either.
    let refunds = [
        json!({"reason": "returned", "refund_amount_krw": 5000}),
        json!({"reason": "returned", "refund_amount_krw": 5000,
               "refund_receive_account": {"bank": "88", "account_number": "110123456789", "holder_name": "홍길동"}}),
    ];
    for (n, asked) in refunds.into_iter().enumerate() {
        let refund = app.post(&format!("/payments/{id}/refund"), asked).await;
        assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
        let sent = app
            .toss_requests("POST", &format!("/v1/payments/{card_key}/cancel"))
            .await;
        assert_eq!(sent.len(), n + 1);
        let body: Value = serde_json::from_slice(&sent[n].body).unwrap();
        assert!(body.get("refundReceiveAccount").is_none(), "{body}");
    }

    // Both attempts kept, each with what it left.
    let both = attempts(app, &id).await;
    assert_eq!(statuses(&both), [ended_as, "APPROVED"]);
    assert_eq!(both[0]["payment_key"], va_key);
    assert_eq!(both[0]["virtual_account"]["bank_code"], "20");
    assert_eq!(both[1]["payment_key"], card_key);
    assert_eq!(both[1]["method"], "카드");
    assert_eq!(both[1]["virtual_account"], Value::Null);
    assert_eq!(both[1]["failure"], Value::Null);
    id
}

async fn an_expired_virtual_account_leaves_nothing_to_the_card_payment_after_it(backend: Backend) {
    let app = spawn_app(backend).await;
    card_after_a_virtual_account(
        &app,
        "order_att_va_01",
        "pk_att_va1",
        "pk_att_card1",
        async |app: &TestApp, id: &str| {
            app.toss.expire("pk_att_va1");
            due_now(app, id).await;
            app.service.settle_due().await.unwrap();
        },
        "EXPIRED",
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
            app.service.settle_due().await.unwrap();
        },
        "FAILED",
    )
    .await;
    app.stop().await;
}

async fn a_declined_confirm_and_the_one_that_paid_are_two_attempts(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = create(&app, "order_att_0001", 30000, "card").await;
    app.fail_next_confirm(403, "REJECT_CARD_PAYMENT").await;
    confirm(&app, "order_att_0001", "pk_att_declined", 30000)
        .await
        .problem(402, "PG_DECLINED");
    // Toss refusing our own credentials: the attempt was sent, so its row is kept, released
    // with no failure of its own, and not listed (it is no try Toss holds).
    app.fail_next_confirm(401, "UNAUTHORIZED_KEY").await;
    let refused = confirm(&app, "order_att_0001", "pk_att_misconfigured", 30000).await;
    assert!(!refused.status.is_success(), "{}", refused.text);
    assert_eq!(app.payment(&id).await["status"], "PENDING");
    let after_decline = attempts(&app, &id).await;
    assert_eq!(statuses(&after_decline), ["FAILED"]);
    assert_eq!(
        kept(&app, &id).await[1],
        (
            "RELEASED".to_owned(),
            Some("pk_att_misconfigured".to_owned())
        )
    );

    app.toss
        .authenticate("pk_att_paid", "order_att_0001", 30000);
    let paid = confirm(&app, "order_att_0001", "pk_att_paid", 30000).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);

    let listed = attempts(&app, &id).await;
    assert_eq!(statuses(&listed), ["FAILED", "APPROVED"]);
    assert_eq!(kept(&app, &id).await.len(), 3);
    let (declined, approved) = (&listed[0], &listed[1]);
    assert_eq!(declined["kind"], "confirm");
    assert_eq!(declined["payment_key"], "pk_att_declined");
    assert_eq!(
        declined["failure"],
        json!({"code": "REJECT_CARD_PAYMENT", "message": "토스 오류 메시지", "retryable": null})
    );
    assert_eq!(declined["toss_sends"], 1);
    assert_eq!(declined["method"], Value::Null);
    assert!(declined["finished_at"].is_string());
    assert_eq!(approved["kind"], "confirm");
    assert_eq!(approved["payment_key"], "pk_att_paid");
    assert_eq!(approved["failure"], Value::Null);
    assert_eq!(approved["method"], "카드");
    assert_eq!(approved["toss_sends"], 1);
    assert_ne!(declined["attempt_id"], approved["attempt_id"]);
    for attempt in &listed {
        let started = attempt["started_at"].as_str().unwrap();
        let finished = attempt["finished_at"].as_str().unwrap();
        assert!(started.ends_with('Z') && finished.ends_with('Z'));
        assert!(started <= finished, "{attempt}");
        assert_eq!(
            attempt.as_object().unwrap().len(),
            10,
            "exactly the contract's fields: {attempt}"
        );
    }
    assert!(listed[0]["started_at"].as_str() <= listed[1]["started_at"].as_str());
    // The payment shows the approved attempt's.
    let payment = app.payment(&id).await;
    assert_eq!(payment["failure"], Value::Null);
    assert_eq!(payment["pg_method"], "카드");
    app.stop().await;
}

async fn a_confirm_sent_again_is_one_attempt_sent_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = create(&app, "order_att_0002", 5000, "card").await;
    app.toss
        .authenticate("pk_att_resent", "order_att_0002", 5000);
    // Toss's error that means nothing happened: the reconciler sends the confirm again.
    app.fail_next_confirm(400, "PROVIDER_ERROR").await;
    let first = confirm(&app, "order_att_0002", "pk_att_resent", 5000).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let in_flight = attempts(&app, &id).await;
    assert_eq!(statuses(&in_flight), ["IN_PROGRESS"]);
    assert_eq!(in_flight[0]["finished_at"], Value::Null);
    app.service.settle_due().await.unwrap();
    assert_eq!(app.payment(&id).await["status"], "COMPLETED");
    assert_eq!(app.confirms_sent().await, 2);
    let listed = attempts(&app, &id).await;
    assert_eq!(statuses(&listed), ["APPROVED"]);
    assert_eq!(listed[0]["toss_sends"], 2);
    assert_eq!(listed[0]["payment_key"], "pk_att_resent");
    app.stop().await;
}

/// Toss approves an attempt after we had let it go (declined here, approved there), or one we
/// never sent: the approval is that attempt's, a new one when we had none.
async fn a_late_approval_is_the_approved_attempt_s(backend: Backend) {
    let app = spawn_app(backend).await;
    let hint = |order_id: &str| {
        json!({"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-12-06T10:00:00.000000",
               "data": {"orderId": order_id, "status": "DONE"}})
    };
    for (order_id, declined_key, approved_key, number) in [
        ("order_att_late1", "pk_att_late1", "pk_att_late1", 1),
        ("order_att_late2", "pk_att_late2", "pk_att_never_sent", 2),
    ] {
        let id = create(&app, order_id, 6000, "card").await;
        app.toss.authenticate(declined_key, order_id, 6000);
        app.fail_next_confirm(403, "REJECT_CARD_PAYMENT").await;
        confirm(&app, order_id, declined_key, 6000)
            .await
            .problem(402, "PG_DECLINED");
        app.toss.approve(approved_key, order_id, 6000);
        let reply = app
            .client
            .post(format!("{}/webhooks/toss", app.address))
            .json(&hint(order_id))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        let payment = app.payment(&id).await;
        assert_eq!(payment["status"], "COMPLETED", "{payment}");
        assert_eq!(payment["pg_transaction_id"], approved_key);
        let listed = attempts(&app, &id).await;
        let expected: &[&str] = if number == 1 {
            &["APPROVED"]
        } else {
            &["FAILED", "APPROVED"]
        };
        assert_eq!(statuses(&listed), expected, "{listed:?}");
        let approved = listed.last().unwrap();
        assert_eq!(approved["payment_key"], approved_key);
        assert_eq!(approved["failure"], Value::Null);
        assert_eq!(approved["toss_sends"], if number == 1 { 1 } else { 0 });
        assert_eq!(listed[0]["payment_key"], declined_key);
    }
    app.stop().await;
}

/// A key Toss has no record of was still sent: its row is kept, released, with no failure and no
/// event, and it is not listed (the contract: such a key makes no attempt); the buyer's own key is
/// the next attempt.
async fn a_key_toss_has_no_record_of_is_kept_released_and_fails_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = create(&app, "order_att_junk1", 4000, "card").await;
    // Never authenticated at Toss: no session, no record.
    let junk = confirm(&app, "order_att_junk1", "pk_att_junk", 4000).await;
    assert!(junk.status.is_client_error(), "{}", junk.text);
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["failure"], Value::Null, "{payment}");
    assert!(attempts(&app, &id).await.is_empty());
    let released = ("RELEASED".to_owned(), Some("pk_att_junk".to_owned()));
    assert_eq!(kept(&app, &id).await, std::slice::from_ref(&released));
    let events = app.events_of(&id).await;
    assert!(
        events.iter().all(|e| e["event_type"] != "payment.failed"),
        "{events:?}"
    );
    // The buyer's own key then pays: the next attempt, the released one kept as it was.
    app.toss
        .authenticate("pk_att_real", "order_att_junk1", 4000);
    let paid = confirm(&app, "order_att_junk1", "pk_att_real", 4000).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);
    let listed = attempts(&app, &id).await;
    assert_eq!(statuses(&listed), ["APPROVED"]);
    assert_eq!(listed[0]["payment_key"], "pk_att_real");
    let approved = ("APPROVED".to_owned(), Some("pk_att_real".to_owned()));
    assert_eq!(kept(&app, &id).await, [released, approved]);
    app.stop().await;
}

/// An attempt in flight (its outcome unknown) when Toss's record shows the order approved under
/// another key: the approval is an attempt of its own, and the one in flight keeps its key, ended.
async fn an_approval_under_another_key_is_its_own_attempt_and_the_one_in_flight_is_kept(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let order_id = "order_att_other1";
    let id = create(&app, order_id, 7000, "card").await;
    app.toss.authenticate("pk_att_in_flight", order_id, 7000);
    app.fail_next_confirm(400, "PROVIDER_ERROR").await;
    let first = confirm(&app, order_id, "pk_att_in_flight", 7000).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let in_flight = attempts(&app, &id).await;
    assert_eq!(statuses(&in_flight), ["IN_PROGRESS"]);

    app.toss.approve("pk_att_other_key", order_id, 7000);
    let other = crate::fake_toss::to_json(&app.toss.payment("pk_att_other_key").unwrap());
    app.toss_answers("GET", "^/v1/payments/pk_att_in_flight$", other, Some(1))
        .await;
    due_now(&app, &id).await;
    app.service.settle_due().await.unwrap();
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(payment["pg_transaction_id"], "pk_att_other_key");

    let listed = attempts(&app, &id).await;
    // The approval is an attempt of its own (not the in-flight row rewritten); the in-flight row
    // is kept with its own key, released, and not listed.
    assert_eq!(statuses(&listed), ["APPROVED"], "{listed:?}");
    assert_ne!(listed[0]["attempt_id"], in_flight[0]["attempt_id"]);
    assert_eq!(listed[0]["payment_key"], "pk_att_other_key");
    assert_eq!(
        kept(&app, &id).await,
        [
            ("RELEASED".to_owned(), Some("pk_att_in_flight".to_owned())),
            ("APPROVED".to_owned(), Some("pk_att_other_key".to_owned())),
        ]
    );
    assert_eq!(listed[0]["toss_sends"], 0);
    // Settled once more, nothing moves: the ended attempt is not revived.
    app.service.settle_due().await.unwrap();
    assert_eq!(attempts(&app, &id).await, listed);
    app.stop().await;
}

async fn billing_charges_are_attempts_of_kind_charge(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_att_bill1", 30_000).await;
    app.toss.decline_next_charge(
        "REJECT_CARD_PAYMENT",
        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
    );
    charge(&app, &id, &key).await.problem(402, "PG_DECLINED");
    let paid = charge(&app, &id, &key).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED");

    let listed = attempts(&app, &id).await;
    assert_eq!(statuses(&listed), ["FAILED", "APPROVED"]);
    for attempt in &listed {
        assert_eq!(attempt["kind"], "charge", "{attempt}");
        assert_eq!(attempt["toss_sends"], 1, "{attempt}");
    }
    assert_eq!(listed[0]["payment_key"], Value::Null, "Toss named none");
    assert_eq!(listed[0]["failure"]["code"], "REJECT_CARD_PAYMENT");
    assert_eq!(listed[0]["failure"]["retryable"], true);
    assert_eq!(listed[1]["payment_key"], payment["pg_transaction_id"]);
    assert_eq!(listed[1]["failure"], Value::Null);
    app.stop().await;
}

async fn a_virtual_account_cancelled_at_our_request_is_a_cancelled_attempt(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = create(&app, "order_att_va_03", 25000, "virtual_account").await;
    app.toss
        .authenticate_virtual_account("pk_att_va3", "order_att_va_03", 25000);
    let issued = confirm(&app, "order_att_va_03", "pk_att_va3", 25000).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    let cancelled = app
        .post(
            &format!("/payments/{id}/cancel"),
            json!({"reason": "order withdrawn"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "CANCELLED");
    let listed = attempts(&app, &id).await;
    assert_eq!(statuses(&listed), ["CANCELLED"]);
    assert_eq!(listed[0]["payment_key"], "pk_att_va3");
    assert_eq!(listed[0]["virtual_account"]["bank_code"], "20");
    assert!(listed[0]["finished_at"].is_string());
    app.stop().await;
}

async fn a_payment_s_events_are_served_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_att_ev_01", 10000, "pk_att_ev1")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    // Another payment's events are not this one's.
    app.completed_payment("order_att_ev_02", 10000, "pk_att_ev2")
        .await;
    let refund = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "returned", "refund_amount_krw": 4000}),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);

    let reply = app.get(&format!("/payments/{id}/events")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let events = reply.body["events"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["payment.completed", "payment.refunded"]);
    // The same envelopes as the whole log's, in its order.
    assert_eq!(events, &app.events_of(id).await);
    assert!(events[0]["cursor"].as_i64() < events[1]["cursor"].as_i64());
    assert_eq!(reply.body.as_object().unwrap().len(), 1, "{}", reply.text);
    app.stop().await;
}

async fn unknown_payments_have_no_attempts_or_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let unknown = uuid::Uuid::now_v7();
    for path in [
        format!("/payments/{unknown}/attempts"),
        format!("/payments/{unknown}/events"),
        "/payments/not-a-uuid/attempts".to_owned(),
        "/payments/not-a-uuid/events".to_owned(),
    ] {
        app.get(&path).await.problem(404, "NOT_FOUND");
    }
    // A payment nobody tried to pay has neither.
    let created = app.create_payment("order_att_none1", 1000).await;
    let id = created["payment_id"].as_str().unwrap();
    assert!(attempts(&app, id).await.is_empty());
    let events = app.get(&format!("/payments/{id}/events")).await;
    assert_eq!(events.body, json!({"events": []}));
    // Both need the API key.
    for path in [
        format!("/payments/{id}/attempts"),
        format!("/payments/{id}/events"),
    ] {
        app.request(Method::GET, &path, None, false)
            .await
            .problem(401, "UNAUTHORIZED");
    }
    app.stop().await;
}

/// A payment row as version 2 wrote it.
#[derive(Default)]
struct V2Payment {
    id: String,
    order_id: &'static str,
    status: &'static str,
    amount: i64,
    refunded: i64,
    payment_key: Option<&'static str>,
    transaction_id: Option<&'static str>,
    billing_key_id: Option<String>,
    confirm_attempt: i32,
    confirm_sends: i32,
    failure: Option<(&'static str, &'static str)>,
    method: Option<&'static str>,
    virtual_account: bool,
    completed: bool,
}

impl V2Payment {
    /// `seen` (the payment or its attempt, as served) has this row's failure and virtual account.
    fn assert_failure_and_account(&self, seen: &Value) {
        assert_eq!(
            seen["failure"]["code"],
            json!(self.failure.map(|f| f.0)),
            "{seen}"
        );
        let account = &seen["virtual_account"];
        assert_eq!(
            account["bank_code"],
            json!(self.virtual_account.then_some("20")),
            "{seen}"
        );
        assert_eq!(
            account["account_number"],
            json!(self.virtual_account.then_some("X6516521381011")),
            "{seen}"
        );
    }
}

async fn insert_v2_payment(db: &DatabaseConnection, p: &V2Payment) {
    let now = chrono::Utc::now() - chrono::Duration::hours(1);
    execute_on(
        db,
        "INSERT INTO payments (id, user_id, order_id, payment_type, payment_method, amount_krw, \
             refunded_amount_krw, refund_reserved_krw, currency, status, pg_provider, \
             pg_transaction_id, payment_key, confirm_attempt, confirm_started_at, failure_code, \
             failure_message, needs_review, reconcile_attempts, created_at, updated_at, \
             completed_at, confirm_sends, billing_key_id, tax_free_amount_krw, pg_method, \
             va_bank_code, va_account_number, va_customer_name, va_due_date) \
         VALUES ($1, 'u-v2', $2, 'ONE_TIME', 'card', $3, $4, 0, 'KRW', $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, 0, $14, $15, $16, $17, $18, 0, $19, $20, $21, $22, $23)",
        vec![
            p.id.clone().into(),
            p.order_id.into(),
            p.amount.into(),
            p.refunded.into(),
            p.status.into(),
            p.payment_key.or(p.transaction_id).map(|_| "toss").into(),
            p.transaction_id.into(),
            p.payment_key.into(),
            p.confirm_attempt.into(),
            (p.confirm_attempt > 0).then_some(now).into(),
            p.failure.map(|f| f.0).into(),
            p.failure.map(|f| f.1).into(),
            false.into(),
            now.into(),
            now.into(),
            p.completed.then_some(now).into(),
            p.confirm_sends.into(),
            p.billing_key_id.clone().into(),
            p.method.into(),
            p.virtual_account.then_some("20").into(),
            p.virtual_account.then_some("X6516521381011").into(),
            p.virtual_account.then_some("박토스").into(),
            p.virtual_account
                .then_some(now + chrono::Duration::days(2))
                .into(),
        ],
    )
    .await;
}

async fn insert_v2_event(db: &DatabaseConnection, payment_id: &str, event_type: &str) {
    let payload = json!({"payment_id": payment_id, "from": "version 2"}).to_string();
    execute_on(
        db,
        "INSERT INTO events (event_id, event_type, version, occurred_at, source, user_id, \
             payment_id, payload, published_at) \
         VALUES ($1, $2, '1.0', $3, 'payment-service', 'u-v2', $4, $5, NULL)",
        vec![
            uuid::Uuid::now_v7().to_string().into(),
            event_type.into(),
            chrono::Utc::now().into(),
            payment_id.into(),
            payload.into(),
        ],
    )
    .await;
}

/// A database of version 2 (its schema, rows of every kind), then the service of version 3
/// started on it: every payment, refund and event is still there and served, and each payment's
/// latest attempt was backfilled from it.
async fn a_version_2_database_migrates_with_nothing_lost(backend: Backend) {
    crate::helpers::init_process();
    let database = TestDatabase::create(backend).await;
    let db = Database::connect(&database.url).await.expect("connect");
    let version_2 = Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m20261201_000003_reconciliation")
        .expect("the last migration of version 2")
        + 1;
    Migrator::up(&db, Some(version_2 as u32))
        .await
        .expect("version 2 schema");

    let id = || uuid::Uuid::now_v7().to_string();
    let payments = [
        V2Payment {
            id: id(),
            order_id: "order_v2_paid01",
            status: "COMPLETED",
            amount: 10000,
            payment_key: Some("pk_v2_paid"),
            transaction_id: Some("pk_v2_paid"),
            confirm_attempt: 1,
            confirm_sends: 2,
            method: Some("카드"),
            completed: true,
            ..V2Payment::default()
        },
        V2Payment {
            id: id(),
            order_id: "order_v2_wait01",
            status: "WAITING_FOR_DEPOSIT",
            amount: 20000,
            payment_key: Some("pk_v2_wait"),
            confirm_attempt: 1,
            confirm_sends: 1,
            method: Some("가상계좌"),
            virtual_account: true,
            ..V2Payment::default()
        },
        V2Payment {
            id: id(),
            order_id: "order_v2_refd01",
            status: "REFUNDED",
            amount: 5000,
            refunded: 5000,
            payment_key: Some("pk_v2_refunded"),
            transaction_id: Some("pk_v2_refunded"),
            confirm_attempt: 1,
            confirm_sends: 1,
            method: Some("카드"),
            completed: true,
            ..V2Payment::default()
        },
        V2Payment {
            id: id(),
            order_id: "order_v2_decl01",
            status: "PENDING",
            amount: 7000,
            confirm_attempt: 2,
            confirm_sends: 1,
            failure: Some(("REJECT_CARD_PAYMENT", "한도초과")),
            ..V2Payment::default()
        },
        V2Payment {
            id: id(),
            order_id: "order_v2_expd01",
            status: "PENDING",
            amount: 8000,
            confirm_attempt: 1,
            confirm_sends: 1,
            failure: Some(("VIRTUAL_ACCOUNT_EXPIRED", "expired")),
            method: Some("가상계좌"),
            virtual_account: true,
            ..V2Payment::default()
        },
        V2Payment {
            id: id(),
            order_id: "order_v2_cncl01",
            status: "CANCELLED",
            amount: 9000,
            payment_key: Some("pk_v2_cancelled"),
            confirm_attempt: 1,
            confirm_sends: 1,
            method: Some("가상계좌"),
            virtual_account: true,
            ..V2Payment::default()
        },
        V2Payment {
            id: id(),
            order_id: "order_v2_chrg01",
            status: "COMPLETED",
            amount: 11000,
            payment_key: Some("pk_v2_charged"),
            transaction_id: Some("pk_v2_charged"),
            billing_key_id: Some(id()),
            confirm_attempt: 1,
            confirm_sends: 1,
            method: Some("카드"),
            completed: true,
            ..V2Payment::default()
        },
        V2Payment {
            id: id(),
            order_id: "order_v2_rcrd01",
            status: "COMPLETED",
            amount: 12000,
            transaction_id: Some("manual-0001"),
            completed: true,
            ..V2Payment::default()
        },
        V2Payment {
            id: id(),
            order_id: "order_v2_pend01",
            status: "PENDING",
            amount: 13000,
            ..V2Payment::default()
        },
    ];
    for payment in &payments {
        insert_v2_payment(&db, payment).await;
    }
    let refunded = &payments[2];
    let refund_id = id();
    execute_on(
        &db,
        "INSERT INTO refunds (id, payment_id, amount_krw, reason, status, pg_cancel_key, \
             reconcile_attempts, created_at, updated_at, refunded_at, origin, sends, \
             tax_free_amount_krw) \
         VALUES ($1, $2, 5000, 'returned', 'COMPLETED', 'tx_v2_cancel', 0, $3, $4, $5, \
             'SERVICE', 1, 0)",
        vec![
            refund_id.clone().into(),
            refunded.id.clone().into(),
            chrono::Utc::now().into(),
            chrono::Utc::now().into(),
            chrono::Utc::now().into(),
        ],
    )
    .await;
    // A cancel made at Toss, and two reviews: by the second API key, and the service's own.
    execute_on(
        &db,
        "INSERT INTO refunds (id, payment_id, amount_krw, reason, status, pg_cancel_key, \
             reconcile_attempts, created_at, updated_at, refunded_at, origin, sends, \
             tax_free_amount_krw) \
         VALUES ($1, $2, 1, 'dashboard', 'COMPLETED', 'tx_v2_dashboard', 0, $3, $3, $3, \
             'PG', 0, 0)",
        vec![
            id().into(),
            refunded.id.clone().into(),
            (chrono::Utc::now() + chrono::Duration::seconds(1)).into(),
        ],
    )
    .await;
    for (reviewer, at) in [("api-key-2", 0), ("system", 1)] {
        execute_on(
            &db,
            "INSERT INTO reviews (id, payment_id, action, note, reviewer, outcome, created_at) \
             VALUES ($1, $2, 'dismiss', 'n', $3, 'o', $4)",
            vec![
                id().into(),
                refunded.id.clone().into(),
                reviewer.into(),
                (chrono::Utc::now() + chrono::Duration::seconds(at)).into(),
            ],
        )
        .await;
    }
    insert_v2_event(&db, &payments[0].id, "payment.completed").await;
    insert_v2_event(&db, &payments[1].id, "payment.waiting_for_deposit").await;
    insert_v2_event(&db, &refunded.id, "payment.completed").await;
    insert_v2_event(&db, &refunded.id, "payment.refunded").await;
    insert_v2_event(&db, &payments[3].id, "payment.failed").await;
    let _ = db.close().await;

    let app = spawn_on(database, Options::default()).await;
    for v2 in &payments {
        let payment = app.payment(&v2.id).await;
        assert_eq!(payment["order_id"], v2.order_id);
        assert_eq!(payment["status"], v2.status);
        assert_eq!(payment["amount_krw"], v2.amount);
        assert_eq!(payment["refunded_amount_krw"], v2.refunded);
        assert_eq!(payment["pg_transaction_id"], json!(v2.transaction_id));
        assert_eq!(payment["pg_method"], json!(v2.method));
        v2.assert_failure_and_account(&payment);
    }
    let listed = app.get("/payments?user_id=u-v2&limit=100").await;
    assert_eq!(listed.body["total_count"], payments.len());

    let refunds = app.get(&format!("/payments/{}/refunds", refunded.id)).await;
    assert_eq!(refunds.status, StatusCode::OK, "{}", refunds.text);
    assert_eq!(refunds.body["refunds"][0]["refund_id"], refund_id);
    assert_eq!(refunds.body["refunds"][0]["status"], "COMPLETED");
    assert_eq!(refunds.body["refunds"][0]["payment_status"], "REFUNDED");
    // Who asked, as far as version 2's rows tell: only an API key could ask for a refund here
    // (which one was not kept); a refund found in Toss's record was Toss's.
    assert_eq!(
        refunds.body["refunds"][0]["requested_by"],
        json!({"type": "api_key", "name": null})
    );
    assert_eq!(
        refunds.body["refunds"][1]["requested_by"],
        json!({"type": "toss", "name": null})
    );
    let reviews = app.get(&format!("/payments/{}/reviews", refunded.id)).await;
    let reviews = reviews.body["reviews"].as_array().unwrap();
    assert_eq!(reviews[0]["reviewer"], "api-key-2");
    assert_eq!(
        reviews[0]["requested_by"],
        json!({"type": "api_key", "name": "key-2"})
    );
    assert_eq!(reviews[1]["reviewer"], "system");
    assert_eq!(
        reviews[1]["requested_by"],
        json!({"type": "system", "name": null})
    );

    let log = app.events().await;
    assert_eq!(log.len(), 5);
    for event in &log {
        // Nothing recorded who caused version 2's events.
        assert_eq!(
            event["actor"],
            json!({"type": "system", "name": null}),
            "{event}"
        );
    }
    let of_refunded = app.get(&format!("/payments/{}/events", refunded.id)).await;
    let types: Vec<&str> = of_refunded.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["payment.completed", "payment.refunded"]);

    // Each payment's latest attempt, as the payment knew it.
    let backfilled = [
        Some(("APPROVED", "confirm", Some("pk_v2_paid"))),
        Some(("WAITING_FOR_DEPOSIT", "confirm", Some("pk_v2_wait"))),
        Some(("APPROVED", "confirm", Some("pk_v2_refunded"))),
        Some(("FAILED", "confirm", None)),
        Some(("EXPIRED", "confirm", None)),
        Some(("CANCELLED", "confirm", Some("pk_v2_cancelled"))),
        Some(("APPROVED", "charge", Some("pk_v2_charged"))),
        None,
        None,
    ];
    for (v2, expected) in payments.iter().zip(backfilled) {
        let listed = attempts(&app, &v2.id).await;
        let Some((status, kind, key)) = expected else {
            assert!(listed.is_empty(), "{}: {listed:?}", v2.order_id);
            continue;
        };
        assert_eq!(listed.len(), 1, "{}: {listed:?}", v2.order_id);
        let attempt = &listed[0];
        assert_eq!(attempt["status"], status, "{attempt}");
        assert_eq!(attempt["kind"], kind, "{attempt}");
        assert_eq!(attempt["payment_key"], json!(key), "{attempt}");
        assert_eq!(attempt["toss_sends"], v2.confirm_sends, "{attempt}");
        assert_eq!(attempt["method"], json!(v2.method), "{attempt}");
        v2.assert_failure_and_account(attempt);
        assert_eq!(
            attempt["finished_at"].is_string(),
            status != "WAITING_FOR_DEPOSIT",
            "{attempt}"
        );
    }

    // The engine goes on from there: the declined order is paid by a new attempt after it.
    let declined = &payments[3];
    app.toss
        .authenticate("pk_v2_again", declined.order_id, declined.amount);
    let paid = confirm(&app, declined.order_id, "pk_v2_again", declined.amount).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);
    let after = attempts(&app, &declined.id).await;
    assert_eq!(statuses(&after), ["FAILED", "APPROVED"]);
    assert_eq!(after[1]["payment_key"], "pk_v2_again");
    app.stop().await;
}
