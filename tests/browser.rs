//! The operator console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver). It starts the service on SQLite with an operators file and the fake Toss, signs
//! in, resolves a flagged payment, starts a reconciliation run, and fails on any error in the
//! browser's console (read through WebDriver after every page). With `UPDATE_SCREENSHOTS=1` it
//! writes a PNG of each page to `docs/console/`.
//!
//! Without chromedriver (`CHROMEDRIVER`, else `/usr/bin/chromedriver`) it fails under CI (`CI`
//! set: `.ci/run` installs it) and is skipped elsewhere.

#[allow(dead_code, unused_imports)]
#[path = "api/fake_toss.rs"]
mod fake_toss;
#[allow(dead_code, unused_macros)]
#[path = "api/helpers.rs"]
mod helpers;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use helpers::{Backend, Options, TestApp, free_port, operators_file, spawn_with};

const OPERATOR: &str = "kim";
const PASSWORD: &str = "browser test password";

/// chromedriver, stopped with the test.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    path.exists().then_some(path)
}

async fn start_driver(path: &PathBuf) -> (Driver, String) {
    let port = free_port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (driver, url)
}

async fn browser(driver_url: &str) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--lang=ko-KR"],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(driver_url)
        .await
        .expect("a Chromium session")
}

/// chromedriver's browser log (`POST /session/{id}/se/log`): what the page's console printed.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// Fails on any error or warning the page wrote to its console (a script error, a resource
/// that did not load, a Content-Security-Policy violation).
async fn assert_clean_console(client: &Client, page: &str) {
    let log = client.issue_cmd(BrowserLog).await.expect("the browser log");
    let problems: Vec<&Value> = log
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|entry| matches!(entry["level"].as_str(), Some("SEVERE" | "WARNING")))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        problems.is_empty(),
        "console errors on {page}: {problems:?}"
    );
}

async fn screenshot(client: &Client, name: &str) {
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() != Ok("1") {
        return;
    }
    let png = client.screenshot().await.expect("a screenshot");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Opens `path`, checks the console, takes the screenshot.
async fn visit(client: &Client, app: &TestApp, path: &str, name: &str) {
    client
        .goto(&format!("{}{path}", app.address))
        .await
        .expect("the page loads");
    assert_clean_console(client, path).await;
    screenshot(client, name).await;
}

async fn text(client: &Client) -> String {
    client
        .find(Locator::Css("main"))
        .await
        .expect("main")
        .text()
        .await
        .unwrap()
}

/// A paid payment that Toss now shows partly cancelled (in its dashboard), set aside for review.
async fn flagged_payment(app: &TestApp) -> String {
    let paid = app
        .completed_payment("order_browser_0001", 33000, "pk_browser_0001")
        .await;
    app.completed_payment("order_browser_0002", 12000, "pk_browser_0002")
        .await;
    let id = paid["payment_id"].as_str().unwrap().to_owned();
    app.toss.cancel_in_dashboard("pk_browser_0001", 3000);
    app.execute_sql(
        "UPDATE payments SET needs_review = $1, review_reason = $2 WHERE id = $3",
        vec![
            true.into(),
            "Toss shows a cancel of 3000 that we did not make".into(),
            id.clone().into(),
        ],
    )
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    let Some(driver_path) = chromedriver() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromedriver is missing (CI installs chromium-driver: .ci/run)");
        }
        eprintln!(
            "skipping the browser test: no chromedriver (set CHROMEDRIVER or install chromium-driver)"
        );
        return;
    };
    tokio::time::timeout(Duration::from_secs(90), run(driver_path))
        .await
        .expect("the browser test took over 90 s");
}

async fn run(driver_path: PathBuf) {
    let app = spawn_with(
        Backend::Sqlite,
        Options {
            operators_file: Some(operators_file(OPERATOR, PASSWORD)),
            ..Options::default()
        },
    )
    .await;
    let id = flagged_payment(&app).await;
    let (_driver, driver_url) = start_driver(&driver_path).await;
    let client = browser(&driver_url).await;

    // Signed out, the console sends to the sign-in page.
    visit(&client, &app, "/console/", "sign-in").await;
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/console/sign-in");
    // Keyboard: the name field has the focus; type, Tab to the password, Enter submits.
    let focused = client
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(focused, "name");
    let name = client.find(Locator::Id("name")).await.unwrap();
    name.send_keys(OPERATOR).await.unwrap();
    name.send_keys("\u{E004}").await.unwrap(); // Tab
    let password = client.find(Locator::Id("password")).await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    password.send_keys("\u{E007}").await.unwrap(); // Enter
    wait_for_path(&client, "/console/").await;
    assert_clean_console(&client, "/console/ (signed in)").await;
    let queue = text(&client).await;
    assert!(queue.contains("order_browser_0001"), "{queue}");
    assert!(
        !client
            .find_all(Locator::Css("tr.differs"))
            .await
            .unwrap()
            .is_empty(),
        "Toss's balance differs from ours: {queue}"
    );
    screenshot(&client, "queue").await;

    // Resolve it: dismiss, with a note.
    let form = client.find(Locator::Css("form.review")).await.unwrap();
    form.find(Locator::Css("input[value=dismiss]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    form.find(Locator::Css("textarea"))
        .await
        .unwrap()
        .send_keys("환불은 토스 대시보드에서 처리됨 / refunded in Toss's dashboard")
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "The review is resolved").await;
    assert_clean_console(&client, "/console/ (resolved)").await;
    let reviews = app.get(&format!("/payments/{id}/reviews")).await;
    assert_eq!(
        reviews.body["reviews"][0]["requested_by"],
        json!({"type": "operator", "name": OPERATOR}),
        "{}",
        reviews.text
    );
    assert_eq!(app.payment(&id).await["needs_review"], false);

    visit(&client, &app, &format!("/console/payments/{id}"), "payment").await;
    assert!(text(&client).await.contains("검토 / Review"));

    // Start a reconciliation run of today (the form's date) and see it listed.
    visit(
        &client,
        &app,
        "/console/reconciliation",
        "reconciliation-empty",
    )
    .await;
    client
        .find(Locator::Css("form.run button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "The reconciliation run started").await;
    assert_clean_console(&client, "/console/reconciliation (started)").await;
    let started = Instant::now();
    loop {
        let runs = app.get("/reconciliation/runs").await.body;
        if runs["runs"][0]["status"] == "COMPLETED" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    visit(&client, &app, "/console/reconciliation", "reconciliation").await;
    assert!(text(&client).await.contains("COMPLETED"));
    assert!(
        !client
            .find_all(Locator::Css("svg.chart rect.approved"))
            .await
            .unwrap()
            .is_empty()
    );

    visit(&client, &app, "/console/schedules", "schedules").await;
    visit(
        &client,
        &app,
        "/console/payments?order_id=order_browser_0002",
        "payment-by-order",
    )
    .await;

    // Sign out: back to the sign-in page, and the queue is closed again.
    client
        .find(Locator::Css("form.sign-out button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&client, "/console/sign-in").await;
    client
        .goto(&format!("{}/console/", app.address))
        .await
        .unwrap();
    assert_clean_console(&client, "/console/ (signed out)").await;
    assert_eq!(
        client.current_url().await.unwrap().path(),
        "/console/sign-in"
    );
    client.close().await.unwrap();
}

async fn wait_for_path(client: &Client, path: &str) {
    let started = Instant::now();
    while client.current_url().await.unwrap().path() != path {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never reached {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_text(client: &Client, expected: &str) {
    let started = Instant::now();
    loop {
        if let Ok(main) = client.find(Locator::Css("main")).await
            && main.text().await.is_ok_and(|text| text.contains(expected))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never showed {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
