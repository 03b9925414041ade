//! Toss webhooks. Toss does not sign them, so a body is only a hint that something changed:
//! the service reads the payment back from Toss and applies Toss's record, forward only.

use chrono::Utc;

use super::{PaymentService, events};
use crate::domain::{Payment, PaymentStatus, Refund, RefundId, RefundStatus};
use crate::error::AppError;
use crate::gateway::{PgPayment, PgStatus};

/// What a webhook body says, reduced to what can be used to find the payment.
#[derive(Debug, Clone)]
pub struct WebhookHint {
    pub event_type: String,
    pub payment_key: Option<String>,
    pub order_id: Option<String>,
    /// `secret` of the body (DEPOSIT_CALLBACK, or the Payment in PAYMENT_STATUS_CHANGED).
    pub secret: Option<String>,
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

impl PaymentService {
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
        let outcome = self.apply_webhook(&hint).await?;
        if let Some(id) = transmission_id {
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

    async fn apply_webhook(&self, hint: &WebhookHint) -> Result<WebhookOutcome, AppError> {
        let payment = match (&hint.order_id, &hint.payment_key) {
            (Some(order_id), _) => self.store.payment_by_order(order_id).await?,
            (None, Some(key)) => self.store.payment_by_pg_key(key).await?,
            (None, None) => return Ok(WebhookOutcome::Ignored("no payment in the body")),
        };
        let Some(payment) = payment else {
            return Ok(WebhookOutcome::Ignored("not a payment of ours"));
        };
        if let (Some(claimed), Some(ours)) = (&hint.secret, &payment.pg_secret)
            && claimed != ours
        {
            tracing::warn!(alert = "webhook_secret_mismatch", payment_id = %payment.id, "webhook secret does not match the confirm reply's; ignored");
            return Ok(WebhookOutcome::Ignored("secret mismatch"));
        }
        // Which of Toss's records to read: the attempt we know, else the order.
        let known_key = payment
            .payment_key
            .clone()
            .or_else(|| payment.pg_transaction_id.clone());
        let lookup = match &known_key {
            Some(key) if payment.pg_provider.as_deref() == self.gateway.provider() => {
                self.gateway.payment_by_key(key).await
            }
            _ => self.gateway.payment_by_order(&payment.order_id).await,
        };
        let record = match lookup {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(WebhookOutcome::Ignored("Toss has no such payment")),
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "webhook read-back failed; asking Toss to retry");
                return Err(AppError::Unavailable(format!("read-back failed: {error}")));
            }
        };
        if record.order_id != payment.order_id {
            tracing::warn!(alert = "pg_record_mismatch", payment_id = %payment.id, "Toss's record is about another order; webhook ignored");
            return Ok(WebhookOutcome::Ignored(
                "Toss's record is about another order",
            ));
        }
        self.apply_record(payment, record).await
    }

    /// Moves our payment forward to Toss's record; never backward.
    async fn apply_record(
        &self,
        payment: Payment,
        record: PgPayment,
    ) -> Result<WebhookOutcome, AppError> {
        match payment.status {
            PaymentStatus::InProgress => {
                if payment.payment_key.as_deref() != Some(record.payment_key.as_str()) {
                    return Ok(WebhookOutcome::Ignored("another attempt than ours"));
                }
                match self.adopt(payment, record).await {
                    Ok(_) | Err(AppError::PgDeclined { .. }) => Ok(WebhookOutcome::Applied),
                    Err(AppError::PgResponseMismatch) => {
                        Ok(WebhookOutcome::Ignored("Toss's record contradicts ours"))
                    }
                    Err(other) => Err(other),
                }
            }
            PaymentStatus::Completed | PaymentStatus::PartialRefund => {
                if payment.pg_transaction_id.as_deref() != Some(record.payment_key.as_str())
                    || record.total_amount != Some(payment.amount_krw)
                {
                    return Ok(WebhookOutcome::Ignored(
                        "Toss's record is about another payment",
                    ));
                }
                self.adopt_cancels(&payment, &record).await?;
                Ok(WebhookOutcome::Applied)
            }
            PaymentStatus::Pending => {
                if matches!(record.status, PgStatus::Done) {
                    // Toss charged an attempt we never claimed: a person must look.
                    tracing::error!(alert = "pg_done_unknown_attempt", payment_id = %payment.id, "Toss shows an approved attempt for a PENDING payment");
                }
                Ok(WebhookOutcome::Ignored("no attempt of ours in flight"))
            }
            PaymentStatus::Refunded | PaymentStatus::Failed | PaymentStatus::Cancelled => {
                Ok(WebhookOutcome::Ignored("payment is final"))
            }
        }
    }

    /// Cancels in Toss's record that our refunds do not account for (made in Toss's dashboard,
    /// or refunds whose reply we lost) become refunds here, each with its event.
    pub(super) async fn adopt_cancels(
        &self,
        payment: &Payment,
        record: &PgPayment,
    ) -> Result<usize, AppError> {
        let refunds = self.store.refunds_of(payment.id).await?;
        let mut adopted = 0;
        for cancel in &record.cancels {
            let done = cancel.status.as_deref().is_none_or(|s| s == "DONE");
            let known = refunds
                .iter()
                .any(|r| r.pg_cancel_key.as_deref() == Some(cancel.transaction_key.as_str()));
            if !done || known {
                continue;
            }
            // A refund of ours still waiting for its outcome may be this very cancel.
            if let Some(pending) = refunds.iter().find(|r| {
                r.status == RefundStatus::Pending
                    && r.amount_krw == cancel.amount
                    && r.pg_cancel_key.is_none()
            }) {
                let at = cancel.canceled_at.unwrap_or_else(Utc::now);
                self.store
                    .complete_refund(
                        pending.id,
                        Some(cancel.transaction_key.clone()),
                        at,
                        events::refunded,
                    )
                    .await?;
                adopted += 1;
                continue;
            }
            let now = Utc::now();
            let refund = Refund {
                id: RefundId::new(),
                payment_id: payment.id,
                amount_krw: cancel.amount,
                reason: cancel
                    .reason
                    .clone()
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| "cancelled at Toss".to_owned())
                    .chars()
                    .take(200)
                    .collect(),
                status: RefundStatus::Completed,
                pg_cancel_key: Some(cancel.transaction_key.clone()),
                failure: None,
                reconcile_attempts: 0,
                next_reconcile_at: None,
                created_at: now,
                refunded_at: Some(cancel.canceled_at.unwrap_or(now)),
            };
            match self.store.record_refund(&refund, events::refunded).await {
                Ok(Some(_)) => {
                    tracing::info!(payment_id = %payment.id, refund_id = %refund.id, amount_krw = refund.amount_krw, "cancel made at Toss recorded as a refund");
                    adopted += 1;
                }
                Ok(None) => {
                    tracing::error!(alert = "pg_cancel_exceeds_books", payment_id = %payment.id, amount_krw = cancel.amount, "Toss shows a cancel our balance cannot hold");
                }
                // Another delivery or the reconciler recorded the same cancel first.
                Err(crate::store::StoreError::AlreadyRecorded(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(adopted)
    }
}
