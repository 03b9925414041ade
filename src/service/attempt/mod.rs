//! The life of a PG attempt, once claimed: a confirm (the buyer's `paymentKey`) or a charge of a
//! billing key. Send it and adopt what comes back; when the outcome is unknown (timeout, 5xx,
//! "already processed", a crash), read Toss's record and adopt it, send the attempt again while
//! Toss shows it unapproved (a confirm within its window, with a fresh Toss key; a charge Toss
//! has no record of, with the same Toss key), otherwise look again later; release it when it did
//! not happen. We never guess. `confirm`, `charge` and the settler call in; nothing here calls
//! back into them.

use std::sync::Arc;

use chrono::Utc;

use super::adopt::Adoption;
use super::codes::{Code, declined};
pub(super) use super::decide::Attempt;
use super::decide::Verdict;
use super::{ConfirmOutcome, Pg, ServiceSettings, find};
use crate::crypto::BillingKeyCipher;
use crate::domain::{Actor, Failure, Payment, PaymentStatus, PaymentUpdate};
use crate::error::AppError;
use crate::gateway::{GatewayError, PgPayment};
use crate::store::{Store, Target};

mod send;

/// Sends of one attempt's confirm at most (the first included); the window bounds them too.
const MAX_CONFIRM_SENDS: i32 = 8;

/// The life of an attempt, which every use case that makes one calls: send, settle, resend,
/// release.
#[derive(Clone)]
pub(super) struct AttemptLife {
    pub(super) store: Store,
    pub(super) pg: Pg,
    pub(super) cipher: Arc<BillingKeyCipher>,
    pub(super) settings: Arc<ServiceSettings>,
    pub(super) actor: Actor,
    pub(super) adoption: Adoption,
}

impl AttemptLife {
    /// A retry of an attempt whose outcome is unknown. While the request that sent it may still
    /// be waiting for Toss, that request settles it; once it is due, this retry reads Toss's
    /// record itself. The lease makes sure only one of many retries does. (A review flag never
    /// keeps an attempt from being settled.)
    pub(super) async fn settle_if_due(&self, payment: Payment) -> Result<ConfirmOutcome, AppError> {
        let due = payment.next_reconcile_at.is_none_or(|at| at <= Utc::now());
        if due
            && self
                .store
                .lease_payment(&payment, self.settings.claim_expiry())
                .await?
        {
            return self.settle(payment, true).await;
        }
        Ok(ConfirmOutcome::Unsettled(payment))
    }

    /// Reads Toss's record of an unsettled payment and adopts it. With `may_resend`, an attempt
    /// Toss shows authenticated but unapproved is confirmed again (a fresh Toss key, safe
    /// because Toss approves one `paymentKey` at most once), and a charge Toss has no record of
    /// is sent again with its own Toss key (Toss replays it if it had arrived).
    pub(super) async fn settle(
        &self,
        payment: Payment,
        may_resend: bool,
    ) -> Result<ConfirmOutcome, AppError> {
        let Some(attempt) = Attempt::of(&payment) else {
            return Ok(ConfirmOutcome::Unsettled(payment));
        };
        match self.read_back(&payment, &attempt).await {
            Ok(Some(record)) => {
                let adopted = self.adoption.record(payment.id, &record, None).await?;
                let undecided = adopted.verdict == Verdict::Undecided { resend: true };
                if undecided && matches!(attempt, Attempt::Charge(_)) {
                    // The order's record shows nothing decided about this charge (not yet, or
                    // only an earlier attempt's unpaid end): as when Toss shows nothing, it is
                    // sent again with its own Toss key, a bounded number of times.
                    return self
                        .charge_unknown_at_toss(adopted.payment, attempt, may_resend)
                        .await;
                }
                let resend =
                    undecided && may_resend && adopted.payment.confirm_sends < MAX_CONFIRM_SENDS;
                if resend {
                    return self.resend(adopted.payment, attempt).await;
                }
                self.outcome(adopted.payment, &adopted.verdict, &attempt)
            }
            Ok(None) if matches!(attempt, Attempt::Charge(_)) => {
                self.charge_unknown_at_toss(payment, attempt, may_resend)
                    .await
            }
            Ok(None) if payment.status == PaymentStatus::InProgress => {
                // Toss knows a real attempt from the buyer's authentication on (§17.6): a key
                // it has no record of was never authenticated and can never be approved. Its
                // claim goes at once, with no failure and no event (its attempt ends RELEASED).
                tracing::warn!(payment_id = %payment.id, "the PG has no record of the payment key; claim released, nothing recorded");
                if self
                    .release(&payment, None, &self.actor.adopting())
                    .await?
                    .is_some()
                {
                    return Err(unknown_key());
                }
                self.outcome_now(&payment, &attempt).await
            }
            Ok(None) => self.retry_later(&payment, &attempt).await,
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "read-back failed; will retry");
                self.retry_later(&payment, &attempt).await
            }
        }
    }

    /// Toss's record of the attempt: by `paymentKey` for a confirm, by order id for a charge
    /// (under the billing contract's key).
    async fn read_back(
        &self,
        payment: &Payment,
        attempt: &Attempt,
    ) -> Result<Option<PgPayment>, GatewayError> {
        match attempt {
            Attempt::Confirm(key) => self.pg.payments.payment_by_key(key).await,
            Attempt::Charge(_) => match &self.pg.billing {
                Some(gateway) => gateway.payment_by_order(&payment.order_id).await,
                None => Err(no_billing()),
            },
        }
    }

    /// Toss has no record of the charge in flight (or, read back by order id, only one that
    /// cannot be told from an earlier attempt's): it never arrived, or Toss has not written it
    /// yet. It is sent again with the same Toss `Idempotency-Key` (so a charge that did arrive
    /// is replayed, not repeated); once every send is spent and Toss still shows nothing, it did
    /// not happen (and Toss refuses a second approval of one order id anyway).
    async fn charge_unknown_at_toss(
        &self,
        payment: Payment,
        attempt: Attempt,
        may_resend: bool,
    ) -> Result<ConfirmOutcome, AppError> {
        if payment.status != PaymentStatus::InProgress {
            return self.retry_later(&payment, &attempt).await;
        }
        if may_resend && payment.confirm_sends < MAX_CONFIRM_SENDS {
            return self.resend(payment, attempt).await;
        }
        let started = payment.confirm_started_at.unwrap_or(payment.updated_at);
        if payment.confirm_sends >= MAX_CONFIRM_SENDS
            && started + self.settings.confirm_window < Utc::now()
        {
            let failure = Failure {
                retryable: Some(true),
                ..Code::PgPaymentNotFound.failure("the PG has no record of this charge")
            };
            tracing::warn!(payment_id = %payment.id, "PG does not know the charge after every send; back to PENDING");
            self.release(&payment, Some(failure), &Actor::system())
                .await?;
            return self.outcome_now(&payment, &attempt).await;
        }
        self.retry_later(&payment, &attempt).await
    }

    /// Sends the attempt in flight again, if this caller wins the resend.
    async fn resend(&self, payment: Payment, attempt: Attempt) -> Result<ConfirmOutcome, AppError> {
        let resend = PaymentUpdate::Resend {
            lease_until: self.settings.claim_expiry(),
        };
        match self
            .store
            .update_payment(Target::attempt(&payment), &resend, None)
            .await?
        {
            Some(leased) => {
                tracing::info!(payment_id = %payment.id, send = leased.confirm_sends, "Toss shows the attempt unapproved; sending it again");
                // Boxed: a send whose outcome is unknown settles again (without resending).
                Box::pin(self.send(leased, attempt)).await
            }
            None => self.outcome_now(&payment, &attempt).await,
        }
    }

    /// Leaves the payment (its attempt) as it is and looks again later.
    pub(super) async fn retry_later(
        &self,
        payment: &Payment,
        attempt: &Attempt,
    ) -> Result<ConfirmOutcome, AppError> {
        let update = PaymentUpdate::Reschedule {
            at: self.settings.backoff(payment.reconcile_attempts),
            secret: None,
        };
        match self
            .store
            .update_payment(Target::attempt(payment), &update, None)
            .await?
        {
            Some(payment) => self.outcome(payment, &Verdict::Undecided { resend: false }, attempt),
            None => self.outcome_now(payment, attempt).await,
        }
    }

    /// What the attempt amounts to as the payment is now, whoever settled it.
    pub(super) async fn outcome_now(
        &self,
        payment: &Payment,
        attempt: &Attempt,
    ) -> Result<ConfirmOutcome, AppError> {
        let payment = find(&self.store, payment.id).await?;
        self.outcome(payment, &Verdict::Settled, attempt)
    }

    /// What the attempt amounts to after an adoption that came to `verdict`.
    pub(super) fn outcome(
        &self,
        payment: Payment,
        verdict: &Verdict,
        attempt: &Attempt,
    ) -> Result<ConfirmOutcome, AppError> {
        if *verdict == Verdict::Foreign {
            return Err(AppError::unprocessable(
                "payment_key: Toss's record of this key is about another order",
            ));
        }
        // This very read of Toss's record contradicted ours (a flag set earlier changes nothing
        // here: a retry of a flagged payment in flight answers as any other).
        let contradicted = matches!(verdict, Verdict::Contradiction(_));
        // Approved by this attempt, or this attempt still in flight.
        let approved = attempt.approved(&payment);
        let in_flight = attempt.in_flight(&payment);
        match payment.status {
            PaymentStatus::Completed | PaymentStatus::PartialRefund | PaymentStatus::Refunded
                if approved =>
            {
                Ok(ConfirmOutcome::Completed(payment))
            }
            PaymentStatus::WaitingForDeposit if in_flight => {
                Ok(ConfirmOutcome::AwaitingDeposit(payment))
            }
            PaymentStatus::InProgress if contradicted => Err(AppError::PgResponseMismatch),
            PaymentStatus::InProgress if in_flight => Ok(ConfirmOutcome::Unsettled(payment)),
            PaymentStatus::Pending => match payment.failure {
                Some(failure) => Err(declined(failure)),
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
}

/// The answer to a confirm of a key Toss has no record of.
fn unknown_key() -> AppError {
    declined(Code::NotFoundPayment.failure("the PG has no record of this payment key"))
}

/// What a charge's send or read-back is on an instance without billing: unknown (it is settled
/// by an instance that has it).
fn no_billing() -> GatewayError {
    GatewayError::Unknown {
        reason: "billing is not configured on this instance".to_owned(),
        code: None,
        message: None,
    }
}
