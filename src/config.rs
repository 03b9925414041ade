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

use crate::gateway::Timeouts;
use crate::relay::RelaySettings;
use crate::store::{DEFAULT_SQLITE_URL, DatabaseOptions};

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `APP_ENV`: `production` refuses to start unsafe; anything else (default `local`)
    /// generates what is missing and warns.
    #[serde(default)]
    pub env: String,
    pub server: ServerSettings,
    pub limits: LimitSettings,
    pub database: DatabaseSettings,
    pub toss: TossConfig,
    pub auth: AuthSettings,
    pub redirect: RedirectSettings,
    pub reconciler: ReconcilerSettings,
    pub reconciliation: ReconciliationConfig,
    pub idempotency: IdempotencySettings,
    pub nats: NatsSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub billing: BillingSettings,
    #[serde(default)]
    pub webhooks: WebhookSettings,
}

/// Toss webhook deliveries remembered (only those naming a payment of ours).
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// How long a handled delivery is remembered (so Toss's retries are recognised); the
    /// reconciler's housekeeping deletes older ones.
    pub retention_secs: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retention_secs: 7 * 86_400,
        }
    }
}

/// Toss billing (자동결제).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
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

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            encryption_key: None,
            retry_after_seconds: crate::service::DEFAULT_RETRY_DELAYS
                .iter()
                .map(|&secs| i64::from(secs))
                .collect(),
            scheduler_enabled: true,
            scheduler_poll_ms: 5_000,
            scheduler_batch: 200,
            scheduler_concurrency: 32,
            scheduler_lease_secs: 120,
            scheduler_recheck_secs: 30,
        }
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
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
}

fn default_header_read_timeout_secs() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    pub public_requests_per_sec: f64,
    pub public_burst: f64,
    /// Networks (CIDRs, or single addresses) of the proxies in front of the service, whose
    /// `X-Forwarded-For` is read, from the right. Empty: the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Replaced by `trusted_proxies`: `true` is refused at start (it trusted the header from
    /// anyone); `false`, the old default, is accepted and means nothing.
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// Requests served at once, over every route; one more is answered 503.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
}

fn default_max_concurrent_requests() -> usize {
    1024
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

#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    /// May carry a password, so it is kept out of `Debug`.
    pub url: Option<SecretString>,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("backend", &self.backend_name())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_secs", &self.acquire_timeout_secs)
            .finish()
    }
}

impl DatabaseSettings {
    pub fn options(&self) -> DatabaseOptions {
        DatabaseOptions {
            url: self
                .url
                .as_ref()
                .map(|url| url.expose_secret().to_owned())
                .unwrap_or_else(|| DEFAULT_SQLITE_URL.to_owned()),
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_secs(self.acquire_timeout_secs),
        }
    }

    /// "sqlite" or "postgres", for logs.
    pub fn backend_name(&self) -> &'static str {
        match &self.url {
            Some(url) if url.expose_secret().starts_with("postgres") => "postgres",
            _ => "sqlite",
        }
    }

    fn raw_url(&self) -> &str {
        self.url
            .as_ref()
            .map_or(DEFAULT_SQLITE_URL, |url| url.expose_secret())
    }

    /// Checks the URL before the driver sees it: the driver panics on a URL it cannot parse
    /// and quotes a URL it cannot use in full, password included. The reason never repeats any
    /// of the URL, whose user name and password are where a mistyped character usually is.
    pub fn check_url(&self) -> Result<url::Url, String> {
        const ENCODE: &str = "in the user name and password, write # as %23, @ as %40, / as %2F, \
             ? as %3F, : as %3A and % as %25";
        let raw = self.raw_url();
        let url = url::Url::parse(raw)
            .map_err(|error| format!("DATABASE_URL is not a valid URL ({error}); {ENCODE}"))?;
        match url.scheme() {
            "postgres" | "postgresql" if raw.contains("://") => {
                // A `#`, `?` or `/` in the user name ends the authority early: the rest, password
                // included, would be read as a fragment, query or path.
                let misread = url.fragment().is_some()
                    || url.path().contains('@')
                    || url.query().is_some_and(|query| query.contains('@'));
                if misread || url.host_str().is_none_or(str::is_empty) {
                    return Err(format!(
                        "DATABASE_URL cannot be read as postgres://user:password@host:port/database; {ENCODE}"
                    ));
                }
                Ok(url)
            }
            "sqlite" => Ok(url),
            scheme if raw.starts_with(&format!("{scheme}://")) => Err(format!(
                "DATABASE_URL: unsupported scheme {scheme:?}; use postgres://… or sqlite://…"
            )),
            _ => Err("DATABASE_URL must start with postgres:// or sqlite://".to_owned()),
        }
    }

    /// The database for messages: scheme, host, port and path; never the user name, password,
    /// query or fragment.
    pub fn url_for_logs(&self) -> String {
        match self.check_url() {
            Ok(url) if url.has_authority() => {
                let host = url.host_str().unwrap_or_default();
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!("{}://{host}{port}{}", url.scheme(), url.path())
            }
            Ok(url) => format!("{}:{}", url.scheme(), url.path()),
            Err(_) => "(DATABASE_URL)".to_owned(),
        }
    }

    /// `text` (a driver's message) with the URL and every part of its user name and password
    /// replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let raw = self.raw_url();
        let mut secrets = vec![raw.to_owned()];
        if let Ok(url) = url::Url::parse(raw) {
            for part in [url.username(), url.password().unwrap_or_default()] {
                secrets.push(part.to_owned());
                if let Ok(decoded) = percent_decode(part) {
                    secrets.push(decoded);
                }
            }
        }
        secrets.retain(|secret| !secret.is_empty());
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets
            .iter()
            .fold(text.to_owned(), |text, secret| text.replace(secret, "***"))
    }
}

/// `%XX` escapes decoded, as the driver decodes the user name and password.
fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = bytes
            .get(at + 1..at + 3)
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[at], escaped) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(decoded)
}

#[derive(Debug, Clone, Deserialize)]
pub struct TossConfig {
    pub secret_key: Option<SecretString>,
    /// The billing contract's secret key (`TOSS_BILLING_SECRET_KEY`); unset: `secret_key`.
    #[serde(default)]
    pub billing_secret_key: Option<SecretString>,
    pub api_url: String,
    pub connect_timeout_secs: u64,
    pub read_timeout_secs: u64,
    pub lookup_timeout_secs: u64,
    pub max_concurrency: usize,
}

impl TossConfig {
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(self.connect_timeout_secs),
            read: Duration::from_secs(self.read_timeout_secs),
            lookup: Duration::from_secs(self.lookup_timeout_secs),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// `API_KEYS`: each has every scope, named `key-1`, `key-2`, … in order.
    pub api_keys: Vec<SecretString>,
    /// `API_KEYS_FILE`: a TOML file of `[[api_keys]]` entries `{name, sha256, scopes}`.
    #[serde(default)]
    pub api_keys_file: Option<String>,
}

impl AuthSettings {
    /// The file of named keys, if one is configured (not blank).
    pub fn api_keys_file(&self) -> Option<&str> {
        self.api_keys_file
            .as_deref()
            .map(str::trim)
            .filter(|path| !path.is_empty())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RedirectSettings {
    pub success_url: Option<String>,
    pub fail_url: Option<String>,
    /// Where `/billing/toss/success` sends the buyer (`?billing_key_id=…`); unset: JSON.
    #[serde(default)]
    pub billing_success_url: Option<String>,
    /// Where `/billing/toss/fail` sends the buyer (`?code=…&message=…`); unset: a problem.
    #[serde(default)]
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
pub struct ReconciliationConfig {
    /// "HH:MM" KST; empty: no daily schedule.
    pub daily_at: String,
    pub check_interval_secs: u64,
    pub page_size: u32,
    pub lease_secs: u64,
}

impl ReconciliationConfig {
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

    pub fn settings(&self) -> Result<crate::service::ReconciliationSettings, String> {
        if !(1..=crate::gateway::books::MAX_PAGE).contains(&self.page_size) {
            return Err(format!(
                "reconciliation.page_size: {} is not 1..=5000",
                self.page_size
            ));
        }
        Ok(crate::service::ReconciliationSettings {
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

#[derive(Clone, Deserialize)]
pub struct NatsSettings {
    /// Unset: no relay; events wait in the outbox and are served by `GET /events`. May carry
    /// credentials, so it is kept out of `Debug` and logged through `url_for_logs`.
    pub url: Option<SecretString>,
    pub subject_prefix: String,
    /// Created (subjects `{subject_prefix}payment.>`) if missing; unset: the stream is managed
    /// elsewhere.
    pub stream: Option<String>,
    pub interval_ms: u64,
    pub batch_size: u64,
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &self.url_for_logs())
            .field("subject_prefix", &self.subject_prefix)
            .field("stream", &self.stream)
            .field("interval_ms", &self.interval_ms)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl NatsSettings {
    /// The configured URL, if any and not blank.
    pub fn url(&self) -> Option<&str> {
        self.url
            .as_ref()
            .map(|url| url.expose_secret().trim())
            .filter(|url| !url.is_empty())
    }

    pub fn relay(&self) -> RelaySettings {
        RelaySettings {
            subject_prefix: self.subject_prefix.clone(),
            stream: self
                .stream
                .as_ref()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
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

impl Settings {
    /// Files and environment, as the binary loads them.
    pub fn load() -> Result<Self, ConfigError> {
        let env = std::env::var("APP_ENV").unwrap_or_else(|_| "local".to_owned());
        let vars = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::with_name(&format!("config/{env}")).required(false))
            .add_source(
                Environment::with_prefix("APP")
                    .prefix_separator("_")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("server.cors_allowed_origins")
                    .with_list_parse_key("limits.trusted_proxies")
                    .try_parsing(true),
            )
            .set_override_option("database.url", vars("DATABASE_URL"))?
            .set_override_option("server.bind_addr", vars("BIND_ADDR"))?
            .set_override_option("toss.secret_key", vars("TOSS_SECRET_KEY"))?
            .set_override_option("toss.api_url", vars("TOSS_API_URL"))?
            .set_override_option("toss.billing_secret_key", vars("TOSS_BILLING_SECRET_KEY"))?
            .set_override_option("billing.encryption_key", vars("BILLING_KEY_ENCRYPTION_KEY"))?
            .set_override_option("nats.url", vars("NATS_URL"))?
            .set_override_option("auth.api_keys_file", vars("API_KEYS_FILE"))?
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
        let set = |value: &Option<SecretString>| {
            value
                .as_ref()
                .is_some_and(|value| !value.expose_secret().trim().is_empty())
        };
        let mut problems = Vec::new();
        if !has_api_keys {
            problems.push("no API key (set API_KEYS or API_KEYS_FILE)".to_owned());
        }
        if !set(&self.toss.secret_key) {
            problems.push(
                "TOSS_SECRET_KEY is not set (confirms would be recorded without Toss)".to_owned(),
            );
        }
        if !set(&self.billing.encryption_key) {
            problems.push(
                "BILLING_KEY_ENCRYPTION_KEY is not set (stored billing keys would be lost at restart)"
                    .to_owned(),
            );
        }
        if let Some(why) = unsafe_toss_url(&self.toss.api_url) {
            problems.push(why);
        }
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
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let settings = Settings::defaults();
        assert_eq!(settings.server.bind_addr, "127.0.0.1:8080");
        assert!(settings.toss.secret_key.is_none());
        assert!(settings.toss.read_timeout_secs >= 60);
        assert_eq!(settings.idempotency.ttl_secs, 86_400);
        assert_eq!(settings.database.backend_name(), "sqlite");
        assert!(settings.nats.url().is_none());
        assert_eq!(settings.nats.subject_prefix, "");
        assert_eq!(settings.nats.interval_ms, 500);
        assert_eq!(settings.nats.batch_size, 100);
        assert_eq!(settings.server.header_read_timeout_secs, 30);
        assert!(settings.limits.trusted_proxies.is_empty());
        assert_eq!(settings.limits.trusted_proxy_networks(), Ok(Vec::new()));
        assert_eq!(settings.limits.max_concurrent_requests, 1024);
        assert_eq!(settings.webhooks.retention_secs, 7 * 86_400);
    }

    #[test]
    fn trusted_proxies_are_networks_and_the_old_switch_is_refused() {
        let mut limits = Settings::defaults().limits;
        limits.trusted_proxies = vec![
            "10.0.0.0/8".to_owned(),
            " 192.0.2.7 ".to_owned(),
            "fd00::/8".to_owned(),
            "10.1.2.3/16".to_owned(),
        ];
        let networks: Vec<String> = limits
            .trusted_proxy_networks()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            networks,
            ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8", "10.1.0.0/16"]
        );
        limits.trusted_proxies = vec!["10.0.0.0/33".to_owned()];
        let error = limits.trusted_proxy_networks().unwrap_err();
        assert!(error.contains("limits.trusted_proxies") && error.contains("10.0.0.0/33"));
        limits.trusted_proxies = Vec::new();
        limits.trust_forwarded_for = true;
        let error = limits.trusted_proxy_networks().unwrap_err();
        assert!(
            error.contains("trust_forwarded_for") && error.contains("trusted_proxies"),
            "{error}"
        );
    }

    #[test]
    fn trusted_proxies_come_from_a_comma_separated_variable() {
        // The binary's loader, with the list as the environment gives it.
        let settings = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(
                Environment::with_prefix("APP")
                    .prefix_separator("_")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("limits.trusted_proxies")
                    .try_parsing(true)
                    .source(Some(
                        [(
                            "APP_LIMITS__TRUSTED_PROXIES".to_owned(),
                            "10.0.0.0/8,fd00::/8".to_owned(),
                        )]
                        .into(),
                    )),
            )
            .build()
            .and_then(Config::try_deserialize::<Settings>)
            .unwrap();
        assert_eq!(settings.limits.trusted_proxies, ["10.0.0.0/8", "fd00::/8"]);
    }

    #[test]
    fn nats_url_is_logged_without_credentials() {
        let mut settings = Settings::defaults();
        settings.nats.url =
            Some("nats://relay:nats-password@10.0.0.1:4222, tls://tok3n@nats.internal".into());
        let logged = settings.nats.url_for_logs().unwrap();
        assert_eq!(logged, "nats://10.0.0.1:4222,tls://nats.internal");
        settings.nats.url = Some("127.0.0.1:4222".into());
        assert_eq!(
            settings.nats.url_for_logs().unwrap(),
            "nats://127.0.0.1:4222"
        );
        settings.nats.url = Some("nats://u:nats-password@h:4222".into());
        assert!(!format!("{settings:?}").contains("nats-password"));
    }

    fn database(url: &str) -> DatabaseSettings {
        let mut settings = Settings::defaults().database;
        settings.url = Some(url.into());
        settings
    }

    #[test]
    fn database_url_is_checked_and_shown_without_its_userinfo() {
        for good in [
            "postgres://u:p%23w@127.0.0.1:5432/db",
            "postgresql://h/db",
            "sqlite://payment-service.db?mode=rwc",
            "sqlite::memory:",
        ] {
            assert!(database(good).check_url().is_ok(), "{good}");
        }
        assert_eq!(
            database("postgres://alice:pw@db.internal:5433/payments?sslmode=require")
                .url_for_logs(),
            "postgres://db.internal:5433/payments"
        );
        assert_eq!(
            database("sqlite://payment-service.db?mode=rwc").url_for_logs(),
            "sqlite://payment-service.db"
        );
        for (bad, userinfo) in [
            ("postgres://alice:pa#ss@127.0.0.1:5432/db", "pa#ss"),
            ("postgres://al#ice:pw_1@127.0.0.1:5432/db", "pw_1"),
            ("postgres://al?ice:pw_1@127.0.0.1:5432/db", "pw_1"),
            ("postgres://al/ice:pw_1@127.0.0.1:5432/db", "pw_1"),
            ("postgres://alice:pw_1@[::1", "pw_1"),
            ("mysql://alice:pw_1@host/db", "pw_1"),
            ("alice:pw_1@host/db", "alice"),
            ("postgres:alice:pw_1@host/db", "alice"),
        ] {
            let settings = database(bad);
            let reason = settings.check_url().expect_err(bad);
            assert!(
                !reason.contains(userinfo) && !reason.contains("alice"),
                "{bad}: {reason}"
            );
            assert!(reason.contains("DATABASE_URL"), "{bad}: {reason}");
            assert!(!settings.url_for_logs().contains(userinfo), "{bad}");
        }
    }

    #[test]
    fn redact_hides_the_url_and_its_userinfo_raw_and_decoded() {
        let settings = database("postgres://al%69ce:p%40ss@h/db");
        let text = "role \"alice\" (al%69ce) with p@ss, p%40ss, in postgres://al%69ce:p%40ss@h/db";
        assert_eq!(
            settings.redact(text),
            "role \"***\" (***) with ***, ***, in ***"
        );
    }

    fn production() -> Settings {
        let mut settings = Settings::defaults();
        settings.env = "production".to_owned();
        settings.toss.secret_key = Some("live_sk_x".into());
        settings.billing.encryption_key = Some("k".into());
        settings
    }

    #[test]
    fn production_refuses_what_is_missing_or_unsafe_in_one_line() {
        assert_eq!(Settings::defaults().check_production(false), Ok(()));
        assert!(!Settings::defaults().is_production());
        let settings = production();
        assert!(settings.is_production());
        assert_eq!(settings.check_production(true), Ok(()));
        let why = settings.check_production(false).unwrap_err();
        assert!(why.contains("no API key"), "{why}");
        let mut settings = production();
        settings.toss.secret_key = Some("  ".into());
        let why = settings.check_production(true).unwrap_err();
        assert!(why.contains("TOSS_SECRET_KEY is not set"), "{why}");
        let mut settings = production();
        settings.billing.encryption_key = None;
        let why = settings.check_production(true).unwrap_err();
        assert!(
            why.contains("BILLING_KEY_ENCRYPTION_KEY is not set"),
            "{why}"
        );
        for (url, safe) in [
            ("https://api.tosspayments.com", true),
            ("http://127.0.0.1:9000", true),
            ("http://localhost:9000/", true),
            ("http://[::1]:9000", true),
            ("http://api.tosspayments.com", false),
            ("http://10.0.0.5:8080", false),
            ("http://127.0.0.1.example.com", false),
            ("ftp://api.tosspayments.com", false),
            ("not a url", false),
        ] {
            let mut settings = production();
            settings.toss.api_url = url.to_owned();
            let result = settings.check_production(true);
            assert_eq!(result.is_ok(), safe, "{url}: {result:?}");
            if let Err(why) = result {
                assert!(why.contains("TOSS_API_URL"), "{why}");
                assert!(!why.contains('\n'));
            }
        }
        let mut settings = Settings::defaults();
        settings.toss.api_url = "http://api.tosspayments.com".to_owned();
        assert_eq!(
            settings.check_production(false),
            Ok(()),
            "outside production"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut settings = Settings::defaults();
        settings.toss.secret_key = Some("test_sk_secret_value".into());
        settings.toss.billing_secret_key = Some("test_sk_billing_value".into());
        settings.billing.encryption_key = Some("encryption-key-value".into());
        settings.auth.api_keys = vec!["api-key-secret-value".into()];
        settings.database.url = Some("postgres://u:db-password@h/db".into());
        let text = format!("{settings:?}");
        assert!(!text.contains("test_sk_secret_value"));
        assert!(!text.contains("test_sk_billing_value"));
        assert!(!text.contains("encryption-key-value"));
        assert!(!text.contains("api-key-secret-value"));
        assert!(!text.contains("db-password"));
        assert!(
            text.contains("postgres"),
            "backend is still visible: {text}"
        );
    }
}
