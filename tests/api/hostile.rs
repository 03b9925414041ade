//! Issue 5, property-based: generated bodies, headers, query strings, path ids and methods are
//! thrown at every route of one running application (per database). Every answer is below 500,
//! every 4xx is a complete problem document, and a refused request changes nothing: neither the
//! database (compared row by row, every column) nor what the fake Toss received.
//!
//! Generated values lean towards trouble: oversize and negative numbers, `-0`, floats, huge digit
//! strings, control and bidi characters, emoji, 12 KB strings, SQL and HTML metacharacters,
//! duplicated JSON keys, wrong types, nested values, raw non-JSON bodies, odd content types,
//! API keys right and wrong, `Idempotency-Key`s valid and not, and percent-encoded garbage in
//! paths and queries. Some values are the real ids, order ids, payment keys and amounts, so that
//! requests also get past validation and reach the payment logic; the few that legitimately
//! change state (a 2xx on a route that may change it, or a declined confirm) are accounted for.
//!
//! A NUL (U+0000) is put into strings of bodies and query parameters and into path segments on
//! every route (PostgreSQL's text cannot hold one), and such requests must be refused.
//!
//! Cases: `HOSTILE_CASES` (default 300) per database; `PROPTEST_RNG_SEED` makes a run repeatable;
//! `HOSTILE_VERBOSE=1` prints every request and answer. With `--nocapture` the test prints how
//! many answers of each (route, status, code) it saw, to judge how deep the cases reach.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use sea_orm::{Database, DatabaseConnection, FromQueryResult, JsonValue, Statement};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, Backend, TestApp, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    generated_hostile_requests_are_problems_and_change_nothing,
    confirm_with_the_payment_key_of_another_order,
);

// ---------------------------------------------------------------------------------------------
// The scenario.

async fn generated_hostile_requests_are_problems_and_change_nothing(backend: Backend) {
    let started = Instant::now();
    let app = spawn_app(backend).await;
    let known = Arc::new(Known::create(&app).await);
    let db = Database::connect(&app.database_url)
        .await
        .expect("connect to the test database");
    let context = Context {
        app: &app,
        db: &db,
        seen: Default::default(),
    };

    let cases = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let config = Config {
        cases,
        failure_persistence: None,
        fork: false,
        timeout: 0,
        max_shrink_iters: 400,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let strategy = any_request(&known);
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(config);
        runner.run(&strategy, |request| {
            handle
                .block_on(context.check(&request))
                .map_err(TestCaseError::fail)
        })
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, request)) => panic!(
            "{backend:?}: a generated request broke the contract.\n\
             minimal failing request:\n{request:?}\n\
             what went wrong:\n{reason}"
        ),
        Err(TestError::Abort(reason)) => panic!("{backend:?}: proptest aborted: {reason}"),
    }
    eprintln!(
        "hostile ({backend:?}): {cases} generated requests in {:.1} s; answers: {:#?}",
        started.elapsed().as_secs_f64(),
        context.seen.lock().unwrap()
    );
    let _ = db.close().await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// What exists before the cases: payments in known states, and the values that name them.

#[derive(Debug)]
struct Known {
    ids: Vec<String>,
    order_ids: Vec<String>,
    payment_keys: Vec<String>,
    amounts: Vec<i64>,
}

impl Known {
    async fn create(app: &TestApp) -> Self {
        let mut ids = Vec::new();
        let mut order_ids = Vec::new();
        let mut amounts = Vec::new();
        let mut payment_keys = Vec::new();
        let mut remember = |payment: &Value| {
            ids.push(payment["payment_id"].as_str().unwrap().to_owned());
            order_ids.push(payment["order_id"].as_str().unwrap().to_owned());
            amounts.push(payment["amount_krw"].as_i64().unwrap());
        };
        // PENDING, three of them: generated confirms with a fresh payment key may complete some.
        for (n, amount) in [(1, 10_000), (2, 20_000), (3, 30_000)] {
            remember(
                &app.create_payment(&format!("order_hostile_pending_{n}"), amount)
                    .await,
            );
        }
        // PENDING with a failure recorded by the fail redirect.
        let failed = app
            .get_public(
                "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=cancelled&orderId=order_hostile_pending_3",
            )
            .await;
        assert_eq!(failed.status, StatusCode::OK, "{}", failed.text);
        // COMPLETED, PARTIAL_REFUND and REFUNDED, all paid through the fake Toss.
        for (name, amount, refund) in [
            ("done", 15_000, None),
            (
                "part",
                50_000,
                Some(json!({"reason": "one item returned", "refund_amount_krw": 20_000})),
            ),
            (
                "full",
                7_000,
                Some(json!({"reason": "everything returned"})),
            ),
        ] {
            let key = format!("pk_hostile_{name}_01");
            let paid = app
                .completed_payment(&format!("order_hostile_{name}_01"), amount, &key)
                .await;
            payment_keys.push(key);
            if let Some(refund) = refund {
                let id = paid["payment_id"].as_str().unwrap();
                let reply = app.post(&format!("/payments/{id}/refund"), refund).await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            }
            remember(&app.payment(paid["payment_id"].as_str().unwrap()).await);
        }
        let statuses: Vec<String> = {
            let mut statuses = Vec::new();
            for id in &ids {
                statuses.push(app.payment(id).await["status"].as_str().unwrap().to_owned());
            }
            statuses
        };
        assert_eq!(
            statuses,
            [
                "PENDING",
                "PENDING",
                "PENDING",
                "COMPLETED",
                "PARTIAL_REFUND",
                "REFUNDED"
            ]
        );
        Self {
            ids,
            order_ids,
            payment_keys,
            amounts,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One generated request, shown as an HTTP request when a case fails.

#[derive(Clone)]
struct Hostile {
    method: String,
    /// Path and query, exactly as sent (normalised by the URL parser).
    target: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

impl Hostile {
    fn new(
        method: String,
        path: String,
        query: String,
        headers: Vec<(&'static str, Vec<u8>)>,
        body: Option<Vec<u8>>,
    ) -> Self {
        let url = url::Url::parse(&format!("http://127.0.0.1{path}{query}"))
            .expect("generated paths and queries parse");
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        Self {
            method,
            target,
            headers,
            body,
        }
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// What the request is, for the rules about what it may change.
    fn route(&self) -> Route {
        let path = self.path();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // HEAD runs the GET handler (RFC 9110), so a HEAD of the success redirect confirms.
        let method = match self.method.as_str() {
            "HEAD" => "GET",
            other => other,
        };
        match (method, segments.as_slice()) {
            ("POST", ["payments"]) => Route::Create,
            ("POST", ["payments", "confirm"]) => Route::Confirm,
            ("POST", ["payments", _, "refund"]) => Route::Refund,
            ("GET", ["payments", "toss", "success"]) => Route::Success,
            ("GET", ["payments", "toss", "fail"]) => Route::Fail,
            ("POST", ["webhooks", "toss"]) => Route::Webhook,
            _ => Route::ReadOnly,
        }
    }

    /// A POST our idempotency layer may remember (any POST but the webhook, with a key).
    fn may_store_idempotency_key(&self) -> bool {
        self.method == "POST"
            && !self.path().starts_with("/webhooks/")
            && self.header("idempotency-key").is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Create,
    Confirm,
    Refund,
    Success,
    Fail,
    Webhook,
    /// Everything else: reads, unknown routes, wrong methods. Must never change anything.
    ReadOnly,
}

impl fmt::Debug for Hostile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "    {} {}", self.method, shown(self.target.as_bytes()))?;
        for (name, value) in &self.headers {
            writeln!(f, "    {name}: {}", shown(value))?;
        }
        match &self.body {
            None => writeln!(f, "    (no body)"),
            Some(body) => writeln!(f, "    body ({} bytes): {}", body.len(), shown(body)),
        }
    }
}

/// Bytes as a readable, exact literal: Rust string escapes for UTF-8, `\xNN` otherwise; long
/// values keep their start and end.
fn shown(bytes: &[u8]) -> String {
    const HEAD: usize = 1500;
    const TAIL: usize = 200;
    let literal = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("b\"{}\"", bytes.escape_ascii()),
    };
    if bytes.len() <= HEAD + TAIL + 100 {
        return literal(bytes);
    }
    let head = floor_char_boundary(bytes, HEAD);
    let tail = floor_char_boundary(bytes, bytes.len() - TAIL);
    format!(
        "{} ... [{} bytes left out] ... {}",
        literal(&bytes[..head]),
        tail - head,
        literal(&bytes[tail..])
    )
}

fn floor_char_boundary(bytes: &[u8], mut at: usize) -> usize {
    // Step back over UTF-8 continuation bytes so each half stays valid text.
    while at > 0 && at < bytes.len() && (bytes[at] & 0b1100_0000) == 0b1000_0000 {
        at -= 1;
    }
    at
}

// ---------------------------------------------------------------------------------------------
// The property, checked for one request.

struct Context<'a> {
    app: &'a TestApp,
    db: &'a DatabaseConnection,
    /// How many answers of each (route, status, code), printed at the end.
    seen: std::sync::Mutex<BTreeMap<String, usize>>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Context<'_> {
    async fn check(&self, request: &Hostile) -> Result<(), String> {
        let before = Snapshot::take(self.db).await;
        let toss_before = self.toss_requests().await;
        let answer = self.send(request).await?;
        let after = Snapshot::take(self.db).await;
        let toss_after = self.toss_requests().await;
        let shown_answer = || {
            format!(
                "answer: {} content-type={:?}\n{}",
                answer.status,
                answer.headers.get("content-type"),
                shown(answer.text.as_bytes())
            )
        };

        let body = serde_json::from_str::<Value>(&answer.text).unwrap_or(Value::Null);
        if std::env::var("HOSTILE_VERBOSE").is_ok() {
            eprintln!(
                "{request:?}  -> {} {}\n",
                answer.status,
                shown(answer.text.as_bytes())
            );
        }
        if answer.status.is_server_error() {
            return Err(format!("a 5xx\n{}", shown_answer()));
        }
        if answer.status.is_client_error() {
            check_problem(request, &answer).map_err(|e| format!("{e}\n{}", shown_answer()))?;
        }

        let route = request.route();
        if let Some(refusal) = nul_not_refused(request, route, answer.status) {
            return Err(format!("{refusal}\n{}", shown_answer()));
        }
        let code = body["code"].as_str().map(str::to_owned);
        *self
            .seen
            .lock()
            .unwrap()
            .entry(format!(
                "{route:?} {} {}",
                answer.status.as_u16(),
                code.as_deref().unwrap_or("-")
            ))
            .or_default() += 1;
        let accepted = answer.status.is_success() && route != Route::ReadOnly;
        let declined_by_toss =
            answer.status == StatusCode::PAYMENT_REQUIRED && code.as_deref() == Some("PG_DECLINED");

        // Toss is called only by a request that got that far: accepted, or declined by Toss.
        let may_call_toss = matches!(
            route,
            Route::Confirm | Route::Refund | Route::Success | Route::Webhook
        ) && (accepted || declined_by_toss);
        if !may_call_toss && toss_after.len() != toss_before.len() {
            let new: Vec<String> = toss_after[toss_before.len()..]
                .iter()
                .map(|r| format!("{} {}", r.method, r.url.path()))
                .collect();
            return Err(format!(
                "the fake Toss was called by a request that was not accepted: {new:?}\n{}",
                shown_answer()
            ));
        }

        let changes = before.diff(
            &after,
            request.may_store_idempotency_key().then_some(answer.status),
        );
        if changes.is_empty() || accepted {
            return Ok(());
        }
        // A confirm that Toss declined records the failure on the payment, and its event.
        if declined_by_toss
            && matches!(route, Route::Confirm | Route::Success)
            && changes
                .iter()
                .all(|c| c.table == "payments" || c.table == "events")
            && changes.iter().filter(|c| c.table == "payments").count() == 1
            && changes
                .iter()
                .filter(|c| c.table == "events")
                .all(|c| c.added_event_type() == Some("payment.failed"))
        {
            return Ok(());
        }
        Err(format!(
            "a refused request changed the database:\n{}\n{}",
            changes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            shown_answer()
        ))
    }

    async fn send(&self, request: &Hostile) -> Result<Answer, String> {
        let method = Method::from_bytes(request.method.as_bytes()).expect("generated method");
        let mut builder = self
            .app
            .client
            .request(method, format!("{}{}", self.app.address, request.target));
        for (name, value) in &request.headers {
            builder = builder.header(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(value).expect("generated header value"),
            );
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = tokio::time::timeout(Duration::from_secs(30), builder.send())
            .await
            .map_err(|_| "no answer within 30 s".to_owned())?
            .map_err(|e| format!("the request failed: {:?}", e.without_url()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?;
        Ok(Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    async fn toss_requests(&self) -> Vec<wiremock::Request> {
        self.app
            .toss_server
            .received_requests()
            .await
            .unwrap_or_default()
    }
}

/// A NUL (U+0000) can never be stored (PostgreSQL's text refuses it), so a request that
/// carries one where the service reads it is refused: `%00` in the path or query with 400 on
/// every route, a NUL in any string or key of a JSON body on a route that reads its body with
/// a 4xx (422, or whatever refuses the request first: 401, 413, 415, ...). `OPTIONS` is
/// answered by the CORS layer, which reads nothing of the request.
fn nul_not_refused(request: &Hostile, route: Route, status: StatusCode) -> Option<String> {
    if request.method == "OPTIONS" {
        return None;
    }
    if request.target.contains("%00") && status != StatusCode::BAD_REQUEST {
        return Some(format!(
            "%00 in the path or query answered {status}, not 400"
        ));
    }
    let reads_body = matches!(
        route,
        Route::Create | Route::Confirm | Route::Refund | Route::Webhook
    );
    let body_has_nul = request
        .body
        .as_deref()
        .and_then(|body| serde_json::from_slice::<Value>(body).ok())
        .is_some_and(|json| has_nul(&json));
    (reads_body && body_has_nul && !status.is_client_error())
        .then(|| format!("a JSON body with a NUL answered {status}, not a 4xx"))
}

fn has_nul(json: &Value) -> bool {
    match json {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A 4xx is `application/problem+json` with `type`, `title`, `status` (the HTTP status),
/// `detail` and `code`. HEAD answers carry no body, only the content type.
fn check_problem(request: &Hostile, answer: &Answer) -> Result<(), String> {
    let content_type = answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/problem+json") {
        return Err(format!(
            "a {} whose content type is {content_type:?}, not application/problem+json",
            answer.status
        ));
    }
    if request.method == "HEAD" {
        return Ok(());
    }
    let body: Value = serde_json::from_str(&answer.text)
        .map_err(|e| format!("a problem document that is not JSON: {e}"))?;
    for field in ["type", "title", "detail", "code"] {
        if body[field].as_str().is_none_or(str::is_empty) {
            return Err(format!("problem field {field:?} missing or empty"));
        }
    }
    if body["status"].as_u64() != Some(u64::from(answer.status.as_u16())) {
        return Err(format!(
            "problem status {} differs from the HTTP status {}",
            body["status"], answer.status
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The database, every row of every table, and the differences between two snapshots.

/// (table, ordering key)
const TABLES: &[(&str, &str)] = &[
    ("payments", "id"),
    ("refunds", "id"),
    ("events", "seq"),
    ("webhook_deliveries", "transmission_id"),
    ("idempotency_keys", "key"),
];

pub struct Snapshot(Vec<(&'static str, &'static str, Vec<Value>)>);

pub struct Change {
    pub table: &'static str,
    before: Option<Value>,
    after: Option<Value>,
}

impl Change {
    fn added_event_type(&self) -> Option<&str> {
        match (&self.before, &self.after) {
            (None, Some(row)) => row["event_type"].as_str(),
            _ => None,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |r: &Option<Value>| r.as_ref().map_or("(none)".to_owned(), Value::to_string);
        write!(
            f,
            "  {}: {} -> {}",
            self.table,
            shown(row(&self.before).as_bytes()),
            shown(row(&self.after).as_bytes())
        )
    }
}

impl Snapshot {
    pub async fn take(db: &DatabaseConnection) -> Self {
        let backend = db.get_database_backend();
        let mut tables = Vec::new();
        for (table, key) in TABLES {
            let rows = JsonValue::find_by_statement(Statement::from_string(
                backend,
                format!("SELECT * FROM {table} ORDER BY {key}"),
            ))
            .all(db)
            .await
            .unwrap_or_else(|e| panic!("reading {table}: {e}"));
            tables.push((*table, *key, rows));
        }
        Self(tables)
    }

    /// Rows added, removed or changed. `remembered`: the status of a POST with an
    /// `Idempotency-Key`, which may add the one row that remembers that answer.
    pub fn diff(&self, after: &Snapshot, remembered: Option<StatusCode>) -> Vec<Change> {
        let mut changes = Vec::new();
        for ((table, key, before_rows), (_, _, after_rows)) in self.0.iter().zip(&after.0) {
            let by_key = |rows: &Vec<Value>| -> BTreeMap<String, Value> {
                rows.iter()
                    .map(|row| (row[*key].to_string(), row.clone()))
                    .collect()
            };
            let (before, after) = (by_key(before_rows), by_key(after_rows));
            for (k, row) in &before {
                if after.get(k) != Some(row) {
                    changes.push(Change {
                        table,
                        before: Some(row.clone()),
                        after: after.get(k).cloned(),
                    });
                }
            }
            let mut added: Vec<&Value> = after
                .iter()
                .filter(|(k, _)| !before.contains_key(*k))
                .map(|(_, row)| row)
                .collect();
            if *table == "idempotency_keys"
                && let Some(status) = remembered
                && added.len() == 1
                && added[0]["state"] != "in_flight"
                && added[0]["response_status"].as_u64() == Some(status.as_u16().into())
            {
                added.clear();
            }
            changes.extend(added.into_iter().map(|row| Change {
                table,
                before: None,
                after: Some(row.clone()),
            }));
        }
        changes
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies: JSON built as text, so that keys can repeat and numbers can be anything.

#[derive(Debug, Clone)]
enum J {
    /// Written as is: numbers of any size, `null`, `true`, invalid escapes.
    Raw(String),
    Str(String),
    Arr(Vec<J>),
    /// Keys may repeat.
    Obj(Vec<(String, J)>),
}

impl J {
    /// Puts a NUL (U+0000, which PostgreSQL's text refuses) into a string of this value: into
    /// it at `at` if it is one, else into one of its members. Numbers and literals stay.
    fn put_nul(&mut self, at: Index) {
        match self {
            J::Raw(_) => {}
            J::Str(s) => {
                let boundaries: Vec<usize> =
                    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
                s.insert(boundaries[at.index(boundaries.len())], '\0');
            }
            J::Arr(items) if !items.is_empty() => {
                let n = at.index(items.len());
                items[n].put_nul(at);
            }
            J::Obj(entries) if !entries.is_empty() => {
                let n = at.index(entries.len());
                entries[n].1.put_nul(at);
            }
            J::Arr(_) | J::Obj(_) => {}
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            J::Raw(raw) => out.push_str(raw),
            J::Str(s) => out.push_str(&serde_json::to_string(s).expect("string")),
            J::Arr(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            J::Obj(entries) => {
                out.push('{');
                for (n, (key, value)) in entries.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(key).expect("key"));
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

const HOSTILE_TEXTS: &[&str] = &[
    "",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\u{0}",
    "order\u{0}_hostile_pending_1",
    "\u{7f}",
    "\u{85}",
    "\u{1b}[31mred",
    "\u{202e}kcatta\u{202c}",
    "\u{2066}isolate\u{2069}",
    "\u{200b}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "💳🔥",
    "👨‍👩‍👧‍👦",
    "결제 취소",
    "ｏｒｄｅｒ＿ｈｏｓｔｉｌｅ",
    "'; DROP TABLE payments;--",
    "\" OR \"1\"=\"1",
    "' OR 1=1 --",
    "1; DELETE FROM events",
    "Robert'); DROP TABLE refunds;--",
    "order_hostile_pending_1' OR '1'='1",
    "%' OR payment_id LIKE '%",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "</script><svg/onload=alert(1)>",
    "&lt;&amp;&#x27;",
    "${jndi:ldap://127.0.0.1/x}",
    "{{7*7}}",
    "%s%s%s%n",
    "../../../../etc/passwd",
    "%00",
    "%2e%2e%2f",
    "\\",
    "\\u0000",
    "null",
    "true",
    "NaN",
    "-Infinity",
    "0x7fffffffffffffff",
    "1e308",
    "15000",
    "-0",
    "u-1",
    "card",
    "toss",
    "ONE_TIME",
    "SUBSCRIPTION",
    "PAYMENT_STATUS_CHANGED",
    "DONE",
];

/// Numbers as JSON text, some of them not valid JSON at all.
const NUMBER_TEXTS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.0",
    "-0.0",
    "1.0",
    "1.5",
    "0.5",
    "1e3",
    "1E3",
    "1e308",
    "-1e308",
    "1e309",
    "5e-324",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "1000000000",
    "1000000001",
    "999999999",
    "4294967296",
    "2147483648",
    "-2147483649",
    "00",
    "01",
    "+1",
    ".5",
    "1.",
    "0x10",
    "1_000",
    "NaN",
    "Infinity",
];

const RAW_LEAVES: &[&str] = &[
    "null",
    "true",
    "false",
    "\"\\ud800\"",
    "\"\\udfff\\ud800\"",
    "\"\\u0000\"",
    "\"\\u202e\"",
    "\"\\x41\"",
    "'single'",
];

fn hostile_string() -> BoxedStrategy<String> {
    let controls = proptest::string::string_regex(
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{200b}-\\u{200f}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}a-z]{1,12}",
    )
    .expect("regex");
    prop_oneof![
        6 => select(HOSTILE_TEXTS).prop_map(str::to_owned),
        1 => (0usize..12_000).prop_map(|n| "a".repeat(n)),
        1 => (0usize..3_000).prop_map(|n| "💳".repeat(n)),
        1 => (0usize..400).prop_map(|n| "'; DROP TABLE payments;--<script>".repeat(n)),
        2 => any::<String>(),
        2 => controls,
    ]
    .boxed()
}

fn hostile_number() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(NUMBER_TEXTS).prop_map(str::to_owned),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| if f.is_finite() { format!("{f:e}") } else { "1e999".to_owned() }),
        1 => (1usize..500).prop_map(|n| format!("1{}", "0".repeat(n))),
        1 => (1usize..500).prop_map(|n| format!("-{}", "9".repeat(n))),
    ]
    .boxed()
}

/// A key that is not one of the route's fields (or is one, slightly wrong).
fn stray_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&[
            "", "__proto__", "constructor", "user_id ", "USER_ID", "amountKrw", "amount",
            "status", "refunded_amount_krw", "payment_id", "needs_review", "currency",
            "pg_secret", "id",
        ][..]).prop_map(str::to_owned),
        1 => hostile_string(),
    ]
    .boxed()
}

fn leaf(known: &Arc<Known>) -> BoxedStrategy<J> {
    let k = known.clone();
    prop_oneof![
        3 => hostile_number().prop_map(J::Raw),
        4 => hostile_string().prop_map(J::Str),
        2 => select(k.order_ids.iter().chain(&k.ids).chain(&k.payment_keys).cloned().collect::<Vec<_>>()).prop_map(J::Str),
        1 => select(k.amounts.clone()).prop_map(|a| J::Raw(a.to_string())),
        1 => select(RAW_LEAVES).prop_map(|raw| J::Raw(raw.to_owned())),
    ]
    .boxed()
}

fn any_json(known: &Arc<Known>) -> BoxedStrategy<J> {
    leaf(known)
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
                prop::collection::vec((stray_key(), inner), 0..4).prop_map(J::Obj),
            ]
        })
        .boxed()
}

fn strs(values: Vec<String>) -> BoxedStrategy<J> {
    select(values).prop_map(J::Str).boxed()
}

fn texts(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// Values the field expects, mostly valid, some just past valid, and the real ids, order ids,
/// payment keys and amounts, so that requests get past validation into the payment logic;
/// now and then with a NUL put into it, which must be refused wherever it is.
fn plausible(field: &str, known: &Arc<Known>) -> BoxedStrategy<J> {
    let value = plausible_value(field, known);
    prop_oneof![
        9 => value.clone(),
        1 => (value, any::<Index>()).prop_map(|(mut value, at)| {
            value.put_nul(at);
            value
        }),
    ]
    .boxed()
}

fn plausible_value(field: &str, known: &Arc<Known>) -> BoxedStrategy<J> {
    let k = known.clone();
    let amounts = |raw: fn(String) -> J| {
        let edges: Vec<i64> = vec![0, 1, 1_000, 5_000, 1_000_000_000, 1_000_000_001, -1];
        prop_oneof![
            3 => select(k.amounts.clone()),
            2 => select(edges),
        ]
        .prop_map(move |a| raw(a.to_string()))
        .boxed()
    };
    let numbers = |values: &[&str]| select(texts(values)).prop_map(J::Raw).boxed();
    match field {
        "user_id" => prop_oneof![
            6 => strs(texts(&["u-1", "u-hostile"])),
            1 => strs(vec!["u".repeat(64), "u".repeat(65)]),
        ]
        .boxed(),
        "order_id" | "orderId" => prop_oneof![
            3 => select(k.order_ids.clone()).prop_map(J::Str),
            2 => (0u32..1000).prop_map(|n| J::Str(format!("order_hostile_new_{n}"))),
            1 => strs(vec!["short".into(), "o".repeat(64), "o".repeat(65), "order id!".into(), "order/../1".into()]),
        ]
        .boxed(),
        "order_name" => strs(vec!["Vitamin D x 3".into(), "n".repeat(100), "n".repeat(101)]),
        "subscription_id" => strs(vec!["sub-1".into(), "s".repeat(128), "s".repeat(129)]),
        "payment_type" => prop_oneof![
            3 => strs(texts(&["ONE_TIME", "SUBSCRIPTION"])),
            1 => strs(texts(&["one_time", "BRANDPAY", ""])),
        ]
        .boxed(),
        "amount_krw" | "refund_amount_krw" | "totalAmount" => amounts(J::Raw),
        "amount" => amounts(J::Str),
        "payment_method" => prop_oneof![
            4 => strs(texts(&["card"])),
            1 => strs(vec!["".into(), "카드".into(), "m".repeat(64), "m".repeat(65)]),
        ]
        .boxed(),
        "payment_id" => prop_oneof![
            4 => select(k.ids.clone()).prop_map(J::Str),
            1 => any::<u128>().prop_map(|n| J::Str(uuid::Uuid::from_u128(n).to_string())),
            1 => strs(texts(&["not-a-uuid", "00000000-0000-0000-0000-000000000000"])),
        ]
        .boxed(),
        "payment_key" | "paymentKey" => prop_oneof![
            3 => (0u32..1000).prop_map(|n| J::Str(format!("pk_hostile_new_{n}"))),
            2 => select(k.payment_keys.clone()).prop_map(J::Str),
            1 => strs(vec!["k".repeat(200), "k".repeat(201), "key with space".into(), "키".into()]),
        ]
        .boxed(),
        "pg_transaction_id" => prop_oneof![
            3 => strs(texts(&["tx-1"])),
            1 => strs(vec!["t".repeat(200), "t".repeat(201)]),
        ]
        .boxed(),
        "pg_provider" => strs(vec!["kcp".into(), "toss".into(), "p".repeat(32), "p".repeat(33)]),
        "reason" => prop_oneof![
            4 => strs(texts(&["changed my mind", "결제 취소 <b>!</b>"])),
            1 => strs(vec!["r".repeat(200), "r".repeat(201), " ".into()]),
        ]
        .boxed(),
        "eventType" => strs(texts(&[
            "PAYMENT_STATUS_CHANGED",
            "CANCEL_STATUS_CHANGED",
            "DEPOSIT_CALLBACK",
            "payout.changed",
        ])),
        "status" => strs(texts(&["DONE", "CANCELED", "PARTIAL_CANCELED", "ABORTED", "WAITING_FOR_DEPOSIT"])),
        "secret" => strs(texts(&["ps_fakesecret0001", "ps_wrong"])),
        "createdAt" => strs(texts(&["2026-11-23T12:18:15.000000", "not a date"])),
        "transactionKey" => strs(texts(&["tx_1"])),
        "data" => object(WEBHOOK_DATA_FIELDS, known),
        // Query parameters.
        "paymentType" => prop_oneof![
            3 => strs(texts(&["NORMAL"])),
            1 => strs(texts(&["KEYIN", "BRANDPAY", ""])),
        ]
        .boxed(),
        "code" => strs(texts(&["PAY_PROCESS_CANCELED", "USER_CANCEL", "REJECT_CARD_COMPANY", "", "not-a-code!"])),
        "message" => strs(vec!["결제를 취소했습니다".into(), "<script>alert(1)</script>".into(), "m\u{0}\u{7}".into(), "m".repeat(600)]),
        "limit" => numbers(&["1", "20", "100", "101", "1000", "1001", "0", "-1"]),
        "offset" | "after" => numbers(&["0", "1", "3", "100", "-1"]),
        _ => any_json(known),
    }
}

/// A JSON object of the route's fields: mostly a near-valid one (each field present with its
/// own probability, plausible, then maybe one field made hostile), else a wild one (fields
/// plausible or hostile, stray keys, a repeated key).
fn object(fields: &'static [(&'static str, f64)], known: &Arc<Known>) -> BoxedStrategy<J> {
    prop_oneof![
        3 => near_valid(fields, known).prop_map(J::Obj),
        2 => wild_object(fields, known),
    ]
    .boxed()
}

/// Entries of the fields, each present with its probability and plausible, then maybe one
/// value replaced by a hostile one.
fn near_valid(
    fields: &'static [(&'static str, f64)],
    known: &Arc<Known>,
) -> BoxedStrategy<Vec<(String, J)>> {
    let per_field: Vec<BoxedStrategy<Option<(String, J)>>> = fields
        .iter()
        .map(|(field, presence)| {
            let name = (*field).to_owned();
            prop::option::weighted(*presence, plausible(field, known))
                .prop_map(move |value| value.map(|v| (name.clone(), v)))
                .boxed()
        })
        .collect();
    let mutation = prop::option::weighted(0.35, (any::<Index>(), any_json(known)));
    let nul = prop::option::weighted(0.15, (any::<Index>(), any::<Index>()));
    (per_field, mutation, nul)
        .prop_map(|(fields, mutation, nul)| {
            let mut entries: Vec<(String, J)> = fields.into_iter().flatten().collect();
            if let Some((index, value)) = mutation
                && !entries.is_empty()
            {
                let at = index.index(entries.len());
                entries[at].1 = value;
            }
            if let Some((index, position)) = nul
                && !entries.is_empty()
            {
                let at = index.index(entries.len());
                entries[at].1.put_nul(position);
            }
            entries
        })
        .boxed()
}

fn wild_object(fields: &'static [(&'static str, f64)], known: &Arc<Known>) -> BoxedStrategy<J> {
    let per_field: Vec<BoxedStrategy<Option<(String, J)>>> = fields
        .iter()
        .map(|(field, _)| {
            let name = (*field).to_owned();
            prop::option::weighted(
                0.75,
                prop_oneof![3 => plausible(field, known), 2 => any_json(known)],
            )
            .prop_map(move |value| value.map(|v| (name.clone(), v)))
            .boxed()
        })
        .collect();
    let strays = prop_oneof![
        5 => Just(Vec::new()),
        1 => prop::collection::vec((stray_key(), any_json(known)), 1..3),
    ];
    let repeated = prop::option::weighted(0.3, (any::<Index>(), any_json(known)));
    (per_field, strays, repeated)
        .prop_map(|(fields, strays, repeated)| {
            let mut entries: Vec<(String, J)> = fields.into_iter().flatten().collect();
            entries.extend(strays);
            if let Some((index, value)) = repeated
                && !entries.is_empty()
            {
                let key = entries[index.index(entries.len())].0.clone();
                entries.push((key, value));
            }
            J::Obj(entries)
        })
        .boxed()
}

/// (field, how often a near-valid body has it)
const CREATE_FIELDS: &[(&str, f64)] = &[
    ("user_id", 0.95),
    ("order_id", 0.95),
    ("order_name", 0.3),
    ("subscription_id", 0.2),
    ("payment_type", 0.3),
    ("amount_krw", 0.95),
    ("payment_method", 0.95),
];
const CONFIRM_FIELDS: &[(&str, f64)] = &[
    ("payment_id", 0.3),
    ("order_id", 0.7),
    ("payment_key", 0.8),
    ("amount_krw", 0.5),
    ("pg_transaction_id", 0.3),
    ("pg_provider", 0.3),
];
const REFUND_FIELDS: &[(&str, f64)] = &[("reason", 0.95), ("refund_amount_krw", 0.6)];
const WEBHOOK_FIELDS: &[(&str, f64)] = &[
    ("eventType", 0.9),
    ("createdAt", 0.5),
    ("data", 0.8),
    ("secret", 0.3),
    ("status", 0.3),
    ("orderId", 0.3),
    ("transactionKey", 0.2),
];
const WEBHOOK_DATA_FIELDS: &[(&str, f64)] = &[
    ("paymentKey", 0.8),
    ("orderId", 0.8),
    ("status", 0.8),
    ("secret", 0.4),
    ("totalAmount", 0.4),
];
const LIST_PARAMS: &[(&str, f64)] = &[("user_id", 0.4), ("limit", 0.5), ("offset", 0.4)];
const EVENT_PARAMS: &[(&str, f64)] = &[("after", 0.5), ("limit", 0.5)];
const SUCCESS_PARAMS: &[(&str, f64)] = &[
    ("paymentKey", 0.95),
    ("orderId", 0.95),
    ("amount", 0.95),
    ("paymentType", 0.5),
];
const FAIL_PARAMS: &[(&str, f64)] = &[("code", 0.9), ("message", 0.9), ("orderId", 0.95)];
const JUNK_PARAMS: &[(&str, f64)] = &[("x", 0.5), ("limit", 0.5)];

const RAW_BODIES: &[&[u8]] = &[
    b"",
    b" ",
    b"null",
    b"{}",
    b"[]",
    b"{",
    b"}",
    b"\"string\"",
    b"{\"user_id\":}",
    b"{'user_id':'u-1'}",
    b"{\"reason\":\"x\",}",
    b"user_id=u-1&amount_krw=1000",
    b"<?xml version=\"1.0\"?><payment/>",
    b"\x00",
    b"{\"reason\":\"\xff\xfe\"}",
    b"{\"amount_krw\":1,\"amount_krw\":2}",
    b"{\"reason\":\"a\",\"reason\":\"b\"}",
    b"\xef\xbb\xbf{}",
    b"{\"a\":1}\x00",
];

fn body(
    fields: &'static [(&'static str, f64)],
    known: &Arc<Known>,
) -> BoxedStrategy<Option<Vec<u8>>> {
    let object = object(fields, known);
    let text = |j: J| Some(j.text().into_bytes());
    prop_oneof![
        12 => object.clone().prop_map(text),
        2 => any_json(known).prop_map(text),
        1 => object.clone().prop_map(|j| Some(format!("[{}]", j.text()).into_bytes())),
        1 => (object.clone(), any::<Index>()).prop_map(|(j, cut)| {
            let bytes = j.text().into_bytes();
            Some(bytes[..cut.index(bytes.len() + 1)].to_vec())
        }),
        1 => object.clone().prop_map(|j| Some(format!("{} trailing", j.text()).into_bytes())),
        1 => object.prop_map(|j| Some(format!("\u{feff}{}", j.text()).into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Some),
        2 => select(RAW_BODIES).prop_map(|b| Some(b.to_vec())),
        1 => Just(None),
        1 => (1usize..400).prop_map(|depth| Some(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes())),
        1 => (60_000usize..70_000).prop_map(|n| Some(format!("{{\"reason\":\"{}\"}}", "x".repeat(n)).into_bytes())),
    ]
    .boxed()
}

/// A body on a route that takes none: mostly nothing.
fn stray_body(known: &Arc<Known>) -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        6 => Just(None),
        1 => any_json(known).prop_map(|j| Some(j.text().into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
    ]
    .boxed()
}

// ---- headers

/// Valid header value bytes: tab, visible ASCII, space, and obs-text (0x80..=0xff).
fn header_bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0x21u8..0x7f,
            1 => Just(b' '),
            1 => Just(b'\t'),
            2 => 0x80u8..=0xff,
        ],
        0..max,
    )
    .boxed()
}

fn authorization() -> BoxedStrategy<Option<Vec<u8>>> {
    let right = [
        format!("Bearer {API_KEY}"),
        format!("bearer {API_KEY}"),
        format!("BEARER  {API_KEY} "),
    ];
    let wrong = [
        "Bearer wrong-key".to_owned(),
        format!("Bearer {API_KEY}x"),
        format!("Bearer {}", &API_KEY[1..]),
        format!("Basic {API_KEY}"),
        format!("Token {API_KEY}"),
        API_KEY.to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer '; DROP TABLE payments;--".to_owned(),
        format!("Bearer {}", "k".repeat(4000)),
    ];
    prop_oneof![
        3 => Just(None),
        6 => select(right.to_vec()).prop_map(|v| Some(v.into_bytes())),
        2 => select(wrong.to_vec()).prop_map(|v| Some(v.into_bytes())),
        1 => header_bytes(80).prop_map(Some),
    ]
    .boxed()
}

fn content_type(json_body: bool) -> BoxedStrategy<Option<Vec<u8>>> {
    let odd: &[&[u8]] = &[
        b"application/json; charset=utf-8",
        b"application/problem+json",
        b"application/vnd.api+json",
        b"APPLICATION/JSON",
        b"text/plain",
        b"text/json",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"application/jsonx",
        b"application/json\xff",
        b"",
        b"*/*",
        b"application/",
        b"json",
    ];
    let usual = if json_body { 14 } else { 1 };
    prop_oneof![
        usual => Just(Some(b"application/json".to_vec())),
        2 => Just(None),
        3 => select(odd).prop_map(|v| Some(v.to_vec())),
        1 => header_bytes(40).prop_map(Some),
    ]
    .boxed()
}

fn idempotency_key() -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        14 => Just(None),
        2 => select(&["hostile-key-1", "hostile-key-2", "k"][..]).prop_map(|k| Some(k.as_bytes().to_vec())),
        1 => "[ -~]{1,40}".prop_map(|k| Some(k.into_bytes())),
        1 => select(vec![Vec::new(), vec![b'k'; 255], vec![b'k'; 256], b"tab\there".to_vec(), "키".as_bytes().to_vec()]).prop_map(Some),
        1 => header_bytes(40).prop_map(Some),
    ]
    .boxed()
}

fn headers(json_body: bool) -> BoxedStrategy<Vec<(&'static str, Vec<u8>)>> {
    let extra = prop_oneof![
        6 => Just(None),
        1 => header_bytes(60).prop_map(|v| Some(("x-request-id", v))),
        1 => header_bytes(60).prop_map(|v| Some(("tosspayments-webhook-transmission-id", v))),
        1 => header_bytes(60).prop_map(|v| Some(("accept", v))),
        1 => header_bytes(60).prop_map(|v| Some(("x-forwarded-for", v))),
    ];
    (
        authorization(),
        content_type(json_body),
        idempotency_key(),
        extra,
    )
        .prop_map(|(auth, content_type, key, extra)| {
            let mut headers = Vec::new();
            if let Some(v) = auth {
                headers.push(("authorization", v));
            }
            if let Some(v) = content_type {
                headers.push(("content-type", v));
            }
            if let Some(v) = key {
                headers.push(("idempotency-key", v));
            }
            if let Some((name, v)) = extra {
                headers.push((name, v));
            }
            headers
        })
        .boxed()
}

// ---- methods, paths, queries

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PURGE", "get",
];

fn method(usual: &'static str) -> BoxedStrategy<String> {
    prop_oneof![
        8 => Just(usual.to_owned()),
        2 => select(METHODS).prop_map(str::to_owned),
    ]
    .boxed()
}

/// Every byte percent-encoded.
fn percent_encoded(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

const PATH_GARBAGE: &[&str] = &[
    "not-a-uuid",
    "0",
    "-1",
    "null",
    "undefined",
    "%00",
    "%ff%fe",
    "%",
    "%zz",
    "%2e%2e",
    "..",
    ".",
    "%2F",
    "a%2Fb",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "' OR '1'='1",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "😀",
    "%E2%80%AE",
    "toss",
    "confirm",
    "..%2F..%2Fetc%2Fpasswd",
];

fn path_id(known: &Arc<Known>) -> BoxedStrategy<String> {
    let ids = known.ids.clone();
    prop_oneof![
        8 => select(ids.clone()),
        2 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => select(ids.clone()).prop_map(|id| id.to_uppercase()),
        1 => select(ids.clone()).prop_map(|id| id.replace('-', "")),
        1 => select(ids.clone()).prop_map(|id| format!("{{{id}}}")),
        1 => select(ids.clone()).prop_map(|id| format!("urn:uuid:{id}")),
        3 => select(PATH_GARBAGE).prop_map(str::to_owned),
        1 => (select(ids.clone()), any::<Index>()).prop_map(|(id, at)| {
            let at = at.index(id.len() + 1);
            format!("{}%00{}", &id[..at], &id[at..])
        }),
        1 => (1usize..8_000).prop_map(|n| "a".repeat(n)),
        2 => hostile_string().prop_map(|s| percent_encoded(&s)),
    ]
    .boxed()
}

/// A query value as text: strings as they are, anything else as its JSON text.
fn query_text(value: J) -> String {
    match value {
        J::Str(s) | J::Raw(s) => s,
        other => other.text(),
    }
}

/// A query string (with its `?`): near-valid parameters, or hostile pairs, or raw garbage.
fn query(params: &'static [(&'static str, f64)], known: &Arc<Known>) -> BoxedStrategy<String> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let near_valid = near_valid(params, known).prop_map(move |entries| {
        let pairs: Vec<String> = entries
            .into_iter()
            .map(|(name, value)| format!("{}={}", encode(&name), encode(&query_text(value))))
            .collect();
        format!("?{}", pairs.join("&"))
    });
    let k = known.clone();
    let value = prop_oneof![
        3 => hostile_number(),
        3 => hostile_string(),
        2 => select(k.order_ids.iter().chain(&k.payment_keys).cloned().collect::<Vec<_>>()),
        2 => select(k.amounts.iter().map(i64::to_string).collect::<Vec<_>>()),
    ];
    let name = prop_oneof![
        5 => select(params.iter().map(|(name, _)| (*name).to_owned()).collect::<Vec<_>>()),
        1 => stray_key(),
    ];
    let pair = (name, value, any::<bool>()).prop_map(move |(name, value, encoded)| {
        let one = |s: &str| {
            if encoded {
                encode(s)
            } else {
                s.replace('#', "%23")
            }
        };
        format!("{}={}", one(&name), one(&value))
    });
    let raw: &[&str] = &[
        "?",
        "?&&",
        "?=",
        "?a",
        "?%",
        "?%zz=1",
        "?limit",
        "?limit=",
        "?limit=1&limit=2",
        "?after=1&after=2",
        "?user_id[]=x",
        "?user_id[a]=b",
        "?orderId=order_hostile_pending_1&orderId=order_hostile_pending_2",
        "?%00=%00",
        "?limit=%00",
        "?offset=9223372036854775808",
        "?offset=9223372036854775807&limit=100",
        "?after=-9223372036854775808",
        "?after=9223372036854775807",
    ];
    prop_oneof![
        5 => near_valid,
        3 => prop::collection::vec(pair, 1..5).prop_map(|pairs| format!("?{}", pairs.join("&"))),
        1 => select(raw).prop_map(str::to_owned),
        1 => Just(String::new()),
    ]
    .boxed()
}

const UNKNOWN_PATHS: &[&str] = &[
    "/",
    "/payments/",
    "/payments/toss",
    "/payments/toss/",
    "/payments/confirm/",
    "/admin",
    "/.env",
    "//payments",
    "/payments//refund",
    "/swagger-ui",
    "/metrics",
    "/webhooks/toss/extra",
    "/webhooks",
    "/events/1",
    "/PAYMENTS",
    "/%2e%2e/etc/passwd",
    "/payments/%00/refund",
    "/payments%00",
    "/payments/confirm%00",
    "/payments/toss/success%00",
    "/webhooks/toss%00",
    "/events%00",
    "/health/",
    "/ready?x=1",
];

// ---- requests

fn request(
    method: BoxedStrategy<String>,
    path: BoxedStrategy<String>,
    query: BoxedStrategy<String>,
    json_body: bool,
    body: BoxedStrategy<Option<Vec<u8>>>,
) -> BoxedStrategy<Hostile> {
    (method, path, query, headers(json_body), body)
        .prop_map(|(method, path, query, headers, body)| {
            Hostile::new(method, path, query, headers, body)
        })
        // The `http` crate cannot even build a longer URI (hyper would refuse it anyway).
        .prop_filter("URI under 60 KB", |request| request.target.len() < 60_000)
        .boxed()
}

fn fixed(path: &'static str) -> BoxedStrategy<String> {
    Just(path.to_owned()).boxed()
}

fn no_query() -> BoxedStrategy<String> {
    Just(String::new()).boxed()
}

fn any_request(known: &Arc<Known>) -> BoxedStrategy<Hostile> {
    let k = known;
    let with_id = |suffix: &'static str| {
        path_id(k)
            .prop_map(move |id| format!("/payments/{id}{suffix}"))
            .boxed()
    };
    let junk_query = || prop_oneof![3 => no_query(), 1 => query(JUNK_PARAMS, k)].boxed();
    prop_oneof![
        3 => request(method("POST"), fixed("/payments"), junk_query(), true, body(CREATE_FIELDS, k)),
        2 => request(method("GET"), fixed("/payments"), query(LIST_PARAMS, k), false, stray_body(k)),
        2 => request(method("GET"), with_id(""), junk_query(), false, stray_body(k)),
        3 => request(method("POST"), fixed("/payments/confirm"), junk_query(), true, body(CONFIRM_FIELDS, k)),
        3 => request(method("POST"), with_id("/refund"), junk_query(), true, body(REFUND_FIELDS, k)),
        1 => request(method("GET"), with_id("/refunds"), junk_query(), false, stray_body(k)),
        2 => request(method("GET"), fixed("/payments/toss/success"), query(SUCCESS_PARAMS, k), false, stray_body(k)),
        2 => request(method("GET"), fixed("/payments/toss/fail"), query(FAIL_PARAMS, k), false, stray_body(k)),
        2 => request(method("POST"), fixed("/webhooks/toss"), junk_query(), true, body(WEBHOOK_FIELDS, k)),
        1 => request(method("GET"), fixed("/events"), query(EVENT_PARAMS, k), false, stray_body(k)),
        1 => request(method("GET"), select(&["/health", "/ready"][..]).prop_map(str::to_owned).boxed(), junk_query(), false, stray_body(k)),
        2 => request(
            select(METHODS).prop_map(str::to_owned).boxed(),
            prop_oneof![
                3 => select(UNKNOWN_PATHS).prop_map(str::to_owned),
                1 => prop::collection::vec(hostile_string(), 1..4)
                    .prop_map(|segments| format!("/{}", segments.iter().map(|s| percent_encoded(s)).collect::<Vec<_>>().join("/"))),
            ]
            .boxed(),
            junk_query(),
            false,
            stray_body(k),
        ),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// What the generated cases found, one small reproduction each.

/// Found by the generated cases: anyone (no API key needed) who posted a confirm with the
/// `payment_key` of another order got 502 `PG_MISCONFIGURED`, and the operators a "fix the
/// configuration" alarm, because Toss's `INVALID_REQUEST` (that key does not fit this order) was
/// taken for the service's own misconfiguration. Fixed in 476b7b4 (now a 402 decline).
async fn confirm_with_the_payment_key_of_another_order(backend: Backend) {
    let app = spawn_app(backend).await;
    app.completed_payment("order_bug_paid_01", 15_000, "pk_bug_paid_01")
        .await;
    let pending = app.create_payment("order_bug_pending_01", 10_000).await;
    let db = Database::connect(&app.database_url).await.unwrap();
    let before = Snapshot::take(&db).await;

    let reply = app
        .post_public(
            "/payments/confirm",
            json!({"order_id": "order_bug_pending_01", "payment_key": "pk_bug_paid_01"}),
        )
        .await;

    let after = Snapshot::take(&db).await;
    // A decline may record the failure on the payment (and `payment.failed`), as any declined
    // confirm does; nothing else may change.
    let changes: Vec<String> = before
        .diff(&after, None)
        .iter()
        .filter(|c| c.table != "payments" && c.added_event_type() != Some("payment.failed"))
        .map(ToString::to_string)
        .collect();
    let status = app.payment(pending["payment_id"].as_str().unwrap()).await["status"].clone();
    assert!(
        reply.status.is_client_error()
            && reply
                .headers
                .get("content-type")
                .is_some_and(|v| v == "application/problem+json")
            && status == "PENDING"
            && changes.is_empty(),
        "expected a 4xx problem, the payment PENDING and nothing else changed; got {}: {}\n\
         payment status: {status}\nother changes: {changes:#?}",
        reply.status,
        reply.text
    );
    let _ = db.close().await;
    app.stop().await;
}

/// Requests that hyper refuses before axum sees them (a URI over 64 KB, too many or too large
/// headers, an unparsable `Content-Length`) are answered by hyper itself: the right status, but
/// an empty body with no content type, not the problem document the contract promises for
/// every 4xx. Sent over a raw socket, since reqwest cannot even build such requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: hyper's own 400/414/431 answers are empty, not application/problem+json"]
async fn requests_refused_by_hyper_are_problem_documents() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app(Backend::Sqlite).await;
    let authority = app.address.trim_start_matches("http://").to_owned();
    let many_headers: String = (0..150).map(|n| format!("x-h{n}: v\r\n")).collect();
    let cases = [
        (
            "a URI over 64 KB",
            format!("GET /{} HTTP/1.1\r\nhost: x\r\n", "a".repeat(70_000)),
        ),
        (
            "150 headers",
            format!("GET /health HTTP/1.1\r\nhost: x\r\n{many_headers}"),
        ),
        (
            "a 500 KB header",
            format!(
                "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n",
                "a".repeat(500_000)
            ),
        ),
        (
            "Content-Length: abc",
            "POST /payments HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n".to_owned(),
        ),
    ];
    let mut failures = Vec::new();
    for (what, head) in cases {
        let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let _ = stream
            .write_all(format!("{head}connection: close\r\n\r\n").as_bytes())
            .await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status_line = head.lines().next().unwrap_or_default();
        let is_problem = head
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json")
            && serde_json::from_str::<Value>(body).is_ok_and(|b| b["code"].is_string());
        if !is_problem {
            failures.push(format!("{what}: {status_line:?}, body {body:?}"));
        }
    }
    app.stop().await;
    assert!(
        failures.is_empty(),
        "not problem documents:\n{}",
        failures.join("\n")
    );
}
