//! The public edge is bounded: half-sent requests are cut off, every request without an API key
//! is rate-limited (the billing redirects included), `X-Forwarded-For` is read only from trusted
//! proxies and from the right, a global concurrency limit answers 503, metric labels take only
//! known values, and webhook deliveries naming no payment of ours are not kept.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, Options, Reply, TestApp, into_reply, spawn_app, spawn_with};
use crate::on_both_databases;

on_both_databases!(
    webhooks_naming_no_payment_of_ours_are_not_kept_and_old_ones_are_purged,
    anonymous_idempotency_keys_are_bounded_by_the_rate_limit_and_expire,
);

/// Scenarios that store nothing: run once, on SQLite.
macro_rules! on_sqlite {
    ($($scenario:ident),* $(,)?) => {
        mod without_storage {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
    };
}

on_sqlite!(
    a_half_sent_request_is_cut_off,
    a_silent_connection_is_cut_off,
    billing_redirects_in_a_burst_reach_toss_at_most_the_burst,
    every_route_without_an_api_key_is_rate_limited,
    junk_methods_do_not_grow_metrics,
    forwarded_for_is_ignored_from_an_untrusted_peer,
    forwarded_for_from_a_trusted_proxy_is_read_from_the_right,
    the_concurrency_limit_answers_503,
);

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connect")
}

/// Waits until the server closes `stream` (end of file or reset), at most `within`; returns
/// how long it took, or `None` if it was still open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    let read_until_closed = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, read_until_closed)
        .await
        .ok()
        .map(|()| started.elapsed())
}

/// With a header read timeout of 2 s, a connection that sends `sent` and no more is closed
/// within 7 s (else it is `held`).
async fn assert_cut_off(backend: Backend, sent: &[u8], held: &str) -> TestApp {
    let app = spawn_with(
        backend,
        Options {
            header_read_timeout_secs: Some(2),
            ..Options::default()
        },
    )
    .await;
    let mut stream = connect(&app).await;
    stream.write_all(sent).await.unwrap();
    let closed = closed_within(&mut stream, Duration::from_secs(7)).await;
    assert!(closed.is_some(), "{held}");
    app
}

async fn a_half_sent_request_is_cut_off(backend: Backend) {
    let app = assert_cut_off(
        backend,
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
        "a request whose headers never end holds its connection",
    )
    .await;
    // A whole request on a new connection is still served.
    assert_eq!(app.get_public("/health").await.status, StatusCode::OK);
    app.stop().await;
}

async fn a_silent_connection_is_cut_off(backend: Backend) {
    let app = assert_cut_off(
        backend,
        b"",
        "a connection that sends nothing is held forever",
    )
    .await;
    app.stop().await;
}

async fn billing_redirects_in_a_burst_reach_toss_at_most_the_burst(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            public_rate: (0.01, 5.0),
            ..Options::default()
        },
    )
    .await;
    let customer = app
        .post("/billing/customers", json!({"user_id": "u-burst"}))
        .await;
    let customer = customer.body["customer_key"].as_str().unwrap().to_owned();
    let paths: Vec<String> = (0..150)
        .map(|i| format!("/billing/toss/success?customerKey={customer}&authKey=bln_burst_{i:04}"))
        .collect();
    let replies = join_all(paths.iter().map(|path| app.get_public(path))).await;
    let limited = replies
        .iter()
        .filter(|reply| reply.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(limited >= 145, "{limited} of 150 limited");
    for reply in replies
        .iter()
        .filter(|reply| reply.status == StatusCode::TOO_MANY_REQUESTS)
    {
        reply.problem(429, "RATE_LIMITED");
    }
    let issues = app
        .toss_requests("POST", "/v1/billing/authorizations/issue")
        .await
        .len();
    assert!(issues <= 5, "{issues} calls to Toss from a burst of 150");
    // The fail redirect is limited too.
    app.get_public("/billing/toss/fail?code=PAY_PROCESS_CANCELED&message=x")
        .await
        .problem(429, "RATE_LIMITED");
    app.stop().await;
}

async fn every_route_without_an_api_key_is_rate_limited(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            public_rate: (0.01, 1.0),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(app.get_public("/health").await.status, StatusCode::OK);
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/no/such/path",
        "/payments",
        "/billing/toss/success?customerKey=a&authKey=b",
    ] {
        app.get_public(path).await.problem(429, "RATE_LIMITED");
    }
    // The merchant's own calls, with a valid key, are not limited.
    for _ in 0..5 {
        assert_eq!(app.get("/payments").await.status, StatusCode::OK);
        assert_eq!(app.get("/ready").await.status, StatusCode::OK);
    }
    app.stop().await;
}

async fn send(app: &TestApp, method: &str, path: &str) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    into_reply(
        app.client
            .request(method, format!("{}{path}", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The values of `label` in the exposition `metrics`.
fn label_values<'a>(metrics: &'a str, label: &str) -> std::collections::BTreeSet<&'a str> {
    let key = format!("{label}=\"");
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let start = line.find(&key)? + key.len();
            let end = line[start..].find('"')? + start;
            Some(&line[start..end])
        })
        .collect()
}

async fn junk_methods_do_not_grow_metrics(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..30 {
        send(&app, &format!("JUNK{i}"), "/health").await;
        send(&app, &format!("MADEUP{i}"), "/no/such/path/{i}").await;
        send(&app, &format!("ODD{i}"), "/payments/toss/success").await;
    }
    let metrics = app.get("/metrics").await.text;
    // (The recorder is the process's: other tests' requests are in it too.)
    let methods = label_values(&metrics, "method");
    let known = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER",
    ];
    assert!(
        methods.iter().all(|method| known.contains(method)),
        "{methods:?}"
    );
    assert!(methods.contains("OTHER"), "{methods:?}");
    let routes = label_values(&metrics, "route");
    assert!(
        routes
            .iter()
            .all(|route| *route == "unmatched" || route.starts_with('/')),
        "{routes:?}"
    );
    assert!(!routes.iter().any(|route| route.contains("no/such")));
    app.stop().await;
}

async fn get_forwarded(app: &TestApp, forwarded_for: &str) -> StatusCode {
    app.client
        .get(format!("{}/health", app.address))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
}

async fn forwarded_for_is_ignored_from_an_untrusted_peer(backend: Backend) {
    // A proxy is trusted, but not this peer (loopback).
    let app = spawn_with(
        backend,
        Options {
            public_rate: (0.01, 1.0),
            trusted_proxies: vec!["10.0.0.0/8".to_owned()],
            ..Options::default()
        },
    )
    .await;
    assert_eq!(get_forwarded(&app, "203.0.113.1").await, StatusCode::OK);
    // Another claimed client is still this peer, already over its limit.
    assert_eq!(
        get_forwarded(&app, "203.0.113.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.stop().await;
}

async fn forwarded_for_from_a_trusted_proxy_is_read_from_the_right(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            public_rate: (0.01, 1.0),
            trusted_proxies: vec!["127.0.0.0/8".to_owned(), "::1".to_owned()],
            ..Options::default()
        },
    )
    .await;
    assert_eq!(get_forwarded(&app, "203.0.113.1").await, StatusCode::OK);
    assert_eq!(get_forwarded(&app, "203.0.113.2").await, StatusCode::OK);
    // What the client itself wrote (the left) is not believed: the rightmost address that is
    // not a trusted proxy is the client, here 203.0.113.1 again.
    assert_eq!(
        get_forwarded(&app, "198.51.100.9, 203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        get_forwarded(&app, "198.51.100.10, 203.0.113.2, 127.0.0.5").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // IPv6 clients share a bucket per /64.
    assert_eq!(get_forwarded(&app, "2001:db8:1:2::1").await, StatusCode::OK);
    assert_eq!(
        get_forwarded(&app, "2001:db8:1:2:ffff::9").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get_forwarded(&app, "2001:db8:1:3::1").await, StatusCode::OK);
    app.stop().await;
}

async fn the_concurrency_limit_answers_503(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            max_concurrent_requests: Some(1),
            ..Options::default()
        },
    )
    .await;
    // A request whose body never comes is in progress until its connection closes.
    let mut slow = connect(&app).await;
    slow.write_all(
        b"POST /payments/confirm HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = app.get_public("/ready").await;
    refused.problem(503, "SERVICE_UNAVAILABLE");
    assert_eq!(refused.headers["retry-after"], "1");
    // What callers without a key hold never crowds out the merchant's own services.
    let privileged = app.get("/payments").await;
    assert_eq!(privileged.status, StatusCode::OK, "{}", privileged.text);
    // Liveness holds nothing and is never refused for being busy.
    assert_eq!(app.get_public("/health").await.status, StatusCode::OK);
    drop(slow);
    let mut served = false;
    for _ in 0..50 {
        if app.get_public("/ready").await.status == StatusCode::OK {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the permit comes back when the request ends");
    app.stop().await;
}

async fn webhook_rows(app: &TestApp) -> Vec<Option<String>> {
    app.query_column("SELECT transmission_id FROM webhook_deliveries ORDER BY transmission_id")
        .await
}

async fn deliver(app: &TestApp, transmission_id: &str, order_id: &str) -> Reply {
    let body = json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-11-23T12:18:15.000000",
        "data": {"orderId": order_id, "status": "DONE", "totalAmount": 1}
    });
    crate::helpers::deliver(app, Some(transmission_id), &body).await
}

async fn webhooks_naming_no_payment_of_ours_are_not_kept_and_old_ones_are_purged(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..20 {
        let reply = deliver(
            &app,
            &format!("junk_{i:03}"),
            &format!("order_nobody_{i:03}"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["result"], "ignored");
    }
    let no_payment = crate::helpers::deliver(
        &app,
        Some("junk_nopayment"),
        &json!({"eventType": "PAYMENT_STATUS_CHANGED", "data": {}}),
    )
    .await;
    assert!(no_payment.status.is_success() || no_payment.status.is_client_error());
    assert_eq!(webhook_rows(&app).await, Vec::<Option<String>>::new());

    // One about a payment of ours is remembered, so Toss's retry of it is a duplicate.
    app.completed_payment("order_edge_wh_01", 5000, "pk_edge_wh_01")
        .await;
    // Unless it is forged: a secret that is not the confirm reply's keeps nothing.
    let forged = crate::helpers::deliver(
        &app,
        Some("forged_1"),
        &json!({"eventType": "PAYMENT_STATUS_CHANGED",
                "data": {"orderId": "order_edge_wh_01", "paymentKey": "pk_edge_wh_01",
                         "status": "DONE", "secret": "not-the-secret"}}),
    )
    .await;
    assert_eq!(forged.status, StatusCode::OK, "{}", forged.text);
    assert_eq!(webhook_rows(&app).await, Vec::<Option<String>>::new());
    let first = deliver(&app, "ours_1", "order_edge_wh_01").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let retry = deliver(&app, "ours_1", "order_edge_wh_01").await;
    assert_eq!(retry.body["result"], "duplicate");
    deliver(&app, "ours_2", "order_edge_wh_01").await;
    assert_eq!(
        webhook_rows(&app).await,
        vec![Some("ours_1".to_owned()), Some("ours_2".to_owned())]
    );

    // Past the retention (7 days by default), the reconciler's housekeeping forgets it.
    let old = chrono::Utc::now() - chrono::Duration::days(8);
    app.execute_sql(
        "UPDATE webhook_deliveries SET received_at = $1 WHERE transmission_id = $2",
        vec![old.into(), "ours_1".into()],
    )
    .await;
    app.service.settle_due().await.unwrap();
    assert_eq!(webhook_rows(&app).await, vec![Some("ours_2".to_owned())]);
    app.stop().await;
}

/// A stranger's `Idempotency-Key`s on the confirm: a row only for a request the rate limit let
/// through, kept 24 hours (the contract's least), then purged by the reconciler.
async fn anonymous_idempotency_keys_are_bounded_by_the_rate_limit_and_expire(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            public_rate: (0.01, 3.0),
            ..Options::default()
        },
    )
    .await;
    app.create_payment("order_edge_idem_1", 5000).await;
    let mut limited = 0;
    for i in 0..20 {
        let reply = into_reply(
            app.client
                .post(format!("{}/payments/confirm", app.address))
                .header("Idempotency-Key", format!("stranger-{i}"))
                .json(&json!({"order_id": "order_edge_idem_1", "payment_key": format!("pk_junk_{i}")}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert_eq!(limited, 17);
    let rows = app
        .query_column("SELECT key FROM idempotency_keys")
        .await
        .len();
    assert!(
        (1..=3).contains(&rows),
        "{rows} rows from 3 requests let through"
    );
    let lasting = app
        .query_column(&format!(
            "SELECT key FROM idempotency_keys WHERE expires_at > '{}'",
            (chrono::Utc::now() + chrono::Duration::hours(23)).format("%Y-%m-%d %H:%M:%S%:z")
        ))
        .await
        .len();
    assert_eq!(lasting, rows, "kept at least 24 hours");
    app.execute_sql(
        "UPDATE idempotency_keys SET expires_at = $1",
        vec![(chrono::Utc::now() - chrono::Duration::seconds(1)).into()],
    )
    .await;
    app.service.settle_due().await.unwrap();
    assert!(
        app.query_column("SELECT key FROM idempotency_keys")
            .await
            .is_empty()
    );
    app.stop().await;
}
