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

on_both_databases!(
    virtual_account_is_issued_deposited_by_webhook_and_refunded_to_an_account,
    an_expired_virtual_account_goes_back_to_pending,
    an_account_past_its_due_date_is_read_back_and_released_within_a_minute,
    tosss_tax_free_amount_is_taken_flagged_and_split_by_refunds,
    a_virtual_account_cancelled_at_toss_by_someone_else_goes_back_to_pending,
    a_virtual_account_is_cancelled_before_its_deposit,
    a_cancel_whose_answer_is_lost_is_finished_by_the_reconciler,
    a_refused_cancel_of_an_unpaid_account_is_forgotten,
    a_refund_answered_while_waiting_whose_account_cannot_be_opened_ends_failed,
    a_deposit_error_after_completion_is_set_aside,
    a_pending_payment_is_cancelled_without_toss,
    a_repeated_cancel_answers_the_same,
    paid_and_unsettled_payments_cannot_be_cancelled,
    a_cancelled_payment_can_never_be_confirmed,
    cancel_races_confirm_to_one_consistent_state,
    cancel_races_deposit_to_one_consistent_state,
    tax_free_amount_is_validated_on_create,
    refunds_take_the_tax_free_amount_pro_rata,
    a_given_tax_free_part_is_checked_and_sent,
    tax_free_parts_of_refunds_add_up_to_the_payments,
    receipt_method_and_card_are_shown,
    a_lost_refund_is_resent_with_the_same_account_and_tax_free_part,
    nothing_unpaid_can_be_refunded,
);

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

async fn virtual_account_is_issued_deposited_by_webhook_and_refunded_to_an_account(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (id, reply) = issued(&app, "order_va_000001", "pk_va1", 30000).await;
    // The buyer (no API key) sees where to pay, and nothing of who they are to us.
    let answer = &reply.body;
    assert_eq!(answer["status"], "WAITING_FOR_DEPOSIT");
    assert_eq!(answer["virtual_account"]["bank_code"], "20");
    assert_eq!(
        answer["virtual_account"]["account_number"],
        "X6516521381011"
    );
    assert_eq!(answer["virtual_account"]["customer_name"], "박토스");
    assert_eq!(
        answer["virtual_account"]["due_date"],
        "2099-12-08T14:59:59.000Z"
    );
    assert_eq!(answer["pg_method"], "가상계좌");
    assert!(answer.get("user_id").is_none() && answer.get("subscription_id").is_none());
    assert_eq!(
        event_types(&app.events_of(&id).await),
        ["payment.waiting_for_deposit"]
    );

    // The reconciler watches at the slow pace: nothing is read back right away.
    let waiting = app.payment(&id).await;
    assert_eq!(waiting["status"], "WAITING_FOR_DEPOSIT");
    let gets = app.toss_requests("GET", "/v1/payments").await.len();
    app.service.settle_due().await.unwrap();
    assert_eq!(app.toss_requests("GET", "/v1/payments").await.len(), gets);

    // A forged deposit callback (wrong secret) changes nothing, and is not even read back.
    let mut forged = app.toss.deposit_callback("pk_va1");
    forged["secret"] = json!("ps_forged");
    forged["status"] = json!("DONE");
    assert_eq!(deliver(&app, None, &forged).await.status, StatusCode::OK);
    assert_eq!(app.payment(&id).await["status"], "WAITING_FOR_DEPOSIT");
    // The genuine one, but before Toss has the deposit: read back, nothing changes either.
    let early = app.toss.deposit_callback("pk_va1");
    assert_eq!(deliver(&app, None, &early).await.status, StatusCode::OK);
    assert_eq!(app.payment(&id).await["status"], "WAITING_FOR_DEPOSIT");

    assert!(app.toss.deposit("pk_va1"));
    let callback = app.toss.deposit_callback("pk_va1");
    assert_eq!(deliver(&app, None, &callback).await.status, StatusCode::OK);
    let paid = app.payment(&id).await;
    assert_eq!(paid["status"], "COMPLETED", "{paid}");
    assert_eq!(paid["virtual_account"]["bank_code"], "20", "kept");
    assert!(
        paid["receipt_url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert_eq!(paid["card"], Value::Null);
    // Delivered twice (both webhooks registered): applied once.
    assert_eq!(deliver(&app, None, &callback).await.status, StatusCode::OK);
    assert_eq!(
        event_types(&app.events_of(&id).await),
        ["payment.waiting_for_deposit", "payment.completed"]
    );

    // A refund needs the buyer's account: without it, 422 and Toss is not asked.
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "returned", "refund_amount_krw": 10000}),
    )
    .await
    .problem(422, "REFUND_ACCOUNT_REQUIRED");
    for bad in ["11-0123", "", "123456789012345678901"] {
        app.post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "returned", "refund_amount_krw": 10000, "refund_receive_account": refund_account(bad)}),
        )
        .await
        .problem(422, "VALIDATION_ERROR");
    }
    assert!(app.toss_requests("POST", "/cancel").await.is_empty());

    let refund = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "returned", "refund_amount_krw": 10000, "refund_receive_account": refund_account(ACCOUNT)}),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    assert_eq!(refund.body["payment_status"], "PARTIAL_REFUND");
    assert!(!refund.text.contains(ACCOUNT), "{}", refund.text);
    let sent = app.toss_requests("POST", "/cancel").await;
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body["refundReceiveAccount"],
        json!({"bank": "88", "accountNumber": ACCOUNT, "holderName": "홍길동"})
    );
    assert_eq!(body["cancelAmount"], 10000);
    let listed = app.get(&format!("/payments/{id}/refunds")).await;
    assert!(!listed.text.contains(ACCOUNT));
    assert!(
        !app.get(&format!("/payments/{id}"))
            .await
            .text
            .contains(ACCOUNT)
    );
    app.stop().await;
}

async fn an_expired_virtual_account_goes_back_to_pending(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _) = issued(&app, "order_va_000002", "pk_va2", 20000).await;
    // Past its due date Toss keeps the account WAITING_FOR_DEPOSIT, `expired`, and sends
    // nothing (§4): only reading it back tells.
    app.toss.expire("pk_va2");
    let at_toss = crate::fake_toss::to_json(&app.toss.payment("pk_va2").unwrap());
    assert_eq!(at_toss["status"], "WAITING_FOR_DEPOSIT");
    assert_eq!(at_toss["virtualAccount"]["expired"], true);
    due_now(&app, &id).await;
    app.service.settle_due().await.unwrap();
    let expired = app.payment(&id).await;
    assert_eq!(expired["status"], "PENDING", "{expired}");
    let code = expired["failure"]["code"].as_str().unwrap();
    assert_eq!(code, "VIRTUAL_ACCOUNT_EXPIRED");
    assert_eq!(expired["virtual_account"]["bank_code"], "20", "kept");
    let events = app.events_of(&id).await;
    assert_eq!(
        event_types(&events),
        ["payment.waiting_for_deposit", "payment.failed"]
    );
    assert_eq!(events[1]["payload"]["error_code"], code);
    // The order can be paid again, e.g. by card.
    app.toss
        .authenticate("pk_va2_card", "order_va_000002", 20000);
    let again = app.confirm_public("order_va_000002", "pk_va2_card").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["status"], "COMPLETED");
    app.stop().await;
}

/// Toss sends nothing when an account's due date passes (defect 10): the service reads it back
/// at its due date and, within 60 s of it, gives the order back with why.
async fn an_account_past_its_due_date_is_read_back_and_released_within_a_minute(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            reconciler: true,
            ..Options::default()
        },
    )
    .await;
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    let due_kst = ::fake_toss::due_date_of(due);
    let (id, reply) = issued_due(&app, "order_va_000010", "pk_va10", 20000, &due_kst).await;
    assert_eq!(reply.body["status"], "WAITING_FOR_DEPOSIT");
    let mut released = Value::Null;
    while chrono::Utc::now() < due + chrono::Duration::seconds(45) {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let payment = app.payment(&id).await;
        if payment["status"] != "WAITING_FOR_DEPOSIT" {
            released = payment;
            break;
        }
    }
    let late = chrono::Utc::now() - due;
    assert_eq!(
        released["status"], "PENDING",
        "still waiting {late} after its due date"
    );
    assert!(late < chrono::Duration::seconds(60), "{late}");
    assert_eq!(released["failure"]["code"], "VIRTUAL_ACCOUNT_EXPIRED");
    let at_toss = crate::fake_toss::to_json(&app.toss.payment("pk_va10").unwrap());
    assert_eq!(
        at_toss["status"], "WAITING_FOR_DEPOSIT",
        "Toss never says EXPIRED"
    );
    let events = app.events_of(&id).await;
    assert_eq!(
        event_types(&events),
        ["payment.waiting_for_deposit", "payment.failed"]
    );
    assert_eq!(
        events[1]["payload"]["error_code"],
        "VIRTUAL_ACCOUNT_EXPIRED"
    );
    let attempts = app.get(&format!("/payments/{id}/attempts")).await;
    assert_eq!(
        attempts.body["attempts"][0]["status"], "EXPIRED",
        "{}",
        attempts.text
    );
    // A deposit can no longer arrive.
    assert!(!app.toss.deposit("pk_va10"));
    app.stop().await;
}

async fn a_virtual_account_cancelled_at_toss_by_someone_else_goes_back_to_pending(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (id, _) = issued(&app, "order_va_000003", "pk_va3", 20000).await;
    // Cancelled in Toss's dashboard: CANCELED, the cancel listed, approvedAt null (§4).
    app.toss.cancel_in_dashboard("pk_va3", 20000);
    let at_toss = crate::fake_toss::to_json(&app.toss.payment("pk_va3").unwrap());
    assert_eq!(at_toss["cancels"][0]["cancelAmount"], 20000);
    assert_eq!(at_toss["approvedAt"], Value::Null);
    let webhook = json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-12-01T10:00:00.000000",
        "data": {"paymentKey": "pk_va3", "orderId": "order_va_000003", "status": "CANCELED"}
    });
    assert_eq!(deliver(&app, None, &webhook).await.status, StatusCode::OK);
    let payment = app.payment(&id).await;
    assert_eq!(
        payment["status"], "PENDING",
        "not CANCELLED: we did not ask"
    );
    assert_eq!(payment["failure"]["code"], "VIRTUAL_ACCOUNT_CANCELLED");
    assert_eq!(payment["refunded_amount_krw"], 0, "nothing was paid");
    assert_eq!(
        event_types(&app.events_of(&id).await),
        ["payment.waiting_for_deposit", "payment.failed"]
    );
    let refunds = app.get(&format!("/payments/{id}/refunds")).await;
    assert_eq!(refunds.body["refunds"], json!([]));
    app.stop().await;
}

async fn a_virtual_account_is_cancelled_before_its_deposit(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _) = issued(&app, "order_va_000004", "pk_va4", 25000).await;
    let reply = cancel(&app, &id, "order withdrawn").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "CANCELLED");
    assert_eq!(reply.body["virtual_account"]["bank_code"], "20");
    let sent = app.toss_requests("POST", "/cancel").await;
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"cancelReason": "order withdrawn", "refundableAmount": 25000}),
        "no amount, no refund account; the balance it expects, as every cancel"
    );
    // Toss lists its cancel like any other, but never approved it (§4): nothing was refunded.
    let at_toss = crate::fake_toss::to_json(&app.toss.payment("pk_va4").unwrap());
    assert_eq!(at_toss["status"], "CANCELED");
    assert_eq!(at_toss["cancels"][0]["cancelAmount"], 25000);
    assert_eq!(at_toss["approvedAt"], Value::Null);
    assert_eq!(reply.body["refunded_amount_krw"], 0);
    let refunds = app.get(&format!("/payments/{id}/refunds")).await;
    assert_eq!(refunds.body["refunds"], json!([]));
    let events = app.events_of(&id).await;
    assert_eq!(
        event_types(&events),
        ["payment.waiting_for_deposit", "payment.cancelled"]
    );
    let payload = &events[1]["payload"];
    assert_eq!(payload["payment_id"], id);
    assert_eq!(payload["order_id"], "order_va_000004");
    assert_eq!(payload["reason"], "order withdrawn");
    assert!(payload["cancelled_at"].as_str().unwrap().ends_with('Z'));
    // Repeated: the same answer, nothing sent again.
    let again = cancel(&app, &id, "another reason").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["status"], "CANCELLED");
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);
    // Toss's CANCELED, read back later, keeps it CANCELLED.
    due_now(&app, &id).await;
    app.service.settle_due().await.unwrap();
    assert_eq!(app.payment(&id).await["status"], "CANCELLED");
    assert_eq!(app.events_of(&id).await.len(), 2);
    app.stop().await;
}

async fn a_cancel_whose_answer_is_lost_is_finished_by_the_reconciler(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _) = issued(&app, "order_va_000005", "pk_va5", 25000).await;
    // Toss does not answer the first cancel usefully (5xx); the read-back shows it waiting.
    app.toss_fails(
        "POST",
        "/cancel$",
        500,
        "FAILED_INTERNAL_SYSTEM_PROCESSING",
        Some(1),
    )
    .await;
    let reply = cancel(&app, &id, "order withdrawn").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.body["status"], "WAITING_FOR_DEPOSIT");
    // As after a crash: the intent is recorded; the reconciler sends the cancel again.
    due_now(&app, &id).await;
    app.service.settle_due().await.unwrap();
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "CANCELLED", "{payment}");
    assert_eq!(app.toss.payment("pk_va5").unwrap().status, "CANCELED");
    assert_eq!(
        event_types(&app.events_of(&id).await),
        ["payment.waiting_for_deposit", "payment.cancelled"]
    );
    app.stop().await;
}

/// Toss refuses the cancel of an unpaid virtual account: the merchant hears 402 and the account
/// keeps waiting for its deposit, with the cancel request forgotten: never sent again by the
/// reconciler, which reads the account back at the slow deposit pace. A new cancel asked for
/// later is sent as any other.
async fn a_refused_cancel_of_an_unpaid_account_is_forgotten(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _) = issued(&app, "order_va_000020", "pk_va20", 25000).await;
    app.toss_fails("POST", "/cancel$", 403, "NOT_CANCELABLE_PAYMENT", Some(1))
        .await;
    let reply = cancel(&app, &id, "order withdrawn").await;
    let problem = reply.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "NOT_CANCELABLE_PAYMENT");
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "WAITING_FOR_DEPOSIT");
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);
    let gets = app.toss_requests("GET", "/v1/payments").await.len();
    // The reconciler's next passes: nothing is due soon (the slow deposit pace) ...
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.service.settle_due().await.unwrap();
    assert_eq!(
        app.toss_requests("POST", "/cancel").await.len(),
        1,
        "the refused cancel is never sent again"
    );
    assert_eq!(
        app.toss_requests("GET", "/v1/payments").await.len(),
        gets,
        "back to the slow deposit pace"
    );
    // ... and when the account's look is due, it is read back, not cancelled.
    due_now(&app, &id).await;
    app.service.settle_due().await.unwrap();
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);
    assert!(app.toss_requests("GET", "/v1/payments").await.len() > gets);
    assert_eq!(app.payment(&id).await["status"], "WAITING_FOR_DEPOSIT");
    assert_eq!(
        event_types(&app.events_of(&id).await),
        ["payment.waiting_for_deposit"]
    );
    // A cancel asked for again is a new request, sent and made.
    let again = cancel(&app, &id, "asked again").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["status"], "CANCELLED");
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 2);
    app.stop().await;
}

/// A refund to an account, answered 202 while it waited for the payment's cancel slot, whose
/// sealed account can no longer be opened when its turn comes: nothing is sent, and it ends
/// `FAILED` with `refund.failed`, listed, its amount back in the balance (never forgotten).
async fn a_refund_answered_while_waiting_whose_account_cannot_be_opened_ends_failed(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (id, _) = issued(&app, "order_va_000021", "pk_va21", 30000).await;
    assert!(app.toss.deposit("pk_va21"));
    deliver(&app, None, &app.toss.deposit_callback("pk_va21")).await;
    assert_eq!(app.payment(&id).await["status"], "COMPLETED");
    app.hold_cancel_slot(&id).await;
    let reply = refund(
        &app,
        &id,
        json!({"reason": "returned", "refund_amount_krw": 10000,
               "refund_receive_account": refund_account(ACCOUNT)}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let refund_id = reply.body["refund_id"].as_str().unwrap().to_owned();
    // The kept account no longer opens (as after a change of the sealing key).
    app.execute_sql(
        "UPDATE refunds SET refund_account = 'damaged', next_reconcile_at = $1 WHERE id = $2",
        vec![chrono::Utc::now().into(), refund_id.as_str().into()],
    )
    .await;
    app.free_cancel_slot(&id).await;
    app.service.settle_due().await.unwrap();
    assert!(app.toss_requests("POST", "/cancel").await.is_empty());
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds.as_array().unwrap().len(), 1, "listed: {refunds}");
    assert_eq!(refunds[0]["status"], "FAILED", "{refunds}");
    assert_eq!(refunds[0]["failure"]["code"], "REFUND_ACCOUNT_UNREADABLE");
    assert_eq!(
        event_types(&app.events_of(&id).await),
        [
            "payment.waiting_for_deposit",
            "payment.completed",
            "refund.failed"
        ]
    );
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["refunded_amount_krw"], 0);
    app.stop().await;
}

async fn a_deposit_error_after_completion_is_set_aside(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _) = issued(&app, "order_va_000006", "pk_va6", 15000).await;
    assert!(app.toss.deposit("pk_va6"));
    deliver(&app, None, &app.toss.deposit_callback("pk_va6")).await;
    assert_eq!(app.payment(&id).await["status"], "COMPLETED");
    let reversed = app.toss.deposit_error("pk_va6");
    assert_eq!(reversed["status"], "WAITING_FOR_DEPOSIT");
    assert_eq!(deliver(&app, None, &reversed).await.status, StatusCode::OK);
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED", "never silently unpaid");
    assert_eq!(payment["needs_review"], true, "{payment}");
    assert!(
        payment["review_reason"]
            .as_str()
            .unwrap()
            .contains("WAITING_FOR_DEPOSIT")
    );
    let flagged = app.get("/payments?needs_review=true").await;
    assert_eq!(flagged.body["total_count"], 1);
    app.stop().await;
}

async fn a_pending_payment_is_cancelled_without_toss(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = create(&app, "order_cx_000001", 9000, None).await;
    let body = json!({"reason": "customer left"});
    let send = |key: &'static str| {
        app.client
            .post(format!("{}/payments/{id}/cancel", app.address))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = into_reply(send("cancel-key-1").await.unwrap()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["status"], "CANCELLED");
    // The same Idempotency-Key replays the answer.
    let replay = into_reply(send("cancel-key-1").await.unwrap()).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.body, first.body);
    assert!(
        app.toss_server
            .received_requests()
            .await
            .unwrap()
            .is_empty(),
        "no PG call"
    );
    let events = app.events_of(&id).await;
    assert_eq!(event_types(&events), ["payment.cancelled"]);
    assert_eq!(events[0]["payload"]["reason"], "customer left");
    // Without the API key: 401; a bad reason: 422; an unknown payment: 404.
    let anonymous = app
        .post_public(&format!("/payments/{id}/cancel"), json!({"reason": "x"}))
        .await;
    anonymous.problem(401, "UNAUTHORIZED");
    for reason in [
        json!(""),
        json!("  "),
        json!("a\u{7}b"),
        json!("x".repeat(201)),
    ] {
        app.post(&format!("/payments/{id}/cancel"), json!({"reason": reason}))
            .await
            .problem(422, "VALIDATION_ERROR");
    }
    let missing = app.post(&format!("/payments/{id}/cancel"), json!({})).await;
    assert!(
        matches!(missing.status.as_u16(), 400 | 422),
        "{}",
        missing.text
    );
    assert_eq!(missing.body["code"], "VALIDATION_ERROR");
    cancel(&app, "019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a", "x")
        .await
        .problem(404, "NOT_FOUND");
    app.stop().await;
}

async fn a_repeated_cancel_answers_the_same(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = create(&app, "order_cx_000002", 9000, None).await;
    let first = cancel(&app, &id, "first").await;
    let second = cancel(&app, &id, "second").await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, first.body, "nothing repeated");
    let events = app.events_of(&id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["payload"]["reason"], "first");
    app.stop().await;
}

async fn paid_and_unsettled_payments_cannot_be_cancelled(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_cx_000003", 8000, "pk_cx3")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    cancel(&app, id, "too late")
        .await
        .problem(409, "INVALID_STATE");
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "half", "refund_amount_krw": 4000}),
    )
    .await;
    cancel(&app, id, "too late")
        .await
        .problem(409, "INVALID_STATE");
    app.post(&format!("/payments/{id}/refund"), json!({"reason": "rest"}))
        .await;
    assert_eq!(app.payment(id).await["status"], "REFUNDED");
    cancel(&app, id, "too late")
        .await
        .problem(409, "INVALID_STATE");
    // IN_PROGRESS: the outcome at Toss is not known; a cancel would race it.
    let unsettled = create(&app, "order_cx_000004", 8000, None).await;
    app.toss.authenticate("pk_cx4", "order_cx_000004", 8000);
    app.toss_fails(
        "POST",
        "/v1/payments/confirm$",
        500,
        "UNKNOWN_PAYMENT_ERROR",
        Some(1),
    )
    .await;
    app.confirm_public("order_cx_000004", "pk_cx4").await;
    assert_eq!(app.payment(&unsettled).await["status"], "IN_PROGRESS");
    cancel(&app, &unsettled, "not sure")
        .await
        .problem(409, "INVALID_STATE");
    assert_eq!(app.payment(id).await["status"], "REFUNDED");
    app.stop().await;
}

async fn a_cancelled_payment_can_never_be_confirmed(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = create(&app, "order_cx_000005", 7000, None).await;
    cancel(&app, &id, "gone").await;
    app.toss.authenticate("pk_cx5", "order_cx_000005", 7000);
    app.confirm_public("order_cx_000005", "pk_cx5")
        .await
        .problem(409, "INVALID_STATE");
    // Nor by a trusted caller's claim, nor by Toss's success redirect.
    app.post(
        "/payments/confirm",
        json!({"payment_id": id, "pg_transaction_id": "tx-1", "pg_provider": "kcp"}),
    )
    .await
    .problem(409, "INVALID_STATE");
    let redirect = app
        .get_public("/payments/toss/success?paymentKey=pk_cx5&orderId=order_cx_000005&amount=7000")
        .await;
    redirect.problem(409, "INVALID_STATE");
    assert_eq!(app.confirms_sent().await, 0, "Toss never asked");
    assert_eq!(app.payment(&id).await["status"], "CANCELLED");
    app.stop().await;
}

async fn cancel_races_confirm_to_one_consistent_state(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..6 {
        let order_id = format!("order_race_cx_{round:02}");
        let key = format!("pk_race_cx_{round}");
        let id = create(&app, &order_id, 5000, None).await;
        app.toss.authenticate(&key, &order_id, 5000);
        let confirm_body = json!({"order_id": order_id, "payment_key": key});
        let (confirmed, cancelled) = tokio::join!(
            app.post_public("/payments/confirm", confirm_body),
            cancel(&app, &id, "race"),
        );
        let payment = app.payment(&id).await;
        let at_toss = app.toss.payment(&key).unwrap().status;
        let events = event_types(&app.events_of(&id).await)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        match payment["status"].as_str().unwrap() {
            "CANCELLED" => {
                assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
                confirmed.problem(409, "INVALID_STATE");
                assert_eq!(at_toss, "IN_PROGRESS", "never approved at Toss");
                assert_eq!(events, ["payment.cancelled"]);
            }
            "COMPLETED" => {
                assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
                cancelled.problem(409, "INVALID_STATE");
                assert_eq!(at_toss, "DONE");
                assert_eq!(events, ["payment.completed"]);
            }
            other => panic!("round {round}: {other}: {payment}"),
        }
    }
    let confirms = app.confirms_sent().await;
    let completed = app.get("/payments?limit=100").await.body["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "COMPLETED")
        .count();
    assert_eq!(
        confirms, completed,
        "one Toss confirm per completed payment, none else"
    );
    app.stop().await;
}

async fn cancel_races_deposit_to_one_consistent_state(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..4 {
        let order_id = format!("order_race_dp_{round:02}");
        let key = format!("pk_race_dp_{round}");
        let (id, _) = issued(&app, &order_id, &key, 6000).await;
        let deposit = async {
            app.toss.deposit(&key);
            deliver(&app, None, &app.toss.deposit_callback(&key)).await
        };
        let (cancelled, delivered) = tokio::join!(cancel(&app, &id, "race"), deposit);
        assert_eq!(delivered.status, StatusCode::OK);
        // Whatever the order, the webhook or the reconciler brings our books to Toss's.
        deliver(&app, None, &app.toss.deposit_callback(&key)).await;
        let payment = app.payment(&id).await;
        let at_toss = app.toss.payment(&key).unwrap();
        let events = event_types(&app.events_of(&id).await)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        match (payment["status"].as_str().unwrap(), at_toss.status.as_str()) {
            ("CANCELLED", "CANCELED") => {
                assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
                assert_eq!(events, ["payment.waiting_for_deposit", "payment.cancelled"]);
            }
            ("COMPLETED", "DONE") => {
                cancelled.problem(409, "INVALID_STATE");
                assert_eq!(events, ["payment.waiting_for_deposit", "payment.completed"]);
            }
            (ours, toss) => panic!("round {round}: ours {ours}, Toss {toss}: {payment}"),
        }
        assert_eq!(payment["needs_review"], false);
    }
    app.stop().await;
}

async fn tax_free_amount_is_validated_on_create(backend: Backend) {
    let app = spawn_app(backend).await;
    let base = json!({"user_id": "u-1", "order_id": "order_tf_000001", "amount_krw": 10000, "payment_method": "card"});
    for bad in [json!(10001), json!(-1), json!(1.5), json!("100")] {
        let mut body = base.clone();
        body["tax_free_amount_krw"] = bad.clone();
        let reply = app.post("/payments", body).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{bad}: {}",
            reply.text
        );
        assert_eq!(reply.body["code"], "VALIDATION_ERROR", "{bad}");
    }
    let default = app.post("/payments", base.clone()).await;
    assert_eq!(default.status, StatusCode::CREATED);
    assert_eq!(default.body["tax_free_amount_krw"], 0);
    let mut all = base.clone();
    all["order_id"] = json!("order_tf_000002");
    all["tax_free_amount_krw"] = json!(10000);
    let reply = app.post("/payments", all).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["tax_free_amount_krw"], 10000);
    assert_eq!(app.events().await.len(), 0, "nothing else happened");
    app.stop().await;
}

/// A card payment of `amount`, `tax_free` of it tax-free, confirmed through the fake Toss.
async fn paid_with_tax_free(
    app: &TestApp,
    order_id: &str,
    key: &str,
    amount: i64,
    tax_free: i64,
) -> String {
    let id = create(app, order_id, amount, Some(tax_free)).await;
    app.toss.authenticate(key, order_id, amount);
    app.toss.set_tax_free(key, tax_free);
    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"order_id": order_id, "payment_key": key}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    id
}

async fn refund(app: &TestApp, id: &str, body: Value) -> Reply {
    app.post(&format!("/payments/{id}/refund"), body).await
}

/// The `taxFreeAmount` of each cancel sent to Toss for `key`, in order.
async fn sent_tax_free(app: &TestApp, key: &str) -> Vec<Value> {
    app.toss_requests("POST", &format!("/{key}/cancel"))
        .await
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["taxFreeAmount"].clone())
        .collect()
}

/// Toss's tax-free amount is Toss's (defect 8): the payment window fixed it, not our create.
/// When the approved record's differs from ours, the payment takes Toss's, is flagged with why,
/// and refunds split what Toss holds.
async fn tosss_tax_free_amount_is_taken_flagged_and_split_by_refunds(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = create(&app, "order_tf_000010", 10000, Some(1000)).await;
    app.toss.authenticate("pk_tf10", "order_tf_000010", 10000);
    app.toss.set_tax_free("pk_tf10", 3000);
    let reply = app.confirm_public("order_tf_000010", "pk_tf10").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED");
    let paid = app.payment(&id).await;
    assert_eq!(paid["tax_free_amount_krw"], 3000, "{paid}");
    assert_eq!(paid["needs_review"], true);
    let reason = paid["review_reason"].as_str().unwrap();
    assert!(reason.contains("taxFreeAmount 3000"), "{reason}");
    assert_eq!(
        event_types(&app.events_of(&id).await),
        ["payment.completed"]
    );
    // Refunds split Toss's tax-free amount, pro rata, and Toss takes them all.
    for amount in [5000, 5000] {
        let reply = refund(
            &app,
            &id,
            json!({"reason": "split", "refund_amount_krw": amount}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["status"], "COMPLETED", "{}", reply.text);
    }
    assert_eq!(
        sent_tax_free(&app, "pk_tf10").await,
        [json!(1500), json!(1500)]
    );
    assert_eq!(
        app.toss.payment("pk_tf10").unwrap().tax_free,
        0,
        "Toss agrees"
    );
    assert_eq!(app.payment(&id).await["status"], "REFUNDED");
    app.stop().await;
}

async fn refunds_take_the_tax_free_amount_pro_rata(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = paid_with_tax_free(&app, "order_tf_000003", "pk_tf3", 10000, 3000).await;
    assert_eq!(app.payment(&id).await["tax_free_amount_krw"], 3000);
    let mut parts = Vec::new();
    for amount in [json!(3333), json!(3333), Value::Null] {
        let mut body = json!({"reason": "pro rata"});
        if !amount.is_null() {
            body["refund_amount_krw"] = amount;
        }
        let reply = refund(&app, &id, body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        parts.push(reply.body["tax_free_amount_krw"].as_i64().unwrap());
    }
    // 3000×3333/10000 = 999.9 → 999; 2001×3333/6667 = 1000.3 → 1000; the last takes the rest.
    assert_eq!(parts, [999, 1000, 1001]);
    assert_eq!(
        sent_tax_free(&app, "pk_tf3").await,
        [json!(999), json!(1000), json!(1001)]
    );
    assert_eq!(
        app.toss.payment("pk_tf3").unwrap().tax_free,
        0,
        "Toss agrees"
    );
    let listed = app.get(&format!("/payments/{id}/refunds")).await;
    let shown: Vec<i64> = listed.body["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tax_free_amount_krw"].as_i64().unwrap())
        .collect();
    assert_eq!(shown, [999, 1000, 1001]);
    // A payment without a tax-free part sends none.
    let plain = app
        .completed_payment("order_tf_000004", 5000, "pk_tf4")
        .await;
    let plain_id = plain["payment_id"].as_str().unwrap();
    let reply = refund(&app, plain_id, json!({"reason": "plain"})).await;
    assert_eq!(reply.body["tax_free_amount_krw"], 0);
    assert_eq!(sent_tax_free(&app, "pk_tf4").await, [Value::Null]);
    app.stop().await;
}

async fn a_given_tax_free_part_is_checked_and_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = paid_with_tax_free(&app, "order_tf_000005", "pk_tf5", 10000, 2000).await;
    // Over what is left, over the refund, negative, or leaving more tax-free than balance.
    for (amount, tax_free) in [(5000, 2001), (1000, 1500), (1000, -1), (9000, 0)] {
        refund(
            &app,
            &id,
            json!({"reason": "given", "refund_amount_krw": amount, "tax_free_amount_krw": tax_free}),
        )
        .await
        .problem(422, "VALIDATION_ERROR");
    }
    assert!(
        app.toss_requests("POST", "/cancel").await.is_empty(),
        "Toss not asked"
    );
    let reply = refund(
        &app,
        &id,
        json!({"reason": "given", "refund_amount_krw": 5000, "tax_free_amount_krw": 1500}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["tax_free_amount_krw"], 1500);
    // What is left: 500 tax-free of 5000.
    refund(
        &app,
        &id,
        json!({"reason": "given", "refund_amount_krw": 1000, "tax_free_amount_krw": 501}),
    )
    .await
    .problem(422, "VALIDATION_ERROR");
    let rest = refund(&app, &id, json!({"reason": "rest"})).await;
    assert_eq!(rest.body["tax_free_amount_krw"], 500);
    assert_eq!(
        sent_tax_free(&app, "pk_tf5").await,
        [json!(1500), json!(500)]
    );
    // A payment with nothing tax-free refuses a tax-free part.
    let plain = app
        .completed_payment("order_tf_000006", 5000, "pk_tf6")
        .await;
    refund(
        &app,
        plain["payment_id"].as_str().unwrap(),
        json!({"reason": "given", "tax_free_amount_krw": 1}),
    )
    .await
    .problem(422, "VALIDATION_ERROR");
    app.stop().await;
}

/// Property: however a payment is refunded (random amounts, some tax-free parts given), the
/// tax-free parts of its refunds add up to its tax-free amount, and Toss's agrees.
async fn tax_free_parts_of_refunds_add_up_to_the_payments(backend: Backend) {
    use rand::{Rng, SeedableRng};
    let app = spawn_app(backend).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7a8f_2026);
    for case in 0..6 {
        let amount: i64 = rng.random_range(1..=200_000);
        let tax_free: i64 = rng.random_range(0..=amount);
        let key = format!("pk_tfp_{case}");
        let id = paid_with_tax_free(
            &app,
            &format!("order_tfp_{case:04}"),
            &key,
            amount,
            tax_free,
        )
        .await;
        let mut left = amount;
        let mut left_tax_free = tax_free;
        let mut parts = 0;
        while left > 0 {
            let mut body = json!({"reason": "property"});
            let part = if rng.random_bool(0.3) {
                left
            } else {
                rng.random_range(1..=left)
            };
            body["refund_amount_krw"] = json!(part);
            if part < left && rng.random_bool(0.25) {
                // Within what the refund may take (see the refund's documentation).
                let least = (left_tax_free - (left - part)).max(0);
                let most = left_tax_free.min(part);
                body["tax_free_amount_krw"] = json!(rng.random_range(least..=most));
            }
            let reply = refund(&app, &id, body.clone()).await;
            assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.text);
            let taken = reply.body["tax_free_amount_krw"].as_i64().unwrap();
            assert!((0..=part).contains(&taken), "{body}: {taken}");
            left -= part;
            left_tax_free -= taken;
            parts += taken;
        }
        assert_eq!(
            parts, tax_free,
            "case {case}: {amount} with {tax_free} tax-free"
        );
        assert_eq!(app.toss.payment(&key).unwrap().tax_free, 0);
    }
    app.stop().await;
}

async fn receipt_method_and_card_are_shown(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_payment("order_rc_000001", 12000).await;
    app.toss.authenticate("pk_rc1", "order_rc_000001", 12000);
    let reply = app.confirm_public("order_rc_000001", "pk_rc1").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    for shown in [
        reply.body.clone(),
        app.payment(reply.body["payment_id"].as_str().unwrap())
            .await,
    ] {
        assert_eq!(shown["pg_method"], "카드");
        assert_eq!(
            shown["receipt_url"],
            "https://dashboard.tosspayments.com/receipt/pk_rc1"
        );
        assert_eq!(
            shown["card"],
            json!({"issuer_code": "71", "number": "12345678****000*", "installment_plan_months": 0, "approve_no": "00000000"})
        );
        assert_eq!(shown["virtual_account"], Value::Null);
    }
    // Before Toss approved anything, none of it.
    let fresh = app.create_payment("order_rc_000002", 12000).await;
    for field in ["pg_method", "receipt_url", "card", "virtual_account"] {
        assert_eq!(fresh[field], Value::Null, "{field}");
    }
    app.stop().await;
}

/// A refund's cancel whose answer is lost is sent again by the reconciler, later, with what the
/// request gave: the refund account (kept sealed) and the tax-free part (kept on the refund).
async fn a_lost_refund_is_resent_with_the_same_account_and_tax_free_part(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let id = create(&app, "order_va_000007", 20000, Some(8000)).await;
    app.toss
        .authenticate_virtual_account("pk_va7", "order_va_000007", 20000);
    app.toss.set_tax_free("pk_va7", 8000);
    let reply = app.confirm_public("order_va_000007", "pk_va7").await;
    assert_eq!(
        reply.body["status"], "WAITING_FOR_DEPOSIT",
        "{}",
        reply.text
    );
    assert!(app.toss.deposit("pk_va7"));
    deliver(&app, None, &app.toss.deposit_callback("pk_va7")).await;
    assert_eq!(app.payment(&id).await["status"], "COMPLETED");

    app.toss_hangs("POST", "/cancel$", Some(1)).await;
    let lost = refund(
        &app,
        &id,
        json!({"reason": "lost", "refund_amount_krw": 5000, "refund_receive_account": refund_account(ACCOUNT)}),
    )
    .await;
    assert_eq!(lost.status, StatusCode::ACCEPTED, "{}", lost.text);
    assert_eq!(lost.body["tax_free_amount_krw"], 2000);
    app.service.settle_due().await.unwrap();
    let refunds = app.get(&format!("/payments/{id}/refunds")).await;
    assert_eq!(
        refunds.body["refunds"][0]["status"], "COMPLETED",
        "{}",
        refunds.text
    );
    let sent: Vec<Value> = app
        .toss_requests("POST", "/cancel")
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(sent.len(), 2, "sent again");
    assert_eq!(
        sent[0], sent[1],
        "the same cancel, account and tax-free part included"
    );
    assert_eq!(sent[1]["taxFreeAmount"], 2000);
    assert_eq!(sent[1]["refundReceiveAccount"]["accountNumber"], ACCOUNT);
    let at_toss = app.toss.payment("pk_va7").unwrap();
    assert_eq!(
        (at_toss.balance, at_toss.tax_free),
        (15000, 6000),
        "once at Toss"
    );
    app.stop().await;
}

/// A refund needs money that was taken: an account waiting for its deposit, or an attempt whose
/// outcome is unknown, is 409 `INVALID_STATE` (not a PG error), and Toss is not called.
async fn nothing_unpaid_can_be_refunded(backend: Backend) {
    let app = spawn_app(backend).await;
    let (waiting, _) = issued(&app, "order_va_unpaid1", "pk_va_unpaid1", 12000).await;
    let body = json!({"reason": "returned", "refund_receive_account": refund_account(ACCOUNT)});
    app.post(&format!("/payments/{waiting}/refund"), body.clone())
        .await
        .problem(409, "INVALID_STATE");

    let unknown = create(&app, "order_unpaid_000002", 8000, None).await;
    app.toss
        .authenticate("pk_unpaid_2", "order_unpaid_000002", 8000);
    app.fail_next_confirm(500, "UNKNOWN_PAYMENT_ERROR").await;
    let reply = app
        .confirm_public("order_unpaid_000002", "pk_unpaid_2")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    app.post(&format!("/payments/{unknown}/refund"), body)
        .await
        .problem(409, "INVALID_STATE");
    assert!(app.toss_requests("POST", "/cancel").await.is_empty());
    app.stop().await;
}
