//! Answers to callers without an API key (the public confirm, Toss's success and fail
//! redirects) never carry `user_id` or `subscription_id`; the confirm and the success redirect
//! show everything else of the payment (to the caller who presented its key), the fail redirect
//! only its order id, status and failure. A caller with an API key still gets the whole payment.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, Backend, Reply, TestApp, into_reply, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    public_confirm_answers_show_no_user_or_subscription,
    authenticated_confirm_answers_show_the_whole_payment,
    redirect_answers_show_no_user_or_subscription,
);

/// A PENDING subscription payment of `u-private-7` (so both fields are set), authenticated at
/// the fake Toss with `key`; returns its id.
async fn subscription_payment(app: &TestApp, order_id: &str, key: &str, amount: i64) -> String {
    let reply = app
        .post(
            "/payments",
            json!({"user_id": "u-private-7", "order_id": order_id, "amount_krw": amount,
                   "payment_method": "card", "payment_type": "SUBSCRIPTION",
                   "subscription_id": "sub-private-42"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    app.toss.authenticate(key, order_id, amount);
    reply.body["payment_id"].as_str().unwrap().to_owned()
}

/// The payment as `GET /payments/{id}` shows it to a caller with the API key, without the two
/// fields an anonymous caller must not see.
async fn public_view(app: &TestApp, id: &str) -> Value {
    let mut payment = app.payment(id).await;
    assert_eq!(payment["user_id"], "u-private-7");
    assert_eq!(payment["subscription_id"], "sub-private-42");
    let fields = payment.as_object_mut().unwrap();
    fields.remove("user_id");
    fields.remove("subscription_id");
    fields.remove("schedule");
    payment
}

fn assert_public(what: &str, reply: &Reply) {
    for field in ["user_id", "subscription_id", "schedule"] {
        assert!(
            reply.body.get(field).is_none(),
            "{what}: {field} shown to a caller without an API key: {}",
            reply.text
        );
    }
    for secret in ["u-private-7", "sub-private-42"] {
        assert!(!reply.text.contains(secret), "{what}: {}", reply.text);
    }
}

async fn confirm(
    app: &TestApp,
    body: &Value,
    authorization: Option<&str>,
    idempotency_key: Option<&str>,
) -> Reply {
    let mut request = app
        .client
        .request(Method::POST, format!("{}/payments/confirm", app.address))
        .json(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    into_reply(request.send().await.expect("request sent")).await
}

async fn public_confirm_answers_show_no_user_or_subscription(backend: Backend) {
    let app = spawn_app(backend).await;

    let id = subscription_payment(&app, "order_public_c1", "pk_public_c1", 9000).await;
    let body = json!({"order_id": "order_public_c1", "payment_key": "pk_public_c1"});
    let first = confirm(&app, &body, None, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_public("confirm", &first);
    assert_eq!(
        first.body,
        public_view(&app, &id).await,
        "everything else is shown"
    );
    // Again: already completed by the same key, answered without a second Toss confirm.
    let again = confirm(&app, &body, None, None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_public("confirm again", &again);

    // A wrong API key is no API key.
    let id = subscription_payment(&app, "order_public_c2", "pk_public_c2", 9000).await;
    let body = json!({"payment_id": id, "payment_key": "pk_public_c2", "amount_krw": 9000});
    let wrong_key = confirm(&app, &body, Some("Bearer wrong-key"), None).await;
    assert_eq!(wrong_key.status, StatusCode::OK, "{}", wrong_key.text);
    assert_public("confirm with a wrong key", &wrong_key);

    // Stored for an Idempotency-Key and replayed.
    subscription_payment(&app, "order_public_c3", "pk_public_c3", 9000).await;
    let body = json!({"order_id": "order_public_c3", "payment_key": "pk_public_c3"});
    let stored = confirm(&app, &body, None, Some("public-confirm-1")).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    assert_public("confirm with an Idempotency-Key", &stored);
    let replay = confirm(&app, &body, None, Some("public-confirm-1")).await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_public("its replay", &replay);

    // Outcome unknown (Toss answers 500): 202 with the payment IN_PROGRESS.
    subscription_payment(&app, "order_public_c4", "pk_public_c4", 9000).await;
    app.fail_next_confirm(500, "UNKNOWN_PAYMENT_ERROR").await;
    let body = json!({"order_id": "order_public_c4", "payment_key": "pk_public_c4"});
    let unsettled = confirm(&app, &body, None, None).await;
    assert_eq!(unsettled.status, StatusCode::ACCEPTED, "{}", unsettled.text);
    assert_eq!(unsettled.body["status"], "IN_PROGRESS");
    assert_public("confirm with an unknown outcome", &unsettled);
    app.stop().await;
}

async fn authenticated_confirm_answers_show_the_whole_payment(backend: Backend) {
    let app = spawn_app(backend).await;
    let bearer = format!("Bearer {API_KEY}");

    let id = subscription_payment(&app, "order_private_c1", "pk_private_c1", 7000).await;
    let body = json!({"order_id": "order_private_c1", "payment_key": "pk_private_c1"});
    let reply = confirm(&app, &body, Some(&bearer), Some("private-confirm-1")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body, app.payment(&id).await, "the whole payment");
    assert_eq!(reply.body["user_id"], "u-private-7");
    assert_eq!(reply.body["subscription_id"], "sub-private-42");
    let replay = confirm(&app, &body, Some(&bearer), Some("private-confirm-1")).await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body, reply.body);

    // The same Idempotency-Key and body without the API key is another caller's request: it
    // runs on its own (the payment is already completed by that key) and is answered publicly,
    // never with the answer stored for the caller with the key.
    let anonymous = confirm(&app, &body, None, Some("private-confirm-1")).await;
    assert_eq!(anonymous.status, StatusCode::OK, "{}", anonymous.text);
    assert!(anonymous.headers.get("idempotent-replayed").is_none());
    assert_public("the same key without the API key", &anonymous);

    // Recorded without Toss (no payment_key): needs the key, answers the whole payment.
    let id = subscription_payment(&app, "order_private_c2", "pk_unused_c2", 7000).await;
    let reply = confirm(
        &app,
        &json!({"payment_id": id, "pg_transaction_id": "tx-private-2", "pg_provider": "kcp"}),
        Some(&bearer),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body, app.payment(&id).await);
    assert_eq!(reply.body["user_id"], "u-private-7");
    app.stop().await;
}

async fn redirect_answers_show_no_user_or_subscription(backend: Backend) {
    let app = spawn_app(backend).await;

    let id = subscription_payment(&app, "order_public_r1", "pk_public_r1", 12000).await;
    let url = "/payments/toss/success?paymentKey=pk_public_r1&orderId=order_public_r1&amount=12000";
    let success = app.get_public(url).await;
    assert_eq!(success.status, StatusCode::OK, "{}", success.text);
    assert_public("success redirect", &success);
    assert_eq!(
        success.body,
        public_view(&app, &id).await,
        "everything else is shown"
    );
    let reload = app.get_public(url).await;
    assert_eq!(reload.status, StatusCode::OK, "{}", reload.text);
    assert_public("its reload", &reload);
    // The browser's route answers every caller alike.
    let with_key = app.get(url).await;
    assert_eq!(with_key.status, StatusCode::OK, "{}", with_key.text);
    assert_public("success redirect with an API key", &with_key);

    subscription_payment(&app, "order_public_r2", "pk_public_r2", 12000).await;
    app.fail_next_confirm(500, "UNKNOWN_PAYMENT_ERROR").await;
    let unsettled = app
        .get_public(
            "/payments/toss/success?paymentKey=pk_public_r2&orderId=order_public_r2&amount=12000",
        )
        .await;
    assert_eq!(unsettled.status, StatusCode::ACCEPTED, "{}", unsettled.text);
    assert_public("success redirect with an unknown outcome", &unsettled);

    let id = subscription_payment(&app, "order_public_r3", "pk_unused_r3", 12000).await;
    let fail = app
        .get_public(
            "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=cancelled&orderId=order_public_r3",
        )
        .await;
    assert_eq!(fail.status, StatusCode::OK, "{}", fail.text);
    assert_public("fail redirect", &fail);
    assert_eq!(fail.body["failure"]["code"], "PAY_PROCESS_CANCELED");
    let stored = public_view(&app, &id).await;
    assert_eq!(
        fail.body,
        json!({"order_id": stored["order_id"], "status": stored["status"], "failure": stored["failure"]}),
        "the fail redirect shows the order, its status and its failure only"
    );
    app.stop().await;
}
