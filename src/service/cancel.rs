//! Cancelling a payment nobody paid: a `PENDING` one at once (no PG call), one waiting for its
//! virtual-account deposit at Toss first. The intent is committed before Toss is asked
//! ([`PaymentUpdate::RequestCancel`]), so whoever adopts Toss's cancelled record (this request,
//! a webhook, the settler after a crash) ends it `CANCELLED`; a deposit that wins the race
//! completes it instead, and paid money leaves only through a refund.

use std::sync::Arc;

use uuid::Uuid;

use super::adopt::Adoption;
use super::codes::declined;
use super::{Pg, RACE_RETRIES, ServiceSettings, change, find};
use crate::domain::{Actor, Failure, Payment, PaymentId, PaymentStatus, PaymentUpdate};
use crate::error::AppError;
use crate::gateway::{CancelRequest, GatewayError};
use crate::store::{Store, Target};

#[derive(Debug, Clone)]
pub struct CancelCommand {
    pub payment_id: PaymentId,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// `CANCELLED` (now, or before).
    Cancelled(Payment),
    /// Toss's answer is not known yet: the payment still waits for its deposit, the cancel is
    /// recorded as asked for, and the service finishes it from Toss's record.
    Unsettled(Payment),
}

/// Cancelling a payment nobody paid.
pub struct Cancelling {
    pub(super) store: Store,
    pub(super) pg: Pg,
    pub(super) settings: Arc<ServiceSettings>,
    pub(super) actor: Actor,
    pub(super) adoption: Adoption,
}

impl Cancelling {
    pub async fn cancel(&self, command: CancelCommand) -> Result<CancelOutcome, AppError> {
        let mut payment = find(&self.store, command.payment_id).await?;
        for _ in 0..RACE_RETRIES {
            match payment.status {
                PaymentStatus::Cancelled => return Ok(CancelOutcome::Cancelled(payment)),
                PaymentStatus::Pending => {
                    let update = PaymentUpdate::Cancel {
                        reason: command.reason.clone(),
                        requested_by: self.actor.clone(),
                    };
                    let target = Target {
                        status: Some(PaymentStatus::Pending),
                        ..Target::from(payment.id)
                    };
                    if let Some(cancelled) =
                        change(&self.store, &payment, target, &update, &self.actor).await?
                    {
                        tracing::info!(payment_id = %payment.id, "payment cancelled (nothing was paid; no PG call)");
                        return Ok(CancelOutcome::Cancelled(cancelled));
                    }
                }
                PaymentStatus::WaitingForDeposit => {
                    if payment.cancel_reason.is_some() {
                        // Asked before (a retry, or a cancel still under way): finish it.
                        return self.cancel_at_pg(payment).await;
                    }
                    let update = PaymentUpdate::RequestCancel {
                        reason: command.reason.clone(),
                        requested_by: self.actor.clone(),
                        lease_until: self.settings.claim_expiry(),
                    };
                    if let Some(requested) = self
                        .store
                        .update_payment(Target::attempt(&payment), &update, None)
                        .await?
                    {
                        return self.cancel_at_pg(requested).await;
                    }
                }
                status @ (PaymentStatus::InProgress
                | PaymentStatus::Completed
                | PaymentStatus::PartialRefund
                | PaymentStatus::Refunded
                | PaymentStatus::Failed) => {
                    return Err(AppError::InvalidState(format!(
                        "a payment in status {status} cannot be cancelled{}",
                        if status.is_refundable() {
                            " (paid money leaves through a refund)"
                        } else {
                            ""
                        }
                    )));
                }
            }
            payment = find(&self.store, payment.id).await?;
        }
        Err(AppError::RequestInProgress)
    }

    /// Cancels the virtual account of `payment` (whose cancel was asked for) at Toss: the whole
    /// account, no amount, no refund account (nothing was paid). Toss's answer, or its record
    /// when the answer is not one, is adopted like any other.
    pub(super) async fn cancel_at_pg(&self, payment: Payment) -> Result<CancelOutcome, AppError> {
        let (Some(payment_key), Some(reason)) =
            (payment.payment_key.clone(), payment.cancel_reason.clone())
        else {
            return Err(AppError::Internal(format!(
                "payment {} waits for a deposit without a key or a cancel reason",
                payment.id
            )));
        };
        tracing::info!(payment_id = %payment.id, "cancelling the virtual account at the PG");
        let request = CancelRequest {
            payment_key: payment_key.clone(),
            reason,
            amount: None,
            // Every cancel carries the balance it expects (contract, "Cancels carry the
            // balance"); an unpaid account's balance at Toss is its whole amount.
            refundable_amount: Some(payment.amount_krw),
            tax_free_amount: None,
            refund_account: None,
            // A full cancel of an unpaid account cannot apply twice; a fresh key per send keeps
            // Toss from replaying an earlier error.
            idempotency_key: format!("cancel-{}-{}", payment.id, Uuid::now_v7().simple()),
        };
        let refusal = match self.pg.payments.cancel(&request).await {
            Ok(record) => {
                let adopted = self.adoption.record(payment.id, &record, None).await?;
                return self.cancel_outcome(adopted.payment, None);
            }
            Err(GatewayError::Misconfigured { code, message }) => {
                tracing::error!(payment_id = %payment.id, pg_code = %code, "PG rejected our configuration; cancel not made");
                return Err(AppError::PgMisconfigured { code, message });
            }
            Err(GatewayError::Declined { code, message }) => Some(Failure::new(code, message)),
            Err(GatewayError::Unknown { reason, .. }) => {
                tracing::warn!(payment_id = %payment.id, %reason, "cancel outcome unknown; reading the payment back");
                None
            }
        };
        // Toss refused (perhaps the deposit came first) or did not say: its record decides.
        let read = match self.pg.payments.payment_by_key(&payment_key).await {
            Ok(Some(record)) => Some(
                self.adoption
                    .record(payment.id, &record, None)
                    .await?
                    .payment,
            ),
            Ok(None) | Err(_) => None,
        };
        if refusal.is_some() {
            // The merchant hears 402: the request is over. Forgotten, so that nobody sends it
            // again; the account keeps waiting for its deposit (or is as its record says).
            let now = self.adoption.forget_cancel_request(payment.id).await?;
            return self.cancel_outcome(now, refusal);
        }
        match read {
            Some(adopted) => self.cancel_outcome(adopted, refusal),
            None => {
                self.store
                    .update_payment(
                        Target::attempt(&payment),
                        &PaymentUpdate::Reschedule {
                            at: self.settings.backoff(payment.reconcile_attempts),
                            secret: None,
                        },
                        None,
                    )
                    .await?;
                let now = find(&self.store, payment.id).await?;
                self.cancel_outcome(now, refusal)
            }
        }
    }

    /// The answer to a cancel from the payment as Toss's record left it.
    fn cancel_outcome(
        &self,
        payment: Payment,
        refusal: Option<Failure>,
    ) -> Result<CancelOutcome, AppError> {
        match payment.status {
            PaymentStatus::Cancelled => Ok(CancelOutcome::Cancelled(payment)),
            PaymentStatus::WaitingForDeposit => match refusal {
                Some(failure) => Err(declined(failure)),
                None => Ok(CancelOutcome::Unsettled(payment)),
            },
            status @ (PaymentStatus::Completed
            | PaymentStatus::PartialRefund
            | PaymentStatus::Refunded) => Err(AppError::InvalidState(format!(
                "the deposit arrived before the cancel: the payment is {status} (refund it instead)"
            ))),
            status @ (PaymentStatus::Pending
            | PaymentStatus::InProgress
            | PaymentStatus::Failed) => Err(AppError::InvalidState(format!(
                "the payment is {status} at the PG's word; it was not cancelled"
            ))),
        }
    }
}
