//! Issue 19, item 4: sealed values (billing keys, refund accounts) are bound to their row and
//! carry a key version; `BILLING_KEY_ENCRYPTION_KEY` lists keys newest first (the newest seals,
//! any opens); `payment-service reseal` moves old values under the newest key; values sealed
//! by version 2 (billing keys without associated data, refund accounts under the key derived
//! from the Toss key) still open, and `reseal` moves them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::billing::{assert_undecryptable, charge, issued_key, payment_of};
use crate::fake_toss::SECRET_KEY;
use crate::helpers::{BILLING_ENCRYPTION_KEY, Backend, Options, TestApp, deliver, spawn_app};
use crate::on_both_databases;
use payment_service::crypto::Sealer;
use payment_service::domain::RefundAccount;

on_both_databases!(
    a_sealed_billing_key_copied_to_another_row_does_not_open,
    rotation_keeps_every_key_and_account_readable,
    values_sealed_by_version_2_open_and_are_resealed,
);

/// The key rotated to (32 bytes, base64); the tests' default key is the old one.
const NEW_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
/// A buyer's refund account number.
const ACCOUNT: &str = "110123456789";

fn with_keys(keys: &str) -> Options {
    Options {
        billing_encryption_key: keys.to_owned(),
        ..Options::default()
    }
}

async fn stored(app: &TestApp, sql: &str) -> String {
    app.query_column(sql)
        .await
        .pop()
        .flatten()
        .expect("a sealed value")
}

async fn billing_ciphertext(app: &TestApp, key_id: &str) -> String {
    stored(
        app,
        &format!("SELECT key_ciphertext FROM billing_keys WHERE id = '{key_id}'"),
    )
    .await
}

async fn refund_account_of(app: &TestApp, refund_id: &str) -> String {
    stored(
        app,
        &format!("SELECT refund_account FROM refunds WHERE id = '{refund_id}'"),
    )
    .await
}

/// `v3.<key version>.`: which key sealed a value.
fn key_version(sealed: &str) -> &str {
    assert!(sealed.starts_with("v3."), "{sealed}");
    sealed.split('.').nth(1).unwrap()
}

/// Runs `payment-service reseal` on the app's database with its current settings: the exit
/// code and what it printed.
async fn reseal(app: &TestApp) -> (u8, String) {
    let mut out = Vec::new();
    let code = payment_service::startup::reseal_command(app.settings(), 2, &mut out)
        .await
        .expect("reseal runs");
    (code, String::from_utf8(out).unwrap())
}

/// A virtual-account payment of 30,000 KRW, deposited (`COMPLETED`).
async fn deposited(app: &TestApp, order_id: &str, key: &str) -> String {
    let reply = app
        .post(
            "/payments",
            json!({"user_id": "u-1", "order_id": order_id, "amount_krw": 30000, "payment_method": "virtual_account"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.body["payment_id"].as_str().unwrap().to_owned();
    app.toss.authenticate_virtual_account(key, order_id, 30000);
    let confirmed = app
        .post_public(
            "/payments/confirm",
            json!({"order_id": order_id, "payment_key": key, "amount_krw": 30000}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
    assert!(app.toss.deposit(key));
    deliver(app, None, &app.toss.deposit_callback(key)).await;
    assert_eq!(app.payment(&id).await["status"], "COMPLETED");
    id
}

/// A refund of `payment` to the buyer's account, answered 202 and kept pending (another
/// cancel holds the payment's slot): its account stays sealed on the row until its turn.
async fn pending_refund(app: &TestApp, payment: &str) -> String {
    let holder = uuid::Uuid::now_v7().to_string();
    let until = chrono::Utc::now() + chrono::Duration::hours(1);
    app.execute_sql(
        "UPDATE payments SET cancel_slot = $1, cancel_slot_until = $2 WHERE id = $3",
        vec![holder.into(), until.into(), payment.into()],
    )
    .await;
    let reply = app
        .post(
            &format!("/payments/{payment}/refund"),
            json!({"reason": "returned", "refund_amount_krw": 10000,
                   "refund_receive_account": {"bank": "88", "account_number": ACCOUNT, "holder_name": "홍길동"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    reply.body["refund_id"].as_str().unwrap().to_owned()
}

/// Lets the pending refund of `payment` go: the reconciler sends it, opening its account.
async fn release_and_send(app: &TestApp, payment: &str) {
    app.execute_sql(
        "UPDATE payments SET cancel_slot = NULL, cancel_slot_until = NULL WHERE id = $1",
        vec![payment.into()],
    )
    .await;
    app.execute_sql(
        "UPDATE refunds SET next_reconcile_at = $1 WHERE payment_id = $2",
        vec![chrono::Utc::now().into(), payment.into()],
    )
    .await;
    app.service.settle_due().await.unwrap();
    let refunds = app.get(&format!("/payments/{payment}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds[0]["status"], "COMPLETED", "{refunds}");
}

/// The refund account of the last cancel sent to Toss.
async fn last_refund_account_sent(app: &TestApp) -> Value {
    let sent = app.toss_requests("POST", "/cancel").await;
    let body: Value = serde_json::from_slice(&sent.last().expect("a cancel").body).unwrap();
    body["refundReceiveAccount"].clone()
}

fn account_json() -> Value {
    json!({"bank": "88", "accountNumber": ACCOUNT, "holderName": "홍길동"})
}

async fn charged(app: &TestApp, order_id: &str, key_id: &str) {
    let payment = payment_of(app, "u-1", order_id, 5_000).await;
    let reply = charge(app, &payment, key_id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED", "{}", reply.text);
}

async fn a_sealed_billing_key_copied_to_another_row_does_not_open(backend: Backend) {
    let app = spawn_app(backend).await;
    let (first, _) = issued_key(&app, "u-1").await;
    let (second, _) = issued_key(&app, "u-1").await;
    // Someone with write access to the table points the second key at the first key's card.
    app.execute_sql(
        "UPDATE billing_keys SET key_ciphertext = (SELECT key_ciphertext FROM billing_keys WHERE id = $1) WHERE id = $2",
        vec![first.as_str().into(), second.as_str().into()],
    )
    .await;
    let payment = payment_of(&app, "u-1", "order_seal_copy1", 5_000).await;
    let reply = charge(&app, &payment, &second).await;
    assert_undecryptable(&reply);
    assert!(
        app.toss_requests("POST", "/v1/billing/")
            .await
            .iter()
            .all(|r| r.url.path().contains("authorizations")),
        "no charge was sent"
    );
    assert_eq!(app.payment(&payment).await["status"], "PENDING");
    // The first key, on its own row, still charges.
    let ok = charge(&app, &payment, &first).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    app.stop().await;
}

async fn rotation_keeps_every_key_and_account_readable(backend: Backend) {
    // Key A (the tests' default) seals a billing key and a pending refund's account.
    let mut app = spawn_app(backend).await;
    let (old_key, _) = issued_key(&app, "u-1").await;
    let va = deposited(&app, "order_seal_rot_va", "pk_seal_rot_va").await;
    let refund = pending_refund(&app, &va).await;
    let version_a = key_version(&billing_ciphertext(&app, &old_key).await).to_owned();
    assert_eq!(
        key_version(&refund_account_of(&app, &refund).await),
        version_a,
        "the account is sealed under the encryption key"
    );

    // Restart with "B,A": everything opens, new seals use B.
    app.restart_with(with_keys(&format!("{NEW_KEY},{BILLING_ENCRYPTION_KEY}")))
        .await;
    let (new_key, _) = issued_key(&app, "u-1").await;
    let version_b = key_version(&billing_ciphertext(&app, &new_key).await).to_owned();
    assert_ne!(version_b, version_a);
    charged(&app, "order_seal_rot_01", &old_key).await;
    charged(&app, "order_seal_rot_02", &new_key).await;

    // Reseal (in batches of 2): the old values move, the new one is left alone.
    let (code, printed) = reseal(&app).await;
    assert_eq!(code, 0, "{printed}");
    assert!(
        printed.contains(&format!("reseal under key version {version_b}")),
        "{printed}"
    );
    assert!(
        printed.contains(
            "billing_keys: examined=2 resealed=1 already_current=1 unreadable=0 changed_meanwhile=0"
        ),
        "{printed}"
    );
    assert!(
        printed.contains(
            "refund_accounts: examined=1 resealed=1 already_current=0 unreadable=0 changed_meanwhile=0"
        ),
        "{printed}"
    );
    assert_eq!(
        key_version(&billing_ciphertext(&app, &old_key).await),
        version_b
    );
    assert_eq!(
        key_version(&refund_account_of(&app, &refund).await),
        version_b
    );
    // A row is replaced only if it still holds the value read: one changed meanwhile (by a
    // running instance, or by another reseal) is left alone and counted.
    let store = payment_service::store::Store::connect(&app.settings().database.options(2))
        .await
        .unwrap();
    let current = billing_ciphertext(&app, &old_key).await;
    use payment_service::store::SealedColumn;
    assert!(
        !store
            .replace_sealed(
                SealedColumn::BillingKey,
                &old_key,
                "v3.stale.value",
                "v3.x.y"
            )
            .await
            .unwrap()
    );
    assert_eq!(billing_ciphertext(&app, &old_key).await, current);
    assert!(
        !store
            .replace_sealed(SealedColumn::RefundAccount, &refund, "v1.stale", "v3.x.y")
            .await
            .unwrap()
    );
    store.close().await;

    // Idempotent: a second run changes nothing.
    let (code, again) = reseal(&app).await;
    assert_eq!(code, 0, "{again}");
    assert!(
        again.contains(
            "billing_keys: examined=2 resealed=0 already_current=2 unreadable=0 changed_meanwhile=0"
        ) && again.contains(
            "refund_accounts: examined=1 resealed=0 already_current=1 unreadable=0 changed_meanwhile=0"
        ),
        "{again}"
    );

    // Restart with "B" alone: everything still opens.
    app.restart_with(with_keys(NEW_KEY)).await;
    charged(&app, "order_seal_rot_03", &old_key).await;
    charged(&app, "order_seal_rot_04", &new_key).await;
    release_and_send(&app, &va).await;
    assert_eq!(last_refund_account_sent(&app).await, account_json());
    app.stop().await;
}

/// A billing key as version 2 stored it: bare base64 under the key, no associated data.
fn sealed_by_version_2(billing_key: &str) -> String {
    let key: [u8; 32] = STANDARD
        .decode(BILLING_ENCRYPTION_KEY)
        .unwrap()
        .try_into()
        .unwrap();
    Sealer::new(&key).seal(billing_key.as_bytes(), b"")
}

/// A refund account as version 2 stored it: `v1.` and a seal under a key derived from the
/// Toss secret key, bound to the refund's id.
fn account_sealed_by_version_2(refund_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"payment-service refund account sealing v1\0");
    hasher.update(SECRET_KEY.as_bytes());
    let key: [u8; 32] = hasher.finalize().into();
    let account = RefundAccount::parse("88", ACCOUNT, "홍길동").unwrap();
    let plain = serde_json::to_vec(&account).unwrap();
    format!(
        "v1.{}",
        Sealer::new(&key).seal(&plain, refund_id.as_bytes())
    )
}

async fn values_sealed_by_version_2_open_and_are_resealed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key_id, customer) = issued_key(&app, "u-1").await;
    let billing_key = app.toss.billing_keys_of(&customer).pop().unwrap();
    app.execute_sql(
        "UPDATE billing_keys SET key_ciphertext = $1 WHERE id = $2",
        vec![
            sealed_by_version_2(&billing_key).into(),
            key_id.as_str().into(),
        ],
    )
    .await;
    let va = deposited(&app, "order_seal_v2_va", "pk_seal_v2_va").await;
    let refund = pending_refund(&app, &va).await;
    app.execute_sql(
        "UPDATE refunds SET refund_account = $1 WHERE id = $2",
        vec![
            account_sealed_by_version_2(&refund).into(),
            refund.as_str().into(),
        ],
    )
    .await;

    // They open as they are.
    charged(&app, "order_seal_v2_01", &key_id).await;

    // A billing key under a key nobody configured any more: unreadable, left as it is.
    let (lost, _) = issued_key(&app, "u-2").await;
    let stranger: [u8; 32] = [7; 32];
    app.execute_sql(
        "UPDATE billing_keys SET key_ciphertext = $1 WHERE id = $2",
        vec![
            Sealer::new(&stranger).seal(b"bk_lost", b"").into(),
            lost.as_str().into(),
        ],
    )
    .await;
    let lost_value = billing_ciphertext(&app, &lost).await;

    let (code, printed) = reseal(&app).await;
    assert_eq!(code, 1, "some value is unreadable: {printed}");
    assert!(
        printed.contains(
            "billing_keys: examined=2 resealed=1 already_current=0 unreadable=1 changed_meanwhile=0"
        ),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("unreadable billing_keys id={lost}")),
        "{printed}"
    );
    assert!(
        printed.contains(
            "refund_accounts: examined=1 resealed=1 already_current=0 unreadable=0 changed_meanwhile=0"
        ),
        "{printed}"
    );
    assert!(!printed.contains(ACCOUNT) && !printed.contains(&billing_key));
    assert!(billing_ciphertext(&app, &key_id).await.starts_with("v3."));
    assert!(refund_account_of(&app, &refund).await.starts_with("v3."));
    assert_eq!(
        billing_ciphertext(&app, &lost).await,
        lost_value,
        "untouched"
    );

    // Moved, they still open: the charge, and the refund sent with its account.
    charged(&app, "order_seal_v2_02", &key_id).await;
    release_and_send(&app, &va).await;
    assert_eq!(last_refund_account_sent(&app).await, account_json());
    let payment = payment_of(&app, "u-2", "order_seal_v2_03", 5_000).await;
    charge(&app, &payment, &lost)
        .await
        .problem(409, "BILLING_KEY_INACTIVE");
    app.stop().await;
}

/// `payment-service reseal …` as an operator runs it, on a fresh SQLite file: exit code, stdout,
/// stderr.
fn run_reseal(args: &[&str], key: Option<&str>) -> (Option<i32>, String, String) {
    let dir = std::env::temp_dir().join(format!("ps_reseal_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_payment-service"));
    command
        .arg("reseal")
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/db.sqlite?mode=rwc", dir.display()),
        )
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    if let Some(key) = key {
        command.env("BILLING_KEY_ENCRYPTION_KEY", key);
    }
    let output = command.output().expect("the binary runs");
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_reseal_command_needs_a_key_and_prints_its_counts() {
    let (code, _, stderr) = run_reseal(&[], None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("payment-service reseal: BILLING_KEY_ENCRYPTION_KEY is not set"),
        "{stderr}"
    );
    let (code, _, stderr) = run_reseal(&["--batch-size", "0"], Some(NEW_KEY));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("usage:"), "{stderr}");
    let (code, _, stderr) = run_reseal(&[], Some("bm90LTMyLWJ5dGVz"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("must be 32 bytes"), "{stderr}");
    assert!(
        !stderr.contains("bm90LTMyLWJ5dGVz"),
        "the key is not printed"
    );

    let keys = format!("{NEW_KEY},{BILLING_ENCRYPTION_KEY}");
    let (code, stdout, stderr) = run_reseal(&["--batch-size=50"], Some(&keys));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("billing_keys: examined=0 resealed=0 already_current=0 unreadable=0")
            && stdout.contains("refund_accounts: examined=0 resealed=0"),
        "{stdout}"
    );
    assert!(!stdout.contains(NEW_KEY) && !stderr.contains(NEW_KEY));
}
