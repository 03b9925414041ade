//! Reads: the payment list and a payment, the event log, health and readiness, request ids.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, Backend, Options, TestApp, spawn_app, spawn_with};
use crate::inputs::{assert_problem, request, send};
use crate::on_both_databases;

on_both_databases!(
    list_is_newest_first_with_limit_offset_and_total,
    list_filters_by_user,
    list_refuses_bad_queries,
    get_returns_what_create_returned_in_the_contracts_shape,
    events_page_by_cursor_oldest_first,
    events_refuse_bad_queries,
    health_and_ready,
    ready_reports_the_noop_gateway,
    every_response_carries_a_request_id,
);

async fn create(app: &TestApp, user_id: &str, order_id: &str, amount: i64) -> Value {
    let reply = app
        .post(
            "/payments",
            json!({"user_id": user_id, "order_id": order_id, "amount_krw": amount, "payment_method": "card"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body
}

/// `(order ids, total_count)` of one page of `GET /payments`.
async fn page(app: &TestApp, query: &str) -> (Vec<String>, u64) {
    let reply = app.get(&format!("/payments{query}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
    let ids = reply.body["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .map(|p| p["order_id"].as_str().unwrap().to_owned())
        .collect();
    (
        ids,
        reply.body["total_count"].as_u64().expect("total_count"),
    )
}

fn assert_utc_timestamp(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    assert!(text.ends_with('Z'), "{what} is not UTC: {text}");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{what} is not RFC 3339 ({e}): {text}"));
}

async fn list_is_newest_first_with_limit_offset_and_total(backend: Backend) {
    let app = spawn_app(backend).await;
    let empty = app.get("/payments").await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.body, json!({"payments": [], "total_count": 0}));

    let mut created = Vec::new();
    for n in 0..23 {
        let order_id = format!("order_list_{n:04}");
        create(&app, "u-1", &order_id, 1000 + n).await;
        created.push(order_id);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let (ids, total) = page(&app, "").await;
    assert_eq!(total, 23);
    assert_eq!(ids.len(), 20, "default limit is 20");
    assert_eq!(ids, newest_first[..20]);

    assert_eq!(page(&app, "?limit=100").await, (newest_first.clone(), 23));
    assert_eq!(
        page(&app, "?limit=1").await,
        (newest_first[..1].to_vec(), 23)
    );
    assert_eq!(
        page(&app, "?limit=5&offset=0").await,
        (newest_first[..5].to_vec(), 23)
    );
    assert_eq!(
        page(&app, "?limit=5&offset=5").await,
        (newest_first[5..10].to_vec(), 23)
    );
    assert_eq!(
        page(&app, "?offset=20").await,
        (newest_first[20..].to_vec(), 23)
    );
    assert_eq!(
        page(&app, "?limit=5&offset=20").await,
        (newest_first[20..].to_vec(), 23)
    );
    assert_eq!(page(&app, "?limit=5&offset=23").await, (vec![], 23));
    assert_eq!(page(&app, "?offset=100000").await, (vec![], 23));

    // Paging through with any page size visits every payment once, in order.
    let mut walked = Vec::new();
    let mut offset = 0;
    loop {
        let (ids, total) = page(&app, &format!("?limit=7&offset={offset}")).await;
        assert_eq!(total, 23);
        if ids.is_empty() {
            break;
        }
        offset += ids.len();
        walked.extend(ids);
    }
    assert_eq!(walked, newest_first);
    app.stop().await;
}

async fn list_filters_by_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut of_b = Vec::new();
    for n in 0..12 {
        let user = if n % 3 == 0 { "u-b" } else { "u-a" };
        let order_id = format!("order_user_{n:04}");
        create(&app, user, &order_id, 500).await;
        if user == "u-b" {
            of_b.push(order_id);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    of_b.reverse();

    let reply = app.get("/payments?user_id=u-b").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["total_count"], 4);
    assert!(
        reply.body["payments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["user_id"] == "u-b")
    );
    assert_eq!(page(&app, "?user_id=u-b").await, (of_b.clone(), 4));
    assert_eq!(
        page(&app, "?user_id=u-b&limit=3&offset=2").await,
        (of_b[2..].to_vec(), 4),
        "total_count counts the filter, not the page"
    );
    assert_eq!(page(&app, "?user_id=u-a&limit=2").await.1, 8);
    assert_eq!(page(&app, "?user_id=nobody").await, (vec![], 0));
    // A user id that looks like SQL is just a user id.
    assert_eq!(
        page(&app, "?user_id=u-a'%20OR%20'1'%3D'1").await,
        (vec![], 0)
    );
    assert_eq!(page(&app, "").await.1, 12);
    app.stop().await;
}

async fn list_refuses_bad_queries(backend: Backend) {
    let app = spawn_app(backend).await;
    create(&app, "u-1", "order_query_0001", 100).await;
    let long_user = "u".repeat(65);
    for query in [
        "limit=0".to_owned(),
        "limit=101".to_owned(),
        "limit=-1".to_owned(),
        "limit=abc".to_owned(),
        "limit=1.5".to_owned(),
        "limit=99999999999999999999999".to_owned(),
        "offset=-1".to_owned(),
        "offset=abc".to_owned(),
        "offset=18446744073709551615".to_owned(),
        "foo=bar".to_owned(),
        "limit=5&page=2".to_owned(),
        format!("user_id={long_user}"),
    ] {
        let reply = app.get(&format!("/payments?{query}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert_problem(&reply, 400, "VALIDATION_ERROR");
    }
    assert_eq!(page(&app, "?limit=100&offset=0").await.1, 1);
    app.stop().await;
}

async fn get_returns_what_create_returned_in_the_contracts_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, "u-shape", "order_shape_0001", 15000).await;
    let id = created["payment_id"].as_str().unwrap();

    let read = app.get(&format!("/payments/{id}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.body, created, "GET returns exactly what POST returned");
    assert!(
        read.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let listed = app.get("/payments").await;
    assert_eq!(listed.body["payments"][0], created);

    let keys: BTreeSet<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "payment_id",
        "user_id",
        "order_id",
        "order_name",
        "subscription_id",
        "payment_type",
        "payment_method",
        "amount_krw",
        "refunded_amount_krw",
        "currency",
        "status",
        "pg_provider",
        "pg_transaction_id",
        "failure",
        "created_at",
        "updated_at",
        "completed_at",
    ]
    .into_iter()
    .collect();
    assert!(
        expected.is_subset(&keys),
        "missing fields: {:?}",
        expected.difference(&keys).collect::<Vec<_>>()
    );

    let uuid = uuid::Uuid::parse_str(id).expect("payment_id is a UUID");
    assert_eq!(uuid.to_string(), id, "hyphenated lowercase");
    assert_eq!(created["user_id"], "u-shape");
    assert_eq!(created["order_id"], "order_shape_0001");
    assert_eq!(created["order_name"], Value::Null);
    assert_eq!(created["subscription_id"], Value::Null);
    assert_eq!(created["payment_type"], "ONE_TIME");
    assert_eq!(created["payment_method"], "card");
    assert!(created["amount_krw"].is_i64() && created["amount_krw"] == 15000);
    assert!(created["refunded_amount_krw"].is_i64() && created["refunded_amount_krw"] == 0);
    assert_eq!(created["currency"], "KRW");
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["pg_provider"], Value::Null);
    assert_eq!(created["pg_transaction_id"], Value::Null);
    assert_eq!(created["failure"], Value::Null);
    assert_utc_timestamp(&created["created_at"], "created_at");
    assert_utc_timestamp(&created["updated_at"], "updated_at");
    assert_eq!(created["completed_at"], Value::Null);

    // Once paid, completed_at is a timestamp too.
    let paid = app
        .completed_payment("order_shape_0002", 2000, "pk_shape_0002")
        .await;
    assert_utc_timestamp(&paid["completed_at"], "completed_at");
    assert_eq!(
        app.payment(paid["payment_id"].as_str().unwrap()).await,
        paid
    );
    app.stop().await;
}

/// One page of `GET /events`: (events, next_cursor).
async fn events_page(app: &TestApp, query: &str) -> (Vec<Value>, i64) {
    let reply = app.get(&format!("/events{query}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
    (
        reply.body["events"].as_array().expect("events").clone(),
        reply.body["next_cursor"].as_i64().expect("next_cursor"),
    )
}

async fn events_page_by_cursor_oldest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(events_page(&app, "").await, (vec![], 0));
    assert_eq!(events_page(&app, "?after=0&limit=10").await, (vec![], 0));

    let p1 = app
        .completed_payment("order_events_001", 10000, "pk_events_001")
        .await;
    let p2 = app
        .completed_payment("order_events_002", 20000, "pk_events_002")
        .await;
    let p3 = app.create_payment("order_events_003", 3000).await;
    let fail = app
        .get_public("/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=cancelled&orderId=order_events_003")
        .await;
    assert_eq!(fail.status, StatusCode::OK, "{}", fail.text);
    let id1 = p1["payment_id"].as_str().unwrap();
    for (reason, amount) in [("part", json!(4000)), ("rest", Value::Null)] {
        let mut body = json!({"reason": reason});
        if !amount.is_null() {
            body["refund_amount_krw"] = amount;
        }
        let reply = app.post(&format!("/payments/{id1}/refund"), body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    let expected = [
        ("payment.completed", &p1),
        ("payment.completed", &p2),
        ("payment.failed", &p3),
        ("payment.refunded", &p1),
        ("payment.refunded", &p1),
    ];

    let (all, next) = events_page(&app, "").await;
    assert_eq!(all.len(), expected.len(), "{all:#?}");
    assert_eq!(next, all.last().unwrap()["cursor"].as_i64().unwrap());
    let mut previous = 0;
    let mut ids = BTreeSet::new();
    for (event, (event_type, payment)) in all.iter().zip(expected) {
        assert_eq!(event["event_type"], event_type, "{event}");
        assert_eq!(event["payload"]["payment_id"], payment["payment_id"]);
        assert_eq!(event["version"], "1.0");
        assert_eq!(event["source"], "payment-service");
        assert_eq!(event["user_id"], "u-1");
        assert!(event["payload"].is_object());
        assert_utc_timestamp(&event["timestamp"], "timestamp");
        let event_id = event["event_id"].as_str().expect("event_id");
        uuid::Uuid::parse_str(event_id).expect("event_id is a UUID");
        assert!(ids.insert(event_id.to_owned()), "event ids are unique");
        let cursor = event["cursor"].as_i64().expect("integer cursor");
        assert!(cursor > previous, "cursors strictly increase: {all:#?}");
        previous = cursor;
    }
    assert_eq!(all[3]["payload"]["refund_amount"], 4000);
    assert_eq!(all[3]["payload"]["is_full_refund"], false);
    assert_eq!(all[4]["payload"]["refund_amount"], 6000);
    assert_eq!(all[4]["payload"]["is_full_refund"], true);

    // Pages of two, each continuing from the previous next_cursor.
    let mut walked = Vec::new();
    let mut after = 0;
    loop {
        let (events, next) = events_page(&app, &format!("?after={after}&limit=2")).await;
        assert!(events.len() <= 2);
        match events.last() {
            Some(last) => assert_eq!(next, last["cursor"].as_i64().unwrap()),
            None => {
                assert_eq!(next, after, "an empty page keeps the cursor");
                break;
            }
        }
        after = next;
        walked.extend(events);
    }
    assert_eq!(walked, all);

    // From the middle, and beyond the end.
    let middle = all[1]["cursor"].as_i64().unwrap();
    let (rest, _) = events_page(&app, &format!("?after={middle}")).await;
    assert_eq!(rest, all[2..]);
    let (one, next) = events_page(&app, &format!("?after={middle}&limit=1")).await;
    assert_eq!(one, all[2..3]);
    assert_eq!(next, all[2]["cursor"].as_i64().unwrap());
    assert_eq!(
        events_page(&app, "?after=999999999").await,
        (vec![], 999_999_999)
    );
    assert_eq!(events_page(&app, "?limit=1000").await.0, all);
    assert_eq!(events_page(&app, "?limit=1").await.0, all[..1]);
    app.stop().await;
}

async fn events_refuse_bad_queries(backend: Backend) {
    let app = spawn_app(backend).await;
    for query in [
        "after=-1",
        "limit=0",
        "limit=1001",
        "limit=-1",
        "after=abc",
        "limit=abc",
        "after=1.5",
        "after=99999999999999999999999",
        "cursor=3",
        "after=0&foo=bar",
    ] {
        let reply = app.get(&format!("/events?{query}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert_problem(&reply, 400, "VALIDATION_ERROR");
    }
    app.stop().await;
}

async fn health_and_ready(backend: Backend) {
    let app = spawn_app(backend).await;
    let health = app.get_public("/health").await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    assert_eq!(health.body, json!({"status": "ok"}));
    assert!(
        health.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );

    let ready = app.get_public("/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["database"], "ok");
    assert_eq!(ready.body["pg_gateway"], "toss");
    assert!(
        !ready.text.contains(crate::fake_toss::SECRET_KEY),
        "{}",
        ready.text
    );
    // A key does no harm.
    assert_eq!(app.get("/ready").await.status, StatusCode::OK);
    app.stop().await;
}

async fn ready_reports_the_noop_gateway(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            toss: false,
            ..Default::default()
        },
    )
    .await;
    let ready = app.get_public("/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["database"], "ok");
    assert_eq!(ready.body["pg_gateway"], "noop");
    let health = app.get_public("/health").await;
    assert_eq!(health.body, json!({"status": "ok"}));
    app.stop().await;
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, "u-1", "order_reqid_0001", 1000).await;
    let id = created["payment_id"].as_str().unwrap();

    let requests: Vec<(Method, String, bool, Option<Value>)> = vec![
        (Method::GET, "/health".to_owned(), false, None),
        (Method::GET, "/ready".to_owned(), false, None),
        (Method::GET, "/payments".to_owned(), true, None),
        (Method::GET, format!("/payments/{id}"), true, None),
        (
            Method::POST,
            "/payments".to_owned(),
            true,
            Some(
                json!({"user_id": "u-1", "order_id": "order_reqid_0002", "amount_krw": 1000, "payment_method": "card"}),
            ),
        ),
        (Method::GET, "/payments".to_owned(), false, None), // 401
        (Method::GET, "/nope".to_owned(), true, None),      // 404
        (Method::DELETE, "/payments".to_owned(), true, None), // 405
        (Method::GET, "/payments?limit=0".to_owned(), true, None), // 400
        (
            Method::POST,
            "/payments".to_owned(),
            true,
            Some(json!({"user_id": ""})),
        ), // 422
    ];
    let mut seen = BTreeSet::new();
    for (method, path, auth, body) in &requests {
        let reply = app.request(method.clone(), path, body.clone(), *auth).await;
        let request_id = reply
            .headers
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{method} {path} ({}) has no x-request-id", reply.status))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!request_id.is_empty());
        assert!(seen.insert(request_id), "request ids are not reused");

        let mut echoed = request(&app, method.clone(), path).header("x-request-id", "my-id-123");
        if *auth {
            echoed = echoed.bearer_auth(API_KEY);
        }
        if let Some(body) = body {
            // Another order id, so that a create succeeds again rather than conflicting.
            let mut body = body.clone();
            if body["order_id"].is_string() {
                body["order_id"] = json!(format!("{}_again", body["order_id"].as_str().unwrap()));
            }
            echoed = echoed.json(&body);
        }
        let reply = send(echoed).await;
        assert_eq!(
            reply
                .headers
                .get("x-request-id")
                .map(|v| v.to_str().unwrap()),
            Some("my-id-123"),
            "{method} {path} ({})",
            reply.status
        );
    }
    app.stop().await;
}
