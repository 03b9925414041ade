//! `Idempotency-Key` on POST /payments, /payments/confirm and /payments/{id}/refund.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    API_KEY, Backend, Options, ROTATED_API_KEY, Reply, TestApp, into_reply, spawn_app, spawn_with,
};
use crate::on_both_databases;

on_both_databases!(
    create_replays_and_refuses_a_different_body,
    confirm_in_flight_duplicate_is_409_then_replayed,
    refund_replay_does_not_refund_twice,
    refused_requests_are_not_remembered,
    expired_keys_are_forgotten,
    every_api_key_is_the_same_caller,
    anonymous_callers_of_one_payment_key_share_a_namespace_apart_from_the_merchant,
    a_strangers_idempotency_key_never_answers_the_buyer,
    privileged_routes_answer_401_before_a_malformed_key,
    a_request_in_progress_answer_is_not_kept,
    create_retried_after_a_lost_answer_returns_its_payment,
);

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: &Value, auth: bool) -> Reply {
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .header("Idempotency-Key", key)
        .json(body);
    if auth {
        request = request.bearer_auth(API_KEY);
    }
    into_reply(request.send().await.unwrap()).await
}

/// `post_with_key` with the `Authorization` header as given (or none).
async fn post_as(
    app: &TestApp,
    path: &str,
    key: &str,
    body: &Value,
    authorization: Option<&str>,
) -> Reply {
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .header("Idempotency-Key", key)
        .json(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    into_reply(request.send().await.unwrap()).await
}

fn payment_body(order_id: &str, amount: i64) -> Value {
    json!({"user_id": "u-1", "order_id": order_id, "amount_krw": amount, "payment_method": "card"})
}

async fn create_replays_and_refuses_a_different_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = payment_body("order_idem_00001", 1000);
    let first = post_with_key(&app, "/payments", "create-1", &body, true).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let replay = post_with_key(&app, "/payments", "create-1", &body, true).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.text, first.text, "the first response, byte for byte");
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.headers["content-type"], "application/json");

    let other = post_with_key(
        &app,
        "/payments",
        "create-1",
        &payment_body("order_idem_00002", 1000),
        true,
    )
    .await;
    other.problem(422, "IDEMPOTENCY_KEY_REUSED");
    let list = app.get("/payments").await;
    assert_eq!(list.body["total_count"], 1);
    // Without the key the same body is a new request: the order id is taken.
    app.request(reqwest::Method::POST, "/payments", Some(body), true)
        .await
        .problem(409, "DUPLICATE_ORDER_ID");
    app.stop().await;
}

async fn confirm_in_flight_duplicate_is_409_then_replayed(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_idem_00003", 5000).await;
    app.toss.authenticate("pk_idem", "order_idem_00003", 5000);
    app.toss
        .slow_confirm(&app.toss_server, Duration::from_millis(1500))
        .await;
    let body = json!({"payment_id": created["payment_id"], "payment_key": "pk_idem"});
    let replies = join_all([0u64, 300].map(|delay| {
        let body = body.clone();
        let app = &app;
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            post_with_key(app, "/payments/confirm", "confirm-1", &body, false).await
        }
    }))
    .await;
    assert_eq!(replies[0].status, StatusCode::OK, "{}", replies[0].text);
    replies[1].problem(409, "REQUEST_IN_PROGRESS");
    let replay = post_with_key(&app, "/payments/confirm", "confirm-1", &body, false).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.text, replies[0].text);
    assert_eq!(app.confirms_sent().await, 1);
    app.stop().await;
}

async fn refund_replay_does_not_refund_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_idem_00004", 9000, "pk_idem4")
        .await;
    let path = format!("/payments/{}/refund", paid["payment_id"].as_str().unwrap());
    let body = json!({"reason": "dup click", "refund_amount_krw": 3000});
    let first = post_with_key(&app, &path, "refund-1", &body, true).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let replay = post_with_key(&app, &path, "refund-1", &body, true).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.body["refund_id"], first.body["refund_id"]);
    post_with_key(
        &app,
        &path,
        "refund-1",
        &json!({"reason": "dup click", "refund_amount_krw": 3001}),
        true,
    )
    .await
    .problem(422, "IDEMPOTENCY_KEY_REUSED");
    // The same body under the same key on another payment is another request.
    let other = app
        .completed_payment("order_idem_00005", 9000, "pk_idem5")
        .await;
    post_with_key(
        &app,
        &format!("/payments/{}/refund", other["payment_id"].as_str().unwrap()),
        "refund-1",
        &body,
        true,
    )
    .await
    .problem(422, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.toss_requests("POST", "/cancel").await.len(), 1);
    assert_eq!(
        app.payment(paid["payment_id"].as_str().unwrap()).await["refunded_amount_krw"],
        3000
    );
    app.stop().await;
}

async fn refused_requests_are_not_remembered(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = payment_body("order_idem_00006", 1000);
    post_with_key(&app, "/payments", "create-2", &body, false)
        .await
        .problem(401, "UNAUTHORIZED");
    let with_key = post_with_key(&app, "/payments", "create-2", &body, true).await;
    assert_eq!(
        with_key.status,
        StatusCode::CREATED,
        "a 401 is not replayed: {}",
        with_key.text
    );
    app.stop().await;
}

async fn expired_keys_are_forgotten(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = post_with_key(
        &app,
        "/payments",
        "create-3",
        &payment_body("order_idem_00007", 1000),
        true,
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    app.execute_sql(
        // Keys are stored scoped to the caller (hashed): expire this test's only one.
        "UPDATE idempotency_keys SET expires_at = $1",
        vec![(Utc::now() - chrono::Duration::seconds(1)).into()],
    )
    .await;
    let reused = post_with_key(
        &app,
        "/payments",
        "create-3",
        &payment_body("order_idem_00008", 1000),
        true,
    )
    .await;
    assert_eq!(reused.status, StatusCode::CREATED, "{}", reused.text);
    app.service.settle_due().await.unwrap();
    app.stop().await;
}

/// Keys are rotated and spelled in many ways, but whoever holds a valid one is the merchant: a
/// retry with another valid key, `bearer` in lower case or extra spaces replays the first answer.
async fn every_api_key_is_the_same_caller(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            rotated_api_key: true,
            ..Options::default()
        },
    )
    .await;
    let body = payment_body("order_idem_rotate", 1000);
    let first = post_as(
        &app,
        "/payments",
        "rotate-1",
        &body,
        Some(&format!("Bearer {API_KEY}")),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    for authorization in [
        format!("Bearer {ROTATED_API_KEY}"),
        format!("bearer {API_KEY}"),
        format!("BEARER   {ROTATED_API_KEY}  "),
    ] {
        let retry = post_as(&app, "/payments", "rotate-1", &body, Some(&authorization)).await;
        assert_eq!(
            retry.status,
            StatusCode::CREATED,
            "{authorization}: {}",
            retry.text
        );
        assert_eq!(retry.text, first.text, "{authorization}");
        assert_eq!(retry.headers["idempotent-replayed"], "true");
    }
    assert_eq!(app.get("/payments").await.body["total_count"], 1);
    app.stop().await;
}

/// Callers without a valid API key (none, a wrong one, another scheme) with the same
/// `payment_key` share one namespace; the merchant has another, and neither is answered from
/// the other's records.
async fn anonymous_callers_of_one_payment_key_share_a_namespace_apart_from_the_merchant(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_idem_anon1", 5000).await;
    app.toss
        .authenticate("pk_idem_anon", "order_idem_anon1", 5000);
    let body = json!({"payment_id": created["payment_id"], "payment_key": "pk_idem_anon"});
    let first = post_as(&app, "/payments/confirm", "anon-1", &body, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    for authorization in ["Bearer not-a-key", "Basic dXNlcjpwYXNz", "Bearer "] {
        let retry = post_as(
            &app,
            "/payments/confirm",
            "anon-1",
            &body,
            Some(authorization),
        )
        .await;
        assert_eq!(
            retry.status,
            StatusCode::OK,
            "{authorization}: {}",
            retry.text
        );
        assert_eq!(retry.text, first.text, "{authorization}");
        assert_eq!(
            retry
                .headers
                .get("idempotent-replayed")
                .map(|v| v.as_bytes()),
            Some(&b"true"[..]),
            "{authorization}: one anonymous namespace"
        );
    }
    // The merchant with the same key is not answered from the anonymous record: the request
    // runs (and finds the payment completed by this payment_key).
    let merchant = post_as(
        &app,
        "/payments/confirm",
        "anon-1",
        &body,
        Some(&format!("Bearer {API_KEY}")),
    )
    .await;
    assert_eq!(merchant.status, StatusCode::OK, "{}", merchant.text);
    assert!(
        merchant.headers.get("idempotent-replayed").is_none(),
        "not replayed across namespaces"
    );
    assert_eq!(app.confirms_sent().await, 1);
    app.stop().await;
}

/// A stranger who knows the order id uses the Idempotency-Key the buyer's checkout will use
/// (a guessable one) first, with another `payment_key`, or with none: the buyer's confirm still
/// runs and is answered on its own, never 422 and never with the stranger's answer. The
/// buyer's own retry is still replayed.
async fn a_strangers_idempotency_key_never_answers_the_buyer(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_payment("order_idem_guess1", 5000).await;
    // The buyer's checkout (and the stranger) post without the API key.
    let confirm =
        async |key: &str, body: &Value| post_as(&app, "/payments/confirm", key, body, None).await;
    let stranger = json!({"order_id": "order_idem_guess1", "payment_key": "pk_idem_stranger"});
    let first = confirm("checkout-order_idem_guess1", &stranger).await;
    first.problem(402, "PG_DECLINED");
    let keyless = json!({"order_id": "order_idem_guess1", "amount_krw": 5000});
    confirm("checkout-2", &keyless)
        .await
        .problem(401, "UNAUTHORIZED");

    app.toss
        .authenticate("pk_idem_buyer", "order_idem_guess1", 5000);
    let buyer = json!({"order_id": "order_idem_guess1", "payment_key": "pk_idem_buyer"});
    for key in ["checkout-order_idem_guess1", "checkout-2"] {
        let reply = confirm(key, &buyer).await;
        assert_eq!(reply.status, StatusCode::OK, "{key}: {}", reply.text);
        assert_eq!(reply.body["status"], "COMPLETED");
        assert_eq!(reply.body["pg_transaction_id"], "pk_idem_buyer");
        let retry = confirm(key, &buyer).await;
        assert_eq!(retry.text, reply.text, "{key}");
    }
    let retry = confirm("checkout-order_idem_guess1", &buyer).await;
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    // The stranger's retry is answered its own answer, never the buyer's.
    let again = confirm("checkout-order_idem_guess1", &stranger).await;
    assert!(!again.text.contains("pk_idem_buyer"), "{}", again.text);
    assert_ne!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(app.confirms_sent().await, 2);
    app.stop().await;
}

/// On a privileged route a missing or wrong API key is answered before the Idempotency-Key is
/// looked at: 401, not 400.
async fn privileged_routes_answer_401_before_a_malformed_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_idem_auth01", 9000, "pk_idem_auth01")
        .await;
    let refund_path = format!("/payments/{}/refund", paid["payment_id"].as_str().unwrap());
    let malformed = "k".repeat(300);
    for (path, body) in [
        ("/payments", payment_body("order_idem_auth02", 1000)),
        (refund_path.as_str(), json!({"reason": "r"})),
    ] {
        for authorization in [None, Some("Bearer wrong-key"), Some("Basic abc")] {
            post_as(&app, path, &malformed, &body, authorization)
                .await
                .problem(401, "UNAUTHORIZED");
        }
        post_as(
            &app,
            path,
            &malformed,
            &body,
            Some(&format!("Bearer {API_KEY}")),
        )
        .await
        .problem(400, "VALIDATION_ERROR");
    }
    assert_eq!(app.get("/payments").await.body["total_count"], 1);
    app.stop().await;
}

/// Makes every UPDATE of `payments` do nothing, as if another request always won the row
/// (`on: false` takes it away).
async fn payments_always_taken(app: &TestApp, backend: Backend, on: bool) {
    let statements: &[&str] = match (backend, on) {
        (Backend::Postgres, true) => &[
            "CREATE FUNCTION skip_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
            "CREATE TRIGGER always_taken BEFORE UPDATE ON payments FOR EACH ROW EXECUTE FUNCTION skip_row()",
        ],
        (Backend::Postgres, false) => &["DROP TRIGGER always_taken ON payments"],
        (Backend::Sqlite, true) => &[
            "CREATE TRIGGER always_taken BEFORE UPDATE ON payments BEGIN SELECT RAISE(IGNORE); END",
        ],
        (Backend::Sqlite, false) => &["DROP TRIGGER always_taken"],
    };
    for statement in statements {
        app.execute_sql(statement, vec![]).await;
    }
}

/// A handler that lost its race answers 409 `REQUEST_IN_PROGRESS`; that answer says nothing
/// about the request, so it is not kept: the retry with the same key runs.
async fn a_request_in_progress_answer_is_not_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_idem_race1", 1000).await;
    let body = json!({"order_id": "order_idem_race1", "pg_transaction_id": "tx-race-1", "pg_provider": "kcp"});
    payments_always_taken(&app, backend, true).await;
    post_with_key(&app, "/payments/confirm", "race-1", &body, true)
        .await
        .problem(409, "REQUEST_IN_PROGRESS");
    payments_always_taken(&app, backend, false).await;
    let retry = post_with_key(&app, "/payments/confirm", "race-1", &body, true).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert!(retry.headers.get("idempotent-replayed").is_none());
    assert_eq!(retry.body["status"], "COMPLETED");
    assert_eq!(retry.body["payment_id"], created["payment_id"]);
    // From now on the answer is kept.
    let replay = post_with_key(&app, "/payments/confirm", "race-1", &body, true).await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.text, retry.text);
    app.stop().await;
}

/// A create whose answer was lost (a 5xx let the key go, or a crash left it claimed until its
/// lease ended) runs again with the same key: it finds the payment it created and answers 201
/// with it, not 409 `DUPLICATE_ORDER_ID`. Without the key, or with another, the order id is
/// taken.
async fn create_retried_after_a_lost_answer_returns_its_payment(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = payment_body("order_idem_lost1", 1000);
    let first = post_with_key(&app, "/payments", "lost-1", &body, true).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);

    // The key was let go (as after a 5xx).
    app.execute_sql("DELETE FROM idempotency_keys", vec![])
        .await;
    let retry = post_with_key(&app, "/payments", "lost-1", &body, true).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    assert!(retry.headers.get("idempotent-replayed").is_none());
    assert_eq!(retry.body, first.body, "the payment it created");

    // A crash left the key claimed; its lease ended.
    app.execute_sql(
        "UPDATE idempotency_keys SET state = 'IN_FLIGHT', response_status = NULL, \
         response_body = NULL, response_content_type = NULL, locked_until = $1",
        vec![(Utc::now() - chrono::Duration::seconds(1)).into()],
    )
    .await;
    let after_crash = post_with_key(&app, "/payments", "lost-1", &body, true).await;
    assert_eq!(
        after_crash.status,
        StatusCode::CREATED,
        "{}",
        after_crash.text
    );
    assert_eq!(after_crash.body["payment_id"], first.body["payment_id"]);

    // Another key, or none: a duplicate order id.
    post_with_key(&app, "/payments", "lost-2", &body, true)
        .await
        .problem(409, "DUPLICATE_ORDER_ID");
    app.post("/payments", body.clone())
        .await
        .problem(409, "DUPLICATE_ORDER_ID");
    // The same key for the same order with other details is not a retry of it.
    app.execute_sql("DELETE FROM idempotency_keys", vec![])
        .await;
    post_with_key(
        &app,
        "/payments",
        "lost-1",
        &payment_body("order_idem_lost1", 2000),
        true,
    )
    .await
    .problem(422, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.get("/payments").await.body["total_count"], 1);
    app.stop().await;
}
