//! Settings, loaded once at start: `config/default.toml` (compiled in), then
//! `config/<APP_ENV>.toml` if present, then `APP_<SECTION>__<KEY>` variables, then the contract's
//! names (`DATABASE_URL`, `BIND_ADDR`, `TOSS_SECRET_KEY`, `TOSS_API_URL`, `API_KEYS`,
//! `API_KEYS_FILE`, `NATS_URL`, `TOSS_BILLING_SECRET_KEY`, `BILLING_KEY_ENCRYPTION_KEY`).
//! `APP_ENV=production` refuses to start without what production needs
//! ([`Settings::check_production`]).

use std::time::Duration;

use config::{Config, ConfigError, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::gateway::{Timeouts, TossOptions};
use crate::idempotency::IdempotencyOptions;
use crate::relay::RelayOptions;

mod database;

pub use database::DatabaseSettings;

const DEFAULTS: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `APP_ENV`: `production` refuses to start unsafe; anything else (default `local`)
    /// generates what is missing and warns.
    #[serde(default)]
    pub env: String,
    pub server: ServerSettings,
    pub limits: LimitSettings,
    pub database: DatabaseSettings,
    pub toss: TossSettings,
    pub auth: AuthSettings,
    pub redirect: RedirectSettings,
    pub reconciler: ReconcilerSettings,
    pub reconciliation: ReconciliationSettings,
    pub idempotency: IdempotencySettings,
    pub nats: NatsSettings,
    pub log: LogSettings,
    pub billing: BillingSettings,
    pub webhooks: WebhookSettings,
}

/// Toss webhook deliveries remembered (only those naming a payment of ours).
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// How long a handled delivery is remembered (so Toss's retries are recognised); the
    /// reconciler's housekeeping deletes older ones.
    pub retention_secs: u64,
}

/// Toss billing (자동결제).
#[derive(Debug, Clone, Deserialize)]
pub struct BillingSettings {
    /// AES-256-GCM keys of stored billing keys and refund accounts (`BILLING_KEY_ENCRYPTION_KEY`):
    /// 32 bytes in base64, or several such keys separated by commas, newest first (the newest
    /// seals, any opens: `crypto::Keyring`). Unset: one is generated at start, and billing keys
    /// do not survive a restart.
    pub encryption_key: Option<SecretString>,
    /// Scheduled charges: the delays (seconds) between a retryable decline and the next
    /// attempt, when a schedule names none (1..10 of 1..2592000).
    pub retry_after_seconds: Vec<i64>,
    /// Whether this instance works scheduled charges through (any number of instances may).
    pub scheduler_enabled: bool,
    /// How often the worker looks for due charges.
    pub scheduler_poll_ms: u64,
    /// Schedules taken per pass, and charged at once.
    pub scheduler_batch: u64,
    pub scheduler_concurrency: usize,
    /// How long a taken schedule belongs to its instance before another may take it over.
    pub scheduler_lease_secs: u64,
    /// How soon a charge whose outcome is unknown is looked at again.
    pub scheduler_recheck_secs: u64,
}

impl BillingSettings {
    /// How the worker of scheduled charges runs; `None` when `scheduler_enabled` is off.
    pub fn scheduler(&self) -> Option<crate::service::SchedulerSettings> {
        self.scheduler_enabled
            .then(|| crate::service::SchedulerSettings {
                poll_interval: Duration::from_millis(self.scheduler_poll_ms.max(10)),
                batch: self.scheduler_batch.max(1),
                concurrency: self.scheduler_concurrency.max(1),
                lease: Duration::from_secs(self.scheduler_lease_secs.max(1)),
                recheck: Duration::from_secs(self.scheduler_recheck_secs),
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind_addr: String,
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    pub cors_allowed_origins: Vec<String>,
    /// A connection whose request headers are not all in within this time is closed.
    pub header_read_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    pub public_requests_per_sec: f64,
    pub public_burst: f64,
    /// Networks (CIDRs, or single addresses) of the proxies in front of the service, whose
    /// `X-Forwarded-For` is read, from the right. Empty: the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Replaced by `trusted_proxies`: `true` is refused at start (it trusted the header from
    /// anyone); `false`, the old default, is accepted and means nothing.
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// Requests served at once, over every route; one more is answered 503.
    pub max_concurrent_requests: usize,
}

impl LimitSettings {
    /// The trusted proxies' networks; a malformed entry, or the retired `trust_forwarded_for =
    /// true`, is an error naming the setting.
    pub fn trusted_proxy_networks(&self) -> Result<Vec<ipnet::IpNet>, String> {
        if self.trust_forwarded_for {
            return Err(
                "limits.trust_forwarded_for is no longer supported (it trusted X-Forwarded-For \
                from any peer): list your proxies' networks in limits.trusted_proxies \
                (APP_LIMITS__TRUSTED_PROXIES=10.0.0.0/8,...) and remove trust_forwarded_for"
                    .to_owned(),
            );
        }
        self.trusted_proxies
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|network| network.trunc())
                    .map_err(|_| {
                        format!(
                            "limits.trusted_proxies: {entry:?} is not an address or a network \
                             (CIDR such as 10.0.0.0/8 or fd00::/8)"
                        )
                    })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TossSettings {
    pub secret_key: Option<SecretString>,
    /// The billing contract's secret key (`TOSS_BILLING_SECRET_KEY`); unset: `secret_key`.
    pub billing_secret_key: Option<SecretString>,
    pub api_url: String,
    pub connect_timeout_secs: u64,
    pub read_timeout_secs: u64,
    pub lookup_timeout_secs: u64,
    pub max_concurrency: usize,
}

impl TossSettings {
    /// A Toss client's options under `secret_key` (payments' or billing's).
    pub fn client(&self, secret_key: &SecretString) -> TossOptions {
        TossOptions {
            api_url: self.api_url.clone(),
            secret_key: secret_key.clone(),
            timeouts: Timeouts {
                connect: Duration::from_secs(self.connect_timeout_secs),
                read: Duration::from_secs(self.read_timeout_secs),
                lookup: Duration::from_secs(self.lookup_timeout_secs),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// `API_KEYS`: each has every scope, named `key-1`, `key-2`, … in order.
    pub api_keys: Vec<SecretString>,
    /// `API_KEYS_FILE`: a TOML file of `[[api_keys]]` entries `{name, sha256, scopes}`.
    pub api_keys_file: Option<String>,
    /// `OPERATORS_FILE`: a TOML file of `[[operators]]` entries `{name, password_hash}` who may
    /// sign in to the console; unset: no console.
    pub operators_file: Option<String>,
}

impl AuthSettings {
    /// The file of named keys, if one is configured (not blank).
    pub fn api_keys_file(&self) -> Option<&str> {
        non_blank(self.api_keys_file.as_deref())
    }

    /// The console's operators file, if one is configured (not blank).
    pub fn operators_file(&self) -> Option<&str> {
        non_blank(self.operators_file.as_deref())
    }
}

/// `value` trimmed, unless that leaves nothing.
fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !value.is_empty())
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RedirectSettings {
    pub success_url: Option<String>,
    pub fail_url: Option<String>,
    /// Where `/billing/toss/success` sends the buyer (`?billing_key_id=…`); unset: JSON.
    pub billing_success_url: Option<String>,
    /// Where `/billing/toss/fail` sends the buyer (`?code=…&message=…`); unset: a problem.
    pub billing_fail_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReconcilerSettings {
    pub enabled: bool,
    pub interval_ms: u64,
    pub batch_size: u64,
    pub initial_backoff_secs: u64,
    pub max_backoff_secs: u64,
    pub confirm_window_secs: u64,
}

/// `[reconciliation]`: runs against Toss's books.
#[derive(Debug, Clone, Deserialize)]
pub struct ReconciliationSettings {
    /// "HH:MM" KST; empty: no daily schedule.
    pub daily_at: String,
    pub check_interval_secs: u64,
    pub page_size: u32,
    pub lease_secs: u64,
}

impl ReconciliationSettings {
    /// The daily schedule's time of day (KST), `None` when off; an error names what is wrong.
    pub fn daily_at(&self) -> Result<Option<chrono::NaiveTime>, String> {
        let raw = self.daily_at.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        chrono::NaiveTime::parse_from_str(raw, "%H:%M")
            .map(Some)
            .map_err(|_| format!("reconciliation.daily_at: {raw:?} is not HH:MM (e.g. \"04:00\")"))
    }

    pub fn options(&self) -> Result<crate::service::ReconciliationOptions, String> {
        if !(1..=crate::gateway::books::MAX_PAGE).contains(&self.page_size) {
            return Err(format!(
                "reconciliation.page_size: {} is not 1..=5000",
                self.page_size
            ));
        }
        Ok(crate::service::ReconciliationOptions {
            daily_at: self.daily_at()?,
            check_interval: Duration::from_secs(self.check_interval_secs.max(1)),
            page_size: self.page_size,
            lease: Duration::from_secs(self.lease_secs.max(10)),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdempotencySettings {
    pub ttl_secs: u64,
    pub in_flight_lease_secs: u64,
}

impl IdempotencySettings {
    /// The layer's options; a body is read whole up to `body_limit` to fingerprint it.
    pub fn options(&self, body_limit: usize) -> IdempotencyOptions {
        IdempotencyOptions {
            ttl: Duration::from_secs(self.ttl_secs),
            in_flight_lease: Duration::from_secs(self.in_flight_lease_secs),
            body_limit,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct NatsSettings {
    /// Unset: no relay; events wait in the outbox and are served by `GET /events`. May carry
    /// credentials, so it is a secret (redacted in `Debug`) and logged through `url_for_logs`.
    pub url: Option<SecretString>,
    pub subject_prefix: String,
    /// Created (subjects `{subject_prefix}payment.>`) if missing; unset: the stream is managed
    /// elsewhere.
    pub stream: Option<String>,
    pub interval_ms: u64,
    pub batch_size: u64,
}

impl NatsSettings {
    /// The configured URL, if any and not blank.
    pub fn url(&self) -> Option<&str> {
        non_blank(self.url.as_ref().map(ExposeSecret::expose_secret))
    }

    pub fn relay(&self) -> RelayOptions {
        RelayOptions {
            subject_prefix: self.subject_prefix.clone(),
            stream: non_blank(self.stream.as_deref()).map(str::to_owned),
            interval: Duration::from_millis(self.interval_ms),
            batch_size: self.batch_size.max(1),
            publish_timeout: Duration::from_secs(5),
        }
    }

    /// The server addresses without user names, passwords or tokens.
    pub fn url_for_logs(&self) -> Option<String> {
        self.url().map(|urls| {
            urls.split(',')
                .map(|one| redact(one.trim()))
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// `nats://user:pass@host:4222` -> `nats://host:4222`; a bare `host:4222` is kept as it is.
fn redact(address: &str) -> String {
    let with_scheme = if address.contains("://") {
        address.to_owned()
    } else {
        format!("nats://{address}")
    };
    match url::Url::parse(&with_scheme) {
        Ok(url) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
            (Some(host), None) => format!("{}://{host}", url.scheme()),
            (None, _) => "(unparsable)".to_owned(),
        },
        Err(_) => "(unparsable)".to_owned(),
    }
}

/// Why `api_url` is not fit for production: not a URL, or `http://` to a host that is not
/// loopback.
fn unsafe_toss_url(api_url: &str) -> Option<String> {
    let Ok(url) = url::Url::parse(api_url.trim()) else {
        return Some("TOSS_API_URL is not a URL".to_owned());
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => None,
        "http" if loopback => None,
        "http" => Some(format!(
            "TOSS_API_URL {} is http:// to a host that is not loopback (the secret key would cross the network in clear; use https://)",
            url.host_str()
                .map_or_else(String::new, |host| format!("(host {host})"))
        )),
        scheme => Some(format!(
            "TOSS_API_URL has the scheme {scheme:?}; use https://"
        )),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The `APP_<SECTION>__<KEY>` variables; lists are comma-separated.
fn environment() -> Environment {
    Environment::with_prefix("APP")
        .prefix_separator("_")
        .separator("__")
        .list_separator(",")
        .with_list_parse_key("server.cors_allowed_origins")
        .with_list_parse_key("limits.trusted_proxies")
        .try_parsing(true)
}

/// A secret as configured: set and not blank.
pub fn configured(value: &Option<SecretString>) -> Option<&SecretString> {
    value
        .as_ref()
        .filter(|value| !value.expose_secret().trim().is_empty())
}

impl Settings {
    /// Files and environment, as the binary loads them.
    pub fn load() -> Result<Self, ConfigError> {
        let env = std::env::var("APP_ENV").unwrap_or_else(|_| "local".to_owned());
        let vars = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::with_name(&format!("config/{env}")).required(false))
            .add_source(environment())
            .set_override_option("database.url", vars("DATABASE_URL"))?
            .set_override_option("server.bind_addr", vars("BIND_ADDR"))?
            .set_override_option("toss.secret_key", vars("TOSS_SECRET_KEY"))?
            .set_override_option("toss.api_url", vars("TOSS_API_URL"))?
            .set_override_option("toss.billing_secret_key", vars("TOSS_BILLING_SECRET_KEY"))?
            .set_override_option("billing.encryption_key", vars("BILLING_KEY_ENCRYPTION_KEY"))?
            .set_override_option("nats.url", vars("NATS_URL"))?
            .set_override_option("auth.api_keys_file", vars("API_KEYS_FILE"))?
            .set_override_option("auth.operators_file", vars("OPERATORS_FILE"))?
            .set_override("env", env.trim())?;
        if let Some(keys) = vars("API_KEYS") {
            let keys: Vec<String> = keys
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
            builder = builder.set_override("auth.api_keys", keys)?;
        }
        builder.build()?.try_deserialize()
    }

    /// Whether `APP_ENV` is `production`.
    pub fn is_production(&self) -> bool {
        self.env.trim().eq_ignore_ascii_case("production")
    }

    /// In production, `Err` with one line naming everything that is missing or unsafe: API
    /// keys (`has_api_keys`: from `API_KEYS` or `API_KEYS_FILE`), `TOSS_SECRET_KEY`,
    /// `BILLING_KEY_ENCRYPTION_KEY`, and a `TOSS_API_URL` that is `http://` to a host other
    /// than loopback (the secret key would cross the network in clear). Elsewhere `Ok`: what
    /// is missing is generated or replaced, with a warning.
    pub fn check_production(&self, has_api_keys: bool) -> Result<(), String> {
        if !self.is_production() {
            return Ok(());
        }
        let missing = [
            (!has_api_keys, "no API key (set API_KEYS or API_KEYS_FILE)"),
            (
                configured(&self.toss.secret_key).is_none(),
                "TOSS_SECRET_KEY is not set (confirms would be recorded without Toss)",
            ),
            (
                configured(&self.billing.encryption_key).is_none(),
                "BILLING_KEY_ENCRYPTION_KEY is not set (stored billing keys would be lost at restart)",
            ),
        ];
        let mut problems: Vec<String> = missing
            .into_iter()
            .filter(|(missing, _)| *missing)
            .map(|(_, why)| why.to_owned())
            .collect();
        problems.extend(unsafe_toss_url(&self.toss.api_url));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "APP_ENV=production refuses to start: {}",
                problems.join("; ")
            ))
        }
    }

    /// The compiled-in defaults alone; tests start from these.
    pub fn defaults() -> Self {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .expect("config/default.toml is valid")
    }
}

#[cfg(test)]
mod tests;
