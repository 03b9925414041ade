//! `Idempotency-Key` on our POST routes (all but the webhook): the first request runs, a retry
//! with the same key and body replays its response (`idempotent-replayed: true`), a different
//! body is 422, a duplicate that arrives while the first still runs is 409.
//!
//! - [`key`]: the header's value, its namespace (the merchant's, or for a caller without an
//!   API key the request's `payment_key`'s), and the fingerprint that makes two requests the
//!   same;
//! - [`persistence`]: the `idempotency_keys` rows (claim with a lease, keep, release, purge);
//! - [`middleware`]: the layer that ties them to a request, and the `Option<ScopedKey>`
//!   extractor that hands the key to handlers, so operations recognise their own retries.
//!
//! This module sits beside `service`, between `http` and `store`: `http` installs the layer,
//! the reconciler purges expired keys, and this module uses only `domain`, `store` (its
//! connection) and `error`, so nothing it imports imports it back.

mod key;
mod middleware;
mod persistence;

use std::time::Duration;

use chrono::Utc;

use crate::domain::ScopedKey;
use crate::error::AppError;
use crate::store::Store;

pub use key::{HEADER, IdempotencyKey};
pub use middleware::{guards, honour_key};
use persistence::NextAction;
pub use persistence::{StoredResponse, purge_expired};

#[derive(Debug, Clone)]
pub struct IdempotencyOptions {
    /// How long a key is remembered.
    pub ttl: Duration,
    /// After a crash, when a retry may take over a key still marked in flight.
    pub in_flight_lease: Duration,
    /// A request body is read whole to fingerprint it: up to the server's body limit.
    pub body_limit: usize,
}

/// The state of the layer: where keys are kept, and for how long.
#[derive(Clone)]
pub struct Idempotency {
    store: Store,
    settings: std::sync::Arc<IdempotencyOptions>,
}

/// Put in a response's extensions by a handler whose answer shows an operation still in flight
/// (a refund `PENDING` at Toss): that answer is not kept for replay, so a retry with the same
/// key asks the operation again and gets its current state (the operation finds its own
/// retries by the key), never the first 202 forever.
#[derive(Debug, Clone, Copy)]
pub struct InFlight;

pub enum Start {
    /// Run the request, then call [`Idempotency::finish`].
    Proceed,
    /// Send this stored response again.
    Replay(StoredResponse),
}

impl Idempotency {
    pub fn new(store: Store, settings: IdempotencyOptions) -> Self {
        Self {
            store,
            settings: std::sync::Arc::new(settings),
        }
    }

    pub async fn begin(&self, key: &ScopedKey, fingerprint: &str) -> Result<Start, AppError> {
        let now = Utc::now();
        let next = persistence::try_processing(
            &self.store,
            key,
            fingerprint,
            now,
            now + self.settings.in_flight_lease,
            now + self.settings.ttl,
        )
        .await?;
        match next {
            NextAction::StartProcessing => Ok(Start::Proceed),
            NextAction::Replay(response) => Ok(Start::Replay(response)),
            NextAction::Mismatch => Err(AppError::IdempotencyKeyReused),
            NextAction::InFlight => Err(AppError::RequestInProgress),
        }
    }

    /// Stores the response for replay, when it is the request's own answer (see [`is_final`])
    /// and not the state of an operation still in flight ([`InFlight`]); otherwise lets the key
    /// go, so that a retry runs again.
    pub async fn finish(
        &self,
        key: &ScopedKey,
        response: StoredResponse,
        in_flight: bool,
    ) -> Result<(), AppError> {
        if is_final(&response) && !in_flight {
            persistence::save_response(&self.store, key, &response).await?;
        } else {
            persistence::release(&self.store, key).await?;
        }
        Ok(())
    }
}

/// Whether `response` answers the request itself, and so is what every retry gets. Not so: a
/// server error (5xx, the outcome may still change), a missing API key (401), a timeout (408),
/// a rate limit (429), and a 409 `REQUEST_IN_PROGRESS` from a handler that lost a race (the
/// request was not carried out). A retry of those runs again; the operations recognise their
/// own retries, so running again is safe.
pub fn is_final(response: &StoredResponse) -> bool {
    match response.status {
        401 | 408 | 429 | 500..=599 => false,
        409 => {
            let problem: serde_json::Value =
                serde_json::from_str(&response.body).unwrap_or_default();
            problem["code"] != AppError::RequestInProgress.code()
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, code: Option<&str>) -> StoredResponse {
        StoredResponse {
            status,
            content_type: Some("application/problem+json".to_owned()),
            body: code.map_or_else(
                || r#"{"payment_id":"x"}"#.to_owned(),
                |code| format!(r#"{{"status":{status},"code":"{code}","detail":"d"}}"#),
            ),
        }
    }

    #[test]
    fn only_the_requests_own_answers_are_final() {
        for (status, code) in [
            (200, None),
            (201, None),
            (202, None),
            (303, None),
            (400, Some("VALIDATION_ERROR")),
            (402, Some("PG_DECLINED")),
            (404, Some("NOT_FOUND")),
            (409, Some("DUPLICATE_ORDER_ID")),
            (409, Some("INVALID_STATE")),
            (409, Some("REFUND_EXCEEDS_BALANCE")),
            (413, Some("PAYLOAD_TOO_LARGE")),
            (422, Some("AMOUNT_MISMATCH")),
            (422, Some("IDEMPOTENCY_KEY_REUSED")),
        ] {
            assert!(is_final(&answer(status, code)), "{status} {code:?}");
        }
        for (status, code) in [
            (401, Some("UNAUTHORIZED")),
            (408, None),
            (409, Some("REQUEST_IN_PROGRESS")),
            (429, Some("RATE_LIMITED")),
            (500, Some("INTERNAL_ERROR")),
            (502, Some("PG_MISCONFIGURED")),
            (503, Some("SERVICE_UNAVAILABLE")),
            (504, None),
        ] {
            assert!(!is_final(&answer(status, code)), "{status} {code:?}");
        }
    }
}
