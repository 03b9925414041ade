//! The life of a confirm attempt at the PG, once claimed: send the confirm and adopt what comes
//! back; when the outcome is unknown (timeout, 5xx, "already processed", a crash), read Toss's
//! record and adopt it, send the confirm again while Toss shows the attempt unapproved within
//! its window, otherwise look again later; release it when it did not happen. We never guess.
//! `confirm` (the use case) and the reconciler call in; nothing here calls back into them.

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::adopt::{Adopted, Verdict};
use super::{ConfirmOutcome, PaymentService, events};
use crate::domain::{Failure, Payment, PaymentId, PaymentKey, PaymentStatus, PaymentUpdate};
use crate::error::AppError;
use crate::gateway::{ConfirmRequest, GatewayError};
use crate::store::Target;

/// Sends of one attempt's confirm at most (the first included); the window bounds them too.
const MAX_CONFIRM_SENDS: i32 = 8;

impl PaymentService {
    /// Reads Toss's record of an unsettled payment and adopts it. With `may_resend`, an attempt
    /// Toss shows authenticated but unapproved is confirmed again (a fresh Toss key, safe
    /// because Toss approves one `paymentKey` at most once).
    pub(super) async fn settle(
        &self,
        payment: Payment,
        may_resend: bool,
    ) -> Result<ConfirmOutcome, AppError> {
        let Some(payment_key) = payment.payment_key.clone() else {
            return Ok(ConfirmOutcome::Unsettled(payment));
        };
        match self.gateway.payment_by_key(&payment_key).await {
            Ok(Some(record)) => {
                let adopted = self.adopt_record(payment.id, &record, None).await?;
                let resend = adopted.verdict == Verdict::Undecided { resend: true }
                    && may_resend
                    && adopted.payment.confirm_sends < MAX_CONFIRM_SENDS;
                if resend {
                    return self.resend_confirm(adopted.payment, payment_key).await;
                }
                self.outcome(adopted, &payment_key)
            }
            Ok(None) => {
                // Toss may not show an attempt it is still working on; only after its own
                // confirm window is "not found" final.
                let started = payment.confirm_started_at.unwrap_or(payment.updated_at);
                let window_passed = started + self.settings.confirm_window < Utc::now();
                if payment.status == PaymentStatus::InProgress && window_passed {
                    let failure = Failure {
                        code: "PG_PAYMENT_NOT_FOUND".to_owned(),
                        message: "the PG has no record of this payment attempt".to_owned(),
                    };
                    tracing::warn!(payment_id = %payment.id, "PG does not know the attempt after the confirm window; back to PENDING");
                    self.release(&payment, Some(failure)).await?;
                    return self.outcome_now(&payment, &payment_key).await;
                }
                self.retry_later(&payment, &payment_key).await
            }
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "read-back failed; will retry");
                self.retry_later(&payment, &payment_key).await
            }
        }
    }

    /// Sends the confirm of the attempt in flight again, if this caller wins the resend.
    async fn resend_confirm(
        &self,
        payment: Payment,
        payment_key: PaymentKey,
    ) -> Result<ConfirmOutcome, AppError> {
        let resend = PaymentUpdate::Resend {
            lease_until: self.claim_expiry(),
        };
        match self
            .store
            .update_payment(Target::attempt(&payment), &resend, None)
            .await?
        {
            Some(leased) => {
                tracing::info!(payment_id = %payment.id, send = leased.confirm_sends, "Toss shows the attempt unapproved; confirming again");
                // Boxed: a send whose outcome is unknown settles again (without resending).
                Box::pin(self.send_confirm(leased, payment_key)).await
            }
            None => self.outcome_now(&payment, &payment_key).await,
        }
    }

    /// Leaves the payment (its attempt `payment_key`) as it is and looks again later.
    async fn retry_later(
        &self,
        payment: &Payment,
        payment_key: &PaymentKey,
    ) -> Result<ConfirmOutcome, AppError> {
        let update = PaymentUpdate::Reschedule {
            at: self.backoff(payment.reconcile_attempts),
            secret: None,
        };
        match self
            .store
            .update_payment(Target::attempt(payment), &update, None)
            .await?
        {
            Some(payment) => self.outcome(
                Adopted {
                    payment,
                    refunds: Vec::new(),
                    verdict: Verdict::Undecided { resend: false },
                },
                payment_key,
            ),
            None => self.outcome_now(payment, payment_key).await,
        }
    }

    /// What a confirm of `payment_key` amounts to as the payment is now, whoever settled it.
    pub(super) async fn outcome_now(
        &self,
        payment: &Payment,
        payment_key: &PaymentKey,
    ) -> Result<ConfirmOutcome, AppError> {
        let payment = self.find(payment.id).await?;
        self.outcome(
            Adopted {
                payment,
                refunds: Vec::new(),
                verdict: Verdict::Settled,
            },
            payment_key,
        )
    }

    /// What a confirm of `payment_key` amounts to after an adoption.
    pub(super) fn outcome(
        &self,
        adopted: Adopted,
        payment_key: &PaymentKey,
    ) -> Result<ConfirmOutcome, AppError> {
        if adopted.verdict == Verdict::Foreign {
            return Err(AppError::unprocessable(
                "payment_key: Toss's record of this key is about another order",
            ));
        }
        let payment = adopted.payment;
        // Approved under this key, or this key's attempt still in flight.
        let approved = payment.pg_transaction_id.as_deref() == Some(payment_key.as_str());
        let in_flight = payment.payment_key.as_ref() == Some(payment_key);
        match payment.status {
            PaymentStatus::Completed | PaymentStatus::PartialRefund | PaymentStatus::Refunded
                if approved =>
            {
                Ok(ConfirmOutcome::Completed(payment))
            }
            PaymentStatus::WaitingForDeposit if in_flight => {
                Ok(ConfirmOutcome::AwaitingDeposit(payment))
            }
            PaymentStatus::InProgress if payment.needs_review => Err(AppError::PgResponseMismatch),
            PaymentStatus::InProgress if in_flight => Ok(ConfirmOutcome::Unsettled(payment)),
            PaymentStatus::Pending => match payment.failure {
                Some(failure) => Err(AppError::PgDeclined {
                    code: failure.code,
                    message: failure.message,
                }),
                None => Err(AppError::InvalidState(
                    "the payment attempt was abandoned".to_owned(),
                )),
            },
            status @ (PaymentStatus::InProgress
            | PaymentStatus::WaitingForDeposit
            | PaymentStatus::Completed
            | PaymentStatus::PartialRefund
            | PaymentStatus::Refunded
            | PaymentStatus::Failed
            | PaymentStatus::Cancelled) => Err(AppError::InvalidState(format!(
                "the payment is {status} by another attempt"
            ))),
        }
    }

    /// Sends the confirm of the attempt `payment` holds (as the claim or resend committed it),
    /// and adopts what comes back.
    pub(super) async fn send_confirm(
        &self,
        payment: Payment,
        payment_key: PaymentKey,
    ) -> Result<ConfirmOutcome, AppError> {
        let request = ConfirmRequest {
            idempotency_key: confirm_idempotency_key(
                payment.id,
                &payment_key,
                payment.confirm_sends,
            ),
            payment_key,
            order_id: payment.order_id.clone(),
            amount: payment.amount_krw,
        };
        tracing::info!(payment_id = %payment.id, order_id = %payment.order_id, "confirming at the PG");
        match self.gateway.confirm(&request).await {
            Ok(record) => {
                let adopted = self.adopt_reply(&payment, &record).await?;
                self.outcome(adopted, &request.payment_key)
            }
            Err(GatewayError::Declined { code, message }) => {
                let failure = Failure {
                    code: code.clone(),
                    message: message.clone(),
                };
                self.release(&payment, Some(failure)).await?;
                tracing::info!(payment_id = %payment.id, pg_code = %code, "PG declined the payment");
                Err(AppError::PgDeclined { code, message })
            }
            Err(GatewayError::Misconfigured { code, message }) => {
                self.release(&payment, None).await?;
                tracing::error!(payment_id = %payment.id, pg_code = %code, "PG rejected our configuration; payment left PENDING");
                Err(AppError::PgMisconfigured { code, message })
            }
            Err(GatewayError::Unknown { reason, code, .. }) => {
                tracing::warn!(payment_id = %payment.id, %reason, pg_code = ?code, "confirm outcome unknown; reading the payment back");
                self.settle(payment, false).await
            }
        }
    }

    /// An attempt that did not happen at the PG: back to `PENDING` (the buyer may try again),
    /// with the failure and a `payment.failed` event when there is one to tell.
    pub(super) async fn release(
        &self,
        payment: &Payment,
        failure: Option<Failure>,
    ) -> Result<Option<Payment>, AppError> {
        let update = PaymentUpdate::Release { failure };
        let event = events::of_update(&update, &update.applied_to(payment, Utc::now()));
        Ok(self
            .store
            .update_payment(Target::attempt(payment), &update, event)
            .await?)
    }
}

/// Toss scopes idempotency keys by URL, not body, and every confirm shares one URL: the key must
/// be unique per attempt, so it is derived from the attempt's `paymentKey`. Toss replays a
/// reused key's answer, errors included, so every resend (`send` > 1) gets a fresh one.
pub(super) fn confirm_idempotency_key(
    payment_id: PaymentId,
    payment_key: &PaymentKey,
    send: i32,
) -> String {
    let digest = Sha256::digest(payment_key.as_str().as_bytes());
    let short: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    if send <= 1 {
        format!("confirm-{payment_id}-{short}")
    } else {
        format!("confirm-{payment_id}-{short}-{send}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_keys_differ_per_attempt_and_repeat_per_retry() {
        let payment = PaymentId::new();
        let (key_a, key_b) = (
            PaymentKey::parse("key-a").unwrap(),
            PaymentKey::parse("key-b").unwrap(),
        );
        let first = confirm_idempotency_key(payment, &key_a, 1);
        assert_eq!(first, confirm_idempotency_key(payment, &key_a, 1));
        assert_ne!(first, confirm_idempotency_key(payment, &key_b, 1));
        assert_ne!(first, confirm_idempotency_key(PaymentId::new(), &key_a, 1));
        assert!(first.len() <= 300);
        let resend = confirm_idempotency_key(payment, &key_a, 2);
        assert_ne!(
            first, resend,
            "a resend never replays the first send's answer"
        );
        assert_ne!(resend, confirm_idempotency_key(payment, &key_a, 3));
    }
}
