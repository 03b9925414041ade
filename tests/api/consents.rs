//! Consent to a subscription's amount (전자상거래법 §13⑥): recorded and listed, and the guard on
//! every charge: above the consented amount (the newest consent's, or with none the first
//! approved charge's) a charge is refused 409 `CONSENT_REQUIRED` and Toss is not called.

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::billing::{charge, issued_key};
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    a_charge_above_the_consent_is_refused_before_toss_and_allowed_after_a_new_one,
    without_a_consent_the_first_charge_is_the_limit,
    consents_are_listed_newest_first_and_checked,
);

pub(crate) async fn subscription_payment(
    app: &TestApp,
    user_id: &str,
    subscription_id: &str,
    order_id: &str,
    amount: i64,
) -> String {
    let reply = app
        .post(
            "/payments",
            json!({"user_id": user_id, "order_id": order_id, "order_name": "Omega-3, monthly",
                   "amount_krw": amount, "payment_method": "card", "payment_type": "SUBSCRIPTION",
                   "subscription_id": subscription_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["payment_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn consent(
    app: &TestApp,
    user_id: &str,
    subscription_id: &str,
    max: i64,
) -> Value {
    let reply = app
        .post(
            "/billing/consents",
            json!({"user_id": user_id, "subscription_id": subscription_id, "max_amount_krw": max,
                   "consented_at": (Utc::now() - Duration::seconds(5)).to_rfc3339(),
                   "evidence": "accepted the new price in the app (checkbox)"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body
}

pub(crate) async fn charges_sent(app: &TestApp) -> usize {
    app.toss_requests("POST", "/v1/billing/")
        .await
        .iter()
        .filter(|r| !r.url.path().contains("authorizations"))
        .count()
}

async fn a_charge_above_the_consent_is_refused_before_toss_and_allowed_after_a_new_one(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    consent(&app, "u-1", "sub-c1", 25_000).await;
    let id = subscription_payment(&app, "u-1", "sub-c1", "order_consent_01", 30_000).await;

    let refused = charge(&app, &id, &key).await;
    let problem = refused.problem(409, "CONSENT_REQUIRED");
    assert!(
        problem["detail"].as_str().unwrap().contains("25000"),
        "{problem}"
    );
    assert_eq!(charges_sent(&app).await, 0, "Toss was not called");
    let payment = app.payment(&id).await;
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["failure"], Value::Null);
    assert!(app.events_of(&id).await.is_empty(), "nothing recorded");

    // Another user's consent to the same subscription id does not count.
    consent(&app, "u-2", "sub-c1", 50_000).await;
    charge(&app, &id, &key)
        .await
        .problem(409, "CONSENT_REQUIRED");

    consent(&app, "u-1", "sub-c1", 30_000).await;
    let paid = charge(&app, &id, &key).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);
    assert_eq!(paid.body["status"], "COMPLETED");
    assert_eq!(app.toss.approvals("order_consent_01"), 1);
    app.stop().await;
}

async fn without_a_consent_the_first_charge_is_the_limit(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let first = subscription_payment(&app, "u-1", "sub-c2", "order_consent_11", 20_000).await;
    let reply = charge(&app, &first, &key).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the first charge is not limited: {}",
        reply.text
    );

    let dearer = subscription_payment(&app, "u-1", "sub-c2", "order_consent_12", 20_001).await;
    charge(&app, &dearer, &key)
        .await
        .problem(409, "CONSENT_REQUIRED");
    assert_eq!(charges_sent(&app).await, 1);

    let same = subscription_payment(&app, "u-1", "sub-c2", "order_consent_13", 20_000).await;
    let reply = charge(&app, &same, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // A lower consent is the limit from then on, even below the first charge.
    consent(&app, "u-1", "sub-c2", 15_000).await;
    let cheaper = subscription_payment(&app, "u-1", "sub-c2", "order_consent_14", 18_000).await;
    charge(&app, &cheaper, &key)
        .await
        .problem(409, "CONSENT_REQUIRED");
    // A payment without a subscription is not limited.
    let one_time = app
        .post(
            "/payments",
            json!({"user_id": "u-1", "order_id": "order_consent_15", "amount_krw": 90_000, "payment_method": "card"}),
        )
        .await;
    let one_time = one_time.body["payment_id"].as_str().unwrap().to_owned();
    let reply = charge(&app, &one_time, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    app.stop().await;
}

async fn consents_are_listed_newest_first_and_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let older = app
        .post(
            "/billing/consents",
            json!({"user_id": "u-1", "subscription_id": "sub-c3", "max_amount_krw": 10_000,
                   "consented_at": "2026-01-01T00:00:00Z", "evidence": "signed up"}),
        )
        .await;
    assert_eq!(older.status, StatusCode::CREATED, "{}", older.text);
    for field in [
        "consent_id",
        "user_id",
        "subscription_id",
        "max_amount_krw",
        "consented_at",
        "evidence",
        "created_at",
    ] {
        assert!(!older.body[field].is_null(), "{field} in {}", older.text);
    }
    assert_eq!(older.body["consented_at"], "2026-01-01T00:00:00.000Z");
    let newer = consent(&app, "u-1", "sub-c3", 12_000).await;
    let listed = app.get("/billing/consents?subscription_id=sub-c3").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let consents = listed.body["consents"].as_array().unwrap();
    assert_eq!(consents.len(), 2);
    assert_eq!(consents[0]["consent_id"], newer["consent_id"]);
    assert_eq!(consents[1]["consent_id"], older.body["consent_id"]);
    let none = app.get("/billing/consents?subscription_id=sub-other").await;
    assert_eq!(none.body["consents"], json!([]));

    let valid = json!({"user_id": "u-1", "subscription_id": "sub-c3", "max_amount_krw": 10_000,
                       "consented_at": "2026-01-01T00:00:00Z", "evidence": "signed up"});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let future = (Utc::now() + Duration::hours(1)).to_rfc3339();
    for (body, why) in [
        (with("consented_at", json!(future)), "in the future"),
        (with("consented_at", json!("yesterday")), "not RFC 3339"),
        (with("max_amount_krw", json!(0)), "zero"),
        (with("max_amount_krw", json!(-5)), "negative"),
        (with("evidence", json!("")), "empty evidence"),
        (
            with("evidence", json!("x".repeat(501))),
            "evidence too long",
        ),
        (with("subscription_id", json!("  ")), "blank subscription"),
        (with("user_id", json!("")), "empty user"),
    ] {
        let reply = app.post("/billing/consents", body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {}",
            reply.text
        );
        assert_eq!(reply.body["code"], "VALIDATION_ERROR", "{why}");
    }
    let reply = app
        .post("/billing/consents", with("max_amount_krw", json!(1.5)))
        .await;
    assert!(reply.status.is_client_error(), "{}", reply.text);
    let reply = app.get("/billing/consents").await;
    reply.problem(400, "VALIDATION_ERROR");
    let listed = app.get("/billing/consents?subscription_id=sub-c3").await;
    assert_eq!(
        listed.body["consents"].as_array().unwrap().len(),
        2,
        "nothing refused was kept"
    );
    app.stop().await;
}
