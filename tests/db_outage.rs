//! PostgreSQL stopped and started under the running service: `/ready` and requests answer 503
//! problem+json (never hang, never 500), and the service recovers by itself.
//!
//! It stops the local PostgreSQL cluster, so it runs only where that is allowed:
//! `TEST_CONTROL_POSTGRES=1` (set by `.ci/run`). It is its own test binary so that no other
//! test is using the server meanwhile.

#[allow(dead_code, unused_imports)]
#[path = "api/fake_toss.rs"]
mod fake_toss;
#[allow(dead_code, unused_macros)]
#[path = "api/helpers.rs"]
mod helpers;

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use helpers::{Backend, spawn_app};

fn cluster(action: &str) {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a local PostgreSQL cluster")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a version directory");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .args(if action == "stop" {
            &["-m", "fast"][..]
        } else {
            &[][..]
        })
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster {action} failed");
}

/// Starts PostgreSQL again whatever happens to the test.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        cluster("start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_503_and_the_service_recovers() {
    if std::env::var("TEST_CONTROL_POSTGRES").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set TEST_CONTROL_POSTGRES=1 to let this test stop and start PostgreSQL"
        );
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let created = app.create_payment("order_outage_001", 1000).await;
    let id = created["payment_id"].as_str().unwrap().to_owned();

    let restart = Restart;
    cluster("stop");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let get = |path: String| {
        let client = client.clone();
        let base = app.address.clone();
        async move {
            helpers::into_reply(
                client
                    .get(format!("{base}{path}"))
                    .bearer_auth(helpers::API_KEY)
                    .send()
                    .await
                    .expect("answered, not hung"),
            )
            .await
        }
    };
    get("/ready".to_owned())
        .await
        .problem(503, "SERVICE_UNAVAILABLE");
    let read = get(format!("/payments/{id}")).await;
    read.problem(503, "SERVICE_UNAVAILABLE");
    assert!(read.headers.contains_key("retry-after"));
    app.post("/payments", json!({"user_id": "u-1", "order_id": "order_outage_002", "amount_krw": 1, "payment_method": "card"}))
        .await
        .problem(503, "SERVICE_UNAVAILABLE");
    get("/payments".to_owned())
        .await
        .problem(503, "SERVICE_UNAVAILABLE");

    drop(restart);
    let mut ready = false;
    for _ in 0..120 {
        if get("/ready".to_owned()).await.status == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "the service did not recover by itself");
    let mut recovered = None;
    for _ in 0..20 {
        let reply = get(format!("/payments/{id}")).await;
        if reply.status == StatusCode::OK {
            recovered = Some(reply);
            break;
        }
        reply.problem(503, "SERVICE_UNAVAILABLE");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        recovered.expect("reads work again").body["status"],
        "PENDING"
    );
    let created = app
        .post("/payments", json!({"user_id": "u-1", "order_id": "order_outage_003", "amount_krw": 1, "payment_method": "card"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    app.stop().await;
}
