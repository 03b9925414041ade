//! Toss webhooks. Toss does not sign them, so a body is only a hint that something changed:
//! the service reads the payment back from Toss and applies Toss's record, forward only.

use super::Pg;
use super::adopt::Adoption;
use super::decide::Verdict;
use crate::error::AppError;
pub use crate::gateway::toss::webhook::Delivery;
pub use crate::gateway::{HintedPayment, WebhookHint};
use crate::store::Store;

/// Reads a webhook body: which payment it names, or why it is ignored. Toss's body shapes are
/// the connector's business (`gateway::toss::webhook`); the HTTP layer only hands the bytes on.
pub fn read_webhook(body: &[u8]) -> Result<Delivery, AppError> {
    crate::gateway::toss::webhook::parse(body).map_err(|e| AppError::validation(e.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Toss's record was applied (or already matched ours).
    Applied,
    /// Nothing to do: not ours, not a payment event, or contradicted by Toss's record.
    Ignored(&'static str),
    /// This transmission was handled before.
    Duplicate,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Ignored(_) => "ignored",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Toss's webhooks: read back and adopted.
pub struct Webhooks {
    pub(super) store: Store,
    pub(super) pg: Pg,
    pub(super) adoption: Adoption,
}

impl Webhooks {
    /// Handles one delivery. `Err` only when Toss should retry (database or Toss unreachable).
    pub async fn handle_webhook(
        &self,
        transmission_id: Option<&str>,
        hint: WebhookHint,
    ) -> Result<WebhookOutcome, AppError> {
        if let Some(id) = transmission_id
            && self.store.webhook_outcome(id).await?.is_some()
        {
            return Ok(WebhookOutcome::Duplicate);
        }
        let (outcome, names_ours) = self.apply_webhook(&hint).await?;
        // Only a delivery about a payment of ours is remembered: anyone can post made-up ones,
        // and a row for each would grow the table without bound. (A replay of a made-up one
        // finds nothing again, so forgetting it loses nothing.)
        if let Some(id) = transmission_id
            && names_ours
        {
            let label = match outcome {
                WebhookOutcome::Ignored(reason) => reason,
                other => other.as_str(),
            };
            self.store
                .record_webhook(id, &hint.event_type, label)
                .await?;
        }
        Ok(outcome)
    }

    /// The outcome, and whether the delivery names a payment of ours.
    async fn apply_webhook(&self, hint: &WebhookHint) -> Result<(WebhookOutcome, bool), AppError> {
        let payment = match &hint.payment {
            HintedPayment::ByOrder(order_id) => self.store.payment_by_order(order_id).await?,
            HintedPayment::ByKey(key) => self.store.payment_by_pg_key(key).await?,
            // Our order ids and Toss's keys parse; a transaction id a caller recorded may not,
            // but then it names no payment at Toss either.
            HintedPayment::Malformed => None,
            HintedPayment::Missing => {
                return Ok((WebhookOutcome::Ignored("no payment in the body"), false));
            }
        };
        let Some(payment) = payment else {
            return Ok((WebhookOutcome::Ignored("not a payment of ours"), false));
        };
        if let (Some(claimed), Some(ours)) = (&hint.secret, &payment.pg_secret)
            && !crate::crypto::secrets_equal(claimed, ours)
        {
            tracing::warn!(alert = "webhook_secret_mismatch", payment_id = %payment.id, "webhook secret does not match the confirm reply's; ignored");
            // A forged delivery: nothing of it is kept.
            return Ok((WebhookOutcome::Ignored("secret mismatch"), false));
        }
        // Which of Toss's records to read: the attempt we know, else the order.
        let lookup = if payment.pg_provider.as_deref() == self.pg.payments.provider() {
            self.pg.record_of(&payment, true).await
        } else {
            self.pg
                .of(&payment)
                .payment_by_order(&payment.order_id)
                .await
        };
        let record = match lookup {
            Ok(Some(record)) => record,
            // Toss's record does not back it: nothing of it is kept.
            Ok(None) => return Ok((WebhookOutcome::Ignored("Toss has no such payment"), false)),
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "webhook read-back failed; asking Toss to retry");
                return Err(AppError::Unavailable(format!("read-back failed: {error}")));
            }
        };
        let adopted = self.adoption.record(payment.id, &record, None).await?;
        let outcome = match adopted.verdict {
            Verdict::Settled | Verdict::Undecided { .. } => WebhookOutcome::Applied,
            Verdict::Foreign => WebhookOutcome::Ignored("Toss's record is about another order"),
            Verdict::Contradiction(_) => WebhookOutcome::Ignored("Toss's record contradicts ours"),
            Verdict::Ignored(why) => WebhookOutcome::Ignored(why),
        };
        Ok((outcome, true))
    }
}
