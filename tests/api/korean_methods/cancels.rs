//! Cancelling an unpaid payment (`POST /payments/{id}/cancel`): without Toss while `PENDING`,
//! repeated, refused once paid or unsettled, racing a confirm or a deposit; and nothing unpaid
//! can be refunded.

use super::*;

on_both_databases!(
    a_pending_payment_is_cancelled_without_toss,
    a_repeated_cancel_answers_the_same,
    paid_and_unsettled_payments_cannot_be_cancelled,
    a_cancelled_payment_can_never_be_confirmed,
    cancel_races_confirm_to_one_consistent_state,
    cancel_races_deposit_to_one_consistent_state,
    nothing_unpaid_can_be_refunded,
);

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
    assert_eq!(app.toss_calls().await, 0, "no PG call");
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
    app.fail_next_confirm(500, "UNKNOWN_PAYMENT_ERROR").await;
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
