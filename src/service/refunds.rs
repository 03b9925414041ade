//! Refunds: full or partial, repeatedly, until nothing is left. Money is reserved before the PG
//! is called, so concurrent refunds can never promise more than the balance.

use chrono::Utc;

use super::{PaymentService, events};
use crate::domain::{Failure, Payment, PaymentId, Refund, RefundId, RefundStatus};
use crate::error::AppError;
use crate::gateway::{CancelRequest, GatewayError, PgPayment};
use crate::store::RefundRelease;

#[derive(Debug, Clone)]
pub struct RefundCommand {
    pub payment_id: PaymentId,
    /// `None` or 0: the whole remaining balance.
    pub amount_krw: Option<i64>,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub enum RefundOutcome {
    Completed {
        refund: Refund,
        payment: Payment,
    },
    /// Sent to the PG, outcome not known yet; the service settles it by itself.
    Unsettled {
        refund: Refund,
        payment: Payment,
    },
}

impl PaymentService {
    pub async fn refund(&self, command: RefundCommand) -> Result<RefundOutcome, AppError> {
        let payment = self.find(command.payment_id).await?;
        let amount = self.refund_amount(&payment, command.amount_krw)?;
        let now = Utc::now();
        let via_pg = self.refunds_through_pg(&payment);
        let refund = Refund {
            id: RefundId::new(),
            payment_id: payment.id,
            amount_krw: amount,
            reason: command.reason,
            status: if via_pg {
                RefundStatus::Pending
            } else {
                RefundStatus::Completed
            },
            pg_cancel_key: None,
            failure: None,
            reconcile_attempts: 0,
            next_reconcile_at: via_pg.then(|| self.claim_expiry()),
            created_at: now,
            refunded_at: (!via_pg).then_some(now),
        };
        if !via_pg {
            let Some(payment) = self.store.record_refund(&refund, events::refunded).await? else {
                return Err(self.refund_refused(payment.id, amount).await);
            };
            tracing::info!(payment_id = %payment.id, refund_id = %refund.id, amount_krw = amount, "refund recorded (no PG call)");
            return Ok(RefundOutcome::Completed { refund, payment });
        }
        if !self.store.reserve_refund(&refund).await? {
            return Err(self.refund_refused(payment.id, amount).await);
        }
        self.send_cancel(payment, refund).await
    }

    /// Whether a refund of `payment` must go through the PG: it was paid through this PG.
    fn refunds_through_pg(&self, payment: &Payment) -> bool {
        self.gateway.provider().is_some()
            && payment.pg_provider.as_deref() == self.gateway.provider()
            && payment.pg_transaction_id.is_some()
    }

    fn refund_amount(&self, payment: &Payment, requested: Option<i64>) -> Result<i64, AppError> {
        if !payment.status.is_refundable() {
            return Err(AppError::InvalidState(format!(
                "a payment in status {} cannot be refunded",
                payment.status
            )));
        }
        let balance = payment.refundable_krw();
        let amount = match requested {
            None | Some(0) => balance,
            Some(amount) => amount,
        };
        if amount <= 0 || amount > balance {
            return Err(AppError::RefundExceedsBalance {
                requested: amount.max(0),
                balance,
            });
        }
        Ok(amount)
    }

    /// The conditional write refused: say why from the payment as it is now.
    async fn refund_refused(&self, payment_id: PaymentId, amount: i64) -> AppError {
        match self.find(payment_id).await {
            Ok(payment) => match self.refund_amount(&payment, Some(amount)) {
                Err(error) => error,
                Ok(_) => AppError::RequestInProgress,
            },
            Err(error) => error,
        }
    }

    async fn send_cancel(
        &self,
        payment: Payment,
        refund: Refund,
    ) -> Result<RefundOutcome, AppError> {
        let request = CancelRequest {
            payment_key: payment.pg_transaction_id.clone().unwrap_or_default(),
            reason: refund.reason.clone(),
            amount: refund.amount_krw,
            // One key per refund: two partial refunds of the same amount are two operations.
            idempotency_key: format!("refund-{}", refund.id),
        };
        tracing::info!(payment_id = %payment.id, refund_id = %refund.id, amount_krw = refund.amount_krw, "cancelling at the PG");
        match self.gateway.cancel(&request).await {
            Ok(record) => self.adopt_cancel(&payment, refund, record).await,
            Err(GatewayError::Declined { code, message }) => {
                self.store
                    .release_refund(refund.id, RefundRelease::Forget)
                    .await?;
                tracing::info!(payment_id = %payment.id, pg_code = %code, "PG declined the refund");
                Err(AppError::PgDeclined { code, message })
            }
            Err(GatewayError::Misconfigured { code, message }) => {
                self.store
                    .release_refund(refund.id, RefundRelease::Forget)
                    .await?;
                tracing::error!(payment_id = %payment.id, pg_code = %code, "PG rejected our configuration; refund not made");
                Err(AppError::PgMisconfigured { code, message })
            }
            Err(GatewayError::Unknown { reason, code, .. }) => {
                tracing::warn!(payment_id = %payment.id, refund_id = %refund.id, %reason, pg_code = ?code, "refund outcome unknown; reading the payment back");
                self.settle_refund(refund).await
            }
        }
    }

    /// Reads the PG's record of the payment and settles a `PENDING` refund from its `cancels[]`.
    pub(super) async fn settle_refund(&self, refund: Refund) -> Result<RefundOutcome, AppError> {
        let payment = self.find(refund.payment_id).await?;
        let payment_key = payment.pg_transaction_id.clone().unwrap_or_default();
        match self.gateway.payment_by_key(&payment_key).await {
            Ok(Some(record)) => {
                let known = self.known_cancel_keys(payment.id, refund.id).await?;
                let landed = record.cancels.iter().find(|cancel| {
                    cancel.amount == refund.amount_krw
                        && cancel.status.as_deref().is_none_or(|s| s == "DONE")
                        && !known.contains(&cancel.transaction_key)
                });
                if let Some(cancel) = landed {
                    let key = cancel.transaction_key.clone();
                    let at = cancel.canceled_at.unwrap_or_else(Utc::now);
                    return self.finish_refund(refund, Some(key), at).await;
                }
                // Toss's books against ours: money Toss returned that no refund of ours
                // accounts for must not be written off as "did not happen".
                let cancelled_at_toss = record
                    .total_amount
                    .zip(record.balance_amount)
                    .map(|(total, balance)| total - balance);
                if cancelled_at_toss.is_some_and(|at_toss| at_toss > payment.refunded_amount_krw) {
                    self.set_refund_aside(
                        &payment,
                        &refund,
                        "Toss cancelled more than our completed refunds, but not as this refund",
                    )
                    .await?;
                    return Err(AppError::PgResponseMismatch);
                }
                let waited_enough = refund.created_at + self.settings.confirm_window < Utc::now();
                if waited_enough {
                    let failure = Failure {
                        code: "PG_CANCEL_NOT_FOUND".to_owned(),
                        message: "the PG shows no such cancel; the refund did not happen"
                            .to_owned(),
                    };
                    tracing::warn!(payment_id = %payment.id, refund_id = %refund.id, "PG shows no such cancel; refund FAILED");
                    self.store
                        .release_refund(refund.id, RefundRelease::Fail(failure))
                        .await?;
                    return self.refund_outcome(refund.id).await;
                }
                self.refund_retry_later(refund).await
            }
            Ok(None) => {
                tracing::error!(alert = "pg_record_missing", payment_id = %payment.id, refund_id = %refund.id, "PG does not know a payment we refunded through it");
                self.refund_retry_later(refund).await
            }
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, %error, "read-back failed; will retry");
                self.refund_retry_later(refund).await
            }
        }
    }

    /// A cancel reply: the new cancel is the one named by `lastTransactionKey`.
    async fn adopt_cancel(
        &self,
        payment: &Payment,
        refund: Refund,
        record: PgPayment,
    ) -> Result<RefundOutcome, AppError> {
        let cancel = record
            .last_transaction_key
            .as_ref()
            .and_then(|key| record.cancels.iter().find(|c| &c.transaction_key == key));
        let matches = record.order_id == payment.order_id
            && Some(&record.payment_key) == payment.pg_transaction_id.as_ref()
            && cancel.is_some_and(|c| c.amount == refund.amount_krw);
        match cancel {
            Some(cancel) if matches => {
                let at = cancel.canceled_at.unwrap_or_else(Utc::now);
                self.finish_refund(refund, Some(cancel.transaction_key.clone()), at)
                    .await
            }
            _ => {
                self.set_refund_aside(
                    payment,
                    &refund,
                    "Toss's cancel reply does not match the refund",
                )
                .await?;
                Err(AppError::PgResponseMismatch)
            }
        }
    }

    async fn finish_refund(
        &self,
        refund: Refund,
        pg_cancel_key: Option<String>,
        refunded_at: chrono::DateTime<Utc>,
    ) -> Result<RefundOutcome, AppError> {
        match self
            .store
            .complete_refund(refund.id, pg_cancel_key, refunded_at, events::refunded)
            .await?
        {
            Some((payment, refund)) => {
                tracing::info!(payment_id = %payment.id, refund_id = %refund.id, status = %payment.status, "refund completed at the PG");
                Ok(RefundOutcome::Completed { refund, payment })
            }
            // Settled by someone else first: as it is now.
            None => self.refund_outcome(refund.id).await,
        }
    }

    async fn refund_retry_later(&self, refund: Refund) -> Result<RefundOutcome, AppError> {
        self.store
            .schedule_refund(refund.id, self.backoff(refund.reconcile_attempts))
            .await?;
        self.refund_outcome(refund.id).await
    }

    async fn refund_outcome(&self, refund_id: RefundId) -> Result<RefundOutcome, AppError> {
        let refund = self
            .store
            .refund(refund_id)
            .await?
            .ok_or_else(|| AppError::Internal(format!("refund {refund_id} vanished")))?;
        let payment = self.find(refund.payment_id).await?;
        match refund.status {
            RefundStatus::Completed => Ok(RefundOutcome::Completed { refund, payment }),
            RefundStatus::Pending => Ok(RefundOutcome::Unsettled { refund, payment }),
            RefundStatus::Failed => {
                let failure = refund.failure.unwrap_or(Failure {
                    code: "PG_CANCEL_FAILED".to_owned(),
                    message: "the refund did not happen".to_owned(),
                });
                Err(AppError::PgDeclined {
                    code: failure.code,
                    message: failure.message,
                })
            }
        }
    }

    /// Toss's record of a refund contradicts ours: the refund stays `PENDING` (its amount stays
    /// reserved), the reconciler stops looking, and the payment is flagged for a person.
    async fn set_refund_aside(
        &self,
        payment: &Payment,
        refund: &Refund,
        reason: &str,
    ) -> Result<(), AppError> {
        tracing::error!(alert = "pg_record_mismatch", payment_id = %payment.id, refund_id = %refund.id, %reason, "refund set aside for review");
        self.store.flag_for_review(payment.id, reason).await?;
        self.store.unschedule_refund(refund.id).await?;
        Ok(())
    }

    /// PG cancel keys already matched to other refunds of this payment.
    async fn known_cancel_keys(
        &self,
        payment_id: PaymentId,
        except: RefundId,
    ) -> Result<Vec<String>, AppError> {
        Ok(self
            .store
            .refunds_of(payment_id)
            .await?
            .into_iter()
            .filter(|r| r.id != except)
            .filter_map(|r| r.pg_cancel_key)
            .collect())
    }
}
