//! API keys: `Authorization: Bearer <key>`, compared in constant time, never logged.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::domain::{Actor, Caller};
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

    /// Which of the keys (its position in the configured list) the request carries, to name
    /// who did something without naming the key. Every key is compared, whichever matches.
    pub fn position(&self, headers: &HeaderMap) -> Option<usize> {
        let token = bearer_token(headers)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (index, key) in self.digests.iter().enumerate() {
            if bool::from(key.ct_eq(&digest)) {
                found = Some(index);
            }
        }
        found
    }

    /// Who the request's key names: `key-1`, `key-2`, … by its position in `API_KEYS` (the
    /// names `API_KEYS_FILE` keys have beside them), never the key. `None` without a valid key.
    pub fn actor(&self, headers: &HeaderMap) -> Option<Actor> {
        match self.caller(headers) {
            Caller::Merchant => self
                .position(headers)
                .map(|index| Actor::api_key(format!("key-{}", index + 1))),
            Caller::Anonymous => None,
        }
    }

    /// `Ok` when the request carries one of the keys.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AppError> {
        match self.caller(headers) {
            Caller::Merchant => Ok(()),
            Caller::Anonymous => Err(AppError::Unauthorized),
        }
    }

    /// The merchant when the request carries one of the keys (whichever, however spelled);
    /// anyone else is anonymous.
    pub fn caller(&self, headers: &HeaderMap) -> Caller {
        match bearer_token(headers) {
            Some(token) if !token.is_empty() && self.accepts(token) => Caller::Merchant,
            _ => Caller::Anonymous,
        }
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

/// The layer of the privileged routes, in front of everything else on them (the
/// `Idempotency-Key` included): without a valid API key the answer is 401, and the request learns
/// nothing about its key or body. It records the caller for the layers and extractors behind it.
pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.api_keys.caller(request.headers()) {
        Caller::Merchant => {
            if let Some(actor) = state.api_keys.actor(request.headers()) {
                request.extensions_mut().insert(actor);
            }
            request.extensions_mut().insert(Caller::Merchant);
            next.run(request).await
        }
        Caller::Anonymous => AppError::Unauthorized.into_response(),
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
        assert_eq!(
            keys.caller(&headers("BEARER   key-two  ")),
            Caller::Merchant
        );
        assert_eq!(keys.caller(&headers("Bearer key-three")), Caller::Anonymous);
    }

    #[test]
    fn keys_are_named_by_position_never_by_the_key() {
        let keys = ApiKeys::new(&["secret-one".into(), "secret-two".into()]);
        assert_eq!(
            keys.actor(&headers("Bearer secret-two")),
            Some(Actor::api_key("key-2"))
        );
        assert_eq!(
            keys.actor(&headers("Bearer secret-one")),
            Some(Actor::api_key("key-1"))
        );
        assert_eq!(keys.actor(&headers("Bearer secret-three")), None);
    }

    #[test]
    fn no_keys_accepts_nothing() {
        let keys = ApiKeys::new(&[]);
        assert!(keys.check(&headers("Bearer ")).is_err());
        assert!(keys.check(&headers("Bearer anything")).is_err());
    }
}
