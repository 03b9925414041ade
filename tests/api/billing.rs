//! Subscriptions through Toss billing (자동결제): customer keys, billing keys issued from a card
//! registration (redirect and POST), stored encrypted, listed and deleted (here and by Toss's
//! `BILLING_DELETED`), and charges of a payment with one: approvals, declines with `retryable`,
//! unknown outcomes, races across instances and a crash, all approved at Toss at most once.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures::FutureExt;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::crash::{free_port, start, wait_ready};
use crate::fake_toss::FakeToss;
use crate::helpers::{
    API_KEY, Backend, Options, Reply, TestApp, TestDatabase, init_process, into_reply, spawn_app,
    spawn_impatient, spawn_with,
};
use crate::on_both_databases;

on_both_databases!(
    customer_keys_are_random_stable_and_one_per_user,
    issue_through_the_success_redirect_and_reload_calls_toss_once,
    issue_through_the_redirects_to_configured_urls,
    issue_by_post_and_reload_calls_toss_once,
    charge_completes_with_payment_completed,
    soft_decline_is_retryable_and_a_retry_succeeds,
    hard_decline_is_not_retryable,
    timeout_answers_202_and_read_back_completes,
    toss_answering_500_after_charging_is_read_back,
    a_charge_toss_never_got_is_resent_with_the_same_key,
    concurrent_charges_approve_once,
    sigkill_during_the_charge_settles_after_restart,
    deleted_key_is_refused,
    billing_deleted_webhook_disables_the_key,
    another_users_key_is_refused,
    billing_key_is_never_shown_and_stored_encrypted,
    a_key_encrypted_under_another_key_is_a_clear_error,
    billing_under_its_own_key_reads_back_and_refunds_under_it,
    an_issue_toss_did_not_answer_is_asked_again_with_the_same_key,
    a_cancelled_payment_is_never_charged,
    an_earlier_attempts_aborted_record_never_releases_a_later_charge,
);

/// The user's customer key (created on first call).
async fn customer_key(app: &TestApp, user_id: &str) -> String {
    let reply = app
        .post("/billing/customers", json!({"user_id": user_id}))
        .await;
    assert!(matches!(reply.status.as_u16(), 200 | 201), "{}", reply.text);
    reply.body["customer_key"].as_str().unwrap().to_owned()
}

/// A billing key of `user_id`, issued through `POST /billing-keys`.
pub(crate) async fn issued_key(app: &TestApp, user_id: &str) -> (String, String) {
    let customer = customer_key(app, user_id).await;
    let auth_key = app.toss.register_card(&customer);
    let reply = app
        .post(
            "/billing-keys",
            json!({"customer_key": customer, "auth_key": auth_key}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (
        reply.body["billing_key_id"].as_str().unwrap().to_owned(),
        customer,
    )
}

pub(crate) async fn payment_of(
    app: &TestApp,
    user_id: &str,
    order_id: &str,
    amount: i64,
) -> String {
    let reply = app
        .post(
            "/payments",
            json!({"user_id": user_id, "order_id": order_id, "order_name": "Vitamin D, monthly",
                   "amount_krw": amount, "payment_method": "card", "payment_type": "SUBSCRIPTION",
                   "subscription_id": "sub-1", "tax_free_amount_krw": amount / 10}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["payment_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn charge(app: &TestApp, payment_id: &str, key_id: &str) -> Reply {
    app.post(
        &format!("/payments/{payment_id}/charge"),
        json!({"billing_key_id": key_id}),
    )
    .await
}

/// A charge refused because the billing key no longer opens: 409 `BILLING_KEY_INACTIVE`.
pub(crate) fn assert_undecryptable(reply: &Reply) {
    let problem = reply.problem(409, "BILLING_KEY_INACTIVE");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be decrypted"),
        "{problem}"
    );
}

async fn charges_sent(app: &TestApp) -> Vec<wiremock::Request> {
    app.toss_server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.method.as_str() == "POST"
                && r.url.path().starts_with("/v1/billing/")
                && !r.url.path().contains("authorizations")
        })
        .collect()
}

fn idempotency_key(request: &wiremock::Request) -> String {
    request
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn customer_keys_are_random_stable_and_one_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app
        .post("/billing/customers", json!({"user_id": "u-1"}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let key = first.body["customer_key"].as_str().unwrap().to_owned();
    assert_eq!(first.body["user_id"], "u-1");
    assert!(uuid::Uuid::parse_str(&key).is_ok(), "UUID-like: {key}");
    assert!(!key.contains("u-1"));
    let again = app
        .post("/billing/customers", json!({"user_id": "u-1"}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["customer_key"], key.as_str());
    let other = customer_key(&app, "u-2").await;
    assert_ne!(other, key);

    // Racing first calls of one user end with one key.
    let replies =
        join_all((0..10).map(|_| app.post("/billing/customers", json!({"user_id": "u-race"}))))
            .await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one creates");
    let keys: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| r.body["customer_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");

    let bad = app
        .post("/billing/customers", json!({"user_id": "  "}))
        .await;
    bad.problem(422, "VALIDATION_ERROR");
    let anonymous = app
        .post_public("/billing/customers", json!({"user_id": "u-1"}))
        .await;
    anonymous.problem(401, "UNAUTHORIZED");
    app.stop().await;
}

async fn issue_through_the_success_redirect_and_reload_calls_toss_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customer_key(&app, "u-1").await;
    let auth_key = app.toss.register_card(&customer);
    let path = format!("/billing/toss/success?customerKey={customer}&authKey={auth_key}");
    let first = app.get_public(&path).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.body["status"], "ACTIVE");
    assert_eq!(first.body["user_id"], "u-1");
    assert_eq!(first.body["customer_key"], customer.as_str());
    assert_eq!(first.body["method"], "카드");
    assert_eq!(first.body["card"]["number"], "43301234****123*");
    assert_eq!(first.body["deleted_at"], Value::Null);
    let reload = app.get_public(&path).await;
    assert_eq!(reload.status, StatusCode::CREATED, "{}", reload.text);
    assert_eq!(reload.body["billing_key_id"], first.body["billing_key_id"]);
    assert_eq!(app.toss.issues(), 1, "a reload does not call Toss again");
    let listed = app.get("/billing-keys?user_id=u-1").await;
    assert_eq!(listed.body["billing_keys"].as_array().unwrap().len(), 1);

    // An unknown customer key: 404, and Toss is not asked.
    let unknown = app
        .get_public(&format!(
            "/billing/toss/success?customerKey=nobody-knows-me&authKey={auth_key}"
        ))
        .await;
    unknown.problem(404, "NOT_FOUND");
    assert_eq!(app.toss.issues(), 1);
    // A used authKey at Toss (for a new row): Toss refuses, nothing is stored.
    let other = customer_key(&app, "u-2").await;
    let refused = app
        .get_public(&format!(
            "/billing/toss/success?customerKey={other}&authKey=bln_never_registered"
        ))
        .await;
    let problem = refused.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "NOT_FOUND_BILLING");
    let none = app.get("/billing-keys?user_id=u-2").await;
    assert_eq!(none.body["billing_keys"], json!([]));
    // Missing parameters.
    app.get_public("/billing/toss/success?customerKey=abc")
        .await
        .problem(400, "VALIDATION_ERROR");
    // The fail redirect without a configured URL: a problem.
    let failed = app
        .get_public("/billing/toss/fail?code=PAY_PROCESS_CANCELED&message=%EC%B7%A8%EC%86%8C")
        .await;
    let problem = failed.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "PAY_PROCESS_CANCELED");
    assert_eq!(problem["pg_message"], "취소");
    app.stop().await;
}

async fn issue_through_the_redirects_to_configured_urls(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            billing_redirect: Some((
                "https://shop.example.com/card/ok".to_owned(),
                "https://shop.example.com/card/failed".to_owned(),
            )),
            ..Options::default()
        },
    )
    .await;
    let customer = customer_key(&app, "u-1").await;
    let auth_key = app.toss.register_card(&customer);
    let path = format!("/billing/toss/success?customerKey={customer}&authKey={auth_key}");
    let first = app.get_public(&path).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text);
    let location = first.headers["location"].to_str().unwrap().to_owned();
    let listed = app.get("/billing-keys?user_id=u-1").await;
    let id = listed.body["billing_keys"][0]["billing_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        location,
        format!("https://shop.example.com/card/ok?billing_key_id={id}")
    );
    let reload = app.get_public(&path).await;
    assert_eq!(reload.headers["location"].to_str().unwrap(), location);
    assert_eq!(app.toss.issues(), 1);

    let unknown = app
        .get_public("/billing/toss/success?customerKey=nobody-knows-me&authKey=bln_x")
        .await;
    assert_eq!(unknown.status, StatusCode::SEE_OTHER);
    let to = unknown.headers["location"].to_str().unwrap();
    assert!(
        to.starts_with("https://shop.example.com/card/failed?code=NOT_FOUND&message="),
        "{to}"
    );
    assert_eq!(app.toss.issues(), 1);

    let failed = app
        .get_public("/billing/toss/fail?code=PAY_PROCESS_CANCELED&message=cancelled")
        .await;
    assert_eq!(failed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        failed.headers["location"].to_str().unwrap(),
        "https://shop.example.com/card/failed?code=PAY_PROCESS_CANCELED&message=cancelled"
    );
    app.stop().await;
}

async fn issue_by_post_and_reload_calls_toss_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customer_key(&app, "u-1").await;
    let auth_key = app.toss.register_card(&customer);
    let body = json!({"customer_key": customer, "auth_key": auth_key});
    let replies = join_all((0..5).map(|_| app.post("/billing-keys", body.clone()))).await;
    let ids: std::collections::HashSet<String> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .map(|r| r.body["billing_key_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one key: {ids:?}");
    for reply in &replies {
        assert!(matches!(reply.status.as_u16(), 201 | 409), "{}", reply.text);
    }
    let again = app.post("/billing-keys", body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert!(ids.contains(again.body["billing_key_id"].as_str().unwrap()));
    assert_eq!(app.toss.issues(), 1, "Toss issued once");
    assert_eq!(app.toss.billing_keys_of(&customer).len(), 1);
    let id = again.body["billing_key_id"].as_str().unwrap();
    let one = app.get(&format!("/billing-keys/{id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["billing_key_id"], id);

    app.post(
        "/billing-keys",
        json!({"customer_key": "unknown-customer", "auth_key": "bln_1"}),
    )
    .await
    .problem(404, "NOT_FOUND");
    assert_eq!(app.toss.issues(), 1);
    app.post(
        "/billing-keys",
        json!({"customer_key": "has space", "auth_key": "bln_1"}),
    )
    .await
    .problem(400, "VALIDATION_ERROR");
    app.post_public("/billing-keys", body)
        .await
        .problem(401, "UNAUTHORIZED");
    app.get("/billing-keys/not-a-uuid")
        .await
        .problem(404, "NOT_FOUND");
    app.get("/billing-keys")
        .await
        .problem(400, "VALIDATION_ERROR");
    app.stop().await;
}

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
    let sent = charges_sent(&app).await;
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
    assert_eq!(charges_sent(&app).await.len(), 1);
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
    let sent = charges_sent(&app).await;
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
    let mut payment = Value::Null;
    for _ in 0..50 {
        app.service.settle_due().await.unwrap();
        payment = app.payment(&id).await;
        if payment["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(app.toss.approvals("order_bill_slow1"), 1);
    assert_eq!(charges_sent(&app).await.len(), 1);
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
        charges_sent(&app).await.len(),
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
    let mut payment = Value::Null;
    for _ in 0..50 {
        app.service.settle_due().await.unwrap();
        payment = app.payment(&id).await;
        if payment["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    let sent = charges_sent(&app).await;
    assert_eq!(sent.len(), 2, "sent again once Toss showed nothing");
    assert_eq!(
        idempotency_key(&sent[0]),
        idempotency_key(&sent[1]),
        "an unknown outcome is re-sent only with the same Toss key"
    );
    assert_eq!(app.toss.approvals("order_bill_lost1"), 1);
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
    assert_eq!(charges_sent(&app).await.len(), 1, "one charge sent");
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

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = start(&database.url, &toss_server.uri(), port);
    wait_ready(&client, &base).await;
    let customer = into_reply(
        send(&base, "/billing/customers", json!({"user_id": "u-1"}))
            .await
            .unwrap(),
    )
    .await;
    let customer = customer.body["customer_key"].as_str().unwrap().to_owned();
    let auth_key = toss.register_card(&customer);
    let key = into_reply(
        send(
            &base,
            "/billing-keys",
            json!({"customer_key": customer, "auth_key": auth_key}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    let key = key.body["billing_key_id"].as_str().unwrap().to_owned();
    let created = into_reply(
        send(
            &base,
            "/payments",
            json!({"user_id": "u-1", "order_id": "order_bill_kill1", "amount_krw": 25000, "payment_method": "card"}),
        )
        .await
        .unwrap(),
    )
    .await;
    let id = created.body["payment_id"].as_str().unwrap().to_owned();

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
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    assert!(
        charging.await.unwrap().is_err(),
        "the client lost its connection"
    );

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut second = start(&database.url, &toss_server.uri(), port);
    wait_ready(&client, &base).await;
    let mut payment = Value::Null;
    for _ in 0..200 {
        let reply = client
            .get(format!("{base}/payments/{id}"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        payment = into_reply(reply).await.body;
        if payment["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(toss.approvals("order_bill_kill1"), 1);
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

async fn deleted_key_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let deleted = app
        .request(
            reqwest::Method::DELETE,
            &format!("/billing-keys/{key}"),
            None,
            true,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body["status"], "DELETED");
    assert!(deleted.body["deleted_at"].is_string());
    let again = app
        .request(
            reqwest::Method::DELETE,
            &format!("/billing-keys/{key}"),
            None,
            true,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["deleted_at"], deleted.body["deleted_at"]);
    let id = payment_of(&app, "u-1", "order_bill_del01", 5_000).await;
    charge(&app, &id, &key)
        .await
        .problem(409, "BILLING_KEY_INACTIVE");
    assert!(charges_sent(&app).await.is_empty(), "Toss not called");
    assert_eq!(app.payment(&id).await["status"], "PENDING");
    let anonymous = app
        .request(
            reqwest::Method::DELETE,
            &format!("/billing-keys/{key}"),
            None,
            false,
        )
        .await;
    anonymous.problem(401, "UNAUTHORIZED");
    app.stop().await;
}

async fn billing_deleted_webhook_disables_the_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, customer) = issued_key(&app, "u-1").await;
    let billing_key = app.toss.billing_keys_of(&customer).pop().unwrap();
    let body = app.toss.delete_billing_key(&billing_key);
    let reply = app.post_public("/webhooks/toss", body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["result"], "applied");
    let stored = app.get(&format!("/billing-keys/{key}")).await;
    assert_eq!(stored.body["status"], "DELETED");
    let id = payment_of(&app, "u-1", "order_bill_hook1", 5_000).await;
    charge(&app, &id, &key)
        .await
        .problem(409, "BILLING_KEY_INACTIVE");
    // Again, or about a key we never had: 200, ignored.
    let repeat = app.post_public("/webhooks/toss", body).await;
    assert_eq!(repeat.status, StatusCode::OK);
    assert_eq!(repeat.body["result"], "ignored");
    let unknown = app
        .post_public(
            "/webhooks/toss",
            json!({"eventType": "BILLING_DELETED", "createdAt": "2026-12-01T10:00:00.000000",
                   "data": {"billingKey": "bk_never_issued", "reason": "x"}}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.body["result"], "ignored");
    // It only ever disables: another user's key is untouched.
    let (other, _) = issued_key(&app, "u-2").await;
    assert_eq!(
        app.get(&format!("/billing-keys/{other}")).await.body["status"],
        "ACTIVE"
    );
    app.stop().await;
}

async fn another_users_key_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-2").await;
    let id = payment_of(&app, "u-1", "order_bill_other", 5_000).await;
    charge(&app, &id, &key)
        .await
        .problem(422, "BILLING_KEY_MISMATCH");
    assert!(charges_sent(&app).await.is_empty(), "Toss not called");
    assert_eq!(app.payment(&id).await["status"], "PENDING");
    app.stop().await;
}

async fn billing_key_is_never_shown_and_stored_encrypted(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customer_key(&app, "u-1").await;
    let auth_key = app.toss.register_card(&customer);
    let mut answers = String::new();
    let issued = app
        .get_public(&format!(
            "/billing/toss/success?customerKey={customer}&authKey={auth_key}"
        ))
        .await;
    answers.push_str(&issued.text);
    let key = issued.body["billing_key_id"].as_str().unwrap().to_owned();
    let billing_key = app.toss.billing_keys_of(&customer).pop().unwrap();
    let id = payment_of(&app, "u-1", "order_bill_enc01", 5_000).await;
    answers.push_str(&charge(&app, &id, &key).await.text);
    for path in [
        format!("/billing-keys/{key}"),
        "/billing-keys?user_id=u-1".to_owned(),
        format!("/payments/{id}"),
        "/events?limit=1000".to_owned(),
        "/metrics".to_owned(),
    ] {
        answers.push_str(&app.get(&path).await.text);
    }
    assert!(answers.contains(&key), "the answers were collected");
    assert!(
        !answers.contains(&billing_key),
        "the billing key leaked into an answer"
    );

    // In the database: only ciphertext, a fresh nonce per value, nothing of the key in any column.
    let stored = app
        .query_column("SELECT key_ciphertext FROM billing_keys")
        .await;
    assert_eq!(stored.len(), 1);
    let ciphertext = stored[0].clone().expect("stored");
    assert_ne!(ciphertext, billing_key);
    assert!(!ciphertext.contains(&billing_key));
    // `v3.<key version>.<base64>`: the format, the version of the key that sealed it.
    let mut parts = ciphertext.splitn(3, '.');
    assert_eq!(parts.next(), Some("v3"), "{ciphertext}");
    let version = parts.next().unwrap();
    assert!(
        version.len() == 8 && version.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ciphertext}"
    );
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(parts.next().unwrap())
        .expect("base64 of nonce and ciphertext");
    assert_eq!(
        raw.len(),
        12 + billing_key.len() + 16,
        "nonce ‖ ciphertext ‖ tag"
    );
    assert!(!String::from_utf8_lossy(&raw).contains(&billing_key));
    for column in [
        "id",
        "user_id",
        "customer_key",
        "auth_key_hash",
        "status",
        "key_fingerprint",
        "method",
        "card_number",
    ] {
        for value in app
            .query_column(&format!("SELECT {column} FROM billing_keys"))
            .await
            .into_iter()
            .flatten()
        {
            assert!(!value.contains(&billing_key), "{column} holds the key");
            assert!(!value.contains(&auth_key), "{column} holds the authKey");
        }
    }
    app.stop().await;
}

async fn a_key_encrypted_under_another_key_is_a_clear_error(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_wrong", 5_000).await;
    // Another instance started with another encryption key (or a generated one).
    let other = app
        .spawn_instance_with(Options {
            billing_encryption_key: "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=".to_owned(),
            ..Options::default()
        })
        .await;
    let reply = into_reply(
        app.client
            .post(format!("{other}/payments/{id}/charge"))
            .bearer_auth(API_KEY)
            .json(&json!({"billing_key_id": key}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_undecryptable(&reply);
    assert!(charges_sent(&app).await.is_empty(), "nothing was sent");
    // The attempt was released: with the right key the payment is still chargeable.
    assert_eq!(app.payment(&id).await["status"], "PENDING");
    let ok = charge(&app, &id, &key).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    app.stop().await;
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

/// The binary with `BILLING_KEY_ENCRYPTION_KEY` set to `key` (or unset), on a fresh SQLite file:
/// its exit status (`None` while still running after `wait`) and everything it printed.
fn run_binary_with_encryption_key(key: Option<&str>, wait: Duration) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("ps_billing_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("output.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_payment-service"));
    command
        .current_dir(&dir)
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/db.sqlite?mode=rwc", dir.display()),
        )
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("API_KEYS", "billing-startup-key")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
    if let Some(key) = key {
        command.env("BILLING_KEY_ENCRYPTION_KEY", key);
    }
    let mut child = command.spawn().expect("the binary starts");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > wait {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = format!(
        "{}\n{}",
        std::fs::read_to_string(&output).unwrap_or_default(),
        std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
    (status, printed)
}

#[test]
fn a_malformed_encryption_key_stops_the_start_and_a_missing_one_is_warned_about() {
    // "not-32-bytes" in base64: decodes, but to 12 bytes.
    let (status, printed) =
        run_binary_with_encryption_key(Some("bm90LTMyLWJ5dGVz"), Duration::from_secs(30));
    assert!(
        matches!(status, Some(code) if code != 0),
        "{status:?}: {printed}"
    );
    assert!(
        printed.contains("BILLING_KEY_ENCRYPTION_KEY must be 32 bytes"),
        "{printed}"
    );
    assert!(
        !printed.contains("bm90LTMyLWJ5dGVz"),
        "the key is not printed"
    );
    let (status, printed) = run_binary_with_encryption_key(Some("%%%"), Duration::from_secs(30));
    assert!(matches!(status, Some(code) if code != 0), "{printed}");
    assert!(printed.contains("not valid base64"), "{printed}");

    // Unset: the service starts, with a loud warning.
    let (status, printed) = run_binary_with_encryption_key(None, Duration::from_secs(3));
    assert_eq!(status, None, "still running: {printed}");
    assert!(
        printed.contains("BILLING_KEY_ENCRYPTION_KEY is not set")
            && printed.contains("CANNOT be decrypted after a restart"),
        "{printed}"
    );
}

async fn an_issue_toss_did_not_answer_is_asked_again_with_the_same_key(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let customer = customer_key(&app, "u-1").await;
    let auth_key = app.toss.register_card(&customer);
    let body = json!({"customer_key": customer, "auth_key": auth_key});
    // The first issue gets no answer in time (and does not reach the fake's books).
    app.toss_hangs("POST", r"^/v1/billing/authorizations/issue$", Some(1))
        .await;
    let first = app.post("/billing-keys", body.clone()).await;
    first.problem(409, "REQUEST_IN_PROGRESS");
    // Nothing is shown while it is open, and a retry within the lease does not call Toss.
    let listed = app.get("/billing-keys?user_id=u-1").await;
    assert_eq!(listed.body["billing_keys"], json!([]));
    app.post("/billing-keys", body.clone())
        .await
        .problem(409, "REQUEST_IN_PROGRESS");
    let issues = app
        .toss_requests("POST", "/v1/billing/authorizations/issue")
        .await;
    assert_eq!(issues.len(), 1);
    // The lease passes (as after a crash): the retry asks Toss again, with the same key.
    app.execute_sql(
        "UPDATE billing_keys SET issue_lease_until = $1",
        vec![(chrono::Utc::now() - chrono::Duration::hours(1)).into()],
    )
    .await;
    let retried = app.post("/billing-keys", body).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.text);
    let issues = app
        .toss_requests("POST", "/v1/billing/authorizations/issue")
        .await;
    assert_eq!(issues.len(), 2);
    assert_eq!(idempotency_key(&issues[0]), idempotency_key(&issues[1]));
    assert_eq!(app.toss.billing_keys_of(&customer).len(), 1);
    let listed = app.get("/billing-keys?user_id=u-1").await;
    assert_eq!(listed.body["billing_keys"].as_array().unwrap().len(), 1);
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
    charge(&app, &id, &key).await.problem(409, "INVALID_STATE");
    assert!(charges_sent(&app).await.is_empty(), "Toss not called");
    assert_eq!(app.payment(&id).await["status"], "CANCELLED");

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
    let mut payment = Value::Null;
    for _ in 0..50 {
        app.service.settle_due().await.unwrap();
        payment = app.payment(&id).await;
        if payment["status"] != "IN_PROGRESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(payment["status"], "COMPLETED", "{payment}");
    assert_eq!(payment["failure"], Value::Null);
    assert_eq!(app.toss.approvals(order), 1, "one approval");
    let sent = charges_sent(&app).await;
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
