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

    /// Stores the response for replay. Answers that say nothing about the request itself (server
    /// errors, a missing API key, a conflicting duplicate) are not kept: a retry runs again.
    pub async fn idempotency_finish(
        &self,
        key: &ScopedKey,
        response: StoredResponse,
    ) -> Result<(), AppError> {
        let replayable = !(response.status >= 500 || response.status == 401);
        if replayable {
            self.store
                .finish_idempotent(key.as_str(), &response)
                .await?;
        } else {
            self.store.abandon_idempotent(key.as_str()).await?;
        }
        Ok(())
    }
}
