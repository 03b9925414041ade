//! Reviews of payments set aside because Toss's record contradicted ours: `resync` adopts
//! Toss's record as it now is (through the one adoption function), `dismiss` only clears the
//! flag. Every review is kept, with who made it (an API key's name, never the key).

use chrono::Utc;

use super::adopt::Adoption;
use super::decide::Verdict;
use super::{Pg, find};
use crate::domain::{Actor, Payment, PaymentId, Review};
use crate::error::AppError;
use crate::store::Store;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(as = ReviewActionDto)]
pub enum ReviewAction {
    /// Read Toss's record and adopt it as it is (refunds for its cancels, its status), then
    /// clear the flag.
    Resync,
    /// Clear the flag and change nothing else.
    Dismiss,
}

impl ReviewAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resync => "resync",
            Self::Dismiss => "dismiss",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReviewCommand {
    pub payment_id: PaymentId,
    pub action: ReviewAction,
    pub note: String,
}

/// Reviews of flagged payments, made by one actor.
pub struct Reviewing {
    pub(super) store: Store,
    pub(super) pg: Pg,
    pub(super) actor: Actor,
    pub(super) adoption: Adoption,
}

impl Reviewing {
    pub async fn review(&self, command: ReviewCommand) -> Result<Payment, AppError> {
        let payment = find(&self.store, command.payment_id).await?;
        if !payment.needs_review {
            return Err(not_flagged());
        }
        let outcome = match command.action {
            ReviewAction::Dismiss => "flag cleared; nothing else changed".to_owned(),
            ReviewAction::Resync => {
                let record = self.read_record(&payment).await?;
                // The person's review clears the flag (below), not the service.
                let adopted = self.adoption.only(payment.id, None, &record, None).await?;
                if let Verdict::Contradiction(reason) = adopted.verdict {
                    let outcome = format!("Toss's record still contradicts ours: {reason}");
                    self.store
                        .record_review(&self.review_of(&command, outcome.clone()))
                        .await?;
                    return Err(AppError::InvalidState(format!(
                        "{outcome}; dismiss the review once it is handled"
                    )));
                }
                format!(
                    "adopted Toss's record: {} with {} KRW refunded",
                    adopted.payment.status, adopted.payment.refunded_amount_krw
                )
            }
        };
        let kept = self.review_of(&command, outcome);
        let resolved = self
            .store
            .clear_review(payment.id, None, &kept)
            .await?
            .ok_or_else(not_flagged)?;
        tracing::info!(payment_id = %payment.id, action = command.action.as_str(), reviewer = %self.actor, "review resolved");
        Ok(resolved)
    }

    pub async fn reviews(&self, id: PaymentId) -> Result<Vec<Review>, AppError> {
        find(&self.store, id).await?;
        Ok(self.store.reviews_of(id).await?)
    }

    /// Toss's record of `payment` as it is now (by the attempt's key when we have one, else by
    /// order), read only: what a person compares with ours before resolving a review (the
    /// console shows both side by side).
    pub async fn pg_record(
        &self,
        payment: &Payment,
    ) -> Result<Option<crate::gateway::PgPayment>, AppError> {
        if self.pg.payments.provider().is_none() {
            return Err(AppError::PgNotConfigured);
        }
        self.pg
            .record_of(payment, true)
            .await
            .map_err(|error| AppError::Unavailable(format!("Toss could not be read: {error}")))
    }

    /// [`pg_record`](Self::pg_record), which must exist to resync from.
    async fn read_record(&self, payment: &Payment) -> Result<crate::gateway::PgPayment, AppError> {
        self.pg_record(payment).await?.ok_or_else(|| {
            AppError::InvalidState(
                "Toss has no record of this payment; dismiss the review once it is handled"
                    .to_owned(),
            )
        })
    }

    /// The review to keep, made by the actor this service acts for.
    fn review_of(&self, command: &ReviewCommand, outcome: String) -> Review {
        let actor = &self.actor;
        Review {
            id: uuid::Uuid::now_v7().to_string(),
            payment_id: command.payment_id,
            action: command.action.as_str().to_owned(),
            note: command.note.clone(),
            reviewer: reviewer(actor),
            outcome,
            created_at: Utc::now(),
            requested_by: actor.clone(),
        }
    }
}

/// The version 2 `reviewer` (at most 64 characters), kept for its clients: the actor's name
/// (`key-1`, an `API_KEYS_FILE` name), or its type when it has none (`system`).
fn reviewer(actor: &Actor) -> String {
    actor
        .name
        .as_deref()
        .unwrap_or(actor.kind.as_str())
        .chars()
        .take(64)
        .collect()
}

fn not_flagged() -> AppError {
    AppError::InvalidState("the payment is not set aside for review".to_owned())
}
