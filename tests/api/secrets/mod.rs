//! Issue 5, point 6: the Toss secret key and the API keys never show, in any form, in what the
//! service prints (every log level of every crate, text and JSON), in its answers (bodies and
//! headers, errors included), in `/metrics`, or in the `Debug` output of its configuration.
//!
//! The real binary runs with `RUST_LOG=trace` against a permissive fake Toss (it accepts any
//! key, so the distinctive key below can be used) through a whole flow with its failures:
//! declines, Toss rejecting our key, Toss 5xx and timeouts, refunds partial, full and refused,
//! wrong and malformed requests, redirects, a webhook, the event log and the reconciler.

mod billing_flow;
mod binary;
mod config;
mod flow;
mod permissive_toss;
mod rotation;
mod scan;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::Value;
use wiremock::MockServer;

use binary::Service;
use flow::{Flow, drive_full_flow};
use permissive_toss::PermissiveToss;
use scan::leaks;

use crate::helpers::{Backend, TestDatabase, init_process};
use crate::on_both_databases;

on_both_databases!(
    text_logs_of_a_full_flow_hold_no_secret,
    json_logs_of_a_full_flow_hold_no_secret
);

const TOSS_SECRET: &str = "test_sk_SECRETSCAN_9f8e7d6c5b4a";
const API_KEY_ONE: &str = "apikey_SECRETSCAN_one";
const API_KEY_TWO: &str = "apikey_SECRETSCAN_two";
/// The billing contract's own secret key (`TOSS_BILLING_SECRET_KEY`).
const TOSS_BILLING_SECRET: &str = "test_sk_SECRETSCAN_billing_1a2b3c";
/// The billing key the permissive Toss issues: a stored card.
const BILLING_KEY: &str = "bk_SECRETSCAN_0a1b2c3d4e5f6a7b8c9d";
/// 32 bytes; `BILLING_KEY_ENCRYPTION_KEY` is their base64.
const ENCRYPTION_KEY_BYTES: &[u8; 32] = b"SECRETSCAN-billing-encryption-32";
/// A buyer's refund account number: digits only, so it cannot carry the marker; searched for
/// whole and by its first eight digits (a masked number keeps only the last four).
const REFUND_ACCOUNT_NUMBER: &str = "98765432101234";

// ---------------------------------------------------------------------------------------------
// The scenarios.

async fn text_logs_of_a_full_flow_hold_no_secret(backend: Backend) {
    full_flow_holds_no_secret(backend, "text").await
}

async fn json_logs_of_a_full_flow_hold_no_secret(backend: Backend) {
    full_flow_holds_no_secret(backend, "json").await
}

async fn full_flow_holds_no_secret(backend: Backend, log_format: &str) {
    init_process();
    let database = TestDatabase::create(backend).await;
    let toss_server = MockServer::start().await;
    let toss = PermissiveToss::default();
    toss.mount(&toss_server).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let mut service = Service::start(&database.url, &toss_server.uri(), log_format);
    service.wait_ready(&client).await;
    let mut flow = Flow {
        client,
        base: service.base.clone(),
        transcript: String::new(),
    };
    drive_full_flow(&mut flow).await;
    billing_flow::drive_billing_flow(&mut flow).await;

    // Let the reconciler read back the unsettled payment a few times, then scrape the metrics.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let metrics = flow
        .send("metrics", flow.request(Method::GET, "/metrics"))
        .await;
    assert!(
        matches!(metrics.status.as_u16(), 200 | 404),
        "GET /metrics: {}",
        metrics.status
    );
    let (stdout, stderr) = service.stop().await;

    // The secrets were really in use: Toss got them, as Basic auth, from the service (the
    // billing calls under the billing contract's key).
    let basic = format!("Basic {}", STANDARD.encode(format!("{TOSS_SECRET}:")));
    let billing_basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{TOSS_BILLING_SECRET}:"))
    );
    let authorizations = toss.authorizations.lock().unwrap().clone();
    assert!(
        authorizations.contains(&basic)
            && authorizations.contains(&billing_basic)
            && authorizations
                .iter()
                .all(|a| *a == basic || *a == billing_basic),
        "Toss should have received {basic:?} and {billing_basic:?}: {authorizations:?}"
    );
    assert!(
        toss.billing_charges
            .lock()
            .unwrap()
            .iter()
            .all(|path| path.contains(BILLING_KEY))
            && !toss.billing_charges.lock().unwrap().is_empty(),
        "the billing key was used to charge"
    );

    // The output is the whole trace, not an empty file.
    let output = format!("{stdout}\n{stderr}");
    // (The service turns sqlx's statement log off, so there is no SQL to look at.)
    for marker in [
        "TRACE",
        "hyper_util",
        "reqwest",
        "tower_http",
        "REJECT_CARD_PAYMENT",
        "UNAUTHORIZED_KEY",
    ] {
        assert!(
            output.contains(marker),
            "{marker:?} is missing from the captured output ({} bytes); is RUST_LOG=trace in effect?",
            output.len()
        );
    }
    if log_format == "json" {
        let first = stderr
            .lines()
            .chain(stdout.lines())
            .find(|l| l.starts_with('{'));
        assert!(
            first.is_some_and(|l| serde_json::from_str::<Value>(l).is_ok()),
            "JSON log lines expected"
        );
    }

    // The start-up log names the gateway, and only the gateway.
    let gateway_line = output
        .lines()
        .find(|line| line.contains("payment gateway"))
        .unwrap_or_else(|| panic!("no start-up line names the payment gateway"));
    assert!(
        gateway_line.to_lowercase().contains("toss"),
        "the gateway line does not say Toss: {gateway_line}"
    );
    // ... and which serves billing, under which variable's key (never the key).
    let billing_line = output
        .lines()
        .find(|line| line.contains("billing gateway"))
        .unwrap_or_else(|| panic!("no start-up line names the billing gateway"));
    assert!(
        billing_line.contains("TOSS_BILLING_SECRET_KEY"),
        "the billing gateway line does not say whose key: {billing_line}"
    );

    // API_KEYS is set: no key is generated, and none is printed.
    assert!(
        stdout.contains("Authorization: Bearer <one of API_KEYS>") && !stdout.contains("dev_"),
        "stdout: {stdout}"
    );

    // The scan itself finds what it looks for.
    assert!(
        !leaks(&format!("x-{basic}-x"), "a control").is_empty()
            && !leaks(
                &format!("Bearer {}", API_KEY_TWO.to_uppercase()),
                "a control"
            )
            .is_empty()
    );
    let mut found = leaks(&stdout, "stdout");
    found.extend(leaks(&stderr, "stderr (the logs)"));
    found.extend(leaks(
        &flow.transcript,
        "the answers (status, headers, bodies; /metrics included)",
    ));
    assert!(
        found.is_empty(),
        "{backend:?}, {log_format} logs: secrets leaked:\n{}",
        found.join("\n")
    );
}
