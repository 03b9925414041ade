//! Spawns the real application (as `main` builds it) on port 0, against a fresh database and a
//! fake Toss on loopback. Every scenario runs on SQLite and on PostgreSQL.

use std::sync::Once;
use std::time::Duration;

use payment_service::config::Settings;
use payment_service::service::PaymentService;
use payment_service::startup::Application;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use wiremock::MockServer;

use crate::fake_toss::{FakeToss, SECRET_KEY};

pub const API_KEY: &str = "test-api-key-0123456789";
/// A second configured key, as during a key rotation (see `Options::rotated_api_key`).
pub const ROTATED_API_KEY: &str = "test-api-key-rotated-9876543210";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Server that PostgreSQL tests create their databases on (`TEST_POSTGRES_URL`).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of one test; dropped with it.
pub struct TestDatabase {
    pub url: String,
    backend: Backend,
    name: String,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        let name = format!("ps_test_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Self {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    backend,
                    name: path.display().to_string(),
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let db = Database::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL at {admin} is required for the postgres tests: {e}")
                });
                db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = db.close().await;
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(base, _)| base)
                    .to_owned();
                Self {
                    url: format!("{base}/{name}"),
                    backend,
                    name,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self.backend {
            Backend::Sqlite => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", self.name));
                }
            }
            Backend::Postgres => {
                let name = self.name.clone();
                cleanup(async move {
                    if let Ok(db) = Database::connect(&postgres_admin_url()).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        let _ = db.close().await;
                    }
                });
            }
        }
    }
}

/// Runs async clean-up from a `Drop`, which runs inside the test's runtime: on a thread with
/// a runtime of its own, waited for.
pub fn cleanup(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work);
    })
    .join();
}

/// How to start the application of one test.
#[derive(Clone)]
pub struct Options {
    /// Toss gateway (pointed at the fake) rather than the no-op gateway.
    pub toss: bool,
    pub redirect: Option<(String, String)>,
    pub read_timeout_secs: u64,
    /// The background reconciler; off by default so tests drive `settle_due` themselves.
    pub reconciler: bool,
    /// Per-IP rate limit of the public routes: (requests per second, burst).
    pub public_rate: (f64, f64),
    pub cors_allowed_origins: Vec<String>,
    /// `ROTATED_API_KEY` is configured too, beside `API_KEY`.
    pub rotated_api_key: bool,
    /// `API_KEYS_FILE`: named keys with scopes, beside `API_KEYS`.
    pub api_keys_file: Option<String>,
    /// `redirect.billing_success_url` and `redirect.billing_fail_url`.
    pub billing_redirect: Option<(String, String)>,
    /// `BILLING_KEY_ENCRYPTION_KEY` (base64 of 32 bytes); every instance of a test shares it.
    pub billing_encryption_key: String,
    /// `TOSS_BILLING_SECRET_KEY`: billing under its own key (another MID at the fake Toss).
    pub toss_billing_secret_key: Option<String>,
    /// Rows per page of Toss's transactions and settlements lists.
    pub reconciliation_page_size: u32,
    /// `reconciliation.daily_at` ("HH:MM" KST); `None`: no daily schedule.
    pub reconciliation_daily_at: Option<String>,
    /// `server.header_read_timeout_secs`; `None`: the default.
    pub header_read_timeout_secs: Option<u64>,
    /// `limits.trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    /// `limits.max_concurrent_requests`; `None`: the default.
    pub max_concurrent_requests: Option<usize>,
    /// `OPERATORS_FILE`: the console's operators.
    pub operators_file: Option<String>,
    /// The worker of scheduled charges (on by default).
    pub scheduler: bool,
}

/// The billing key encryption key of the tests' instances (32 bytes, base64).
pub const BILLING_ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

impl Default for Options {
    fn default() -> Self {
        Self {
            toss: true,
            redirect: None,
            read_timeout_secs: 10,
            reconciler: false,
            // Tests hammer the public routes from one address on purpose.
            public_rate: (100_000.0, 100_000.0),
            cors_allowed_origins: Vec::new(),
            rotated_api_key: false,
            api_keys_file: None,
            billing_redirect: None,
            billing_encryption_key: BILLING_ENCRYPTION_KEY.to_owned(),
            toss_billing_secret_key: None,
            reconciliation_page_size: 5000,
            reconciliation_daily_at: None,
            header_read_timeout_secs: None,
            trusted_proxies: Vec::new(),
            max_concurrent_requests: None,
            operators_file: None,
            scheduler: true,
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub toss_server: MockServer,
    pub toss: FakeToss,
    pub service: PaymentService,
    pub database_url: String,
    options: Options,
    /// More instances of the service on the same database and fake Toss.
    others: Vec<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    // Last, so the database outlives the server.
    _database: TestDatabase,
}

static INIT: Once = Once::new();

pub fn init_process() {
    INIT.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Logs only with TEST_LOG; always the subscriber, which also turns the pool's checkout
        // events into `db_pool_acquire_seconds`. These tests export no traces
        // (tests/traces.rs does).
        let mut log = Settings::defaults().log;
        if std::env::var("TEST_LOG").is_err() {
            log.filter = "off".to_owned();
        }
        drop(payment_service::telemetry::init(&log));
    });
}

pub fn settings_for(database_url: &str, toss_url: &str, options: &Options) -> Settings {
    let mut settings = Settings::defaults();
    settings.server.bind_addr = "127.0.0.1:0".to_owned();
    settings.database.url = Some(database_url.to_owned().into());
    settings.database.max_connections = Some(10);
    settings.auth.api_keys = vec![API_KEY.into()];
    if options.rotated_api_key {
        settings.auth.api_keys.push(ROTATED_API_KEY.into());
    }
    settings.auth.api_keys_file = options.api_keys_file.clone();
    settings.auth.operators_file = options.operators_file.clone();
    if options.toss {
        settings.toss.secret_key = Some(SECRET_KEY.into());
        settings.toss.api_url = toss_url.to_owned();
    }
    settings.toss.read_timeout_secs = options.read_timeout_secs;
    settings.toss.lookup_timeout_secs = options.read_timeout_secs;
    settings.toss.connect_timeout_secs = 2;
    settings.reconciler.enabled = options.reconciler;
    settings.limits.public_requests_per_sec = options.public_rate.0;
    settings.limits.public_burst = options.public_rate.1;
    settings.limits.trusted_proxies = options.trusted_proxies.clone();
    if let Some(max) = options.max_concurrent_requests {
        settings.limits.max_concurrent_requests = max;
    }
    if let Some(secs) = options.header_read_timeout_secs {
        settings.server.header_read_timeout_secs = secs;
    }
    settings.server.cors_allowed_origins = options.cors_allowed_origins.clone();
    settings.reconciler.interval_ms = 100;
    settings.reconciliation.page_size = options.reconciliation_page_size;
    settings.reconciliation.daily_at = options.reconciliation_daily_at.clone().unwrap_or_default();
    settings.reconciliation.check_interval_secs = 1;
    settings.reconciler.initial_backoff_secs = 0;
    settings.reconciler.max_backoff_secs = 1;
    if let Some((success, fail)) = &options.redirect {
        settings.redirect.success_url = Some(success.clone());
        settings.redirect.fail_url = Some(fail.clone());
    }
    if let Some((success, fail)) = &options.billing_redirect {
        settings.redirect.billing_success_url = Some(success.clone());
        settings.redirect.billing_fail_url = Some(fail.clone());
    }
    settings.billing.encryption_key = Some(options.billing_encryption_key.clone().into());
    // Scheduled charges: looked for often, an unknown outcome looked at again soon.
    settings.billing.scheduler_enabled = options.scheduler;
    settings.billing.scheduler_poll_ms = 100;
    settings.billing.scheduler_recheck_secs = 1;
    settings.billing.scheduler_lease_secs = 5;
    settings.toss.billing_secret_key = options.toss_billing_secret_key.clone().map(Into::into);
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, Options::default()).await
}

/// An application whose Toss calls give up after 1 s, for tests of unknown outcomes.
pub async fn spawn_impatient(backend: Backend) -> TestApp {
    spawn_with(
        backend,
        Options {
            read_timeout_secs: 1,
            ..Options::default()
        },
    )
    .await
}

pub async fn spawn_with(backend: Backend, options: Options) -> TestApp {
    spawn_on(TestDatabase::create(backend).await, options).await
}

/// The application on a database the test prepared (say, an older schema with rows in it),
/// which it migrates at start-up as a deploy does.
pub async fn spawn_on(database: TestDatabase, options: Options) -> TestApp {
    init_process();
    let toss_server = MockServer::start().await;
    let toss = FakeToss::new(::fake_toss::Settings {
        billing_secret_key: options.toss_billing_secret_key.clone(),
        ..::fake_toss::Settings::default()
    });
    toss.mount(&toss_server).await;
    let (address, service, shutdown, server) =
        start_instance(&database.url, &toss_server.uri(), &options).await;
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        toss_server,
        toss,
        service,
        database_url: database.url.clone(),
        options,
        others: Vec::new(),
        shutdown: Some(shutdown),
        server: Some(server),
        _database: database,
    }
}

async fn start_instance(
    database_url: &str,
    toss_url: &str,
    options: &Options,
) -> (
    String,
    PaymentService,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let settings = settings_for(database_url, toss_url, options);
    let app = Application::build(settings)
        .await
        .expect("application starts");
    let address = format!("http://{}", app.local_addr());
    let service = app.service().clone();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = stopped.await;
        })
        .await
        .expect("server runs");
    });
    (address, service, shutdown, server)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Asserts a problem document with `code`, and returns it.
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "content type of {}",
            self.text
        );
        assert_eq!(self.body["code"], code, "code of {}", self.text);
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string() && self.body["type"].is_string());
        &self.body
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        auth: bool,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if auth {
            request = request.bearer_auth(API_KEY);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_reply(request.send().await.expect("request sent")).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(body), true).await
    }

    pub async fn post_public(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(body), false).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, true).await
    }

    pub async fn get_public(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, false).await
    }

    /// Creates a PENDING payment and returns it.
    pub async fn create_payment(&self, order_id: &str, amount: i64) -> Value {
        let reply = self
            .post(
                "/payments",
                json!({"user_id": "u-1", "order_id": order_id, "amount_krw": amount, "payment_method": "card"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body
    }

    /// A payment confirmed through the fake Toss with `payment_key` (by the public confirm), as
    /// a caller with the API key reads it afterwards.
    pub async fn completed_payment(&self, order_id: &str, amount: i64, payment_key: &str) -> Value {
        self.create_payment(order_id, amount).await;
        self.toss.authenticate(payment_key, order_id, amount);
        let reply = self
            .post_public(
                "/payments/confirm",
                json!({"order_id": order_id, "payment_key": payment_key, "amount_krw": amount}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        self.payment(reply.body["payment_id"].as_str().expect("payment_id"))
            .await
    }

    pub async fn payment(&self, payment_id: &str) -> Value {
        let reply = self.get(&format!("/payments/{payment_id}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body
    }

    /// Every event of the log, oldest first.
    pub async fn events(&self) -> Vec<Value> {
        let reply = self.get("/events?limit=1000").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body["events"].as_array().cloned().unwrap_or_default()
    }

    pub async fn events_of(&self, payment_id: &str) -> Vec<Value> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e["payload"]["payment_id"] == payment_id)
            .collect()
    }

    /// Requests the fake Toss received, optionally only those whose path ends with `suffix`.
    pub async fn toss_requests(
        &self,
        http_method: &str,
        path_contains: &str,
    ) -> Vec<wiremock::Request> {
        self.toss_server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == http_method && r.url.path().contains(path_contains))
            .collect()
    }

    /// Toss answers `http_method` on paths matching `path` with an error, `times` times (or
    /// always), in front of the fake's normal behaviour.
    pub async fn toss_fails(
        &self,
        http_method: &str,
        path: &str,
        status: u16,
        code: &str,
        times: Option<u64>,
    ) {
        let error = crate::fake_toss::error(status, code, "토스 오류 메시지");
        self.mount_in_front(http_method, path, error, times).await;
    }

    /// Toss answers `http_method` on paths matching `path` with `body` (200), `times` times (or
    /// always), in front of the fake's normal behaviour.
    pub async fn toss_answers(
        &self,
        http_method: &str,
        path: &str,
        body: Value,
        times: Option<u64>,
    ) {
        let answer = wiremock::ResponseTemplate::new(200).set_body_json(body);
        self.mount_in_front(http_method, path, answer, times).await;
    }

    /// Toss takes longer than the tests' read timeouts to answer, and does nothing.
    pub async fn toss_hangs(&self, http_method: &str, path: &str, times: Option<u64>) {
        let hang = wiremock::ResponseTemplate::new(500).set_delay(Duration::from_secs(3));
        self.mount_in_front(http_method, path, hang, times).await;
    }

    async fn mount_in_front(
        &self,
        http_method: &str,
        path: &str,
        response: wiremock::ResponseTemplate,
        times: Option<u64>,
    ) {
        let mock = wiremock::Mock::given(wiremock::matchers::method(http_method))
            .and(wiremock::matchers::path_regex(path))
            .respond_with(response);
        match times {
            Some(n) => mock.up_to_n_times(n).mount(&self.toss_server).await,
            None => mock.mount(&self.toss_server).await,
        }
    }

    /// How many requests the fake Toss received, of any kind.
    pub async fn toss_calls(&self) -> usize {
        self.toss_server
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }

    /// Runs the settler until payment `id` leaves `IN_PROGRESS` (at most 50 passes, 100 ms
    /// apart) and returns the payment as it then is.
    pub async fn settle(&self, id: &str) -> Value {
        let mut payment = Value::Null;
        for _ in 0..50 {
            self.service.settle_due().await.unwrap();
            payment = self.payment(id).await;
            if payment["status"] != "IN_PROGRESS" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        payment
    }

    /// Toss answers the next confirm with the error `code` (HTTP `status`).
    pub async fn fail_next_confirm(&self, status: u16, code: &str) {
        self.toss_fails("POST", "^/v1/payments/confirm$", status, code, Some(1))
            .await;
    }

    /// Another refund's cancel holds payment `id`'s cancel slot for an hour: refunds asked for
    /// now wait their turn (answered 202, sent 0 times).
    pub async fn hold_cancel_slot(&self, id: &str) {
        let holder = uuid::Uuid::now_v7().to_string();
        let until = chrono::Utc::now() + chrono::Duration::hours(1);
        self.execute_sql(
            "UPDATE payments SET cancel_slot = $1, cancel_slot_until = $2 WHERE id = $3",
            vec![holder.into(), until.into(), id.into()],
        )
        .await;
    }

    /// Payment `id`'s cancel slot is free again.
    pub async fn free_cancel_slot(&self, id: &str) {
        self.execute_sql(
            "UPDATE payments SET cancel_slot = NULL, cancel_slot_until = NULL WHERE id = $1",
            vec![id.into()],
        )
        .await;
    }

    /// Toss answers the next cancel of any payment (`times` of them; every one with `None`)
    /// with `key`'s record as if someone else had cancelled 9,999 KRW of it (balance 1): a reply
    /// that contradicts our books.
    /// A completed payment whose refund's cancel reply contradicted ours: set aside for review,
    /// its refund pending. Returns its id.
    pub async fn set_aside(&self, order_id: &str, key: &str) -> String {
        let paid = self.completed_payment(order_id, 10000, key).await;
        let id = paid["payment_id"].as_str().unwrap().to_owned();
        self.contradict_cancels(key, Some(1)).await;
        self.post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "r", "refund_amount_krw": 1000}),
        )
        .await
        .problem(502, "PG_RESPONSE_MISMATCH");
        assert_eq!(self.payment(&id).await["needs_review"], true);
        id
    }

    pub async fn contradict_cancels(&self, key: &str, times: Option<u64>) {
        let mut record = self.toss.payment(key).unwrap();
        record.balance = 1;
        record.status = "PARTIAL_CANCELED".to_owned();
        record.last_transaction_key = "cx_other".to_owned();
        record.cancels = vec![
            json!({"transactionKey": "cx_other", "cancelAmount": 9999, "cancelStatus": "DONE"}),
        ];
        let reply =
            wiremock::ResponseTemplate::new(200).set_body_json(crate::fake_toss::to_json(&record));
        self.mount_in_front("POST", "/cancel$", reply, times).await;
    }

    /// The buyer's confirm of `order_id` with `payment_key`, without the API key.
    pub async fn confirm_public(&self, order_id: &str, payment_key: &str) -> Reply {
        self.post_public(
            "/payments/confirm",
            json!({"order_id": order_id, "payment_key": payment_key}),
        )
        .await
    }

    pub async fn confirms_sent(&self) -> usize {
        self.toss_requests("POST", "/v1/payments/confirm")
            .await
            .len()
    }

    /// Starts another instance of the service on the same database and fake Toss, as a second
    /// replica would run; returns its base address.
    pub async fn spawn_instance(&mut self) -> String {
        let (address, _service, shutdown, server) =
            start_instance(&self.database_url, &self.toss_server.uri(), &self.options).await;
        self.others.push((shutdown, server));
        address
    }

    /// Stops the main instance (as SIGTERM would: in-flight requests finish) and starts a new
    /// one on the same database and fake Toss, as a deploy or a restart after a crash does.
    pub async fn restart(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
        let (address, service, shutdown, server) =
            start_instance(&self.database_url, &self.toss_server.uri(), &self.options).await;
        self.address = address;
        self.service = service;
        self.shutdown = Some(shutdown);
        self.server = Some(server);
    }

    /// Restarts the main instance as [`restart`](Self::restart) does, with other `options` from
    /// then on (say, another `BILLING_KEY_ENCRYPTION_KEY`).
    pub async fn restart_with(&mut self, options: Options) {
        self.options = options;
        self.restart().await;
    }

    /// The settings the main instance runs with, for a command run beside it.
    pub fn settings(&self) -> Settings {
        settings_for(&self.database_url, &self.toss_server.uri(), &self.options)
    }

    /// Starts another instance on the same database and fake Toss with other `options` (say,
    /// without the Toss gateway); returns its base address.
    pub async fn spawn_instance_with(&mut self, options: Options) -> String {
        let (address, _service, shutdown, server) =
            start_instance(&self.database_url, &self.toss_server.uri(), &options).await;
        self.others.push((shutdown, server));
        address
    }

    /// Runs SQL on the test database, as a crash would have left it.
    pub async fn execute_sql(&self, sql: &str, values: Vec<sea_orm::Value>) {
        let db = Database::connect(&self.database_url)
            .await
            .expect("connect");
        execute_on(&db, sql, values).await;
        let _ = db.close().await;
    }

    /// The first column of every row `sql` returns, as text (NULL as `None`).
    pub async fn query_column(&self, sql: &str) -> Vec<Option<String>> {
        let db = Database::connect(&self.database_url)
            .await
            .expect("connect");
        let statement = sea_orm::Statement::from_string(db.get_database_backend(), sql);
        let rows = db.query_all_raw(statement).await.expect("query");
        let values = rows
            .iter()
            .map(|row| {
                row.try_get_by_index::<Option<String>>(0)
                    .expect("a text column")
            })
            .collect();
        let _ = db.close().await;
        values
    }

    pub async fn stop(mut self) {
        for (shutdown, server) in self.others.drain(..) {
            let _ = shutdown.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }
}

/// Makes the payment's next reconciliation (its read-back) due now, as time passing would.
pub async fn due_now(app: &TestApp, id: &str) {
    app.execute_sql(
        "UPDATE payments SET next_reconcile_at = $1 WHERE id = $2",
        vec![chrono::Utc::now().into(), id.into()],
    )
    .await;
}

/// Runs `sql` (written with PostgreSQL's `$1`, `$2`, …) with `values` on `db`.
/// A store of its own on the test's database, as another process would open one.
pub async fn store_on(database_url: &str, max_connections: u32) -> payment_service::store::Store {
    payment_service::store::Store::connect(&payment_service::store::DatabaseOptions {
        url: database_url.to_owned(),
        max_connections,
        acquire_timeout: Duration::from_secs(5),
    })
    .await
    .expect("store")
}

pub async fn execute_on(db: &sea_orm::DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) {
    let backend = db.get_database_backend();
    // SQLite numbers its parameters `?1`.
    let sql = match backend {
        sea_orm::DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    let statement = sea_orm::Statement::from_sql_and_values(backend, sql, values);
    db.execute_raw(statement)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Toss's webhook `body`, delivered as Toss does (no API key), with its transmission id if any.
pub async fn deliver(app: &TestApp, transmission_id: Option<&str>, body: &Value) -> Reply {
    let mut request = app
        .client
        .post(format!("{}/webhooks/toss", app.address))
        .json(body);
    if let Some(id) = transmission_id {
        request = request.header("tosspayments-webhook-transmission-id", id);
    }
    into_reply(request.send().await.unwrap()).await
}

pub async fn into_reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// Runs each listed scenario `async fn name(backend: Backend)` once on SQLite and once on
/// PostgreSQL, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// An `OPERATORS_FILE` with one operator, whose hash `payment-service operator hash` would print.
pub fn operators_file(name: &str, password: &str) -> String {
    let hash = payment_service::console::hash_password(&password.into()).unwrap();
    let path = std::env::temp_dir().join(format!("operators-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &path,
        format!("[[operators]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\n"),
    )
    .unwrap();
    path.display().to_string()
}

/// A loopback port nobody listens on now (for a process the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
