//! `[database]`: the URL (checked before the driver sees it, never logged whole) and the pool.

use std::time::Duration;

use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::store::{DEFAULT_SQLITE_URL, DatabaseOptions};

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
    fn redact_hides_the_url_and_its_userinfo_raw_and_decoded() {
        let settings = database("postgres://al%69ce:p%40ss@h/db");
        let text = "role \"alice\" (al%69ce) with p@ss, p%40ss, in postgres://al%69ce:p%40ss@h/db";
        assert_eq!(
            settings.redact(text),
            "role \"***\" (***) with ***, ***, in ***"
        );
    }
}
