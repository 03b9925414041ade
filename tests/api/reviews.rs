//! Review of set-aside payments: listed, resynced from Toss's record or dismissed, every review
//! kept with who made it (never the key).

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::fake_toss;
use crate::helpers::{API_KEY, Backend, TestApp, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    set_aside_refund_is_resynced_and_then_completes,
    dismiss_clears_the_flag_and_nothing_else,
    resync_that_still_contradicts_keeps_the_flag,
);

async fn review(app: &TestApp, id: &str, action: &str, note: &str) -> crate::helpers::Reply {
    app.post(
        &format!("/payments/{id}/review"),
        json!({"action": action, "note": note}),
    )
    .await
}

async fn set_aside_refund_is_resynced_and_then_completes(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.set_aside("order_review_0001", "pk_review1").await;
    let listed = app.get("/payments?needs_review=true").await;
    assert_eq!(listed.body["total_count"], 1, "{}", listed.text);
    assert_eq!(listed.body["payments"][0]["payment_id"], id.as_str());
    assert!(
        listed.body["payments"][0]["review_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let unflagged = app.get("/payments?needs_review=false").await;
    assert_eq!(unflagged.body["total_count"], 0);

    // Toss's own record (read back) shows no cancel at all: adopting it clears the flag, and
    // the refund, no longer left to a person, is sent again and completes.
    let resynced = review(
        &app,
        &id,
        "resync",
        "Toss support says the reply was garbled",
    )
    .await;
    assert_eq!(resynced.status, StatusCode::OK, "{}", resynced.text);
    assert_eq!(resynced.body["needs_review"], false);
    assert_eq!(resynced.body["review_reason"], Value::Null);
    app.service.settle_due().await.unwrap();
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds[0]["status"], "COMPLETED", "{refunds}");
    assert_eq!(app.payment(&id).await["refunded_amount_krw"], 1000);
    assert_eq!(app.toss.payment("pk_review1").unwrap().balance, 9000);

    let reviews = app.get(&format!("/payments/{id}/reviews")).await;
    assert_eq!(reviews.status, StatusCode::OK);
    let list = reviews.body["reviews"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["action"], "resync");
    assert_eq!(
        list[0]["reviewer"], "key-1",
        "the name of the first of API_KEYS"
    );
    assert_eq!(list[0]["note"], "Toss support says the reply was garbled");
    assert!(!reviews.text.contains(API_KEY), "never the key");
    // Not flagged any more: another review is refused.
    review(&app, &id, "dismiss", "again")
        .await
        .problem(409, "INVALID_STATE");
    app.stop().await;
}

async fn dismiss_clears_the_flag_and_nothing_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.set_aside("order_review_0002", "pk_review2").await;
    let before = app.payment(&id).await;
    let gets = app.toss_requests("GET", "/v1/payments").await.len();
    let dismissed = review(&app, &id, "dismiss", "known test order").await;
    assert_eq!(dismissed.status, StatusCode::OK, "{}", dismissed.text);
    assert_eq!(dismissed.body["needs_review"], false);
    assert_eq!(dismissed.body["status"], before["status"]);
    assert_eq!(
        dismissed.body["refunded_amount_krw"],
        before["refunded_amount_krw"]
    );
    assert_eq!(
        app.toss_requests("GET", "/v1/payments").await.len(),
        gets,
        "dismiss does not read Toss"
    );
    // Bad bodies change nothing.
    review(&app, &id, "forget", "x")
        .await
        .problem(422, "VALIDATION_ERROR");
    app.post(
        &format!("/payments/{id}/review"),
        json!({"action": "dismiss", "note": ""}),
    )
    .await
    .problem(422, "VALIDATION_ERROR");
    app.post(
        "/payments/00000000-0000-0000-0000-000000000000/review",
        json!({"action": "dismiss", "note": "n"}),
    )
    .await
    .problem(404, "NOT_FOUND");
    let anonymous = app
        .request(
            reqwest::Method::POST,
            &format!("/payments/{id}/review"),
            Some(json!({"action": "dismiss", "note": "n"})),
            false,
        )
        .await;
    anonymous.problem(401, "UNAUTHORIZED");
    let reviews = app.get(&format!("/payments/{id}/reviews")).await.body["reviews"].clone();
    assert_eq!(reviews.as_array().unwrap().len(), 1);
    assert_eq!(reviews[0]["action"], "dismiss");
    app.stop().await;
}

async fn resync_that_still_contradicts_keeps_the_flag(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_review_0003", 10000, "pk_review3")
        .await;
    let id = paid["payment_id"].as_str().unwrap().to_owned();
    // Toss's record changes amount under us: a contradiction no resync can adopt.
    app.execute_sql(
        "UPDATE payments SET needs_review = $1, review_reason = $2 WHERE id = $3",
        vec![true.into(), "seeded".into(), id.clone().into()],
    )
    .await;
    let mut lying = app.toss.payment("pk_review3").unwrap();
    lying.total = 12345;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/payments/pk_review3$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fake_toss::to_json(&lying)))
        .mount(&app.toss_server)
        .await;
    review(&app, &id, "resync", "try")
        .await
        .problem(409, "INVALID_STATE");
    assert_eq!(app.payment(&id).await["needs_review"], true);
    let reviews = app.get(&format!("/payments/{id}/reviews")).await.body["reviews"].clone();
    assert_eq!(reviews.as_array().unwrap().len(), 1, "kept even so");
    assert!(
        reviews[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("still contradicts")
    );
    app.stop().await;
}
