use reqwest::StatusCode;
use serde_json::json;

use crate::fake_toss::{self, BASIC_AUTH};
use crate::helpers::{
    Backend, Options, Reply, TestApp, into_reply, spawn_app, spawn_impatient, spawn_with,
};
use crate::on_both_databases;

on_both_databases!(
    confirm_through_toss_sends_stored_amount_and_needs_no_api_key,
    confirm_twice_with_same_key_calls_toss_once,
    amount_mismatch_is_refused_before_toss,
    decline_keeps_payment_pending_with_failure_and_event,
    toss_unauthorized_key_is_pg_misconfigured,
    toss_500_that_charged_settles_completed_from_read_back,
    toss_timeout_is_202_then_reconciler_completes,
    noop_gateway_records_callers_transaction_id,
    unverified_confirm_needs_api_key,
    confirm_refuses_other_states,
    another_orders_payment_key_is_declined_not_a_server_error,
    toss_5xx_then_no_record_changes_nothing,
    a_payment_key_toss_does_not_know_changes_nothing,
    an_expired_attempt_of_the_order_is_a_real_failure,
    a_strangers_attempt_at_toss_does_not_block_the_buyer,
    an_attempt_toss_knows_in_flight_still_blocks_another_key,
    the_reconciler_releases_a_key_toss_does_not_know_at_once,
);

async fn another_orders_payment_key_is_declined_not_a_server_error(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_payment("order_keya_00001", 1000).await;
    let b = app.create_payment("order_keyb_00001", 2000).await;
    app.toss.authenticate("pk_of_a", "order_keya_00001", 1000);
    // Toss has no session of another order's paymentKey for this order (§17.6); its read-back
    // is about the other order, so nothing of ours is recorded.
    let reply = app.confirm_public("order_keyb_00001", "pk_of_a").await;
    let problem = reply.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "NOT_FOUND_PAYMENT_SESSION");
    let payment = app.payment(b["payment_id"].as_str().unwrap()).await;
    assert_eq!(payment["status"], "PENDING");
    assert!(payment["failure"].is_null(), "{payment}");
    assert!(app.events().await.is_empty());
    assert_eq!(app.toss.payment("pk_of_a").unwrap().status, "IN_PROGRESS");
    app.confirm_public("order_keyb_00001", "..")
        .await
        .problem(422, "VALIDATION_ERROR");
    app.stop().await;
}

/// The payment as a caller with the API key sees it, with the events of it: PENDING, no
/// failure, no event (exactly as created).
async fn assert_untouched(app: &TestApp, id: &str, what: &str) {
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PENDING", "{what}: {payment}");
    assert!(payment["failure"].is_null(), "{what}: {payment}");
    assert!(payment["pg_transaction_id"].is_null(), "{what}: {payment}");
    assert_eq!(payment["needs_review"], false, "{what}: {payment}");
    let events = app.events_of(id).await;
    assert!(events.is_empty(), "{what}: {events:?}");
}

/// A stranger with an order id posts keys Toss has no record of, again and again, through the
/// public confirm and the success redirect, also while Toss answers 5xx: each is a 4xx with
/// Toss's code, and the payment stays exactly as it was (no failure, no `payment.failed`); the
/// buyer then pays.
async fn a_payment_key_toss_does_not_know_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_junk_00001", 9000).await;
    let id = created["payment_id"].as_str().unwrap();
    for n in 0..3 {
        let reply = app
            .confirm_public("order_junk_00001", &format!("pk_junk_{n}"))
            .await;
        let problem = reply.problem(402, "PG_DECLINED");
        assert_eq!(problem["pg_code"], "NOT_FOUND_PAYMENT_SESSION");
        assert_untouched(&app, id, &format!("junk confirm {n}")).await;
    }
    let redirect = app
        .get_public(
            "/payments/toss/success?paymentKey=pk_junk_r&orderId=order_junk_00001&amount=9000",
        )
        .await;
    redirect.problem(402, "PG_DECLINED");
    assert_untouched(&app, id, "junk success redirect").await;

    // Toss answers 5xx: the read-back finds no record of the key, so the claim goes at once
    // (not after the buyer's 10-minute window).
    app.fail_next_confirm(500, "FAILED_INTERNAL_SYSTEM_PROCESSING")
        .await;
    let in_doubt = app.confirm_public("order_junk_00001", "pk_junk_5xx").await;
    assert!(
        in_doubt.status.is_client_error(),
        "a key Toss does not know is a 4xx: {} {}",
        in_doubt.status,
        in_doubt.text
    );
    assert_untouched(&app, id, "junk confirm with a Toss 5xx").await;

    app.toss
        .authenticate("pk_junk_buyer", "order_junk_00001", 9000);
    let own = app
        .confirm_public("order_junk_00001", "pk_junk_buyer")
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.body["status"], "COMPLETED");
    let events = app.events_of(id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "payment.completed");
    app.stop().await;
}

/// A key Toss knows, an expired attempt of this very order, is a real failure: recorded, with
/// `payment.failed`, as before.
async fn an_expired_attempt_of_the_order_is_a_real_failure(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_expired_001", 7000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss
        .authenticate("pk_expired_001", "order_expired_001", 7000);
    app.toss.set_status("pk_expired_001", "EXPIRED");
    let reply = app
        .confirm_public("order_expired_001", "pk_expired_001")
        .await;
    let problem = reply.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "NOT_FOUND_PAYMENT_SESSION");
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["failure"]["code"], "NOT_FOUND_PAYMENT_SESSION");
    let events = app.events_of(id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "payment.failed");
    app.stop().await;
}

/// The buyer's confirm of `order_id` with `payment_key`, sent in the background.
fn confirm_in_background(
    app: &TestApp,
    order_id: &str,
    payment_key: &str,
) -> tokio::task::JoinHandle<Reply> {
    let (client, address) = (app.client.clone(), app.address.clone());
    let body = json!({"order_id": order_id, "payment_key": payment_key});
    tokio::spawn(async move {
        let response = client
            .post(format!("{address}/payments/confirm"))
            .json(&body)
            .send()
            .await
            .unwrap();
        into_reply(response).await
    })
}

/// Waits (2 s at most) until a confirm has claimed the payment `id`: `IN_PROGRESS`.
async fn wait_until_claimed(app: &TestApp, id: &str) {
    for _ in 0..100 {
        if app.payment(id).await["status"] == "IN_PROGRESS" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// While a stranger's key is at Toss (Toss is slow to answer it), the buyer's own confirm is
/// not refused: the stranger's claim is read back, Toss has no record of it, so it is released
/// and the buyer's key confirmed. The stranger's late answer changes nothing.
async fn a_strangers_attempt_at_toss_does_not_block_the_buyer(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_block_0001", 6000).await;
    let id = created["payment_id"].as_str().unwrap().to_owned();
    app.toss_hangs("POST", "^/v1/payments/confirm$", Some(1))
        .await;
    let stranger = confirm_in_background(&app, "order_block_0001", "pk_block_junk");
    // The stranger's claim is taken and its confirm is at Toss.
    wait_until_claimed(&app, &id).await;
    assert_eq!(app.payment(&id).await["status"], "IN_PROGRESS");
    app.toss
        .authenticate("pk_block_buyer", "order_block_0001", 6000);
    let own = app
        .confirm_public("order_block_0001", "pk_block_buyer")
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.body["status"], "COMPLETED");
    assert_eq!(own.body["pg_transaction_id"], "pk_block_buyer");
    let late = stranger.await.unwrap();
    assert!(
        late.status.is_client_error(),
        "{} {}",
        late.status,
        late.text
    );
    assert!(!late.text.contains("pk_block_buyer"), "{}", late.text);
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(payment["pg_transaction_id"], "pk_block_buyer");
    let events = app.events_of(&id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "payment.completed");
    app.stop().await;
}

/// One approval per payment: while an attempt Toss knows for this order is at Toss, a confirm
/// with another key is still refused (409), and Toss is not asked to confirm it.
async fn an_attempt_toss_knows_in_flight_still_blocks_another_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_block_0002", 6000).await;
    let id = created["payment_id"].as_str().unwrap().to_owned();
    app.toss
        .authenticate("pk_block_first", "order_block_0002", 6000);
    app.toss
        .authenticate("pk_block_second", "order_block_0002", 6000);
    app.toss_hangs("POST", "^/v1/payments/confirm$", Some(1))
        .await;
    let first = confirm_in_background(&app, "order_block_0002", "pk_block_first");
    wait_until_claimed(&app, &id).await;
    let second = app
        .confirm_public("order_block_0002", "pk_block_second")
        .await;
    second.problem(409, "INVALID_STATE");
    assert_eq!(app.confirms_sent().await, 1, "the second key is not sent");
    let first = first.await.unwrap();
    assert!(first.status.is_success(), "{} {}", first.status, first.text);
    assert_eq!(
        app.toss.payment("pk_block_second").unwrap().status,
        "IN_PROGRESS"
    );
    app.stop().await;
}

/// A junk key's confirm and its read-back both fail (5xx): the claim is in doubt. The next
/// reconciliation reads it back, Toss has no record of it, and the payment is released at once,
/// with nothing recorded, rather than after the buyer's 10-minute window.
async fn the_reconciler_releases_a_key_toss_does_not_know_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_recjunk_01", 5000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.fail_next_confirm(500, "FAILED_INTERNAL_SYSTEM_PROCESSING")
        .await;
    app.toss_fails(
        "GET",
        "^/v1/payments/pk_recjunk$",
        500,
        "FAILED_INTERNAL_SYSTEM_PROCESSING",
        Some(1),
    )
    .await;
    let reply = app.confirm_public("order_recjunk_01", "pk_recjunk").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(app.payment(id).await["status"], "IN_PROGRESS");
    // Due at once in the tests (no backoff); a few passes at most.
    app.settle(id).await;
    assert_untouched(&app, id, "released by the reconciler").await;
    app.stop().await;
}

async fn confirm_through_toss_sends_stored_amount_and_needs_no_api_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_confirm_0001", 15000).await;
    app.toss
        .authenticate("pk_confirm_0001", "order_confirm_0001", 15000);

    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": created["payment_id"], "payment_key": "pk_confirm_0001"}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED");
    assert_eq!(reply.body["pg_provider"], "toss");
    assert_eq!(reply.body["pg_transaction_id"], "pk_confirm_0001");
    assert!(reply.body["completed_at"].is_string());
    let sent = app.toss_requests("POST", "/v1/payments/confirm").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].headers["authorization"], BASIC_AUTH);
    assert_eq!(sent[0].headers["content-type"], "application/json");
    assert!(!sent[0].headers["idempotency-key"].is_empty());
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"paymentKey": "pk_confirm_0001", "orderId": "order_confirm_0001", "amount": 15000})
    );
    let events = app.events_of(created["payment_id"].as_str().unwrap()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "payment.completed");
    assert_eq!(events[0]["version"], "1.0");
    assert_eq!(events[0]["source"], "payment-service");
    assert_eq!(events[0]["user_id"], "u-1");
    assert_eq!(events[0]["payload"]["pg_transaction_id"], "pk_confirm_0001");
    assert_eq!(events[0]["payload"]["amount"], 15000);
    assert_eq!(events[0]["payload"]["pg_provider"], "toss");
    assert_eq!(events[0]["payload"]["payment_type"], "ONE_TIME");
    app.stop().await;
}

async fn confirm_twice_with_same_key_calls_toss_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app
        .completed_payment("order_twice_0001", 9900, "pk_twice")
        .await;
    // With the API key, so that the answer is the whole payment (an anonymous caller's is the
    // public view: public_answers.rs).
    let again = app
        .post(
            "/payments/confirm",
            json!({"order_id": "order_twice_0001", "payment_key": "pk_twice"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(
        again.body,
        app.payment(first["payment_id"].as_str().unwrap()).await
    );
    assert_eq!(app.confirms_sent().await, 1);

    let other_key = app
        .confirm_public("order_twice_0001", "pk_someone_else")
        .await;
    other_key.problem(409, "INVALID_STATE");
    assert_eq!(app.confirms_sent().await, 1);
    assert_eq!(app.events().await.len(), 1);
    app.stop().await;
}

async fn amount_mismatch_is_refused_before_toss(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_mismatch_01", 15000).await;
    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"order_id": "order_mismatch_01", "payment_key": "pk_x", "amount_krw": 100}),
        )
        .await;
    reply.problem(422, "AMOUNT_MISMATCH");
    assert_eq!(app.confirms_sent().await, 0);
    let payment = app.payment(created["payment_id"].as_str().unwrap()).await;
    assert_eq!(payment, created, "nothing changed");
    app.stop().await;
}

async fn decline_keeps_payment_pending_with_failure_and_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_decline_01", 30000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.fail_next_confirm(403, "REJECT_CARD_PAYMENT").await;

    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_declined"}),
        )
        .await;
    let problem = reply.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "REJECT_CARD_PAYMENT");
    assert_eq!(
        problem["pg_message"], "토스 오류 메시지",
        "Toss's message, verbatim"
    );

    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["failure"]["code"], "REJECT_CARD_PAYMENT");
    assert!(payment["pg_transaction_id"].is_null());
    let events = app.events_of(id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "payment.failed");
    assert_eq!(events[0]["payload"]["error_code"], "REJECT_CARD_PAYMENT");
    assert_eq!(events[0]["payload"]["amount"], 30000);

    // Declines are final: nothing retries them behind the buyer's back.
    app.service.reconcile_once().await.unwrap();
    assert_eq!(app.confirms_sent().await, 1);

    // The buyer tries again with another card: a new Toss attempt, a new key.
    app.toss
        .authenticate("pk_second_card", "order_decline_01", 30000);
    let retry = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_second_card"}),
        )
        .await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.body["status"], "COMPLETED");
    assert!(retry.body["failure"].is_null());
    let sent = app.toss_requests("POST", "/v1/payments/confirm").await;
    assert_ne!(
        sent[0].headers["idempotency-key"], sent[1].headers["idempotency-key"],
        "each attempt has its own Toss idempotency key"
    );
    app.stop().await;
}

async fn toss_unauthorized_key_is_pg_misconfigured(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_badkey_01", 5000).await;
    app.toss_fails(
        "POST",
        "^/v1/payments/confirm$",
        401,
        "UNAUTHORIZED_KEY",
        None,
    )
    .await;
    let reply = app.confirm_public("order_badkey_01", "pk_badkey").await;
    let problem = reply.problem(502, "PG_MISCONFIGURED");
    assert_eq!(problem["pg_code"], "UNAUTHORIZED_KEY");
    assert!(!reply.text.contains(fake_toss::SECRET_KEY));
    let payment = app.payment(created["payment_id"].as_str().unwrap()).await;
    assert_eq!(payment["status"], "PENDING");
    assert!(app.events().await.is_empty());
    app.stop().await;
}

async fn toss_500_that_charged_settles_completed_from_read_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_500_00001", 12000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss.authenticate("pk_500", "order_500_00001", 12000);
    // Toss charged the buyer, then failed to tell us.
    app.toss.set_status("pk_500", "DONE");
    app.toss_fails(
        "POST",
        "^/v1/payments/confirm$",
        500,
        "FAILED_INTERNAL_SYSTEM_PROCESSING",
        None,
    )
    .await;

    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_500"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED");
    assert_eq!(reply.body["pg_transaction_id"], "pk_500");
    assert_eq!(
        app.toss_requests("GET", "/v1/payments/pk_500").await.len(),
        1
    );
    assert_eq!(app.events_of(id).await.len(), 1);
    app.stop().await;
}

async fn toss_timeout_is_202_then_reconciler_completes(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let created = app.create_payment("order_slow_00001", 8000).await;
    let id = created["payment_id"].as_str().unwrap();
    app.toss.authenticate("pk_slow", "order_slow_00001", 8000);
    app.toss_hangs("POST", "^/v1/payments/confirm$", None).await;

    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_slow"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.body["status"], "IN_PROGRESS");
    assert!(app.events_of(id).await.is_empty());

    // Toss finished the charge after our timeout.
    app.toss.set_status("pk_slow", "DONE");
    app.service.reconcile_once().await.unwrap();
    let payment = app.payment(id).await;
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["pg_transaction_id"], "pk_slow");
    app.service.reconcile_once().await.unwrap();
    let events = app.events_of(id).await;
    assert_eq!(events.len(), 1, "exactly one event: {events:?}");
    assert_eq!(events[0]["event_type"], "payment.completed");
    assert_eq!(app.confirms_sent().await, 1, "never confirmed twice");
    app.stop().await;
}

async fn noop_gateway_records_callers_transaction_id(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            toss: false,
            ..Options::default()
        },
    )
    .await;
    let created = app.create_payment("order_noop_00001", 7000).await;
    let id = created["payment_id"].as_str().unwrap();
    let reply = app
        .post(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_ignored", "pg_transaction_id": "kcp-tx-77", "pg_provider": "kcp"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED");
    assert_eq!(
        reply.body["pg_transaction_id"], "kcp-tx-77",
        "the caller's id is kept"
    );
    assert_eq!(reply.body["pg_provider"], "kcp");
    let refund = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "test", "refund_amount_krw": 2000}),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    assert_eq!(refund.body["payment_status"], "PARTIAL_REFUND");
    let rest = app
        .post(&format!("/payments/{id}/refund"), json!({"reason": "rest"}))
        .await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    assert_eq!(rest.body["refund_amount_krw"], 5000);
    assert_eq!(rest.body["payment_status"], "REFUNDED");
    assert_eq!(app.toss_calls().await, 0, "no-op calls nothing");
    let kinds: Vec<_> = app
        .events_of(id)
        .await
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        kinds,
        vec!["payment.completed", "payment.refunded", "payment.refunded"]
    );
    // A success redirect cannot be verified without Toss.
    let redirect = app
        .get_public("/payments/toss/success?paymentKey=pk&orderId=order_noop_00001&amount=7000")
        .await;
    redirect.problem(503, "PG_NOT_CONFIGURED");
    app.stop().await;
}

async fn unverified_confirm_needs_api_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_unverif_01", 1000).await;
    let id = created["payment_id"].as_str().unwrap();
    let body = json!({"payment_id": id, "pg_transaction_id": "manual-1", "pg_provider": "bank"});
    app.post_public("/payments/confirm", body.clone())
        .await
        .problem(401, "UNAUTHORIZED");
    assert_eq!(app.payment(id).await["status"], "PENDING");
    let reply = app.post("/payments/confirm", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["pg_transaction_id"], "manual-1");
    assert_eq!(app.confirms_sent().await, 0);

    let noop = spawn_with(
        backend,
        Options {
            toss: false,
            ..Options::default()
        },
    )
    .await;
    noop.create_payment("order_unverif_02", 1000).await;
    noop.confirm_public("order_unverif_02", "pk")
        .await
        .problem(401, "UNAUTHORIZED");
    app.stop().await;
    noop.stop().await;
}

async fn confirm_refuses_other_states(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_states_001", 3000, "pk_states")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.post(&format!("/payments/{id}/refund"), json!({"reason": "all"}))
        .await;
    app.post_public(
        "/payments/confirm",
        json!({"payment_id": id, "payment_key": "pk_states"}),
    )
    .await
    .problem(409, "INVALID_STATE");
    app.post_public(
        "/payments/confirm",
        json!({"payment_id": uuid::Uuid::now_v7(), "payment_key": "pk"}),
    )
    .await
    .problem(404, "NOT_FOUND");
    app.confirm_public("order_nobody_01", "pk")
        .await
        .problem(404, "NOT_FOUND");
    app.post_public("/payments/confirm", json!({"payment_key": "pk"}))
        .await
        .problem(422, "VALIDATION_ERROR");
    app.post_public(
        "/payments/confirm",
        json!({"payment_id": id, "order_id": "order_states_001", "payment_key": "pk"}),
    )
    .await
    .problem(422, "VALIDATION_ERROR");
    app.stop().await;
}

/// Toss answers a confirm with a 5xx and the read-back finds no payment under that key: the
/// outcome is unknown (Toss may still be working on it) until its confirm window has passed.
async fn toss_5xx_then_no_record_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let payment = app.create_payment("order_5xx_norecord", 10_000).await;
    let id = payment["payment_id"].as_str().unwrap();
    app.toss_fails(
        "POST",
        "^/v1/payments/confirm$",
        500,
        "FAILED_INTERNAL_SYSTEM_PROCESSING",
        None,
    )
    .await;
    // The key was never authenticated, so the read-back answers NOT_FOUND_PAYMENT: a key Toss
    // has no record of cannot be approved later, and its claim goes at once.
    let reply = app
        .confirm_public("order_5xx_norecord", "pk_5xx_norecord")
        .await;
    let problem = reply.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "NOT_FOUND_PAYMENT");
    assert_untouched(&app, id, "5xx, then no record").await;
    app.stop().await;
}
