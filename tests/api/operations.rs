//! Operating the service: metrics, rate limits, CORS, graceful shutdown.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use wiremock::MockServer;

use crate::fake_toss::{FakeToss, SECRET_KEY};
use crate::helpers::{
    API_KEY, Backend, Options, TestDatabase, init_process, into_reply, spawn_app, spawn_with,
};
use crate::on_both_databases;

on_both_databases!(
    metrics_after_a_flow_have_names_and_labels,
    the_wait_for_a_database_connection_is_measured,
    public_routes_are_rate_limited_per_address,
    cors_allows_only_configured_origins,
    sigterm_lets_a_slow_confirm_finish,
);

/// The line of `metric` whose labels include every one of `labels`.
fn metric_line<'a>(text: &'a str, metric: &str, labels: &[&str]) -> Option<&'a str> {
    text.lines().find(|line| {
        line.starts_with(&format!("{metric}{{")) && labels.iter().all(|label| line.contains(label))
    })
}

/// The value of the unlabelled sample `name` in the exposition `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn the_wait_for_a_database_connection_is_measured(backend: Backend) {
    let app = spawn_app(backend).await;
    app.completed_payment("order_pool_wait_01", 9000, "pk_pool_wait")
        .await;
    let text = app.get_public("/metrics").await.text;
    let waits = sample(&text, "db_pool_acquire_seconds_count");
    assert!(waits.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        text.contains(r#"db_pool_acquire_seconds_bucket{le="0.0001"}"#),
        "sub-millisecond buckets: {text}"
    );
    for gauge in [
        "db_pool_max_connections",
        "db_pool_connections",
        "db_pool_idle_connections",
    ] {
        assert!(sample(&text, gauge).is_some(), "{gauge} in {text}");
    }
    app.stop().await;
}

async fn metrics_after_a_flow_have_names_and_labels(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order_metrics_01", 9000, "pk_metrics")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.post(
        &format!("/payments/{id}/refund"),
        json!({"reason": "m", "refund_amount_krw": 1000}),
    )
    .await;
    app.create_payment("order_metrics_02", 5000).await;
    app.toss_fails(
        "POST",
        "^/v1/payments/confirm$",
        403,
        "REJECT_CARD_PAYMENT",
        None,
    )
    .await;
    app.post_public(
        "/payments/confirm",
        json!({"order_id": "order_metrics_02", "payment_key": "pk_m2"}),
    )
    .await;

    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "public, no API key");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for (metric, labels) in [
        (
            "http_requests_total",
            vec![
                r#"method="POST""#,
                r#"route="/payments""#,
                r#"status="201""#,
            ],
        ),
        (
            "http_requests_total",
            vec![
                r#"route="/payments/{payment_id}/refund""#,
                r#"status="200""#,
            ],
        ),
        (
            "http_request_duration_seconds_bucket",
            vec![r#"route="/payments/confirm""#],
        ),
        (
            "toss_requests_total",
            vec![r#"operation="confirm""#, r#"outcome="ok""#],
        ),
        (
            "toss_requests_total",
            vec![r#"operation="confirm""#, r#"outcome="declined""#],
        ),
        (
            "toss_requests_total",
            vec![r#"operation="cancel""#, r#"outcome="ok""#],
        ),
        (
            "toss_request_duration_seconds_bucket",
            vec![r#"operation="confirm""#],
        ),
        (
            "payment_transitions_total",
            vec![r#"from="PENDING""#, r#"to="IN_PROGRESS""#],
        ),
        (
            "payment_transitions_total",
            vec![r#"from="IN_PROGRESS""#, r#"to="COMPLETED""#],
        ),
        (
            "payment_transitions_total",
            vec![r#"from="IN_PROGRESS""#, r#"to="PENDING""#],
        ),
        (
            "payment_transitions_total",
            vec![r#"from="COMPLETED""#, r#"to="PARTIAL_REFUND""#],
        ),
        ("payments_unsettled", vec![r#"kind="payment""#]),
        ("payments_unsettled", vec![r#"kind="refund""#]),
        (
            "payments_unsettled_oldest_age_seconds",
            vec![r#"kind="payment""#],
        ),
    ] {
        assert!(
            metric_line(&text, metric, &labels).is_some(),
            "{metric} {labels:?} missing from:\n{text}"
        );
    }
    assert!(!text.contains("pk_metrics"), "no payment keys as labels");
    assert!(
        !text.contains(&format!("/payments/{id}")),
        "routes are templates, not raw paths"
    );
    app.stop().await;
}

async fn public_routes_are_rate_limited_per_address(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            public_rate: (0.5, 2.0),
            ..Options::default()
        },
    )
    .await;
    let url = "/payments/toss/fail?code=X&message=y&orderId=order_ratelimit1";
    app.create_payment("order_ratelimit1", 1000).await;
    assert_eq!(app.get_public(url).await.status, StatusCode::OK);
    assert_eq!(app.get_public(url).await.status, StatusCode::OK);
    let limited = app.get_public(url).await;
    limited.problem(429, "RATE_LIMITED");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    app.post_public(
        "/payments/confirm",
        json!({"order_id": "order_ratelimit1", "payment_key": "pk"}),
    )
    .await
    .problem(429, "RATE_LIMITED");
    // Internal routes are not limited.
    for _ in 0..5 {
        assert_eq!(app.get("/payments").await.status, StatusCode::OK);
    }
    app.stop().await;
}

async fn cors_allows_only_configured_origins(backend: Backend) {
    let closed = spawn_app(backend).await;
    let preflight = |app: &crate::helpers::TestApp, origin: &str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/payments/confirm", app.address),
            )
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let response = preflight(&closed, "https://shop.example.com")
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "none allowed by default"
    );
    closed.stop().await;

    let open = spawn_with(
        backend,
        Options {
            cors_allowed_origins: vec!["https://shop.example.com".to_owned()],
            ..Options::default()
        },
    )
    .await;
    let allowed = preflight(&open, "https://shop.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    let other = preflight(&open, "https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    open.stop().await;
}

async fn sigterm_lets_a_slow_confirm_finish(backend: Backend) {
    init_process();
    let database = TestDatabase::create(backend).await;
    let toss_server = MockServer::start().await;
    let toss = FakeToss::default();
    toss.mount(&toss_server).await;
    toss.slow_confirm(&toss_server, Duration::from_secs(2))
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let log =
        std::env::temp_dir().join(format!("ps-shutdown-{}.log", uuid::Uuid::new_v4().simple()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .env("DATABASE_URL", &database.url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("TOSS_SECRET_KEY", SECRET_KEY)
        .env("TOSS_API_URL", toss_server.uri())
        .env("API_KEYS", API_KEY)
        .env("APP_LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = into_reply(
        client
            .post(format!("{base}/payments"))
            .bearer_auth(API_KEY)
            .header("x-request-id", "rid-shutdown-create")
            .json(&json!({"user_id": "u-1", "order_id": "order_sigterm_01", "amount_krw": 4000, "payment_method": "card"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    toss.authenticate("pk_sigterm", "order_sigterm_01", 4000);
    let confirm = tokio::spawn(
        client
            .post(format!("{base}/payments/confirm"))
            .header("x-request-id", "rid-shutdown-confirm")
            .json(&json!({"order_id": "order_sigterm_01", "payment_key": "pk_sigterm"}))
            .send(),
    );
    for _ in 0..100 {
        let seen = toss_server.received_requests().await.unwrap_or_default();
        if seen.iter().any(|r| r.url.path() == "/v1/payments/confirm") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let reply = into_reply(
        confirm
            .await
            .unwrap()
            .expect("the in-flight confirm is answered"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED");
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "exit 0 after SIGTERM: {exit:?}");
    // Every log line of a request carries its request id.
    let logs = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let confirm_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("confirming at the PG"))
        .collect();
    assert_eq!(confirm_lines.len(), 1, "{logs}");
    assert!(
        confirm_lines[0].contains("rid-shutdown-confirm"),
        "{}",
        confirm_lines[0]
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("payment created") && l.contains("rid-shutdown-create"))
    );
    assert!(logs.contains("shutting down"));
}
