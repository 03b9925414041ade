//! Virtual accounts (가상계좌): issued by the confirm, deposited (webhook), expired, past their
//! due date, cancelled before the deposit (here or at Toss), a deposit error, refunds to a
//! refund account.

use super::*;

on_both_databases!(
    virtual_account_is_issued_deposited_by_webhook_and_refunded_to_an_account,
    an_expired_virtual_account_goes_back_to_pending,
    an_account_past_its_due_date_is_read_back_and_released_within_a_minute,
    a_virtual_account_cancelled_at_toss_by_someone_else_goes_back_to_pending,
    a_virtual_account_is_cancelled_before_its_deposit,
    a_cancel_whose_answer_is_lost_is_finished_by_the_reconciler,
    a_refused_cancel_of_an_unpaid_account_is_forgotten,
    a_refund_answered_while_waiting_whose_account_cannot_be_opened_ends_failed,
    a_deposit_error_after_completion_is_set_aside,
);

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
    app.service.reconcile_once().await.unwrap();
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
    app.service.reconcile_once().await.unwrap();
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
    app.service.reconcile_once().await.unwrap();
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
    app.service.reconcile_once().await.unwrap();
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
    app.service.reconcile_once().await.unwrap();
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
    app.service.reconcile_once().await.unwrap();
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
    app.service.reconcile_once().await.unwrap();
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
