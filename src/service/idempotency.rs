//! Client `Idempotency-Key`s on our POST routes: the first request runs, a retry with the same
//! body gets the same answer, a different body with the same key is refused.

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::PaymentService;
use crate::domain::ScopedKey;
use crate::error::AppError;
use crate::store::{IdempotencyBegin, StoredResponse};

pub enum IdempotencyStart {
    /// Run the request, then call `idempotency_finish`.
    Proceed,
    /// Send this stored response again.
    Replay(StoredResponse),
}

/// Whether `response` answers the request itself, and so is what every retry gets. Not so: a
/// server error (5xx, the outcome may still change), a missing API key (401), a timeout (408),
/// a rate limit (429), and a 409 `REQUEST_IN_PROGRESS` from a handler that lost a race (the
/// request was not carried out). A retry of those runs again; the operations recognise their
/// own retries, so running again is safe.
pub fn is_final(response: &StoredResponse) -> bool {
    match response.status {
        401 | 408 | 429 | 500..=599 => false,
        409 => problem_code(&response.body).as_deref() != Some(AppError::RequestInProgress.code()),
        _ => true,
    }
}

/// The `code` of a problem document.
fn problem_code(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Problem {
        code: String,
    }
    serde_json::from_str::<Problem>(body).ok().map(|p| p.code)
}

/// What makes two requests "the same": method, path and body bytes.
pub fn request_fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PaymentService {
    pub async fn idempotency_begin(
        &self,
        key: &ScopedKey,
        fingerprint: &str,
    ) -> Result<IdempotencyStart, AppError> {
        let now = Utc::now();
        let begin = self
            .store
            .begin_idempotent(
                key.as_str(),
                fingerprint,
                now,
                now + self.settings.idempotency_lease,
                now + self.settings.idempotency_ttl,
            )
            .await?;
        match begin {
            IdempotencyBegin::Started => Ok(IdempotencyStart::Proceed),
            IdempotencyBegin::Replay(response) => Ok(IdempotencyStart::Replay(response)),
            IdempotencyBegin::Mismatch => Err(AppError::IdempotencyKeyReused),
            IdempotencyBegin::InFlight => Err(AppError::RequestInProgress),
        }
    }

    /// Stores the response for replay, when it is the request's own answer (see [`is_final`]);
    /// otherwise lets the key go, so that a retry runs again.
    pub async fn idempotency_finish(
        &self,
        key: &ScopedKey,
        response: StoredResponse,
    ) -> Result<(), AppError> {
        if is_final(&response) {
            self.store
                .finish_idempotent(key.as_str(), &response)
                .await?;
        } else {
            self.store.abandon_idempotent(key.as_str()).await?;
        }
        Ok(())
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
