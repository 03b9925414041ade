//! API keys with names and scopes: every privileged route needs one scope (declared where it is
//! registered, shown in the OpenAPI document); a key without it is answered 403 `FORBIDDEN`
//! before anything else happens; the keys of `API_KEYS` can do everything; every API-key
//! caller, whichever its key, shares one `Idempotency-Key` namespace.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{API_KEY, Backend, Options, Reply, TestApp, into_reply, spawn_with};
use crate::on_both_databases;

const SCOPES: [&str; 8] = [
    "payments:read",
    "payments:write",
    "refunds:write",
    "billing:write",
    "events:read",
    "reconciliation",
    "review",
    "metrics:read",
];

/// The operations anyone may call (some check an API key themselves: the confirm without a
/// `payment_key`). Every other operation needs an API key with exactly one scope.
const PUBLIC: [(&str, &str); 9] = [
    ("post", "/payments/confirm"),
    ("get", "/payments/toss/success"),
    ("get", "/payments/toss/fail"),
    ("get", "/billing/toss/success"),
    ("get", "/billing/toss/fail"),
    ("post", "/webhooks/toss"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
];

const VERBS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Every operation of the document with the scopes its security requirements name (`None`:
/// no `api_key` requirement).
fn operations() -> Vec<(String, String, Value)> {
    let doc = serde_json::to_value(payment_service::http::openapi()).unwrap();
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for verb in VERBS {
            if item[verb].is_object() {
                found.push((verb.to_owned(), path.clone(), item[verb].clone()));
            }
        }
    }
    found
}

/// The one scope an operation's `api_key` requirement names.
fn scope_of(operation: &Value) -> Option<String> {
    let security = operation["security"].as_array()?;
    let [requirement] = security.as_slice() else {
        return None;
    };
    let [scope] = requirement["api_key"].as_array()?.as_slice() else {
        return None;
    };
    scope.as_str().map(str::to_owned)
}

#[test]
fn every_privileged_operation_needs_one_known_scope_and_says_so() {
    let public: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(verb, path)| ((*verb).to_owned(), (*path).to_owned()))
        .collect();
    let mut seen_public = BTreeSet::new();
    for (verb, path, operation) in operations() {
        if public.contains(&(verb.clone(), path.clone())) {
            seen_public.insert((verb, path));
            continue;
        }
        let scope = scope_of(&operation)
            .unwrap_or_else(|| panic!("{verb} {path} is not public and names no single scope"));
        assert!(SCOPES.contains(&scope.as_str()), "{verb} {path}: {scope}");
        assert!(
            operation["responses"]["401"].is_object() && operation["responses"]["403"].is_object(),
            "{verb} {path} documents 401 and 403"
        );
        assert!(
            operation["description"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("`{scope}`"))),
            "{verb} {path}: the description names the scope"
        );
    }
    assert_eq!(seen_public, public, "every public operation still exists");
    // The confirm needs `payments:write` when it has no `payment_key`, and says so.
    let confirm = operations()
        .into_iter()
        .find(|(verb, path, _)| verb == "post" && path == "/payments/confirm")
        .unwrap()
        .2;
    assert_eq!(
        confirm["security"],
        json!([{}, {"api_key": ["payments:write"]}])
    );
    assert!(confirm["responses"]["403"].is_object());
}

/// The routes of each scope must not be empty, or a test of that scope would prove nothing.
#[test]
fn every_scope_but_metrics_guards_some_route() {
    let used: BTreeSet<String> = operations()
        .iter()
        .filter_map(|(_, _, operation)| scope_of(operation))
        .collect();
    for scope in SCOPES {
        // `/metrics` stays public (or goes to an internal address): no route needs it yet.
        if scope != "metrics:read" {
            assert!(used.contains(scope), "no route needs {scope}");
        }
    }
}

on_both_databases!(
    a_key_without_the_scope_gets_403_on_every_route_of_that_scope,
    a_refused_request_changes_nothing_and_does_not_take_its_idempotency_key,
    the_unverified_confirm_needs_payments_write,
    idempotency_keys_of_api_key_callers_are_one_namespace,
    reviews_name_the_key_that_made_them,
);

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key of a file entry: made from its name, never written to the file.
fn key_of(name: &str) -> String {
    format!("test-scoped-key-{name}")
}

/// For each scope: `only-<scope>` with just it, and `all-but-<scope>` with every other one;
/// `none` with no scope at all. The file holds only their digests.
fn keys_file() -> String {
    let mut entries = vec![("none".to_owned(), Vec::new())];
    for scope in SCOPES {
        let name = scope.replace(':', "-");
        entries.push((format!("only-{name}"), vec![scope]));
        entries.push((
            format!("all-but-{name}"),
            SCOPES.iter().copied().filter(|s| *s != scope).collect(),
        ));
    }
    entries.push((
        "checkout".to_owned(),
        vec!["payments:read", "payments:write"],
    ));
    entries.push((
        "ops".to_owned(),
        vec!["payments:read", "review", "refunds:write"],
    ));
    let text: String = entries
        .iter()
        .map(|(name, scopes)| {
            format!(
                "[[api_keys]]\nname = {name:?}\nsha256 = {:?}\nscopes = {scopes:?}\n\n",
                sha256_hex(&key_of(name))
            )
        })
        .collect();
    let path = std::env::temp_dir().join(format!(
        "ps_api_keys_{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

async fn spawn_scoped(backend: Backend) -> (TestApp, String) {
    let file = keys_file();
    let app = spawn_with(
        backend,
        Options {
            api_keys_file: Some(file.clone()),
            ..Options::default()
        },
    )
    .await;
    (app, file)
}

/// `method path` with `body`, as the holder of `key` (`None`: no key).
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
    idempotency_key: Option<&str>,
) -> Reply {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let mut request = app.client.request(method, format!("{}{path}", app.address));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(idempotency_key) = idempotency_key {
        request = request.header("Idempotency-Key", idempotency_key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    into_reply(request.send().await.unwrap()).await
}

/// The path with every `{parameter}` replaced by a fresh UUID.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(&uuid::Uuid::now_v7().to_string());
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Walks every privileged operation of the document: without a key 401; with a key that has
/// every scope but the route's, 403 `FORBIDDEN` naming the scope; with a key that has only
/// that scope, or a key of `API_KEYS`, neither 401 nor 403 (the request reaches its handler).
async fn a_key_without_the_scope_gets_403_on_every_route_of_that_scope(backend: Backend) {
    let (app, _file) = spawn_scoped(backend).await;
    let mut walked = 0;
    for (verb, path, operation) in operations() {
        let Some(scope) = scope_of(&operation) else {
            continue;
        };
        let name = scope.replace(':', "-");
        let target = concrete(&path);
        let body = (verb == "post").then(|| json!({}));
        let what = format!("{verb} {path} ({scope})");

        let anonymous = call(&app, &verb, &target, body.as_ref(), None, None).await;
        anonymous.problem(401, "UNAUTHORIZED");

        for refused in [key_of(&format!("all-but-{name}")), key_of("none")] {
            let reply = call(&app, &verb, &target, body.as_ref(), Some(&refused), None).await;
            let problem = reply.problem(403, "FORBIDDEN");
            assert!(
                problem["detail"].as_str().unwrap().contains(&scope),
                "{what}: {}",
                reply.text
            );
            assert!(!reply.text.contains(&refused), "never the key");
        }

        for allowed in [key_of(&format!("only-{name}")), API_KEY.to_owned()] {
            let reply = call(&app, &verb, &target, body.as_ref(), Some(&allowed), None).await;
            assert!(
                reply.status != StatusCode::UNAUTHORIZED && reply.status != StatusCode::FORBIDDEN,
                "{what} with {allowed}: {} {}",
                reply.status,
                reply.text
            );
        }
        walked += 1;
    }
    assert!(walked >= 18, "walked {walked} operations");
    app.stop().await;
}

/// A key without the scope creates nothing, and its `Idempotency-Key` is not taken: the same
/// key and body from a key with the scope then runs (201, not a replay of the 403).
async fn a_refused_request_changes_nothing_and_does_not_take_its_idempotency_key(backend: Backend) {
    let (app, _file) = spawn_scoped(backend).await;
    let body = json!({"user_id": "u-1", "order_id": "order_scope_0001", "amount_krw": 1000, "payment_method": "card"});
    let refused = call(
        &app,
        "post",
        "/payments",
        Some(&body),
        Some(&key_of("all-but-payments-write")),
        Some("scope-create-1"),
    )
    .await;
    refused.problem(403, "FORBIDDEN");
    assert_eq!(app.get("/payments").await.body["total_count"], 0);
    let created = call(
        &app,
        "post",
        "/payments",
        Some(&body),
        Some(&key_of("checkout")),
        Some("scope-create-1"),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(created.headers.get("idempotent-replayed").is_none());
    let id = created.body["payment_id"].as_str().unwrap();

    // A refund by a key without `refunds:write` sends nothing to Toss.
    let refused = call(
        &app,
        "post",
        &format!("/payments/{id}/refund"),
        Some(&json!({"reason": "r"})),
        Some(&key_of("checkout")),
        None,
    )
    .await;
    refused.problem(403, "FORBIDDEN");
    assert_eq!(
        app.get(&format!("/payments/{id}/refunds")).await.body["refunds"],
        json!([])
    );
    app.stop().await;
}

/// A confirm without a `payment_key` records what the caller says: it needs `payments:write`.
/// With a `payment_key` (Toss's answer is the proof) no key, and so no scope, is needed.
async fn the_unverified_confirm_needs_payments_write(backend: Backend) {
    let (app, _file) = spawn_scoped(backend).await;
    let created = app.create_payment("order_scope_0002", 3000).await;
    let id = created["payment_id"].as_str().unwrap();
    let unverified =
        json!({"payment_id": id, "pg_transaction_id": "tx-1", "pg_provider": "manual"});
    for key in [
        key_of("all-but-payments-write"),
        key_of("only-payments-read"),
    ] {
        call(
            &app,
            "post",
            "/payments/confirm",
            Some(&unverified),
            Some(&key),
            None,
        )
        .await
        .problem(403, "FORBIDDEN");
    }
    call(
        &app,
        "post",
        "/payments/confirm",
        Some(&unverified),
        None,
        None,
    )
    .await
    .problem(401, "UNAUTHORIZED");
    assert_eq!(app.payment(id).await["status"], "PENDING");
    let allowed = call(
        &app,
        "post",
        "/payments/confirm",
        Some(&unverified),
        Some(&key_of("only-payments-write")),
        None,
    )
    .await;
    assert!(
        allowed.status != StatusCode::UNAUTHORIZED && allowed.status != StatusCode::FORBIDDEN,
        "{}",
        allowed.text
    );

    // The buyer's confirm, with a key that has no scope at all, or none.
    let created = app.create_payment("order_scope_0003", 3000).await;
    app.toss
        .authenticate("pk_scope_0003", "order_scope_0003", 3000);
    let confirmed = call(
        &app,
        "post",
        "/payments/confirm",
        Some(&json!({"payment_id": created["payment_id"], "payment_key": "pk_scope_0003"})),
        Some(&key_of("none")),
        None,
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
    app.stop().await;
}

/// Keys are rotated: a retry of an operation under another key (of `API_KEYS` or of the file)
/// with the same `Idempotency-Key` replays the first answer and repeats nothing.
async fn idempotency_keys_of_api_key_callers_are_one_namespace(backend: Backend) {
    let (app, _file) = spawn_scoped(backend).await;
    let body = json!({"user_id": "u-1", "order_id": "order_scope_0004", "amount_krw": 5000, "payment_method": "card"});
    let first = call(
        &app,
        "post",
        "/payments",
        Some(&body),
        Some(API_KEY),
        Some("scope-rotate-1"),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let retry = call(
        &app,
        "post",
        "/payments",
        Some(&body),
        Some(&key_of("checkout")),
        Some("scope-rotate-1"),
    )
    .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    assert_eq!(retry.text, first.text);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(app.get("/payments").await.body["total_count"], 1);

    // A refund retried under another key is sent to Toss once.
    let paid = app
        .completed_payment("order_scope_0005", 5000, "pk_scope_0005")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let refund = json!({"reason": "r", "refund_amount_krw": 1000});
    let path = format!("/payments/{id}/refund");
    let first = call(
        &app,
        "post",
        &path,
        Some(&refund),
        Some(&key_of("ops")),
        Some("scope-refund-1"),
    )
    .await;
    assert!(first.status.is_success(), "{}", first.text);
    for key in [API_KEY.to_owned(), key_of("only-refunds-write")] {
        let retry = call(
            &app,
            "post",
            &path,
            Some(&refund),
            Some(&key),
            Some("scope-refund-1"),
        )
        .await;
        assert_eq!(retry.text, first.text, "{key}");
        assert_eq!(retry.headers["idempotent-replayed"], "true");
    }
    let refunds = app.get(&format!("/payments/{id}/refunds")).await.body["refunds"].clone();
    assert_eq!(refunds.as_array().unwrap().len(), 1, "{refunds}");
    assert_eq!(app.toss.payment("pk_scope_0005").unwrap().balance, 4000);
    app.stop().await;
}

/// A review records the name of the key that made it (from the file here), never the key.
async fn reviews_name_the_key_that_made_them(backend: Backend) {
    let (app, _file) = spawn_scoped(backend).await;
    let paid = app
        .completed_payment("order_scope_0006", 5000, "pk_scope_0006")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    app.execute_sql(
        "UPDATE payments SET needs_review = $1, review_reason = $2 WHERE id = $3",
        vec![true.into(), "seeded".into(), id.into()],
    )
    .await;
    let note = json!({"action": "dismiss", "note": "checked by hand"});
    let path = format!("/payments/{id}/review");
    call(
        &app,
        "post",
        &path,
        Some(&note),
        Some(&key_of("checkout")),
        None,
    )
    .await
    .problem(403, "FORBIDDEN");
    let reviewed = call(&app, "post", &path, Some(&note), Some(&key_of("ops")), None).await;
    assert_eq!(reviewed.status, StatusCode::OK, "{}", reviewed.text);
    let reviews = app.get(&format!("/payments/{id}/reviews")).await;
    assert_eq!(
        reviews.body["reviews"][0]["reviewer"], "ops",
        "{}",
        reviews.text
    );
    assert!(!reviews.text.contains(&key_of("ops")));
    app.stop().await;
}
