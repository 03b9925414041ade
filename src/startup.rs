//! Wires everything once: database (migrated), gateway, service, reconciler, event relay, router,
//! listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DbErr, RuntimeErr};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{DatabaseSettings, Settings, configured};
use crate::console::{Console, Operators};
use crate::crypto::{AccountSealer, BillingKeyCipher};
use crate::gateway::{
    BillingGateway, Books, MeteredBooks, MeteredGateway, NoopGateway, PaymentGateway, TossClient,
};
use crate::http::{
    self, ApiKeys, AppParts, AppState, ConcurrencyLimit, PublicRateLimit, RouterSettings,
};
use crate::idempotency::Idempotency;
use crate::relay::{self, Relay};
use crate::service::Scheduler;
use crate::service::{PaymentService, Reconciliation, ServiceSettings, Settler};
use crate::store::Store;

mod commands;
pub use commands::{operator_hash_command, reconcile_command, reseal_command};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    service: PaymentService,
    reconciler: Option<Settler>,
    scheduler: Option<Scheduler>,
    reconciliation: Reconciliation,
    relay: Option<Relay>,
    rate_limit: PublicRateLimit,
    grace: Duration,
    header_read_timeout: Duration,
}

/// Billing's gateway (under `TOSS_BILLING_SECRET_KEY`, else `TOSS_SECRET_KEY`; none without
/// either) and the cipher of stored billing keys. A malformed encryption key stops the start.
fn billing(
    settings: &Settings,
) -> anyhow::Result<(Option<Arc<dyn BillingGateway>>, BillingKeyCipher)> {
    let key = [
        (&settings.toss.billing_secret_key, "TOSS_BILLING_SECRET_KEY"),
        (&settings.toss.secret_key, "TOSS_SECRET_KEY"),
    ]
    .into_iter()
    .find_map(|(key, source)| Some((configured(key)?, source)));
    let gateway: Option<Arc<dyn BillingGateway>> = match key {
        Some((secret_key, source)) => {
            let client = toss_client(settings, secret_key)?;
            tracing::info!(gateway = "toss", key = source, api_url = %settings.toss.api_url, "billing gateway: Toss Payments billing (자동결제)");
            Some(Arc::new(MeteredGateway::new(
                Arc::new(client),
                settings.toss.max_concurrency,
            )))
        }
        None => {
            tracing::warn!(
                "billing gateway: none (neither TOSS_BILLING_SECRET_KEY nor TOSS_SECRET_KEY is set); billing routes that need Toss answer 503 PG_NOT_CONFIGURED"
            );
            None
        }
    };
    Ok((gateway, cipher(settings)?))
}

/// The cipher of stored billing keys and refund accounts: the keys of
/// `BILLING_KEY_ENCRYPTION_KEY` (newest first), or one generated for this process.
fn cipher(settings: &Settings) -> anyhow::Result<BillingKeyCipher> {
    Ok(match configured(&settings.billing.encryption_key) {
        Some(key) => {
            let cipher = BillingKeyCipher::from_base64(key.expose_secret())?;
            let keyring = cipher.keyring();
            tracing::info!(
                key_version = keyring.current_version(),
                keys = keyring.len(),
                "sealing billing keys and refund accounts under BILLING_KEY_ENCRYPTION_KEY"
            );
            cipher
        }
        None => {
            tracing::warn!(
                alert = "billing_key_encryption_key_generated",
                "BILLING_KEY_ENCRYPTION_KEY is not set: a key was generated for this process only. \
                 Billing keys stored now CANNOT be decrypted after a restart (buyers must register \
                 their cards again), and refund accounts are sealed under a key derived from \
                 TOSS_SECRET_KEY as before. Set a 32-byte base64 key (openssl rand -base64 32) in production."
            );
            BillingKeyCipher::generate()
        }
    })
}

/// Seals refund accounts under the cipher's keys; opens those version 2 sealed under the key
/// derived from `TOSS_SECRET_KEY`.
fn account_sealer(settings: &Settings, cipher: &BillingKeyCipher) -> AccountSealer {
    AccountSealer::new(
        cipher.keyring().clone(),
        configured(&settings.toss.secret_key),
    )
}

impl Application {
    /// Connects and migrates the database, picks the gateway, binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Settings checked before anything is opened.
        let trusted_proxies = settings
            .limits
            .trusted_proxy_networks()
            .map_err(anyhow::Error::msg)?;

        // Before anything connects: a bad key file or an unsafe production setting stops the
        // start with one line.
        let api_keys = Arc::new(
            ApiKeys::load(&settings.auth.api_keys, settings.auth.api_keys_file())
                .map_err(anyhow::Error::msg)?,
        );
        settings
            .check_production(!api_keys.is_empty())
            .map_err(anyhow::Error::msg)?;
        let operators =
            Operators::load(settings.auth.operators_file()).map_err(anyhow::Error::msg)?;
        if api_keys.is_empty() {
            tracing::warn!("no API key is configured: every privileged route answers 401");
        } else {
            tracing::info!(names = ?api_keys.names(), "API keys (names only)");
        }

        // The recorder first: connecting records the pool's size.
        let metrics = crate::telemetry::metrics();
        let store = connect(&settings.database, expected_concurrency(&settings)).await?;
        tracing::info!(
            database = settings.database.backend_name(),
            "database ready"
        );
        let relay = match settings.nats.url() {
            Some(url) => {
                // Returns at once and keeps connecting in the background: NATS being down
                // delays publishing, it does not stop payments.
                let client = relay::connect(url).await?;
                tracing::info!(
                    nats_url = settings.nats.url_for_logs().unwrap_or_default(),
                    subject_prefix = %settings.nats.subject_prefix,
                    stream = settings.nats.stream.as_deref().unwrap_or("(not managed)"),
                    "events: relayed to NATS JetStream"
                );
                Some(Relay::new(store.clone(), client, settings.nats.relay()))
            }
            None => {
                tracing::info!(
                    "events: NATS_URL is not set; events stay in the outbox (GET /events)"
                );
                None
            }
        };

        let reconciliation_settings = settings
            .reconciliation
            .options()
            .map_err(anyhow::Error::msg)?;
        let gateway: Arc<dyn PaymentGateway> = match configured(&settings.toss.secret_key) {
            Some(key) => {
                let client = Arc::new(toss_client(&settings, key)?);
                tracing::info!(gateway = "toss", key = "TOSS_SECRET_KEY", api_url = %settings.toss.api_url, max_concurrency = settings.toss.max_concurrency, "payment gateway (one-time payments): Toss Payments");
                Arc::new(MeteredGateway::new(client, settings.toss.max_concurrency))
            }
            None => {
                tracing::warn!(
                    gateway = "noop",
                    "payment gateway (one-time payments): no-op (TOSS_SECRET_KEY is not set); confirms are recorded, not verified"
                );
                Arc::new(NoopGateway)
            }
        };

        let (billing, cipher) = billing(&settings)?;

        let reconcile = &settings.reconciler;
        let idempotency = Idempotency::new(
            store.clone(),
            settings
                .idempotency
                .options(settings.server.body_limit_bytes),
        );
        let reconciliation =
            Reconciliation::new(store.clone(), books(&settings)?, reconciliation_settings);
        let service = PaymentService::new(
            store.clone(),
            gateway,
            ServiceSettings {
                pg_read_timeout: Duration::from_secs(settings.toss.read_timeout_secs),
                initial_backoff: Duration::from_secs(reconcile.initial_backoff_secs),
                max_backoff: Duration::from_secs(reconcile.max_backoff_secs),
                confirm_window: Duration::from_secs(reconcile.confirm_window_secs),
                reconcile_batch: reconcile.batch_size,
                account_sealer: account_sealer(&settings, &cipher),
                webhook_retention: Duration::from_secs(settings.webhooks.retention_secs),
            },
        )
        .with_billing(billing, cipher)
        .with_retry_delays(
            crate::domain::retry_delays(&settings.billing.retry_after_seconds)
                .map_err(|e| anyhow::anyhow!("billing.retry_after_seconds: {}", e.reason))?,
        );
        let scheduler =
            (settings.billing.scheduler()).map(|options| Scheduler::new(service.clone(), options));
        let reconciler = reconcile.enabled.then(|| {
            Settler::new(
                service.clone(),
                Duration::from_millis(reconcile.interval_ms),
            )
        });

        let rate_limit = PublicRateLimit::new(
            settings.limits.public_requests_per_sec,
            settings.limits.public_burst,
            trusted_proxies,
        );
        let listener = TcpListener::bind(&settings.server.bind_addr).await?;
        let console = console(operators, &store, &service, &reconciliation, &listener)?;
        let state = AppState::new(AppParts {
            service: service.clone(),
            reconciliation: reconciliation.clone(),
            idempotency,
            api_keys,
            redirect: Arc::new(settings.redirect.clone()),
            body_limit: settings.server.body_limit_bytes,
            rate_limit: rate_limit.clone(),
            concurrency: ConcurrencyLimit::new(settings.limits.max_concurrent_requests),
            metrics,
            outbox_relayed: relay.is_some(),
        });
        let router = http::router(
            state,
            RouterSettings {
                request_timeout: Duration::from_secs(settings.server.request_timeout_secs),
                cors_allowed_origins: settings.server.cors_allowed_origins.clone(),
                pages: console.router(),
            },
        );
        Ok(Self {
            listener,
            router,
            service,
            reconciler,
            scheduler,
            reconciliation,
            relay,
            rate_limit,
            grace: Duration::from_secs(settings.server.shutdown_grace_secs),
            header_read_timeout: Duration::from_secs(settings.server.header_read_timeout_secs),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The service, for tests that drive reconciliation by hand.
    pub fn service(&self) -> &PaymentService {
        &self.service
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish within the grace
    /// period and stops the background tasks (reconciler, relay, the rate limit's clean-up).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Cancelled when `shutdown` completes: the listener stops accepting, the background
        // tasks stop after the pass they are in, and the grace period starts.
        let stopping = CancellationToken::new();
        let background = TaskTracker::new();
        if let Some(reconciler) = self.reconciler {
            background.spawn(reconciler.run(stopping.clone()));
        }
        background.spawn(self.reconciliation.schedule(stopping.clone()));
        if let Some(scheduler) = self.scheduler {
            background.spawn(scheduler.run(stopping.clone()));
        }
        if let Some(relay) = self.relay {
            background.spawn(relay.run(stopping.clone()));
        }
        background.spawn(self.rate_limit.forget_idle_clients(stopping.clone()));
        background.close();
        let stop = stopping.clone();
        let server = serve(
            self.listener,
            self.router,
            self.header_read_timeout,
            async move {
                shutdown.await;
                tracing::info!("shutting down: no new connections; finishing in-flight requests");
                stop.cancel();
            },
        );
        let grace = self.grace;
        let result = tokio::select! {
            result = server => result,
            _ = async {
                stopping.cancelled().await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "grace period over; abandoning in-flight requests");
                Ok(())
            }
        };
        // However serving ended, the background tasks end with it.
        stopping.cancel();
        background.wait().await;
        tracing::info!("stopped");
        result
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for the open
/// connections to finish their requests (each is told to close once its request is answered).
///
/// What `axum::serve` does, plus a timer, which hyper needs to enforce a time limit on a
/// request's headers: a connection whose headers are not all in within `header_read_timeout`
/// (counted from its first read, so an idle connection too) is closed, so that a client that
/// sends half a request cannot hold a connection forever. HTTP/1.1 only (the proxies in front
/// of the service speak it). Each request carries `ConnectInfo<SocketAddr>`, the peer's address.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::server::graceful::GracefulShutdown;
    use tower::ServiceExt;

    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, error = %error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The operator console: served only with operators, its session cookie `Secure` unless the
/// service listens on a loopback address (plain HTTP on the operator's own machine).
fn console(
    operators: Operators,
    store: &Store,
    service: &PaymentService,
    reconciliation: &Reconciliation,
    listener: &TcpListener,
) -> anyhow::Result<Console> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    if operators.is_empty() {
        tracing::info!("operator console: off (OPERATORS_FILE names no operator)");
    } else {
        tracing::info!(operators = ?operators.names(), secure_cookie = !loopback, "operator console at /console/");
    }
    Ok(Console::new(
        operators,
        store.clone(),
        service.clone(),
        reconciliation.clone(),
        !loopback,
    ))
}

/// A Toss client under `secret_key`.
fn toss_client(settings: &Settings, secret_key: &SecretString) -> anyhow::Result<TossClient> {
    Ok(TossClient::new(settings.toss.client(secret_key))?)
}

/// Toss's books to reconcile against, one per key set (merchant id) payments are taken under:
/// `TOSS_SECRET_KEY`'s, and `TOSS_BILLING_SECRET_KEY`'s when billing runs under a key of its own
/// (Toss keeps each key set's transactions and settlements apart). Empty without a Toss key.
fn books(settings: &Settings) -> anyhow::Result<Vec<Arc<dyn Books>>> {
    let payments = configured(&settings.toss.secret_key);
    let billing = configured(&settings.toss.billing_secret_key).filter(|billing| {
        payments
            .as_ref()
            .is_none_or(|payments| payments.expose_secret() != billing.expose_secret())
    });
    payments
        .into_iter()
        .chain(billing)
        .map(|key| {
            let client = Arc::new(toss_client(settings, key)?);
            Ok(Arc::new(MeteredBooks::new(client)) as Arc<dyn Books>)
        })
        .collect()
}

/// Background tasks that may hold a database connection beside the requests: the settler, the
/// relay and the reconciliation run.
const BACKGROUND_CONNECTIONS: u32 = 3;

/// The tasks that may want a database connection at once: every request the service serves at
/// once (none holds one across a Toss call, but each may be between its statements at the same
/// moment), the scheduler's charges when it runs, and the background tasks.
fn expected_concurrency(settings: &Settings) -> u32 {
    let scheduler = if settings.billing.scheduler_enabled {
        settings.billing.scheduler_concurrency
    } else {
        0
    };
    let tasks = settings
        .limits
        .max_concurrent_requests
        .saturating_add(scheduler);
    u32::try_from(tasks)
        .unwrap_or(u32::MAX)
        .saturating_add(BACKGROUND_CONNECTIONS)
}

/// The store, connected and migrated, its pool sized by [`DatabaseSettings::pool_size`] for
/// `expected` tasks. A failure is described in one line that names the database by scheme,
/// host, port and name only: the driver's own errors may quote the URL, password included, and
/// it panics on a URL it cannot parse, so the URL is checked first.
async fn connect(database: &DatabaseSettings, expected: u32) -> anyhow::Result<Store> {
    // reqwest and sqlx are built without a default crypto provider; one for the process, before
    // the first connection (a second install is harmless).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = database.check_url().map_err(anyhow::Error::msg)?;
    let acquire_timeout = Duration::from_secs(database.acquire_timeout_secs);
    let server_allows = if database.asks_the_server() {
        server_connection_limit(database.raw_url(), acquire_timeout).await
    } else {
        None
    };
    let options = database.options(database.pool_size(expected, server_allows));
    metrics::gauge!("db_pool_max_connections").set(f64::from(options.max_connections));
    tracing::info!(
        max_connections = options.max_connections,
        configured = database.max_connections.is_some(),
        expected,
        server_allows = ?server_allows,
        "database pool"
    );
    match Store::connect(&options).await {
        Ok(store) => Ok(store),
        Err(error) => {
            let why = why_not_connected(&error, &url, acquire_timeout).await;
            Err(anyhow::anyhow!(
                "database {}: {}",
                database.url_for_logs(),
                database.redact(&why)
            ))
        }
    }
}

/// The connections PostgreSQL allows ordinary roles: `max_connections` less those reserved
/// (`superuser_reserved_connections`, and `reserved_connections` from PostgreSQL 16). `None`
/// when the server cannot be asked; the pool's own connect then says why, and the error here,
/// which may quote the URL, is dropped.
async fn server_connection_limit(url: &str, timeout: Duration) -> Option<u32> {
    use sea_orm::sqlx::{Connection, PgConnection};
    const ALLOWED: &str = "SELECT current_setting('max_connections')::int \
        - current_setting('superuser_reserved_connections')::int \
        - coalesce(current_setting('reserved_connections', true)::int, 0)";
    let ask = async {
        let mut connection = PgConnection::connect(url).await.ok()?;
        let allowed: i32 = sea_orm::sqlx::query_scalar(ALLOWED)
            .fetch_one(&mut connection)
            .await
            .ok()?;
        let _ = connection.close().await;
        u32::try_from(allowed).ok()
    };
    tokio::time::timeout(timeout, ask).await.ok().flatten()
}

async fn why_not_connected(error: &DbErr, url: &url::Url, timeout: Duration) -> String {
    use sea_orm::sqlx::Error as SqlxError;
    let sqlx_error = match error {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(&**e),
        _ => None,
    };
    match sqlx_error {
        Some(SqlxError::PoolTimedOut) => {
            // The pool only says it waited; a direct attempt says why.
            let address = (
                url.host_str().unwrap_or_default(),
                url.port().unwrap_or(5432),
            );
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
                Ok(Err(error)) => format!("cannot connect to {}:{}: {error}", address.0, address.1),
                _ => format!(
                    "no connection within {} s (is the server running, and are the host and port right?)",
                    timeout.as_secs()
                ),
            }
        }
        Some(SqlxError::Io(error)) => format!("cannot connect: {error}"),
        Some(SqlxError::Database(error)) => match error.code().as_deref() {
            Some("3D000") => "no such database on the server (create it first)".to_owned(),
            Some("28P01") => "the server refused the user name or password".to_owned(),
            Some("28000") => {
                "the server refused this user (no such role, or not allowed by pg_hba.conf)"
                    .to_owned()
            }
            Some(code) => format!("{} (code {code})", error.message()),
            None => error.message().to_owned(),
        },
        Some(other) => other.to_string(),
        None => error.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
