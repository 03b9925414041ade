//! `[database]`: the URL (checked before the driver sees it, never logged whole) and the pool,
//! sized from the service's expected concurrency unless `max_connections` is set.

use std::time::Duration;

use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::store::{DEFAULT_SQLITE_URL, DatabaseOptions};

#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    /// May carry a password, so it is kept out of `Debug`.
    pub url: Option<SecretString>,
    /// Unset: [`DatabaseSettings::pool_size`] sizes the pool.
    pub max_connections: Option<u32>,
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

/// The share of the connections a PostgreSQL server allows that one instance takes when
/// `max_connections` is unset: half, so that a second instance (a rolling deploy) fits beside it.
const SERVER_SHARE_DIVISOR: u32 = 2;

/// What PostgreSQL allows ordinary roles with its default settings (`max_connections` 100, 3
/// reserved for superusers): assumed when the server cannot be asked.
pub const DEFAULT_SERVER_CONNECTIONS: u32 = 97;

impl DatabaseSettings {
    /// The pool's options; `pool` from [`DatabaseSettings::pool_size`].
    pub fn options(&self, pool: u32) -> DatabaseOptions {
        DatabaseOptions {
            url: self.raw_url().to_owned(),
            max_connections: pool,
            acquire_timeout: Duration::from_secs(self.acquire_timeout_secs),
        }
    }

    /// The pool: `max_connections` when set; otherwise one connection for each task that may
    /// want one at once (`expected`: the requests served at once and the background workers),
    /// capped at half of the connections the server allows ordinary roles (`server_allows`,
    /// [`DEFAULT_SERVER_CONNECTIONS`] when it could not be asked). Never 0; SQLite's is 1 (one
    /// writer: the store keeps one connection).
    pub fn pool_size(&self, expected: u32, server_allows: Option<u32>) -> u32 {
        if self.backend_name() == "sqlite" {
            return 1;
        }
        let share = server_allows.unwrap_or(DEFAULT_SERVER_CONNECTIONS) / SERVER_SHARE_DIVISOR;
        self.max_connections
            .unwrap_or_else(|| expected.min(share))
            .max(1)
    }

    /// Whether the pool is sized by asking the server what it allows (PostgreSQL, and
    /// `max_connections` unset).
    pub fn asks_the_server(&self) -> bool {
        self.max_connections.is_none() && self.backend_name() == "postgres"
    }

    /// "sqlite" or "postgres", for logs.
    pub fn backend_name(&self) -> &'static str {
        match &self.url {
            Some(url) if url.expose_secret().starts_with("postgres") => "postgres",
            _ => "sqlite",
        }
    }

    pub(crate) fn raw_url(&self) -> &str {
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
                if let Ok(decoded) = percent_decode_str(part).decode_utf8() {
                    secrets.push(decoded.into_owned());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

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
    fn the_pool_is_the_expected_concurrency_within_half_of_what_the_server_allows() {
        let mut settings = database("postgres://h/db");
        assert_eq!(settings.max_connections, None, "sized by default");
        assert!(settings.asks_the_server());
        assert_eq!(settings.pool_size(20, Some(97)), 20);
        assert_eq!(settings.pool_size(1061, Some(97)), 48);
        assert_eq!(settings.pool_size(1061, Some(500)), 250);
        assert_eq!(settings.pool_size(1061, None), 48, "PostgreSQL's defaults");
        assert_eq!(settings.pool_size(1061, Some(1)), 1, "never 0");
        settings.max_connections = Some(10);
        assert!(!settings.asks_the_server());
        assert_eq!(settings.pool_size(1061, Some(97)), 10, "as configured");
        let sqlite = database("sqlite::memory:");
        assert!(!sqlite.asks_the_server());
        assert_eq!(sqlite.pool_size(1061, None), 1, "one writer");
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
}
