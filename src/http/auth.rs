//! API keys: `Authorization: Bearer <key>`, compared in constant time, never logged.

use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AppError;

/// The configured keys, kept only as SHA-256 digests so that comparing takes the same time
/// whatever the length or content of the key presented.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl ApiKeys {
    pub fn new(keys: &[SecretString]) -> Self {
        Self {
            digests: keys
                .iter()
                .map(|key| Sha256::digest(key.expose_secret().as_bytes()).into())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Check every key, so the time does not tell which one matched.
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&digest)
            })
            .into()
    }

    /// `Ok` when the request carries one of the keys.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AppError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match presented {
            Some(token) if !token.is_empty() && self.accepts(token) => Ok(()),
            _ => Err(AppError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(&["key-one".into(), "key-two".into()]);
        assert!(keys.check(&headers("Bearer key-one")).is_ok());
        assert!(keys.check(&headers("bearer key-two")).is_ok());
        assert!(keys.check(&headers("Bearer key-three")).is_err());
        assert!(keys.check(&headers("Bearer ")).is_err());
        assert!(keys.check(&headers("Basic key-one")).is_err());
        assert!(keys.check(&headers("key-one")).is_err());
        assert!(keys.check(&HeaderMap::new()).is_err());
        assert!(!format!("{keys:?}").contains("key-one"));
    }

    #[test]
    fn no_keys_accepts_nothing() {
        let keys = ApiKeys::new(&[]);
        assert!(keys.check(&headers("Bearer ")).is_err());
        assert!(keys.check(&headers("Bearer anything")).is_err());
    }
}
