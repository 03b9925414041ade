//! The life of a PG attempt, once claimed: a confirm (the buyer's `paymentKey`) or a charge of a
//! billing key. Send it and adopt what comes back; when the outcome is unknown (timeout, 5xx,
//! "already processed", a crash), read Toss's record and adopt it, send the attempt again while
//! Toss shows it unapproved (a confirm within its window, with a fresh Toss key; a charge Toss
//! has no record of, with the same Toss key), otherwise look again later; release it when it did
//! not happen. We never guess. `confirm`, `charge` and the reconciler call in; nothing here calls
//! back into them.

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::adopt::{Adopted, Verdict};
use super::{ConfirmOutcome, PaymentService, events};
use crate::domain::{
    Actor, BillingKeyId, Failure, Payment, PaymentId, PaymentKey, PaymentStatus, PaymentUpdate,
    PgRef,
};
use crate::error::AppError;
use crate::gateway::{ChargeRequest, ConfirmRequest, GatewayError, PgPayment};
use crate::store::Target;

/// What a claimed attempt is: a confirm of the buyer's `paymentKey`, or a charge of one of our
/// billing keys (whose `paymentKey` Toss names only in its answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Attempt {
    Confirm(PaymentKey),
    Charge(BillingKeyId),
}

impl Attempt {
    /// The attempt a payment has in flight (or last had), as its row says.
    pub(super) fn of(payment: &Payment) -> Option<Self> {
        match (&payment.payment_key, payment.billing_key_id) {
            (None, Some(id)) if payment.charge_in_flight() => Some(Self::Charge(id)),
            (Some(key), _) => Some(Self::Confirm(key.clone())),
            (None, _) => None,
        }
    }

    /// Whether `payment` was paid by this attempt.
    fn approved(&self, payment: &Payment) -> bool {
        match self {
            Self::Confirm(key) => payment.pg_ref().paid_by() == Some(key.as_str()),
            Self::Charge(id) => {
                payment.billing_key_id == Some(*id) && matches!(payment.pg_ref(), PgRef::Adopted(_))
            }
        }
    }

    /// Whether this attempt is the one `payment` has in flight (or waiting for its deposit).
    fn in_flight(&self, payment: &Payment) -> bool {
        match self {
            Self::Confirm(key) => payment.payment_key.as_ref() == Some(key),
            Self::Charge(id) => {
                payment.payment_key.is_none() && payment.billing_key_id == Some(*id)
            }
        }
    }
}

/// Sends of one attempt's confirm at most (the first included); the window bounds them too.
const MAX_CONFIRM_SENDS: i32 = 8;

impl PaymentService {
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
                let adopted = self.adopt_record(payment.id, &record, None).await?;
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
                self.outcome(adopted, &attempt)
            }
            Ok(None) if matches!(attempt, Attempt::Charge(_)) => {
                self.charge_unknown_at_toss(payment, attempt, may_resend)
                    .await
            }
            Ok(None) if payment.status == PaymentStatus::InProgress => {
                // Toss knows a real attempt from the buyer's authentication on (§17.6): a key
                // it has no record of was never authenticated and can never be approved. Its
                // claim goes at once, and leaves nothing behind: no failure, no event.
                tracing::warn!(payment_id = %payment.id, "the PG has no record of the payment key; claim released, nothing recorded");
                if self
                    .release(&payment, None, &self.record_actor())
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
            Attempt::Confirm(key) => self.gateway.payment_by_key(key).await,
            Attempt::Charge(_) => match &self.billing.gateway {
                Some(gateway) => gateway.read_back_charge(&payment.order_id).await,
                None => Err(GatewayError::Unknown {
                    reason: "billing is not configured on this instance".to_owned(),
                    code: None,
                    message: None,
                }),
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
                code: "PG_PAYMENT_NOT_FOUND".to_owned(),
                message: "the PG has no record of this charge".to_owned(),
                retryable: Some(true),
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
            lease_until: self.claim_expiry(),
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

    /// Sends the attempt `payment` holds (as the claim or resend committed it).
    pub(super) async fn send(
        &self,
        payment: Payment,
        attempt: Attempt,
    ) -> Result<ConfirmOutcome, AppError> {
        match attempt {
            Attempt::Confirm(key) => self.send_confirm(payment, key).await,
            Attempt::Charge(id) => self.send_charge(payment, id).await,
        }
    }

    /// Leaves the payment (its attempt) as it is and looks again later.
    pub(super) async fn retry_later(
        &self,
        payment: &Payment,
        attempt: &Attempt,
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
                attempt,
            ),
            None => self.outcome_now(payment, attempt).await,
        }
    }

    /// What the attempt amounts to as the payment is now, whoever settled it.
    pub(super) async fn outcome_now(
        &self,
        payment: &Payment,
        attempt: &Attempt,
    ) -> Result<ConfirmOutcome, AppError> {
        let payment = self.find(payment.id).await?;
        self.outcome(
            Adopted {
                payment,
                refunds: Vec::new(),
                verdict: Verdict::Settled,
            },
            attempt,
        )
    }

    /// What the attempt amounts to after an adoption.
    pub(super) fn outcome(
        &self,
        adopted: Adopted,
        attempt: &Attempt,
    ) -> Result<ConfirmOutcome, AppError> {
        if adopted.verdict == Verdict::Foreign {
            return Err(AppError::unprocessable(
                "payment_key: Toss's record of this key is about another order",
            ));
        }
        // This very read of Toss's record contradicted ours (a flag set earlier changes nothing
        // here: a retry of a flagged payment in flight answers as any other).
        let contradicted = matches!(adopted.verdict, Verdict::Contradiction(_));
        let payment = adopted.payment;
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
                Some(failure) => Err(AppError::PgDeclined {
                    code: failure.code,
                    message: failure.message,
                    retryable: failure.retryable,
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
                self.outcome(adopted, &Attempt::Confirm(request.payment_key))
            }
            Err(GatewayError::Declined { code, message }) => {
                let failure = Failure {
                    code: code.clone(),
                    message: message.clone(),
                    retryable: None,
                };
                let failure = if SESSION_NOT_FOUND.contains(&code.as_str()) {
                    match self.known_attempt(&payment, &request.payment_key).await {
                        KnownAttempt::Known => Some(failure),
                        KnownAttempt::Approved(record) => {
                            // Toss's record of this order shows it paid: adopted, never
                            // released over.
                            let adopted = self.adopt_record(payment.id, &record, None).await?;
                            return self.outcome(adopted, &Attempt::Confirm(request.payment_key));
                        }
                        KnownAttempt::Unknown => None,
                    }
                } else {
                    Some(failure)
                };
                let recorded = failure.is_some();
                self.release(&payment, failure, &self.record_actor())
                    .await?;
                tracing::info!(payment_id = %payment.id, pg_code = %code, recorded, "PG declined the payment");
                Err(AppError::PgDeclined {
                    code,
                    message,
                    retryable: None,
                })
            }
            Err(GatewayError::Misconfigured { code, message }) => {
                self.release(&payment, None, &self.record_actor()).await?;
                tracing::error!(payment_id = %payment.id, pg_code = %code, "PG rejected our configuration; payment left PENDING");
                Err(AppError::PgMisconfigured { code, message })
            }
            Err(GatewayError::Unknown { reason, code, .. }) => {
                tracing::warn!(payment_id = %payment.id, %reason, pg_code = ?code, "confirm outcome unknown; reading the payment back");
                self.settle(payment, false).await
            }
        }
    }

    /// Sends the charge of the attempt `payment` holds (as the claim or resend committed it)
    /// with billing key `billing_key_id`, and adopts what comes back. Every send of one attempt
    /// carries the same Toss `Idempotency-Key`.
    pub(super) async fn send_charge(
        &self,
        payment: Payment,
        billing_key_id: BillingKeyId,
    ) -> Result<ConfirmOutcome, AppError> {
        let attempt = Attempt::Charge(billing_key_id);
        let Some(gateway) = self.billing.gateway.clone() else {
            // Only a resend on an instance without billing gets here: someone else settles it.
            return self.retry_later(&payment, &attempt).await;
        };
        let (billing_key, customer_key) = match self.billing_secret(billing_key_id).await {
            Ok(found) => found,
            Err(error) => {
                if payment.confirm_sends <= 1 {
                    // Nothing was sent: the attempt did not happen.
                    self.release(&payment, None, &self.record_actor()).await?;
                } else {
                    self.retry_later(&payment, &attempt).await?;
                }
                return Err(error);
            }
        };
        let request = ChargeRequest {
            billing_key,
            customer_key,
            order_id: payment.order_id.clone(),
            order_name: payment
                .order_name
                .clone()
                .unwrap_or_else(|| payment.order_id.to_string()),
            amount: payment.amount_krw,
            tax_free_amount: charge_tax_free_amount(&payment),
            idempotency_key: charge_idempotency_key(payment.id, payment.confirm_attempt),
        };
        tracing::info!(payment_id = %payment.id, order_id = %payment.order_id, send = payment.confirm_sends, "charging a billing key at the PG");
        match gateway.charge(&request).await {
            Ok(record) => {
                let adopted = self.adopt_reply(&payment, &record).await?;
                self.outcome(adopted, &attempt)
            }
            Err(GatewayError::Declined { code, message }) => {
                let retryable = gateway.decline_is_retryable(&code);
                let failure = Failure {
                    code: code.clone(),
                    message: message.clone(),
                    retryable: Some(retryable),
                };
                self.release(&payment, Some(failure), &self.record_actor())
                    .await?;
                tracing::info!(payment_id = %payment.id, pg_code = %code, retryable, "PG declined the charge");
                Err(AppError::PgDeclined {
                    code,
                    message,
                    retryable: Some(retryable),
                })
            }
            Err(GatewayError::Misconfigured { code, message }) => {
                self.release(&payment, None, &self.record_actor()).await?;
                tracing::error!(payment_id = %payment.id, pg_code = %code, "PG rejected our billing configuration; payment left PENDING");
                Err(AppError::PgMisconfigured { code, message })
            }
            Err(GatewayError::Unknown { reason, code, .. }) => {
                tracing::warn!(payment_id = %payment.id, %reason, pg_code = ?code, "charge outcome unknown; reading the order back");
                self.settle(payment, false).await
            }
        }
    }

    /// Whether Toss knows `payment_key` as an attempt of `payment`'s order, after its confirm
    /// answered "no session" (`NOT_FOUND_PAYMENT(_SESSION)`): the same code for an expired
    /// attempt of the order and for a key that is random or another order's (§17.6); only the
    /// read-back tells them apart. When the read-back fails, the key counts as unknown:
    /// nothing was approved either way, and a stranger's key must not record a failure.
    async fn known_attempt(&self, payment: &Payment, payment_key: &PaymentKey) -> KnownAttempt {
        match self.gateway.payment_by_key(payment_key).await {
            Ok(Some(record)) if record.order_id == payment.order_id.as_str() => {
                if record.approved_at.is_some() {
                    KnownAttempt::Approved(Box::new(record))
                } else {
                    KnownAttempt::Known
                }
            }
            Ok(Some(_)) => {
                tracing::warn!(payment_id = %payment.id, "the declined payment key is another order's; nothing recorded");
                KnownAttempt::Unknown
            }
            Ok(None) => {
                tracing::warn!(payment_id = %payment.id, "the PG has no record of the declined payment key; nothing recorded");
                KnownAttempt::Unknown
            }
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "read-back of the declined payment key failed; nothing recorded");
                KnownAttempt::Unknown
            }
        }
    }

    /// Settles the attempt `payment` has in flight with another confirm's key, so that a key a
    /// stranger posted cannot block the buyer's: a key Toss has no record of, or whose record
    /// is another order's, is released (nothing recorded); a record of this order is adopted
    /// (an attempt Toss knows and has in flight stays, and still blocks). Returns whether the
    /// payment may have changed.
    pub(super) async fn settle_other_key(&self, payment: &Payment) -> Result<bool, AppError> {
        let Some(other) = payment.payment_key.as_ref() else {
            return Ok(false);
        };
        match self.gateway.payment_by_key(other).await {
            // Adopted through `decide`, which also releases an attempt in flight whose record
            // is another order's.
            Ok(Some(record)) => {
                self.adopt_record(payment.id, &record, None).await?;
                Ok(true)
            }
            Ok(None) => {
                tracing::warn!(payment_id = %payment.id, "the attempt in flight is of a payment key Toss has no record of; released");
                self.release(payment, None, &self.record_actor()).await?;
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "read-back of the attempt in flight failed");
                Ok(false)
            }
        }
    }

    /// An attempt that did not happen at the PG: back to `PENDING` (the buyer may try again),
    /// with the failure and a `payment.failed` event when there is one to tell.
    pub(super) async fn release(
        &self,
        payment: &Payment,
        failure: Option<Failure>,
        actor: &Actor,
    ) -> Result<Option<Payment>, AppError> {
        let update = PaymentUpdate::Release { failure };
        let event = events::of_update(&update, &update.applied_to(payment, Utc::now()), actor);
        Ok(self
            .store
            .update_payment(Target::attempt(payment), &update, event)
            .await?)
    }
}

/// Toss's confirm codes for "no session of this key for this order" (§8.2, §17.6).
const SESSION_NOT_FOUND: &[&str] = &["NOT_FOUND_PAYMENT_SESSION", "NOT_FOUND_PAYMENT"];

/// What Toss's read-back says of a key whose confirm found no session.
enum KnownAttempt {
    /// An attempt of this order Toss knows (expired, aborted): a real failure.
    Known,
    /// An attempt of this order Toss shows approved.
    Approved(Box<PgPayment>),
    /// Random, another order's, or not known to be this order's: nothing to record.
    Unknown,
}

/// The answer to a confirm of a key Toss has no record of.
fn unknown_key() -> AppError {
    AppError::PgDeclined {
        code: "NOT_FOUND_PAYMENT".to_owned(),
        message: "the PG has no record of this payment key".to_owned(),
        retryable: None,
    }
}

/// The tax-free part of a charge: the payment's, as stored.
fn charge_tax_free_amount(payment: &Payment) -> i64 {
    payment.tax_free_amount_krw
}

/// Toss scopes idempotency keys by URL (the billing key's), not body: one key per charge
/// attempt, the same for every send of it, so a resend after an unknown outcome is replayed by
/// Toss rather than charged again. A new attempt (after a decline Toss answered) gets a new one.
pub(super) fn charge_idempotency_key(payment_id: PaymentId, attempt: i32) -> String {
    format!("charge-{payment_id}-{attempt}")
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

    #[test]
    fn charge_keys_differ_per_attempt_only() {
        let payment = PaymentId::new();
        assert_eq!(
            charge_idempotency_key(payment, 1),
            charge_idempotency_key(payment, 1)
        );
        assert_ne!(
            charge_idempotency_key(payment, 1),
            charge_idempotency_key(payment, 2)
        );
        assert_ne!(
            charge_idempotency_key(payment, 1),
            charge_idempotency_key(PaymentId::new(), 1)
        );
    }
}
