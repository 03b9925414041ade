//! Billing keys: customer keys, keys issued from a card registration (redirect and POST),
//! stored encrypted under `BILLING_KEY_ENCRYPTION_KEY`, never shown, deleted (here and by
//! Toss's `BILLING_DELETED`).

use super::*;

on_both_databases!(
    customer_keys_are_random_stable_and_one_per_user,
    issue_through_the_success_redirect_and_reload_calls_toss_once,
    issue_through_the_redirects_to_configured_urls,
    issue_by_post_and_reload_calls_toss_once,
    an_issue_toss_did_not_answer_is_asked_again_with_the_same_key,
    deleted_key_is_refused,
    billing_deleted_webhook_disables_the_key,
    another_users_key_is_refused,
    billing_key_is_never_shown_and_stored_encrypted,
    a_key_encrypted_under_another_key_is_a_clear_error,
);

async fn customer_keys_are_random_stable_and_one_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app
        .post("/billing/customers", json!({"user_id": "u-1"}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let key = first.body["customer_key"].as_str().unwrap().to_owned();
    assert_eq!(first.body["user_id"], "u-1");
    assert!(uuid::Uuid::parse_str(&key).is_ok(), "UUID-like: {key}");
    assert!(!key.contains("u-1"));
    let again = app
        .post("/billing/customers", json!({"user_id": "u-1"}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["customer_key"], key.as_str());
    let other = customer_key(&app, "u-2").await;
    assert_ne!(other, key);

    // Racing first calls of one user end with one key.
    let replies =
        join_all((0..10).map(|_| app.post("/billing/customers", json!({"user_id": "u-race"}))))
            .await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one creates");
    let keys: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| r.body["customer_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");

    let bad = app
        .post("/billing/customers", json!({"user_id": "  "}))
        .await;
    bad.problem(422, "VALIDATION_ERROR");
    let anonymous = app
        .post_public("/billing/customers", json!({"user_id": "u-1"}))
        .await;
    anonymous.problem(401, "UNAUTHORIZED");
    app.stop().await;
}

async fn issue_through_the_success_redirect_and_reload_calls_toss_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customer_key(&app, "u-1").await;
    let auth_key = app.toss.register_card(&customer);
    let path = format!("/billing/toss/success?customerKey={customer}&authKey={auth_key}");
    let first = app.get_public(&path).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.body["status"], "ACTIVE");
    assert_eq!(first.body["user_id"], "u-1");
    assert_eq!(first.body["customer_key"], customer.as_str());
    assert_eq!(first.body["method"], "카드");
    assert_eq!(first.body["card"]["number"], "43301234****123*");
    assert_eq!(first.body["deleted_at"], Value::Null);
    let reload = app.get_public(&path).await;
    assert_eq!(reload.status, StatusCode::CREATED, "{}", reload.text);
    assert_eq!(reload.body["billing_key_id"], first.body["billing_key_id"]);
    assert_eq!(app.toss.issues(), 1, "a reload does not call Toss again");
    let listed = app.get("/billing-keys?user_id=u-1").await;
    assert_eq!(listed.body["billing_keys"].as_array().unwrap().len(), 1);

    // An unknown customer key: 404, and Toss is not asked.
    let unknown = app
        .get_public(&format!(
            "/billing/toss/success?customerKey=nobody-knows-me&authKey={auth_key}"
        ))
        .await;
    unknown.problem(404, "NOT_FOUND");
    assert_eq!(app.toss.issues(), 1);
    // A used authKey at Toss (for a new row): Toss refuses, nothing is stored.
    let other = customer_key(&app, "u-2").await;
    let refused = app
        .get_public(&format!(
            "/billing/toss/success?customerKey={other}&authKey=bln_never_registered"
        ))
        .await;
    let problem = refused.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "NOT_FOUND_BILLING");
    let none = app.get("/billing-keys?user_id=u-2").await;
    assert_eq!(none.body["billing_keys"], json!([]));
    // Missing parameters.
    app.get_public("/billing/toss/success?customerKey=abc")
        .await
        .problem(400, "VALIDATION_ERROR");
    // The fail redirect without a configured URL: a problem.
    let failed = app
        .get_public("/billing/toss/fail?code=PAY_PROCESS_CANCELED&message=%EC%B7%A8%EC%86%8C")
        .await;
    let problem = failed.problem(402, "PG_DECLINED");
    assert_eq!(problem["pg_code"], "PAY_PROCESS_CANCELED");
    assert_eq!(problem["pg_message"], "취소");
    app.stop().await;
}

async fn issue_through_the_redirects_to_configured_urls(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            billing_redirect: Some((
                "https://shop.example.com/card/ok".to_owned(),
                "https://shop.example.com/card/failed".to_owned(),
            )),
            ..Options::default()
        },
    )
    .await;
    let customer = customer_key(&app, "u-1").await;
    let auth_key = app.toss.register_card(&customer);
    let path = format!("/billing/toss/success?customerKey={customer}&authKey={auth_key}");
    let first = app.get_public(&path).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text);
    let location = first.headers["location"].to_str().unwrap().to_owned();
    let listed = app.get("/billing-keys?user_id=u-1").await;
    let id = listed.body["billing_keys"][0]["billing_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        location,
        format!("https://shop.example.com/card/ok?billing_key_id={id}")
    );
    let reload = app.get_public(&path).await;
    assert_eq!(reload.headers["location"].to_str().unwrap(), location);
    assert_eq!(app.toss.issues(), 1);

    let unknown = app
        .get_public("/billing/toss/success?customerKey=nobody-knows-me&authKey=bln_x")
        .await;
    assert_eq!(unknown.status, StatusCode::SEE_OTHER);
    let to = unknown.headers["location"].to_str().unwrap();
    assert!(
        to.starts_with("https://shop.example.com/card/failed?code=NOT_FOUND&message="),
        "{to}"
    );
    assert_eq!(app.toss.issues(), 1);

    let failed = app
        .get_public("/billing/toss/fail?code=PAY_PROCESS_CANCELED&message=cancelled")
        .await;
    assert_eq!(failed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        failed.headers["location"].to_str().unwrap(),
        "https://shop.example.com/card/failed?code=PAY_PROCESS_CANCELED&message=cancelled"
    );
    app.stop().await;
}

async fn issue_by_post_and_reload_calls_toss_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (customer, body) = registration(&app, "u-1").await;
    let replies = join_all((0..5).map(|_| app.post("/billing-keys", body.clone()))).await;
    let ids: std::collections::HashSet<String> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .map(|r| r.body["billing_key_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one key: {ids:?}");
    for reply in &replies {
        assert!(matches!(reply.status.as_u16(), 201 | 409), "{}", reply.text);
    }
    let again = app.post("/billing-keys", body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert!(ids.contains(again.body["billing_key_id"].as_str().unwrap()));
    assert_eq!(app.toss.issues(), 1, "Toss issued once");
    assert_eq!(app.toss.billing_keys_of(&customer).len(), 1);
    let id = again.body["billing_key_id"].as_str().unwrap();
    let one = app.get(&format!("/billing-keys/{id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["billing_key_id"], id);

    app.post(
        "/billing-keys",
        json!({"customer_key": "unknown-customer", "auth_key": "bln_1"}),
    )
    .await
    .problem(404, "NOT_FOUND");
    assert_eq!(app.toss.issues(), 1);
    app.post(
        "/billing-keys",
        json!({"customer_key": "has space", "auth_key": "bln_1"}),
    )
    .await
    .problem(400, "VALIDATION_ERROR");
    app.post_public("/billing-keys", body)
        .await
        .problem(401, "UNAUTHORIZED");
    app.get("/billing-keys/not-a-uuid")
        .await
        .problem(404, "NOT_FOUND");
    app.get("/billing-keys")
        .await
        .problem(400, "VALIDATION_ERROR");
    app.stop().await;
}

async fn an_issue_toss_did_not_answer_is_asked_again_with_the_same_key(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let (customer, body) = registration(&app, "u-1").await;
    // The first issue gets no answer in time (and does not reach the fake's books).
    app.toss_hangs("POST", r"^/v1/billing/authorizations/issue$", Some(1))
        .await;
    let first = app.post("/billing-keys", body.clone()).await;
    first.problem(409, "REQUEST_IN_PROGRESS");
    // Nothing is shown while it is open, and a retry within the lease does not call Toss.
    let listed = app.get("/billing-keys?user_id=u-1").await;
    assert_eq!(listed.body["billing_keys"], json!([]));
    app.post("/billing-keys", body.clone())
        .await
        .problem(409, "REQUEST_IN_PROGRESS");
    let issues = app
        .toss_requests("POST", "/v1/billing/authorizations/issue")
        .await;
    assert_eq!(issues.len(), 1);
    // The lease passes (as after a crash): the retry asks Toss again, with the same key.
    app.execute_sql(
        "UPDATE billing_keys SET issue_lease_until = $1",
        vec![(chrono::Utc::now() - chrono::Duration::hours(1)).into()],
    )
    .await;
    let retried = app.post("/billing-keys", body).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.text);
    let issues = app
        .toss_requests("POST", "/v1/billing/authorizations/issue")
        .await;
    assert_eq!(issues.len(), 2);
    assert_eq!(idempotency_key(&issues[0]), idempotency_key(&issues[1]));
    assert_eq!(app.toss.billing_keys_of(&customer).len(), 1);
    let listed = app.get("/billing-keys?user_id=u-1").await;
    assert_eq!(listed.body["billing_keys"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn deleted_key_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let path = format!("/billing-keys/{key}");
    let delete = |with_api_key| app.request(reqwest::Method::DELETE, &path, None, with_api_key);
    let deleted = delete(true).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body["status"], "DELETED");
    assert!(deleted.body["deleted_at"].is_string());
    let again = delete(true).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["deleted_at"], deleted.body["deleted_at"]);
    let id = payment_of(&app, "u-1", "order_bill_del01", 5_000).await;
    refused_charge(&app, &id, &key, (409, "BILLING_KEY_INACTIVE"), "PENDING").await;
    let anonymous = delete(false).await;
    anonymous.problem(401, "UNAUTHORIZED");
    app.stop().await;
}

async fn billing_deleted_webhook_disables_the_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, customer) = issued_key(&app, "u-1").await;
    let billing_key = app.toss.billing_keys_of(&customer).pop().unwrap();
    let body = app.toss.delete_billing_key(&billing_key);
    let reply = app.post_public("/webhooks/toss", body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["result"], "applied");
    let stored = app.get(&format!("/billing-keys/{key}")).await;
    assert_eq!(stored.body["status"], "DELETED");
    let id = payment_of(&app, "u-1", "order_bill_hook1", 5_000).await;
    charge(&app, &id, &key)
        .await
        .problem(409, "BILLING_KEY_INACTIVE");
    // Again, or about a key we never had: 200, ignored.
    let repeat = app.post_public("/webhooks/toss", body).await;
    assert_eq!(repeat.status, StatusCode::OK);
    assert_eq!(repeat.body["result"], "ignored");
    let unknown = app
        .post_public(
            "/webhooks/toss",
            json!({"eventType": "BILLING_DELETED", "createdAt": "2026-12-01T10:00:00.000000",
                   "data": {"billingKey": "bk_never_issued", "reason": "x"}}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.body["result"], "ignored");
    // It only ever disables: another user's key is untouched.
    let (other, _) = issued_key(&app, "u-2").await;
    assert_eq!(
        app.get(&format!("/billing-keys/{other}")).await.body["status"],
        "ACTIVE"
    );
    app.stop().await;
}

async fn another_users_key_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-2").await;
    let id = payment_of(&app, "u-1", "order_bill_other", 5_000).await;
    refused_charge(&app, &id, &key, (422, "BILLING_KEY_MISMATCH"), "PENDING").await;
    app.stop().await;
}

async fn billing_key_is_never_shown_and_stored_encrypted(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customer_key(&app, "u-1").await;
    let auth_key = app.toss.register_card(&customer);
    let mut answers = String::new();
    let issued = app
        .get_public(&format!(
            "/billing/toss/success?customerKey={customer}&authKey={auth_key}"
        ))
        .await;
    answers.push_str(&issued.text);
    let key = issued.body["billing_key_id"].as_str().unwrap().to_owned();
    let billing_key = app.toss.billing_keys_of(&customer).pop().unwrap();
    let id = payment_of(&app, "u-1", "order_bill_enc01", 5_000).await;
    answers.push_str(&charge(&app, &id, &key).await.text);
    for path in [
        format!("/billing-keys/{key}"),
        "/billing-keys?user_id=u-1".to_owned(),
        format!("/payments/{id}"),
        "/events?limit=1000".to_owned(),
        "/metrics".to_owned(),
    ] {
        answers.push_str(&app.get(&path).await.text);
    }
    assert!(answers.contains(&key), "the answers were collected");
    assert!(
        !answers.contains(&billing_key),
        "the billing key leaked into an answer"
    );

    // In the database: only ciphertext, a fresh nonce per value, nothing of the key in any column.
    let stored = app
        .query_column("SELECT key_ciphertext FROM billing_keys")
        .await;
    assert_eq!(stored.len(), 1);
    let ciphertext = stored[0].clone().expect("stored");
    assert_ne!(ciphertext, billing_key);
    assert!(!ciphertext.contains(&billing_key));
    // `v3.<key version>.<base64>`: the format, the version of the key that sealed it.
    let mut parts = ciphertext.splitn(3, '.');
    assert_eq!(parts.next(), Some("v3"), "{ciphertext}");
    let version = parts.next().unwrap();
    assert!(
        version.len() == 8 && version.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ciphertext}"
    );
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(parts.next().unwrap())
        .expect("base64 of nonce and ciphertext");
    assert_eq!(
        raw.len(),
        12 + billing_key.len() + 16,
        "nonce ‖ ciphertext ‖ tag"
    );
    assert!(!String::from_utf8_lossy(&raw).contains(&billing_key));
    for column in [
        "id",
        "user_id",
        "customer_key",
        "auth_key_hash",
        "status",
        "key_fingerprint",
        "method",
        "card_number",
    ] {
        for value in app
            .query_column(&format!("SELECT {column} FROM billing_keys"))
            .await
            .into_iter()
            .flatten()
        {
            assert!(!value.contains(&billing_key), "{column} holds the key");
            assert!(!value.contains(&auth_key), "{column} holds the authKey");
        }
    }
    app.stop().await;
}

async fn a_key_encrypted_under_another_key_is_a_clear_error(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order_bill_wrong", 5_000).await;
    // Another instance started with another encryption key (or a generated one).
    let other = app
        .spawn_instance_with(Options {
            billing_encryption_key: "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=".to_owned(),
            ..Options::default()
        })
        .await;
    let reply = into_reply(
        app.client
            .post(format!("{other}/payments/{id}/charge"))
            .bearer_auth(API_KEY)
            .json(&json!({"billing_key_id": key}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_undecryptable(&reply);
    assert!(
        charges_sent(&app.toss_server).await.is_empty(),
        "nothing was sent"
    );
    // The attempt was released: with the right key the payment is still chargeable.
    assert_eq!(app.payment(&id).await["status"], "PENDING");
    let ok = charge(&app, &id, &key).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    app.stop().await;
}

/// The binary with `BILLING_KEY_ENCRYPTION_KEY` set to `key` (or unset), on a fresh SQLite file:
/// its exit status (`None` while still running after `wait`) and everything it printed.
fn run_binary_with_encryption_key(key: Option<&str>, wait: Duration) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("ps_billing_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("output.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_payment-service"));
    command
        .current_dir(&dir)
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/db.sqlite?mode=rwc", dir.display()),
        )
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("API_KEYS", "billing-startup-key")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
    if let Some(key) = key {
        command.env("BILLING_KEY_ENCRYPTION_KEY", key);
    }
    let mut child = command.spawn().expect("the binary starts");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > wait {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = format!(
        "{}\n{}",
        std::fs::read_to_string(&output).unwrap_or_default(),
        std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
    (status, printed)
}

#[test]
fn a_malformed_encryption_key_stops_the_start_and_a_missing_one_is_warned_about() {
    // "not-32-bytes" in base64: decodes, but to 12 bytes.
    let (status, printed) =
        run_binary_with_encryption_key(Some("bm90LTMyLWJ5dGVz"), Duration::from_secs(30));
    assert!(
        matches!(status, Some(code) if code != 0),
        "{status:?}: {printed}"
    );
    assert!(
        printed.contains("BILLING_KEY_ENCRYPTION_KEY must be 32 bytes"),
        "{printed}"
    );
    assert!(
        !printed.contains("bm90LTMyLWJ5dGVz"),
        "the key is not printed"
    );
    let (status, printed) = run_binary_with_encryption_key(Some("%%%"), Duration::from_secs(30));
    assert!(matches!(status, Some(code) if code != 0), "{printed}");
    assert!(printed.contains("not valid base64"), "{printed}");

    // Unset: the service starts, with a loud warning.
    let (status, printed) = run_binary_with_encryption_key(None, Duration::from_secs(3));
    assert_eq!(status, None, "still running: {printed}");
    assert!(
        printed.contains("BILLING_KEY_ENCRYPTION_KEY is not set")
            && printed.contains("CANNOT be decrypted after a restart"),
        "{printed}"
    );
}
