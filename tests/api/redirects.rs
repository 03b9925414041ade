use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, Options, Reply, TestApp, spawn_app, spawn_with};
use crate::on_both_databases;

on_both_databases!(
    success_redirect_confirms_and_reload_is_the_same,
    success_redirect_with_configured_urls_sends_303,
    success_redirect_amount_mismatch_never_calls_toss,
    fail_redirect_records_failure_once,
    fail_redirect_with_configured_url_sends_303,
    success_redirect_rejects_bad_query,
    fail_redirect_shows_only_order_status_and_failure,
    only_the_payments_own_key_is_shown_the_payment,
);

fn redirect_options(backend: Backend) -> Options {
    let _ = backend;
    Options {
        redirect: Some((
            "https://shop.example.com/order/complete".to_owned(),
            "https://shop.example.com/order/failed?from=pay".to_owned(),
        )),
        ..Options::default()
    }
}

async fn success_redirect_confirms_and_reload_is_the_same(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_redir_0001", 15000).await;
    app.toss.authenticate("pk_redir", "order_redir_0001", 15000);
    let url = "/payments/toss/success?paymentType=NORMAL&orderId=order_redir_0001&paymentKey=pk_redir&amount=15000";
    let first = app.get_public(url).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["status"], "COMPLETED");
    assert_eq!(first.body["payment_id"], created["payment_id"]);
    let reload = app.get_public(url).await;
    assert_eq!(reload.status, StatusCode::OK);
    assert_eq!(reload.body, first.body);
    assert_eq!(
        app.confirms_sent().await,
        1,
        "a reload never confirms twice"
    );
    let sent = app.toss_requests("POST", "/v1/payments/confirm").await;
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"paymentKey": "pk_redir", "orderId": "order_redir_0001", "amount": 15000})
    );
    app.stop().await;
}

async fn success_redirect_with_configured_urls_sends_303(backend: Backend) {
    let app = spawn_with(backend, redirect_options(backend)).await;
    let created = app.create_payment("order_redir_0002", 2000).await;
    app.toss.authenticate("pk_redir2", "order_redir_0002", 2000);
    let url = "/payments/toss/success?paymentKey=pk_redir2&orderId=order_redir_0002&amount=2000";
    let first = app.get_public(url).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text);
    let location = first.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!(
            "https://shop.example.com/order/complete?payment_id={}&order_id=order_redir_0002&status=COMPLETED",
            created["payment_id"].as_str().unwrap()
        )
    );
    let reload = app.get_public(url).await;
    assert_eq!(reload.status, StatusCode::SEE_OTHER);
    assert_eq!(reload.headers["location"].to_str().unwrap(), location);
    assert_eq!(app.confirms_sent().await, 1);
    app.stop().await;
}

async fn success_redirect_amount_mismatch_never_calls_toss(backend: Backend) {
    let app = spawn_with(backend, redirect_options(backend)).await;
    let created = app.create_payment("order_tamper_001", 50000).await;
    let reply = app
        .get_public("/payments/toss/success?paymentKey=pk_t&orderId=order_tamper_001&amount=100")
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let location = url::Url::parse(reply.headers["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/order/failed");
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["from"], "pay", "the fail URL's own query is kept");
    assert_eq!(query["code"], "AMOUNT_MISMATCH");
    assert_eq!(query["order_id"], "order_tamper_001");
    assert!(!query["message"].is_empty());
    assert_eq!(app.confirms_sent().await, 0);
    assert_eq!(
        app.payment(created["payment_id"].as_str().unwrap()).await,
        created
    );

    let json_mode = spawn_app(backend).await;
    json_mode.create_payment("order_tamper_002", 50000).await;
    json_mode
        .get_public("/payments/toss/success?paymentKey=pk_t&orderId=order_tamper_002&amount=49999")
        .await
        .problem(422, "AMOUNT_MISMATCH");
    assert_eq!(json_mode.confirms_sent().await, 0);
    app.stop().await;
    json_mode.stop().await;
}

async fn fail_redirect_records_failure_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_payment("order_fail_00001", 4000).await;
    let id = created["payment_id"].as_str().unwrap();
    let url = "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=%EC%82%AC%EC%9A%A9%EC%9E%90%EC%97%90%20%EC%9D%98%ED%95%B4&orderId=order_fail_00001";
    let reply = app.get_public(url).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "PENDING");
    assert_eq!(reply.body["failure"]["code"], "PAY_PROCESS_CANCELED");
    assert_eq!(reply.body["failure"]["message"], "사용자에 의해");
    let reload = app.get_public(url).await;
    assert_eq!(reload.status, StatusCode::OK);
    let events = app.events_of(id).await;
    assert_eq!(events.len(), 1, "a reload records nothing new");
    assert_eq!(events[0]["event_type"], "payment.failed");
    assert_eq!(events[0]["payload"]["error_code"], "PAY_PROCESS_CANCELED");
    assert_eq!(app.toss_server.received_requests().await.unwrap().len(), 0);

    // The buyer tries again and pays.
    app.toss
        .authenticate("pk_after_fail", "order_fail_00001", 4000);
    let paid = app
        .get_public(
            "/payments/toss/success?paymentKey=pk_after_fail&orderId=order_fail_00001&amount=4000",
        )
        .await;
    assert_eq!(paid.body["status"], "COMPLETED");
    assert!(paid.body["failure"].is_null());
    // A (forged) fail redirect cannot undo a paid payment.
    let forged = app.get_public(url).await;
    assert_eq!(forged.body["status"], "COMPLETED");
    assert_eq!(app.events_of(id).await.len(), 2);
    app.get_public("/payments/toss/fail?code=X&message=y&orderId=order_unknown_01")
        .await
        .problem(404, "NOT_FOUND");
    app.stop().await;
}

async fn fail_redirect_with_configured_url_sends_303(backend: Backend) {
    let app = spawn_with(backend, redirect_options(backend)).await;
    app.create_payment("order_fail_00002", 4000).await;
    let reply = app
        .get_public(
            "/payments/toss/fail?code=REJECT_CARD_COMPANY&message=denied&orderId=order_fail_00002",
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        reply.headers["location"].to_str().unwrap(),
        "https://shop.example.com/order/failed?from=pay&order_id=order_fail_00002&code=REJECT_CARD_COMPANY&message=denied"
    );
    app.stop().await;
}

async fn success_redirect_rejects_bad_query(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_payment("order_badq_00001", 1000).await;
    for query in [
        "",
        "?orderId=order_badq_00001&amount=1000",
        "?paymentKey=pk&amount=1000",
        "?paymentKey=pk&orderId=order_badq_00001",
        "?paymentKey=pk&orderId=order_badq_00001&amount=ten",
        "?paymentKey=pk&orderId=order_badq_00001&amount=1000.5",
        "?paymentKey=pk&orderId=bad%20id&amount=1000",
    ] {
        app.get_public(&format!("/payments/toss/success{query}"))
            .await
            .problem(400, "VALIDATION_ERROR");
    }
    app.get_public("/payments/toss/success?paymentKey=pk&orderId=order_badq_00001&amount=1000&paymentType=BRANDPAY")
        .await
        .problem(422, "VALIDATION_ERROR");
    assert_eq!(app.confirms_sent().await, 0);
    app.stop().await;
}

/// What a stranger must never see of a paid payment: its key, card, account, receipt,
/// settlement, review.
fn assert_nothing_of_the_paid_payment(what: &str, reply: &Reply, paid: &serde_json::Value) {
    let key = paid["pg_transaction_id"].as_str().unwrap();
    assert!(!reply.text.contains(key), "{what}: {}", reply.text);
    for field in [
        "pg_transaction_id",
        "card",
        "virtual_account",
        "receipt_url",
        "settlement",
        "review_reason",
        "needs_review",
        "pg_method",
    ] {
        assert!(
            reply.body.get(field).is_none(),
            "{what}: {field}: {}",
            reply.text
        );
    }
    if let Some(receipt) = paid["receipt_url"].as_str() {
        assert!(!reply.text.contains(receipt), "{what}: {}", reply.text);
    }
}

/// The fail redirect by order id: `{order_id, status, failure}` and nothing else, whatever the
/// payment; it records a failure only on a PENDING payment.
async fn fail_redirect_shows_only_order_status_and_failure(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_failview_01", 8000, "pk_failview_01")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let reply = app
        .get_public(
            "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=x&orderId=order_failview_01",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"order_id": "order_failview_01", "status": "COMPLETED", "failure": null})
    );
    assert_nothing_of_the_paid_payment("fail redirect of a paid payment", &reply, &paid);
    assert_eq!(app.events_of(id).await.len(), 1, "nothing recorded");
    assert!(app.payment(id).await["failure"].is_null());

    // A payment in flight (its confirm's outcome unknown) is not touched either.
    let in_flight = app.create_payment("order_failview_02", 8000).await;
    let in_flight_id = in_flight["payment_id"].as_str().unwrap();
    app.toss
        .authenticate("pk_failview_02", "order_failview_02", 8000);
    app.fail_next_confirm(500, "UNKNOWN_PAYMENT_ERROR").await;
    app.toss_fails(
        "GET",
        "^/v1/payments/pk_failview_02$",
        500,
        "UNKNOWN_PAYMENT_ERROR",
        Some(1),
    )
    .await;
    let unsettled = app
        .confirm_public("order_failview_02", "pk_failview_02")
        .await;
    assert_eq!(unsettled.status, StatusCode::ACCEPTED, "{}", unsettled.text);
    let reply = app
        .get_public(
            "/payments/toss/fail?code=PAY_PROCESS_ABORTED&message=x&orderId=order_failview_02",
        )
        .await;
    assert_eq!(
        reply.body,
        json!({"order_id": "order_failview_02", "status": "IN_PROGRESS", "failure": null})
    );
    let stored = app.payment(in_flight_id).await;
    assert_eq!(stored["status"], "IN_PROGRESS");
    assert!(stored["failure"].is_null(), "{stored}");
    assert!(app.events_of(in_flight_id).await.is_empty());

    // A PENDING payment: the failure is recorded and shown, nothing else.
    app.create_payment("order_failview_03", 8000).await;
    let reply = app
        .get_public(
            "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=gone&orderId=order_failview_03",
        )
        .await;
    assert_eq!(
        reply.body,
        json!({"order_id": "order_failview_03", "status": "PENDING",
               "failure": {"code": "PAY_PROCESS_CANCELED", "message": "gone"}})
    );
    app.stop().await;
}

/// The success redirect and the public confirm show a payment only to the caller who
/// presented its paymentKey; another key for a paid order gets a problem.
async fn only_the_payments_own_key_is_shown_the_payment(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_ownkey_0001", 8000, "pk_ownkey_0001")
        .await;
    async fn check(app: &TestApp, paid: &serde_json::Value, what: &str, reply: Reply) {
        assert!(
            reply.status.is_client_error(),
            "{what}: {} {}",
            reply.status,
            reply.text
        );
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{what}: {}",
            reply.text
        );
        assert_nothing_of_the_paid_payment(what, &reply, paid);
        let _ = app;
    }
    let redirect = app
        .get_public("/payments/toss/success?paymentKey=pk_ownkey_other&orderId=order_ownkey_0001&amount=8000")
        .await;
    check(&app, &paid, "success redirect with another key", redirect).await;
    let confirm = app
        .confirm_public("order_ownkey_0001", "pk_ownkey_other")
        .await;
    check(&app, &paid, "public confirm with another key", confirm).await;
    // The buyer's own key is shown the payment.
    let own = app
        .get_public("/payments/toss/success?paymentKey=pk_ownkey_0001&orderId=order_ownkey_0001&amount=8000")
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.body["pg_transaction_id"], "pk_ownkey_0001");
    assert_eq!(
        app.events_of(paid["payment_id"].as_str().unwrap())
            .await
            .len(),
        1
    );
    app.stop().await;
}
