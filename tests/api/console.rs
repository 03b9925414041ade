//! The operator console over HTTP: sign-in, the session cookie, CSRF, lockout, sessions shared by
//! instances, sign-out, and a review resolved from the console recorded as the operator's.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::{API_KEY, Backend, Options, operators_file, spawn_app, spawn_with};
use crate::on_both_databases;

on_both_databases!(
    without_operators_the_console_is_not_there,
    sign_in_answers_303_with_the_session_cookie_or_401_with_the_form,
    forms_without_their_csrf_token_are_refused_403,
    five_wrong_passwords_lock_the_name_even_for_the_right_one,
    signed_out_pages_send_to_the_sign_in_page,
    an_api_key_opens_no_page_and_the_cookie_opens_no_route,
    resolving_from_the_queue_records_the_operator,
    pages_show_the_timeline_runs_and_schedules,
    a_session_works_on_every_instance_until_signed_out,
);

pub(crate) const OPERATOR: &str = "kim";
const PASSWORD: &str = "correct horse battery staple";

pub(crate) fn with_operators() -> Options {
    Options {
        operators_file: Some(operators_file(OPERATOR, PASSWORD)),
        ..Options::default()
    }
}

/// A browser of one operator: keeps the cookies the console sets, follows no redirect.
pub(crate) struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    pub(crate) text: String,
}

impl Page {
    /// The value of the hidden `csrf_token` of the page's first form.
    pub(crate) fn csrf_token(&self) -> String {
        let at = self
            .text
            .find(r#"name="csrf_token" value=""#)
            .expect("a form with csrf_token")
            + r#"name="csrf_token" value=""#.len();
        self.text[at..at + 64].to_owned()
    }

    fn redirects_to(&self, location: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.text);
        assert_eq!(self.location.as_deref(), Some(location));
    }
}

impl Browser {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let mut request = request;
        if !self.cookies.is_empty() {
            let header = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(COOKIE, header);
        }
        let response = request.send().await.expect("request sent");
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect();
        for cookie in &set_cookies {
            let (pair, attributes) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|value| value.to_str().unwrap().to_owned()),
            set_cookies,
            text: response.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    async fn try_sign_in(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let csrf = form.csrf_token();
        self.post(
            "/console/sign-in",
            &[
                ("name", name),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
    }

    pub(crate) async fn sign_in(&mut self) {
        self.try_sign_in(OPERATOR, PASSWORD)
            .await
            .redirects_to("/console/");
    }
}

async fn without_operators_the_console_is_not_there(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/console/", "/console/sign-in", "/console/reconciliation"] {
        app.get_public(path).await.problem(404, "NOT_FOUND");
    }
    let mut browser = Browser::new(&app.address);
    let refused = browser
        .post(
            "/console/sign-in",
            &[("name", OPERATOR), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
}

async fn sign_in_answers_303_with_the_session_cookie_or_401_with_the_form(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let mut browser = Browser::new(&app.address);
    let form = browser.get("/console/sign-in").await;
    assert_eq!(form.status, StatusCode::OK);
    for field in [
        r#"name="name""#,
        r#"name="password""#,
        r#"type="hidden" name="csrf_token""#,
    ] {
        assert!(form.text.contains(field), "{field}: {}", form.text);
    }
    assert!(form.text.contains(r#"<label for="password">"#));

    let wrong = browser.try_sign_in(OPERATOR, "wrong password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.text.contains(r#"name="password""#),
        "the form again: {}",
        wrong.text
    );
    assert!(!browser.cookies.contains_key("console_session"));
    let stranger = browser.try_sign_in("lee", PASSWORD).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);

    let signed_in = browser.try_sign_in(OPERATOR, PASSWORD).await;
    signed_in.redirects_to("/console/");
    let cookie = signed_in
        .set_cookies
        .iter()
        .find(|cookie| cookie.starts_with("console_session="))
        .expect("the session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    // The tests' service listens on 127.0.0.1: plain HTTP, so no `Secure`.
    assert!(!cookie.contains("Secure"), "{cookie}");
    let token = &browser.cookies["console_session"];
    assert_eq!(token.len(), 64);
    // Only a hash of the token is stored.
    let stored = app
        .query_column("SELECT token_hash FROM console_sessions")
        .await;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].as_deref(), Some(token.as_str()));

    let queue = browser.get("/console/").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
    assert!(queue.text.contains(OPERATOR));
    assert!(queue.text.contains("검토 대기 / Review queue"));
    let css = browser.get("/console/assets/console.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.text.contains(":focus-visible"));

    // Used 7 hours ago: still alive. Unused for 8 hours: over.
    let idle = |seconds: i64| chrono::Utc::now() - chrono::Duration::seconds(seconds);
    app.execute_sql(
        "UPDATE console_sessions SET last_seen_at = $1",
        vec![idle(7 * 3600).into()],
    )
    .await;
    assert_eq!(browser.get("/console/").await.status, StatusCode::OK);
    app.execute_sql(
        "UPDATE console_sessions SET last_seen_at = $1",
        vec![idle(8 * 3600 + 1).into()],
    )
    .await;
    browser
        .get("/console/")
        .await
        .redirects_to("/console/sign-in");
}

async fn forms_without_their_csrf_token_are_refused_403(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let id = app.set_aside("order_console_csrf", "pk_console_csrf").await;
    let mut browser = Browser::new(&app.address);
    browser.get("/console/sign-in").await;
    let without = browser
        .post(
            "/console/sign-in",
            &[("name", OPERATOR), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(without.status, StatusCode::FORBIDDEN, "{}", without.text);
    let forged = browser
        .post(
            "/console/sign-in",
            &[
                ("name", OPERATOR),
                ("password", PASSWORD),
                ("csrf_token", &"0".repeat(64)),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!browser.cookies.contains_key("console_session"));

    browser.sign_in().await;
    let review = format!("/console/payments/{id}/review");
    let without = browser
        .post(&review, &[("action", "dismiss"), ("note", "n")])
        .await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    let forged = browser
        .post(
            &review,
            &[
                ("action", "dismiss"),
                ("note", "n"),
                ("csrf_token", &"f".repeat(64)),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.payment(&id).await["needs_review"],
        true,
        "nothing changed"
    );
    let run = browser
        .post("/console/reconciliation/runs", &[("date", "2026-12-01")])
        .await;
    assert_eq!(run.status, StatusCode::FORBIDDEN);
    let sign_out = browser.post("/console/sign-out", &[]).await;
    assert_eq!(sign_out.status, StatusCode::FORBIDDEN);
    assert_eq!(
        browser.get("/console/").await.status,
        StatusCode::OK,
        "still signed in"
    );
}

async fn five_wrong_passwords_lock_the_name_even_for_the_right_one(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let mut browser = Browser::new(&app.address);
    for _ in 0..4 {
        let wrong = browser.try_sign_in(OPERATOR, "nope").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    // Four wrong ones do not lock: the right password still works, and starts the count again.
    browser.sign_in().await;
    let mut other = Browser::new(&app.address);
    for _ in 0..5 {
        let wrong = other.try_sign_in(OPERATOR, "nope").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let locked = other.try_sign_in(OPERATOR, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED, "{}", locked.text);
    assert!(locked.text.contains("15 minutes"), "{}", locked.text);
    assert!(!other.cookies.contains_key("console_session"));
    // Held in the database: another instance refuses it too.
    let mut app = app;
    let second = app.spawn_instance_with(with_operators()).await;
    let mut elsewhere = Browser::new(&second);
    let locked = elsewhere.try_sign_in(OPERATOR, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED);
    // 15 minutes later (the lock moved into the past), the right password opens it.
    app.execute_sql(
        "UPDATE console_lockouts SET locked_until = $1",
        vec![(chrono::Utc::now() - chrono::Duration::seconds(1)).into()],
    )
    .await;
    other.sign_in().await;
}

async fn signed_out_pages_send_to_the_sign_in_page(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let mut browser = Browser::new(&app.address);
    for path in [
        "/console/",
        "/console/payments",
        "/console/payments?order_id=x",
        "/console/reconciliation",
        "/console/schedules",
        "/console/payments/0192d6a4-0000-7000-8000-000000000000",
    ] {
        browser.get(path).await.redirects_to("/console/sign-in");
    }
    browser
        .cookies
        .insert("console_session".to_owned(), "a".repeat(64));
    browser
        .get("/console/")
        .await
        .redirects_to("/console/sign-in");
    browser.get("/console").await.redirects_to("/console/");
}

async fn an_api_key_opens_no_page_and_the_cookie_opens_no_route(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let with_key = app
        .client
        .get(format!("{}/console/", app.address))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), StatusCode::SEE_OTHER);
    assert_eq!(with_key.headers()[LOCATION], "/console/sign-in");

    let mut browser = Browser::new(&app.address);
    browser.sign_in().await;
    let cookie = format!("console_session={}", browser.cookies["console_session"]);
    for path in ["/payments", "/reconciliation/runs", "/events?after=0"] {
        let api = app
            .client
            .get(format!("{}{path}", app.address))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

async fn resolving_from_the_queue_records_the_operator(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let id = app
        .set_aside("order_console_review", "pk_console_review")
        .await;
    // Since then someone cancelled part of it in Toss's dashboard: Toss's record now differs.
    app.toss.cancel_in_dashboard("pk_console_review", 2000);
    let mut browser = Browser::new(&app.address);
    browser.sign_in().await;
    let queue = browser.get("/console/").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
    assert!(
        queue.text.contains("order_console_review"),
        "{}",
        queue.text
    );
    // Toss's record (read now) beside ours; what differs is marked.
    assert!(queue.text.contains(r#"class="differs""#), "{}", queue.text);
    assert!(
        queue.text.contains("<mark>8,000원</mark>"),
        "{}",
        queue.text
    );
    let csrf = queue.csrf_token();

    let empty_note = browser
        .post(
            &format!("/console/payments/{id}/review"),
            &[("action", "dismiss"), ("note", " "), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(empty_note.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.payment(&id).await["needs_review"], true);

    browser
        .post(
            &format!("/console/payments/{id}/review"),
            &[
                ("action", "dismiss"),
                ("note", "Toss support:\r\nthe reply was garbled"),
                ("csrf_token", &csrf),
            ],
        )
        .await
        .redirects_to("/console/?notice=resolved");
    assert_eq!(app.payment(&id).await["needs_review"], false);
    let reviews = app.get(&format!("/payments/{id}/reviews")).await;
    let review = &reviews.body["reviews"][0];
    assert_eq!(review["action"], "dismiss", "{}", reviews.text);
    assert_eq!(review["note"], "Toss support:\nthe reply was garbled");
    assert_eq!(
        review["requested_by"],
        json!({"type": "operator", "name": OPERATOR})
    );
    let after = browser.get("/console/?notice=resolved").await;
    assert!(after.text.contains("The review is resolved"));
    assert!(!after.text.contains("order_console_review"));
    let again = browser
        .post(
            &format!("/console/payments/{id}/review"),
            &[
                ("action", "dismiss"),
                ("note", "twice"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "not flagged any more");
}

async fn pages_show_the_timeline_runs_and_schedules(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let paid = app
        .completed_payment("order_console_timeline", 15000, "pk_console_timeline")
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    let mut browser = Browser::new(&app.address);
    browser.sign_in().await;

    let by_id = browser.get(&format!("/console/payments/{id}")).await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.text);
    for expected in [
        "order_console_timeline",
        "15,000원",
        "payment.completed",
        "시도 / Attempt",
    ] {
        assert!(by_id.text.contains(expected), "{expected}: {}", by_id.text);
    }
    let by_order = browser
        .get("/console/payments?order_id=order_console_timeline")
        .await;
    assert_eq!(by_order.status, StatusCode::OK);
    assert!(by_order.text.contains("payment.completed"));
    let unknown = browser.get("/console/payments?order_id=order_nobody").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let junk = browser.get("/console/payments/not-a-uuid").await;
    assert_eq!(junk.status, StatusCode::NOT_FOUND);

    let reconciliation = browser.get("/console/reconciliation").await;
    assert_eq!(reconciliation.status, StatusCode::OK);
    assert!(reconciliation.text.contains("<svg"));
    let csrf = reconciliation.csrf_token();
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
        .date_naive()
        .to_string();
    browser
        .post(
            "/console/reconciliation/runs",
            &[("date", &today), ("csrf_token", &csrf)],
        )
        .await
        .redirects_to("/console/reconciliation?notice=run_started");
    let mut runs = serde_json::Value::Null;
    for _ in 0..100 {
        runs = app.get("/reconciliation/runs").await.body;
        if runs["runs"][0]["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(runs["runs"][0]["date"], today.as_str(), "{runs}");
    assert_eq!(runs["runs"][0]["status"], "COMPLETED", "{runs}");
    let trigger = app
        .query_column("SELECT \"trigger\" FROM reconciliation_runs")
        .await;
    assert_eq!(trigger, vec![Some("console".to_owned())]);
    let shown = browser.get("/console/reconciliation").await;
    assert!(shown.text.contains(&today));
    assert!(shown.text.contains(r#"class="approved""#), "{}", shown.text);
    // The API's date rule: `+2026-11-2` is ten characters chrono would read as a date.
    for bad in ["yesterday", "+2026-11-2"] {
        let bad_date = browser
            .post(
                "/console/reconciliation/runs",
                &[("date", bad), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(bad_date.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    assert_eq!(
        app.get("/reconciliation/runs").await.body["runs"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let schedules = browser.get("/console/schedules").await;
    assert_eq!(schedules.status, StatusCode::OK);
    assert!(schedules.text.contains("Exhausted"));
}

async fn a_session_works_on_every_instance_until_signed_out(backend: Backend) {
    let mut app = spawn_with(backend, with_operators()).await;
    let second = app.spawn_instance_with(with_operators()).await;
    let mut first = Browser::new(&app.address);
    first.sign_in().await;
    let mut other = Browser::new(&second);
    other.cookies = first.cookies.clone();
    let page = other.get("/console/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = page.csrf_token();
    other
        .post("/console/sign-out", &[("csrf_token", &csrf)])
        .await
        .redirects_to("/console/sign-in");
    assert!(
        !other.cookies.contains_key("console_session"),
        "cookie removed"
    );
    // The first instance no longer knows the session either.
    first
        .get("/console/")
        .await
        .redirects_to("/console/sign-in");
    assert!(
        app.query_column("SELECT token_hash FROM console_sessions")
            .await
            .is_empty()
    );
}
