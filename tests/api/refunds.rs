use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fake_toss::BASIC_AUTH;
use crate::helpers::{API_KEY, Backend, Reply, TestApp, into_reply, spawn_app, spawn_impatient};
use crate::on_both_databases;

on_both_databases!(
    partial_partial_final_refund_each_reaches_toss,
    refund_over_balance_is_refused_before_toss,
    toss_refusal_of_a_refund_changes_nothing,
    refund_needs_refundable_state,
    refund_timeout_is_202_then_settled_from_cancels,
    cancel_reply_that_contradicts_us_is_set_aside,
    lost_refund_is_sent_again_and_lands_once,
    refund_toss_never_gets_fails_after_the_window_and_frees_the_balance,
    dashboard_cancel_becomes_a_refund_and_ours_is_sent_again,
    a_refund_answered_while_waiting_its_turn_then_refused_ends_failed,
    a_recorded_key_of_another_order_is_never_cancelled,
    a_refund_that_waited_past_the_window_is_still_sent_and_ends,
);

/// A refund whose Toss reply never comes back; Toss does not cancel anything.
async fn lost_refund(app: &crate::helpers::TestApp, id: &str, amount: i64) -> Value {
    app.toss_hangs("POST", "/cancel$", Some(1)).await;
    let reply = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "lost", "refund_amount_krw": amount}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    reply.body
}

/// Moves a refund's creation and last send back past the confirm window, as if 15 minutes had
/// passed.
async fn age_refund(app: &crate::helpers::TestApp, refund_id: &str) {
    let then = chrono::Utc::now() - chrono::Duration::minutes(15);
    app.execute_sql(
        "UPDATE refunds SET created_at = $1, last_sent_at = $1, next_reconcile_at = $2 WHERE id = $3",
        vec![then.into(), chrono::Utc::now().into(), refund_id.into()],
    )
    .await;
}

/// The bodies of the cancels sent to Toss, in order.
async fn cancel_bodies(app: &crate::helpers::TestApp) -> Vec<Value> {
    app.toss_requests("POST", "/cancel")
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn cancel_reply_that_contradicts_us_is_set_aside(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_rliar_0001", 10000, "pk_rliar")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.contradict_cancels("pk_rliar", None).await;
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "r", "refund_amount_krw": 1000}),
    )
    .await
    .problem(502, "PG_RESPONSE_MISMATCH");
    let payment = app.payment(id).await;
    assert_eq!(payment["needs_review"], true);
    assert_eq!(payment["status"], "COMPLETED", "never silently refunded");
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds[0]["status"], "PENDING");
    // Flagged for a person, but a flag never stops the engine: the refund is still read back.
    let gets_before = app.toss_requests("GET", "/v1/payments").await.len();
    app.service.reconcile_once().await.unwrap();
    assert!(
        app.toss_requests("GET", "/v1/payments").await.len() > gets_before,
        "still settled by the engine"
    );
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "COMPLETED", "never silently refunded");
    assert_eq!(payment["refunded_amount_krw"], 0);
    assert_eq!(payment["needs_review"], true);
    app.stop().await;
}

/// A cancel Toss never got (timeout, nothing at Toss): the read-back shows no such cancel, so the
/// reconciler sends it again, with a fresh key and the same balance, and it lands once.
async fn lost_refund_is_sent_again_and_lands_once(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let paid = app
        .completed_payment("order_rlost_0001", 10000, "pk_rlost")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let refund = lost_refund(&app, id, 4000).await;
    assert_eq!(refund["status"], "PENDING");
    app.service.reconcile_once().await.unwrap();
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds[0]["status"], "COMPLETED", "{refunds}");
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PARTIAL_REFUND");
    assert_eq!(payment["refunded_amount_krw"], 4000);
    assert_eq!(
        app.toss.payment("pk_rlost").unwrap().balance,
        6000,
        "once at Toss"
    );
    let sent = app.toss_requests("POST", "/cancel").await;
    assert_eq!(sent.len(), 2, "sent again");
    assert_ne!(
        sent[0].headers["idempotency-key"], sent[1].headers["idempotency-key"],
        "a fresh Toss key: Toss replays a reused key's error"
    );
    for body in cancel_bodies(&app).await {
        assert_eq!(body["refundableAmount"], 10000, "{body}");
    }
    let refunded = app
        .events_of(id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "payment.refunded")
        .count();
    assert_eq!(refunded, 1);
    app.stop().await;
}

async fn refund_toss_never_gets_fails_after_the_window_and_frees_the_balance(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let paid = app
        .completed_payment("order_rlost_0002", 10000, "pk_rlost2")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    // The first send and the reconciler's resend both time out, and Toss never gets either.
    app.toss_hangs("POST", "/cancel$", Some(2)).await;
    let refund = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "lost", "refund_amount_krw": 4000}),
        )
        .await;
    assert_eq!(refund.status, StatusCode::ACCEPTED, "{}", refund.text);
    let refund_id = refund.body["refund_id"].as_str().unwrap().to_owned();
    app.service.reconcile_once().await.unwrap();
    assert_eq!(
        app.get(&format!("/payments/{id}/refunds")).await.body["refunds"][0]["status"],
        "PENDING",
        "within the window: sent again, still unknown"
    );
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 2);
    age_refund(&app, &refund_id).await;
    app.service.reconcile_once().await.unwrap();
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds[0]["status"], "FAILED");
    assert_eq!(refunds[0]["failure"]["code"], "PG_CANCEL_NOT_FOUND");
    assert_eq!(
        app.toss_requests("POST", "/cancel").await.len(),
        2,
        "never sent after the window"
    );
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["refunded_amount_krw"], 0);
    let events = app.events_of(id).await;
    assert!(events.iter().all(|e| e["event_type"] != "payment.refunded"));
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e["event_type"] == "refund.failed")
        .collect();
    assert_eq!(failed.len(), 1, "a 202 that ends FAILED says so");
    assert_eq!(failed[0]["payload"]["refund_id"], refund_id.as_str());
    assert_eq!(failed[0]["payload"]["refund_amount"], 4000);
    assert_eq!(
        failed[0]["payload"]["failure"]["code"],
        "PG_CANCEL_NOT_FOUND"
    );
    // The whole amount is refundable again.
    let again = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["refund_amount_krw"], 10000);
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 3);
    app.stop().await;
}

/// Toss shows a cancel we did not make (Toss's dashboard) besides ours that never reached it:
/// the unknown cancel becomes a refund made outside the service, and ours is sent again against
/// the balance Toss really has.
async fn dashboard_cancel_becomes_a_refund_and_ours_is_sent_again(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let paid = app
        .completed_payment("order_rodd_00001", 10000, "pk_rodd")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    lost_refund(&app, id, 4000).await;
    app.toss.cancel_in_dashboard("pk_rodd", 2500);
    app.service.reconcile_once().await.unwrap();
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    let statuses: Vec<_> = refunds
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["refund_amount_krw"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&(4000, "COMPLETED".to_owned())),
        "{refunds}"
    );
    assert!(
        statuses.contains(&(2500, "COMPLETED".to_owned())),
        "{refunds}"
    );
    let payment = app.payment(id).await;
    assert_eq!(payment["refunded_amount_krw"], 6500);
    assert_eq!(payment["status"], "PARTIAL_REFUND");
    assert_eq!(payment["needs_review"], false);
    assert_eq!(
        app.toss.payment("pk_rodd").unwrap().balance,
        3500,
        "books match Toss"
    );
    let bodies = cancel_bodies(&app).await;
    assert_eq!(bodies.last().unwrap()["refundableAmount"], 7500);
    let refunded = app
        .events_of(id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "payment.refunded")
        .count();
    assert_eq!(
        refunded, 2,
        "one event per refund, the outside one included"
    );
    app.stop().await;
}

async fn partial_partial_final_refund_each_reaches_toss(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_refund_0001", 15000, "pk_refund/with?odd#chars")
        .await;
    let id = paid["payment_id"].as_str().unwrap();

    let first = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "one item returned", "refund_amount_krw": 5000}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["status"], "COMPLETED");
    assert_eq!(first.body["refund_amount_krw"], 5000);
    assert_eq!(first.body["payment_status"], "PARTIAL_REFUND");
    assert_eq!(first.body["reason"], "one item returned");
    assert!(first.body["refunded_at"].is_string());

    let second = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "another", "refund_amount_krw": 3000}),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(second.body["payment_status"], "PARTIAL_REFUND");
    assert_eq!(app.payment(id).await["refunded_amount_krw"], 8000);

    let last = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "the rest", "refund_amount_krw": 0}),
        )
        .await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text);
    assert_eq!(last.body["refund_amount_krw"], 7000);
    assert_eq!(last.body["payment_status"], "REFUNDED");

    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "REFUNDED");
    assert_eq!(payment["refunded_amount_krw"], 15000);

    let cancels = app.toss_requests("POST", "/cancel").await;
    assert_eq!(cancels.len(), 3);
    let mut keys = Vec::new();
    for (sent, (reason, amount, balance)) in cancels.iter().zip([
        ("one item returned", 5000, 15000),
        ("another", 3000, 10000),
        ("the rest", 7000, 7000),
    ]) {
        assert_eq!(
            sent.url.path(),
            "/v1/payments/pk_refund%2Fwith%3Fodd%23chars/cancel"
        );
        assert_eq!(sent.headers["authorization"], BASIC_AUTH);
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(
            body,
            json!({"cancelReason": reason, "cancelAmount": amount, "refundableAmount": balance}),
            "every cancel carries our view of the balance before it"
        );
        keys.push(sent.headers["idempotency-key"].to_str().unwrap().to_owned());
    }
    keys.dedup();
    assert_eq!(keys.len(), 3, "one Toss idempotency key per refund");
    assert_eq!(
        app.toss
            .payment("pk_refund/with?odd#chars")
            .unwrap()
            .balance,
        0
    );

    let listed = app.get(&format!("/payments/{id}/refunds")).await;
    assert_eq!(listed.status, StatusCode::OK);
    let amounts: Vec<_> = listed.body["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["refund_amount_krw"].clone())
        .collect();
    assert_eq!(amounts, vec![json!(5000), json!(3000), json!(7000)]);

    let events = app.events_of(id).await;
    let kinds: Vec<_> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "payment.completed",
            "payment.refunded",
            "payment.refunded",
            "payment.refunded"
        ]
    );
    let full: Vec<_> = events[1..]
        .iter()
        .map(|e| e["payload"]["is_full_refund"].clone())
        .collect();
    assert_eq!(full, vec![json!(false), json!(false), json!(true)]);
    assert_eq!(events[3]["payload"]["refund_amount"], 7000);
    assert_eq!(events[3]["payload"]["reason"], "the rest");

    app.post(&format!("/payments/{id}/refund"), json!({"reason": "more"}))
        .await
        .problem(409, "INVALID_STATE");
    app.stop().await;
}

async fn refund_over_balance_is_refused_before_toss(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_over_00001", 10000, "pk_over")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "r", "refund_amount_krw": 10001}),
    )
    .await
    .problem(409, "REFUND_EXCEEDS_BALANCE");
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "r", "refund_amount_krw": 6000}),
    )
    .await;
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "r", "refund_amount_krw": 4001}),
    )
    .await
    .problem(409, "REFUND_EXCEEDS_BALANCE");
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);
    assert_eq!(app.payment(id).await["refunded_amount_krw"], 6000);
    app.stop().await;
}

async fn toss_refusal_of_a_refund_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_refuse_001", 10000, "pk_refuse")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let before = app.payment(id).await;
    let events_before = app.events().await;
    app.toss_fails("POST", "/cancel$", 403, "NOT_CANCELABLE_PAYMENT", None)
        .await;
    let reply = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "r", "refund_amount_krw": 1000}),
        )
        .await;
    let problem = reply.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "NOT_CANCELABLE_PAYMENT");
    assert_eq!(app.payment(id).await, before);
    assert_eq!(app.events().await, events_before);
    let refunds = app.get(&format!("/payments/{id}/refunds")).await;
    assert_eq!(refunds.body["refunds"], json!([]));
    app.stop().await;
}

async fn refund_needs_refundable_state(backend: Backend) {
    let app = spawn_app(backend).await;
    let pending = app.create_payment("order_notpaid_01", 1000).await;
    let id = pending["payment_id"].as_str().unwrap();
    app.post(&format!("/payments/{id}/refund"), json!({"reason": "r"}))
        .await
        .problem(409, "INVALID_STATE");
    app.post(
        &format!("/payments/{}/refund", uuid::Uuid::now_v7()),
        json!({"reason": "r"}),
    )
    .await
    .problem(404, "NOT_FOUND");
    app.post("/payments/not-a-uuid/refund", json!({"reason": "r"}))
        .await
        .problem(404, "NOT_FOUND");
    assert_eq!(app.toss_calls().await, 0);
    app.stop().await;
}

async fn refund_timeout_is_202_then_settled_from_cancels(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let paid = app
        .completed_payment("order_rslow_0001", 10000, "pk_rslow")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.toss_hangs("POST", "/cancel$", None).await;
    let reply = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "slow", "refund_amount_krw": 4000}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.body["status"], "PENDING");
    assert_eq!(reply.body["payment_status"], "COMPLETED");
    // While it is pending, its amount is not refundable twice.
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "r", "refund_amount_krw": 6001}),
    )
    .await
    .problem(409, "REFUND_EXCEEDS_BALANCE");

    // The cancel did land at Toss.
    app.toss.cancel_in_dashboard("pk_rslow", 4000);
    app.service.reconcile_once().await.unwrap();
    let refunds = app.get(&format!("/payments/{id}/refunds")).await;
    assert_eq!(
        refunds.body["refunds"][0]["status"], "COMPLETED",
        "{}",
        refunds.text
    );
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PARTIAL_REFUND");
    assert_eq!(payment["refunded_amount_krw"], 4000);
    app.service.reconcile_once().await.unwrap();
    let refunded: Vec<_> = app
        .events_of(id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "payment.refunded")
        .collect();
    assert_eq!(refunded.len(), 1);
    assert_eq!(
        app.toss_requests("POST", "/cancel").await.len(),
        1,
        "sent to Toss once"
    );
    app.stop().await;
}

/// A refund with an `Idempotency-Key`.
async fn refund_with_key(app: &TestApp, id: &str, key: &str, body: Value) -> Reply {
    let request = app
        .client
        .post(format!("{}/payments/{id}/refund", app.address))
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", key)
        .json(&body);
    into_reply(request.send().await.expect("sent")).await
}

/// A refund answered 202 while it waited for the payment's cancel slot (sent 0 times), which
/// Toss then refuses, is not forgotten: it ends `FAILED` with `refund.failed`, stays listed,
/// its amount goes back to the balance, and a retry with its key answers that, not 202.
async fn a_refund_answered_while_waiting_its_turn_then_refused_ends_failed(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_rwait_0001", 10000, "pk_rwait")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    // Another refund's cancel is at Toss: it holds the payment's cancel slot.
    app.hold_cancel_slot(id).await;
    let body = json!({"reason": "waits its turn", "refund_amount_krw": 4000});
    let first = refund_with_key(&app, id, "refund-wait-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(first.body["status"], "PENDING");
    let refund_id = first.body["refund_id"].as_str().unwrap().to_owned();
    assert!(
        app.toss_requests("POST", "/cancel").await.is_empty(),
        "waiting"
    );
    // The slot is free again; Toss refuses this refund's cancel.
    app.free_cancel_slot(id).await;
    app.toss_fails("POST", "/cancel$", 403, "NOT_CANCELABLE_PAYMENT", None)
        .await;
    app.execute_sql(
        "UPDATE refunds SET next_reconcile_at = $1 WHERE id = $2",
        vec![chrono::Utc::now().into(), refund_id.as_str().into()],
    )
    .await;
    app.service.reconcile_once().await.unwrap();
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);

    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(
        refunds.as_array().unwrap().len(),
        1,
        "still listed: {refunds}"
    );
    assert_eq!(refunds[0]["refund_id"], refund_id.as_str());
    assert_eq!(refunds[0]["status"], "FAILED", "{refunds}");
    assert_eq!(refunds[0]["failure"]["code"], "NOT_CANCELABLE_PAYMENT");
    let failed: Vec<Value> = app
        .events_of(id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "refund.failed")
        .collect();
    assert_eq!(failed.len(), 1, "refund.failed once");
    assert_eq!(failed[0]["payload"]["refund_id"], refund_id.as_str());
    assert_eq!(
        failed[0]["payload"]["failure"]["code"],
        "NOT_CANCELABLE_PAYMENT"
    );
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["refunded_amount_krw"], 0);

    // Its key answers its current state, never the first 202 again.
    let again = refund_with_key(&app, id, "refund-wait-1", body).await;
    let problem = again.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "NOT_CANCELABLE_PAYMENT");
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);
    // The balance is whole again: a refund of all of it is allowed (and refused by Toss).
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "r", "refund_amount_krw": 10000}),
    )
    .await
    .problem(402, "PG_DECLINED");
    app.stop().await;
}

/// A payment confirmed with the API key and no `payment_key`, recording `pk_victim` (another
/// order's Toss payment) with `pg_provider: "toss"`, as a version 2 database may hold. Its
/// refund reads that record first: it names another order, so the refund is refused 409
/// `PG_RESPONSE_MISMATCH`, nothing is cancelled, and the payment is flagged. A recorded key
/// whose record names this order and amount is refunded as usual.
async fn a_recorded_key_of_another_order_is_never_cancelled(backend: Backend) {
    let app = spawn_app(backend).await;
    app.completed_payment("order_victim_001", 10000, "pk_victim")
        .await;

    async fn recorded(app: &TestApp, order_id: &str, key: &str) -> String {
        let created = app.create_payment(order_id, 10000).await;
        let id = created["payment_id"].as_str().unwrap().to_owned();
        let reply = app
            .post(
                "/payments/confirm",
                json!({"payment_id": id, "pg_transaction_id": key, "pg_provider": "toss"}),
            )
            .await;
        if reply.status != StatusCode::OK {
            // This instance refuses such a confirm; older versions recorded it.
            reply.problem(422, "PAYMENT_KEY_REQUIRED");
            app.execute_sql(
                "UPDATE payments SET status = 'COMPLETED', pg_provider = 'toss', \
                 pg_transaction_id = $1, completed_at = $2 WHERE id = $3",
                vec![key.into(), chrono::Utc::now().into(), id.as_str().into()],
            )
            .await;
        }
        id
    }

    let id = recorded(&app, "order_claim_0001", "pk_victim").await;
    let reply = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "r", "refund_amount_krw": 3000}),
        )
        .await;
    reply.problem(409, "PG_RESPONSE_MISMATCH");
    assert!(
        app.toss_requests("POST", "/cancel").await.is_empty(),
        "nothing sent"
    );
    assert_eq!(app.toss.payment("pk_victim").unwrap().balance, 10000);
    let payment = app.payment(&id).await;
    assert_eq!(payment["needs_review"], true, "{payment}");
    assert!(payment["review_reason"].is_string(), "{payment}");
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["refunded_amount_krw"], 0);
    let refunds = app.get(&format!("/payments/{id}/refunds")).await;
    assert_eq!(refunds.body["refunds"], json!([]));
    // Asked again: still refused, still nothing sent.
    app.post(&format!("/payments/{id}/refund"), json!({"reason": "r"}))
        .await
        .problem(409, "PG_RESPONSE_MISMATCH");
    assert!(app.toss_requests("POST", "/cancel").await.is_empty());

    // A recorded key of this very order and amount is read, found right, and refunded.
    app.toss.approve("pk_claim_own", "order_claim_0002", 10000);
    let own = recorded(&app, "order_claim_0002", "pk_claim_own").await;
    let refunded = app
        .post(
            &format!("/payments/{own}/refund"),
            json!({"reason": "r", "refund_amount_krw": 3000}),
        )
        .await;
    assert_eq!(refunded.status, StatusCode::OK, "{}", refunded.text);
    assert_eq!(refunded.body["status"], "COMPLETED");
    assert_eq!(app.toss.payment("pk_claim_own").unwrap().balance, 7000);
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);
    app.stop().await;
}

/// A refund answered 202 while it waited for the cancel slot, whose turn comes only after the
/// confirm window (a long outage, a backlog): never sent, nothing of it is at Toss, so it is
/// sent for the first time then and ends, rather than waiting forever for a read-back to end
/// a send that never happened.
async fn a_refund_that_waited_past_the_window_is_still_sent_and_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_rwait_0002", 10000, "pk_rwait2")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.hold_cancel_slot(id).await;
    let first = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "waits long", "refund_amount_krw": 4000}),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let refund_id = first.body["refund_id"].as_str().unwrap().to_owned();
    app.free_cancel_slot(id).await;
    let then = chrono::Utc::now() - chrono::Duration::minutes(15);
    app.execute_sql(
        "UPDATE refunds SET created_at = $1, next_reconcile_at = $2 WHERE id = $3",
        vec![
            then.into(),
            chrono::Utc::now().into(),
            refund_id.as_str().into(),
        ],
    )
    .await;
    for _ in 0..3 {
        app.service.reconcile_once().await.unwrap();
    }
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds[0]["status"], "COMPLETED", "{refunds}");
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);
    assert_eq!(app.toss.payment("pk_rwait2").unwrap().balance, 6000);
    assert_eq!(app.payment(id).await["status"], "PARTIAL_REFUND");
    app.stop().await;
}
