//! Tax-free amounts (validated, Toss's taken, split pro rata by refunds or given, resent
//! with a lost refund) and what Toss reports about the method (receipt, card).

use super::*;

on_both_databases!(
    tax_free_amount_is_validated_on_create,
    tosss_tax_free_amount_is_taken_flagged_and_split_by_refunds,
    refunds_take_the_tax_free_amount_pro_rata,
    a_given_tax_free_part_is_checked_and_sent,
    tax_free_parts_of_refunds_add_up_to_the_payments,
    a_lost_refund_is_resent_with_the_same_account_and_tax_free_part,
    receipt_method_and_card_are_shown,
);

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

/// The `taxFreeAmount` of each cancel sent to Toss for `key`, in order.
async fn sent_tax_free(app: &TestApp, key: &str) -> Vec<Value> {
    app.toss_requests("POST", &format!("/{key}/cancel"))
        .await
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["taxFreeAmount"].clone())
        .collect()
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
    app.service.reconcile_once().await.unwrap();
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
