//! Charges of a payment with a billing key: approvals, declines with `retryable`, unknown
//! outcomes read back by order id, races across instances and a crash, all approved at Toss at
//! most once.

use super::*;

on_both_databases!(
    charge_completes_with_payment_completed,
    soft_decline_is_retryable_and_a_retry_succeeds,
    hard_decline_is_not_retryable,
    timeout_answers_202_and_read_back_completes,
    toss_answering_500_after_charging_is_read_back,
    a_charge_toss_never_got_is_resent_with_the_same_key,
    an_earlier_attempts_aborted_record_never_releases_a_later_charge,
    concurrent_charges_approve_once,
    sigkill_during_the_charge_settles_after_restart,
    billing_under_its_own_key_reads_back_and_refunds_under_it,
    a_cancelled_payment_is_never_charged,
);

async fn charge_completes_with_payment_completed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, customer) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_00001", 9_900).await;
    let reply = charge(&app, &id, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED");
    assert_eq!(reply.body["pg_provider"], "toss");
    assert_eq!(reply.body["user_id"], "u-1");
    let payment_key = reply.body["pg_transaction_id"].as_str().unwrap().to_owned();
    assert!(payment_key.starts_with("bpk_"), "{payment_key}");

    // What Toss got: our stored amount, order id and name, the customer key, a key per attempt.
    let sent = charges_sent(&app.toss_server).await;
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"customerKey": customer, "amount": 9900, "orderId": "order_bill_00001",
               "orderName": "Vitamin D, monthly", "taxFreeAmount": 990})
    );
    assert!(!idempotency_key(&sent[0]).is_empty());
    assert_eq!(app.toss.approvals("order_bill_00001"), 1);
    let metrics = app.get_public("/metrics").await.text;
    assert!(
        metrics.contains(r#"operation="billing_charge""#)
            && metrics.contains(r#"operation="billing_issue""#),
        "billing calls are measured"
    );

    let events = app.events_of(&id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "payment.completed");
    assert_eq!(
        events[0]["payload"]["pg_transaction_id"],
        payment_key.as_str()
    );
    assert_eq!(events[0]["payload"]["payment_type"], "SUBSCRIPTION");

    // The same charge again: the payment as it is, no second charge.
    let again = charge(&app, &id, &key).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(charges_sent(&app.toss_server).await.len(), 1);
    // A completed payment cannot be charged with another key.
    let (other, _) = issued_key(&app, "u-1").await;
    charge(&app, &id, &other)
        .await
        .problem(409, "INVALID_STATE");
    // Nor can a payment or key that does not exist.
    charge(&app, "019ad0c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d", &key)
        .await
        .problem(404, "NOT_FOUND");
    let fresh = payment_of(&app, "u-1", "order_bill_00002", 1_000).await;
    charge(&app, &fresh, "019ad0c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d")
        .await
        .problem(404, "NOT_FOUND");
    app.post(
        &format!("/payments/{fresh}/charge"),
        json!({"billing_key_id": "nope"}),
    )
    .await
    .problem(422, "VALIDATION_ERROR");
    app.stop().await;
}

async fn soft_decline_is_retryable_and_a_retry_succeeds(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_soft1", 30_000).await;
    app.toss.decline_next_charge(
        "REJECT_CARD_PAYMENT",
        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
    );
    let declined = charge(&app, &id, &key).await;
    let problem = declined.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "REJECT_CARD_PAYMENT");
    assert_eq!(problem["retryable"], true);
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["failure"]["code"], "REJECT_CARD_PAYMENT");
    assert_eq!(payment["failure"]["retryable"], true);
    let events = app.events_of(&id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "payment.failed");

    // A new attempt on the same payment, with its own Toss key, succeeds.
    let retried = charge(&app, &id, &key).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(retried.body["status"], "COMPLETED");
    assert_eq!(retried.body["failure"], Value::Null);
    let sent = charges_sent(&app.toss_server).await;
    assert_eq!(sent.len(), 2);
    assert_ne!(idempotency_key(&sent[0]), idempotency_key(&sent[1]));
    assert_eq!(app.toss.approvals("order_bill_soft1"), 1);
    app.stop().await;
}

async fn hard_decline_is_not_retryable(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_hard1", 30_000).await;
    app.toss
        .decline_next_charge("INVALID_STOPPED_CARD", "정지된 카드 입니다.");
    let declined = charge(&app, &id, &key).await;
    let problem = declined.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "INVALID_STOPPED_CARD");
    assert_eq!(problem["retryable"], false);
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["failure"]["retryable"], false);
    assert_eq!(app.toss.approvals("order_bill_hard1"), 0);
    // A one-time payment's failure says nothing about retrying (version 1 shape).
    app.create_payment("order_bill_hard2", 1_000).await;
    let fail = app
        .get_public(
            "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=x&orderId=order_bill_hard2",
        )
        .await;
    assert_eq!(fail.status, StatusCode::OK, "{}", fail.text);
    assert!(
        fail.body["failure"].get("retryable").is_none(),
        "{}",
        fail.text
    );
    app.stop().await;
}

async fn timeout_answers_202_and_read_back_completes(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_slow1", 12_000).await;
    // Toss charges at once but answers after the read timeout; the first read-back hangs too.
    app.toss
        .slow_next_charge(&app.toss_server, Duration::from_secs(3))
        .await;
    app.toss_hangs("GET", r"^/v1/payments/orders/", Some(1))
        .await;
    let reply = charge(&app, &id, &key).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.body["status"], "IN_PROGRESS");
    assert_eq!(reply.body["pg_transaction_id"], Value::Null);
    // A retry while the outcome is open does not charge again.
    let retry = charge(&app, &id, &key).await;
    assert!(matches!(retry.status.as_u16(), 200 | 202), "{}", retry.text);
    // The reconciler reads the order back and adopts Toss's record.
    let payment = app.settle(&id).await;
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(app.toss.approvals("order_bill_slow1"), 1);
    assert_eq!(charges_sent(&app.toss_server).await.len(), 1);
    let events = app.events_of(&id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "payment.completed");
    app.stop().await;
}

async fn toss_answering_500_after_charging_is_read_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_500ok", 12_000).await;
    app.toss.fail_after_next_charge();
    let reply = charge(&app, &id, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED");
    assert_eq!(app.toss.approvals("order_bill_500ok"), 1);
    assert_eq!(
        charges_sent(&app.toss_server).await.len(),
        1,
        "read back, not charged again"
    );
    app.stop().await;
}

async fn a_charge_toss_never_got_is_resent_with_the_same_key(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_lost1", 12_000).await;
    // The first send is lost on the way (Toss does nothing and never answers).
    app.toss_hangs("POST", r"^/v1/billing/[^/]+$", Some(1))
        .await;
    let reply = charge(&app, &id, &key).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let payment = app.settle(&id).await;
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    let sent = charges_sent(&app.toss_server).await;
    assert_eq!(sent.len(), 2, "sent again once Toss showed nothing");
    assert_eq!(
        idempotency_key(&sent[0]),
        idempotency_key(&sent[1]),
        "an unknown outcome is re-sent only with the same Toss key"
    );
    assert_eq!(app.toss.approvals("order_bill_lost1"), 1);
    app.stop().await;
}

/// The read-back of a charge is by order id, and an order has as many attempts at Toss as it
/// had charges: an `ABORTED` record may be an earlier attempt's. Attempt 1 is declined (Toss
/// keeps it `ABORTED`); attempt 2 is approved at Toss but its answer is lost, and the order's
/// read-back shows attempt 1. That proves nothing about attempt 2: it is sent again with its
/// own Toss key, Toss replays the approval, and it completes, approved once.
async fn an_earlier_attempts_aborted_record_never_releases_a_later_charge(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let order = "order_bill_abrt1";
    let id = payment_of(&app, "u-1", order, 12_000).await;
    app.toss.decline_next_charge(
        "REJECT_CARD_PAYMENT",
        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
    );
    charge(&app, &id, &key).await.problem(402, "PG_DECLINED");
    let first = app.toss.payment_key_of_order(order).expect("an attempt");
    assert_eq!(app.toss.payment(&first).unwrap().status, "ABORTED");
    app.toss.show_for_order(order, &first);
    app.toss
        .slow_next_charge(&app.toss_server, Duration::from_secs(3))
        .await;
    let reply = charge(&app, &id, &key).await;
    assert_eq!(app.toss.approvals(order), 1, "Toss approved attempt 2");
    assert!(
        matches!(reply.status.as_u16(), 200 | 202),
        "never released by attempt 1's record: {}",
        reply.text
    );
    let payment = app.settle(&id).await;
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(payment["failure"], Value::Null);
    assert_eq!(app.toss.approvals(order), 1, "one approval");
    let sent = charges_sent(&app.toss_server).await;
    assert_eq!(sent.len(), 3, "declined, lost, sent again");
    assert_ne!(idempotency_key(&sent[0]), idempotency_key(&sent[1]));
    assert_eq!(
        idempotency_key(&sent[1]),
        idempotency_key(&sent[2]),
        "settled with the attempt's own Toss key"
    );
    let events: Vec<_> = app
        .events_of(&id)
        .await
        .into_iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["payment.failed", "payment.completed"]);
    app.stop().await;
}

async fn concurrent_charges_approve_once(backend: Backend) {
    let mut app = spawn_app(backend).await;
    // Toss takes a moment, so the requests really overlap.
    app.toss
        .slow_charges(&app.toss_server, Duration::from_millis(300))
        .await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_race1", 50_000).await;
    let mut bases = vec![app.address.clone()];
    if backend == Backend::Postgres {
        bases.push(app.spawn_instance_with(Options::default()).await);
    }
    let client = reqwest::Client::new();
    let replies = join_all((0..30).map(|i| {
        let base = bases[i % bases.len()].clone();
        let client = client.clone();
        let (id, key) = (id.clone(), key.clone());
        async move {
            into_reply(
                client
                    .post(format!("{base}/payments/{id}/charge"))
                    .bearer_auth(API_KEY)
                    .json(&json!({"billing_key_id": key}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    }))
    .await;
    for reply in &replies {
        assert!(
            matches!(reply.status.as_u16(), 200 | 202 | 409),
            "{}",
            reply.text
        );
        if reply.status == StatusCode::CONFLICT {
            assert_eq!(reply.body["code"], "REQUEST_IN_PROGRESS", "{}", reply.text);
        }
    }
    assert!(replies.iter().any(|r| r.status == StatusCode::OK));
    for _ in 0..20 {
        app.service.settle_due().await.unwrap();
    }
    assert_eq!(app.payment(&id).await["status"], "COMPLETED");
    assert_eq!(app.toss.approvals("order_bill_race1"), 1, "one approval");
    assert_eq!(
        charges_sent(&app.toss_server).await.len(),
        1,
        "one charge sent"
    );
    let completed = app
        .events_of(&id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "payment.completed")
        .count();
    assert_eq!(completed, 1);
    app.stop().await;
}

async fn sigkill_during_the_charge_settles_after_restart(backend: Backend) {
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

    let (mut first, base) = started(&database.url, &toss_server.uri(), &client).await;
    let (key, id) = key_and_payment(
        &client,
        &base,
        &toss,
        json!({"user_id": "u-1", "order_id": "order_bill_kill1", "amount_krw": 25000, "payment_method": "card"}),
    )
    .await;

    let charging = send(
        &base,
        &format!("/payments/{id}/charge"),
        json!({"billing_key_id": key}),
    )
    .boxed();
    let charging = tokio::spawn(charging);
    for _ in 0..100 {
        if toss.approvals("order_bill_kill1") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill_during(&mut first, charging).await;

    // Restart on the same database.
    let (second, base) = started(&database.url, &toss_server.uri(), &client).await;
    completed_after_restart(&client, &base, &id).await;
    assert_eq!(toss.approvals("order_bill_kill1"), 1);
    assert_eq!(
        charges_sent(&toss_server).await.len(),
        1,
        "the restarted service read back; it did not charge again"
    );
    stop(second);
}

async fn billing_under_its_own_key_reads_back_and_refunds_under_it(backend: Backend) {
    const BILLING_SECRET: &str = "test_sk_billing_contract_0123";
    let app = spawn_with(
        backend,
        Options {
            read_timeout_secs: 1,
            toss_billing_secret_key: Some(BILLING_SECRET.to_owned()),
            ..Options::default()
        },
    )
    .await;
    let billing_auth = ::fake_toss::basic_auth(BILLING_SECRET);
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_mid01", 20_000).await;
    // An unknown outcome is read back under the billing key (the payment key's MID knows
    // nothing of the charge).
    app.toss
        .slow_next_charge(&app.toss_server, Duration::from_secs(3))
        .await;
    let reply = charge(&app, &id, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED");
    // Refunded at Toss under the billing key too.
    let refund = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "subscription cancelled", "refund_amount_krw": 5000}),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    assert_eq!(refund.body["payment_status"], "PARTIAL_REFUND");
    let cancels = app.toss_requests("POST", "/cancel").await;
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        cancels[0].headers["authorization"].to_str().unwrap(),
        billing_auth
    );
    for request in app.toss_requests("GET", "/v1/payments/orders/").await {
        assert_eq!(
            request.headers["authorization"].to_str().unwrap(),
            billing_auth
        );
    }
    // One-time payments stay under the payment key.
    let paid = app
        .completed_payment("order_bill_mid02", 3_000, "pk_mid_one")
        .await;
    assert_eq!(paid["status"], "COMPLETED");
    let confirm = app.toss_requests("POST", "/v1/payments/confirm").await;
    assert_eq!(
        confirm[0].headers["authorization"].to_str().unwrap(),
        crate::fake_toss::BASIC_AUTH
    );
    app.stop().await;
}

/// A payment cancelled before anyone paid (`POST /payments/{id}/cancel`) can never be charged:
/// 409 `INVALID_STATE`, Toss not called; and a charged payment cannot be cancelled.
async fn a_cancelled_payment_is_never_charged(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_cx01", 9_000).await;
    let cancelled = app
        .post(
            &format!("/payments/{id}/cancel"),
            json!({"reason": "subscription ended"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "CANCELLED");
    refused_charge(&app, &id, &key, (409, "INVALID_STATE"), "CANCELLED").await;

    // A paid charge cannot be cancelled: its money leaves through a refund.
    let paid = payment_of(&app, "u-1", "order_bill_cx02", 9_000).await;
    let charged = charge(&app, &paid, &key).await;
    assert_eq!(charged.body["status"], "COMPLETED", "{}", charged.text);
    app.post(
        &format!("/payments/{paid}/cancel"),
        json!({"reason": "too late"}),
    )
    .await
    .problem(409, "INVALID_STATE");
    app.stop().await;
}
