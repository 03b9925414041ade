//! A process-level crash: the real binary is killed with SIGKILL while Toss holds its confirm,
//! restarted on the same database, and the payment settles to what Toss has.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::FutureExt;
use reqwest::StatusCode;
use serde_json::json;
use wiremock::MockServer;

use crate::fake_toss::{FakeToss, SECRET_KEY};
use crate::helpers::{
    API_KEY, BILLING_ENCRYPTION_KEY, Backend, TestDatabase, free_port, init_process, into_reply,
};
use crate::on_both_databases;

on_both_databases!(sigkill_while_toss_holds_the_confirm);

/// The real binary on `database_url` against the fake Toss at `toss_url`, listening on `port`,
/// with a fast reconciler and a short read timeout.
fn start(database_url: &str, toss_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .env("DATABASE_URL", database_url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("TOSS_SECRET_KEY", SECRET_KEY)
        .env("TOSS_API_URL", toss_url)
        .env("BILLING_KEY_ENCRYPTION_KEY", BILLING_ENCRYPTION_KEY)
        .env("API_KEYS", API_KEY)
        .env("APP_TOSS__READ_TIMEOUT_SECS", "3")
        .env("APP_RECONCILER__INTERVAL_MS", "100")
        .env("APP_RECONCILER__INITIAL_BACKOFF_SECS", "0")
        .env("APP_RECONCILER__MAX_BACKOFF_SECS", "1")
        .env("APP_BILLING__SCHEDULER_POLL_MS", "100")
        .env("APP_BILLING__SCHEDULER_LEASE_SECS", "5")
        .env("APP_BILLING__SCHEDULER_RECHECK_SECS", "1")
        .env("RUST_LOG", "warn")
        .env_remove("NATS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("{base}/ready")).send().await
            && response.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base} never became ready");
}

/// The real binary started as [`start`] does, on a free port, and ready: the child and its base URL.
pub(crate) async fn started(
    database_url: &str,
    toss_url: &str,
    client: &reqwest::Client,
) -> (Child, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = start(database_url, toss_url, port);
    wait_ready(client, &base).await;
    (child, base)
}

/// A billing key issued through the started service at `base` (a card registered at `toss` for a
/// new customer of `u-1`), and the payment `payment` created there: (billing_key_id, payment_id).
pub(crate) async fn key_and_payment(
    client: &reqwest::Client,
    base: &str,
    toss: &FakeToss,
    payment: serde_json::Value,
) -> (String, String) {
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
    };
    let customer = into_reply(
        post("/billing/customers", json!({"user_id": "u-1"}))
            .await
            .unwrap(),
    )
    .await;
    let customer = customer.body["customer_key"].as_str().unwrap().to_owned();
    let auth_key = toss.register_card(&customer);
    let key = into_reply(
        post(
            "/billing-keys",
            json!({"customer_key": customer, "auth_key": auth_key}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    let created = into_reply(post("/payments", payment).await.unwrap()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    (
        key.body["billing_key_id"].as_str().unwrap().to_owned(),
        created.body["payment_id"].as_str().unwrap().to_owned(),
    )
}

/// SIGKILL while `request` is in flight: the client loses its connection.
pub(crate) async fn kill_during(
    child: &mut Child,
    request: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert!(
        request.await.unwrap().is_err(),
        "the client lost its connection"
    );
}

/// Payment `id` as the service at `base` shows it once `COMPLETED` (its settler has run), after
/// at most 20 s.
pub(crate) async fn completed_after_restart(
    client: &reqwest::Client,
    base: &str,
    id: &str,
) -> serde_json::Value {
    let mut payment = serde_json::Value::Null;
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
    payment
}

/// Stops a child started by [`start`].
pub(crate) fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

async fn sigkill_while_toss_holds_the_confirm(backend: Backend) {
    init_process();
    let database = TestDatabase::create(backend).await;
    let toss_server = MockServer::start().await;
    let toss = FakeToss::default();
    toss.mount(&toss_server).await;
    // Toss charges at once but answers only after a minute.
    toss.slow_confirm(&toss_server, Duration::from_secs(60))
        .await;
    let client = reqwest::Client::new();

    let (mut first, base) = started(&database.url, &toss_server.uri(), &client).await;
    let created = client
        .post(format!("{base}/payments"))
        .bearer_auth(API_KEY)
        .json(&json!({"user_id": "u-1", "order_id": "order_kill_00001", "amount_krw": 25000, "payment_method": "card"}))
        .send()
        .await
        .unwrap();
    let created = into_reply(created).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["payment_id"].as_str().unwrap().to_owned();
    toss.authenticate("pk_kill", "order_kill_00001", 25000);

    let confirm = client
        .post(format!("{base}/payments/confirm"))
        .json(&json!({"payment_id": id, "payment_key": "pk_kill"}))
        .send()
        .boxed();
    let confirm = tokio::spawn(confirm);
    for _ in 0..100 {
        let seen = toss_server.received_requests().await.unwrap_or_default();
        if seen.iter().any(|r| r.url.path() == "/v1/payments/confirm") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill_during(&mut first, confirm).await;

    // Restart on the same database.
    let (second, base) = started(&database.url, &toss_server.uri(), &client).await;
    let payment = completed_after_restart(&client, &base, &id).await;
    assert_eq!(payment["pg_transaction_id"], "pk_kill");
    let events = into_reply(
        client
            .get(format!("{base}/events"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
    .body;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "payment.completed");
    let confirms = toss_server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1/payments/confirm")
        .count();
    assert_eq!(
        confirms, 1,
        "the restarted service read back; it did not confirm again"
    );
    stop(second);
}
