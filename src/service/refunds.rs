//! Refunds: full or partial, repeatedly, until nothing is left. Money is reserved before the PG
//! is called, so concurrent refunds can never promise more than the balance. Toss takes one
//! cancel of a payment at a time (and refuses a second within a second), so each refund's cancel
//! is sent only while it holds the payment's cancel slot; refunds asked for meanwhile wait their
//! turn, and all complete. Every cancel carries `refundableAmount`, our view of the balance
//! before it, so a resend can never apply twice.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::decide::{Verdict, abandon_refund};
use super::{PaymentService, events};
use crate::domain::{
    Failure, Payment, PaymentId, PaymentKey, PaymentUpdate, PgRef, Refund, RefundAccount, RefundId,
    RefundOrigin, RefundStatus, ScopedKey,
};
use crate::error::AppError;
use crate::gateway::{CancelRequest, GatewayError, PgPayment};
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct RefundCommand {
    pub payment_id: PaymentId,
    /// `None` or 0: the whole remaining balance.
    pub amount_krw: Option<i64>,
    pub reason: String,
    /// The caller's `Idempotency-Key`: a retry answers with the refund it made, never a second.
    pub idempotency_key: Option<ScopedKey>,
    /// The tax-free part, at most what is left of the payment's; `None`: pro rata.
    pub tax_free_amount_krw: Option<i64>,
    /// Where a deposited virtual account's money goes back to (required for those).
    pub refund_account: Option<RefundAccount>,
}

#[derive(Debug, Clone)]
pub enum RefundOutcome {
    Completed {
        refund: Refund,
        payment: Payment,
    },
    /// Sent to the PG (or waiting for its turn), outcome not known yet; the service settles it
    /// by itself.
    Unsettled {
        refund: Refund,
        payment: Payment,
    },
}

/// How often a refund is computed again when the balance moved under its tax-free part.
const RESERVE_RETRIES: usize = 5;

/// What one reservation attempt came to.
enum Reserved {
    Done((Refund, Payment)),
    /// Answered already (recorded without a PG, or the same key's refund).
    Outcome(Result<RefundOutcome, AppError>),
    Moved,
}

/// The tax-free part of a refund of `amount` from `payment`: `requested` when it is within what
/// is left of the payment's tax-free amount and of the refund, and leaves no more tax-free than
/// balance; else that remainder × refund / remaining balance, rounded down, and all of the
/// remainder for a refund of the whole balance. So the tax-free parts of refunds of the whole
/// amount add up to the payment's, and no part is more than its refund.
pub(super) fn tax_free_part(
    payment: &Payment,
    refunds: &[Refund],
    amount: i64,
    requested: Option<i64>,
) -> Result<i64, AppError> {
    let taken: i64 = refunds
        .iter()
        .filter(|r| matches!(r.status, RefundStatus::Completed | RefundStatus::Pending))
        .map(|r| r.tax_free_amount_krw)
        .sum();
    let remaining = (payment.tax_free_amount_krw - taken).max(0);
    let balance = payment.refundable_krw();
    if let Some(requested) = requested {
        // What is left tax-free must still fit in what is left to refund: a part too small now
        // would leave a later refund more tax-free than its amount, which Toss refuses.
        let least = (remaining - (balance - amount)).max(0);
        let most = remaining.min(amount);
        if requested < least || requested > most {
            return Err(AppError::unprocessable(format!(
                "tax_free_amount_krw: must be {least} to {most} for this refund (within the \
                 payment's remaining tax-free amount and the refund, leaving no more tax-free \
                 than balance)"
            )));
        }
        return Ok(requested);
    }
    if amount >= balance || balance <= 0 {
        return Ok(remaining);
    }
    let part = i128::from(remaining) * i128::from(amount) / i128::from(balance);
    Ok(i64::try_from(part).unwrap_or(remaining).min(remaining))
}

/// How long a refund request keeps driving its cancel (waiting for its turn, resending after
/// Toss's "one cancel per second") before answering 202 and leaving the rest to the settler.
const REQUEST_PATIENCE: Duration = Duration::from_secs(10);
/// Toss refuses a second cancel of one payment within a second.
const CANCEL_SPACING: Duration = Duration::from_millis(1100);
const SLOT_POLL: Duration = Duration::from_millis(100);

/// What one send of a cancel came to.
enum Sent {
    /// Settled, or nothing more to do now.
    Done(Box<Result<RefundOutcome, AppError>>),
    /// Toss has not got it: send again (after the spacing Toss asks for).
    Again,
}

fn done(outcome: Result<RefundOutcome, AppError>) -> Sent {
    Sent::Done(Box::new(outcome))
}

/// Who drives a refund, and so whether an answer about it may already have been given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DrivenBy {
    /// The request that made it, before it answered: a refusal of its first send is its
    /// answer (402), and the refund, of which nobody heard, is forgotten.
    ItsRequest,
    /// Anyone after (the settler): the request may have answered 202 (or died after
    /// sending). The refund ends `COMPLETED` or `FAILED` with `refund.failed`, and stays listed.
    Later,
}

impl PaymentService {
    pub async fn refund(&self, command: RefundCommand) -> Result<RefundOutcome, AppError> {
        if let Some(key) = &command.idempotency_key
            && let Some(made) = self.store.refund_by_key(command.payment_id, key).await?
        {
            // A retry of a refund whose first answer was lost (a 5xx, a crash, a lapsed
            // lease): its money is already reserved or moved; answer as it stands.
            tracing::info!(refund_id = %made.id, "refund retried with its Idempotency-Key; answering its state");
            return self.refund_outcome(made.id).await;
        }
        let refund_id = RefundId::new();
        let mut reserved = None;
        for _ in 0..RESERVE_RETRIES {
            match self.try_reserve(&command, refund_id).await? {
                Reserved::Done(done) => {
                    reserved = Some(done);
                    break;
                }
                Reserved::Outcome(outcome) => return outcome,
                // The balance moved between the read and the reservation: the tax-free part was
                // computed from a stale balance; compute it again.
                Reserved::Moved => {}
            }
        }
        let Some((refund, payment)) = reserved else {
            return Err(AppError::RequestInProgress);
        };
        self.drive_refund(
            refund.id,
            payment.id,
            REQUEST_PATIENCE,
            DrivenBy::ItsRequest,
        )
        .await
    }

    /// Reads the payment, builds the refund and reserves its amount (or records it outright
    /// when no PG is involved).
    async fn try_reserve(
        &self,
        command: &RefundCommand,
        refund_id: RefundId,
    ) -> Result<Reserved, AppError> {
        let payment = self.find(command.payment_id).await?;
        // The state first: a payment nobody paid (yet) is 409 whichever PG holds its attempt.
        let amount = self.refund_amount(&payment, command.amount_krw)?;
        let via_pg = self.refund_route(&payment)?;
        if payment.paid_by_virtual_account() && command.refund_account.is_none() {
            return Err(AppError::RefundAccountRequired);
        }
        let tax_free = if payment.tax_free_amount_krw > 0 {
            let refunds = self.store.refunds_of(payment.id).await?;
            tax_free_part(&payment, &refunds, amount, command.tax_free_amount_krw)?
        } else {
            match command.tax_free_amount_krw {
                None | Some(0) => 0,
                Some(_) => {
                    return Err(AppError::unprocessable(
                        "tax_free_amount_krw: the payment has no tax-free amount left",
                    ));
                }
            }
        };
        let now = Utc::now();
        let refund = Refund {
            id: refund_id,
            payment_id: payment.id,
            amount_krw: amount,
            reason: command.reason.clone(),
            tax_free_amount_krw: tax_free,
            // Only a deposit is refunded to an account; a card's cancel is never sent one.
            refund_account: command
                .refund_account
                .as_ref()
                .filter(|_| payment.paid_by_virtual_account())
                .map(|account| self.settings.account_sealer.seal(refund_id, account)),
            status: if via_pg {
                RefundStatus::Pending
            } else {
                RefundStatus::Completed
            },
            pg_cancel_key: None,
            idempotency_key: command.idempotency_key.clone(),
            origin: RefundOrigin::Service,
            sends: 0,
            last_sent_at: None,
            failure: None,
            reconcile_attempts: 0,
            // If this request dies, the settler takes the refund over from then.
            next_reconcile_at: via_pg.then(|| self.claim_expiry()),
            created_at: now,
            refunded_at: (!via_pg).then_some(now),
            requested_by: self.actor.clone(),
        };
        // With a tax-free part, the balance it was computed from must still hold.
        let taken = (payment.tax_free_amount_krw > 0)
            .then_some(payment.refunded_amount_krw + payment.refund_reserved_krw);
        if !via_pg {
            let Some(after) = self
                .store
                .record_refund(&refund, taken, |payment, refund| {
                    events::refunded(payment, refund, &self.actor)
                })
                .await?
            else {
                return self.reservation_refused(&payment, amount, taken).await;
            };
            tracing::info!(payment_id = %after.id, refund_id = %refund.id, amount_krw = amount, "refund recorded (no PG call)");
            return Ok(Reserved::Outcome(Ok(RefundOutcome::Completed {
                refund,
                payment: after,
            })));
        }
        match self.store.reserve_refund(&refund, taken).await {
            Ok(true) => Ok(Reserved::Done((refund, payment))),
            Ok(false) => self.reservation_refused(&payment, amount, taken).await,
            // The same key won a race against this request: answer with its refund.
            Err(StoreError::AlreadyRecorded(_)) if command.idempotency_key.is_some() => {
                let key = command.idempotency_key.as_ref().expect("checked");
                Ok(Reserved::Outcome(
                    match self.store.refund_by_key(payment.id, key).await? {
                        Some(made) => self.refund_outcome(made.id).await,
                        None => Err(AppError::RequestInProgress),
                    },
                ))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The reservation did not happen: the balance moved under a tax-free computation (try
    /// again), or the payment no longer allows the refund (say why).
    async fn reservation_refused(
        &self,
        payment: &Payment,
        amount: i64,
        taken: Option<i64>,
    ) -> Result<Reserved, AppError> {
        if let Some(taken) = taken {
            let now = self.find(payment.id).await?;
            if now.refunded_amount_krw + now.refund_reserved_krw != taken
                && self.refund_amount(&now, Some(amount)).is_ok()
            {
                return Ok(Reserved::Moved);
            }
        }
        Err(self.refund_refused(payment.id, amount).await)
    }

    /// How a refund of `payment` is made: through this instance's PG when that PG took it; by
    /// recording it when no PG verified the payment; never when a PG this instance does not have
    /// took the money (a refund recorded here would be one nobody made). `true`: through the PG.
    fn refund_route(&self, payment: &Payment) -> Result<bool, AppError> {
        let gateway = self.gateway.provider();
        let ours = gateway.is_some() && payment.pg_provider.as_deref() == gateway;
        match payment.pg_ref() {
            PgRef::Adopted(_) | PgRef::Recorded { .. } if ours => Ok(true),
            PgRef::Adopted(_) | PgRef::Attempt(_) => {
                tracing::warn!(payment_id = %payment.id, "refund refused: the PG that took the payment is not configured here");
                Err(AppError::PgNotConfigured)
            }
            PgRef::Recorded { .. } | PgRef::None => Ok(false),
        }
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

    /// Brings a `PENDING` refund as far as it can go within `patience`: waits for the payment's
    /// cancel slot, reads Toss's record first if an earlier send may have landed, sends (again)
    /// while Toss does not have it, and adopts what Toss answers. Whatever is left unsettled
    /// is the settler's.
    pub(super) async fn drive_refund(
        &self,
        refund_id: RefundId,
        payment_id: PaymentId,
        patience: Duration,
        driven_by: DrivenBy,
    ) -> Result<RefundOutcome, AppError> {
        let deadline = Instant::now() + patience;
        let lease = self.settings.pg_read_timeout + Duration::from_secs(5);
        let mut read_back = true;
        loop {
            let now = Utc::now();
            let Some(payment) = self
                .store
                .take_cancel_slot(payment_id, refund_id, now, now + lease)
                .await?
            else {
                if Instant::now() >= deadline {
                    tracing::info!(%refund_id, "another cancel of this payment is at Toss; this refund waits its turn");
                    self.store
                        .schedule_refund(refund_id, now + CANCEL_SPACING)
                        .await?;
                    return self.refund_outcome(refund_id).await;
                }
                tokio::time::sleep(SLOT_POLL).await;
                continue;
            };
            let refund = self.stored_refund(refund_id).await?;
            if refund.status != RefundStatus::Pending {
                self.store.free_cancel_slot(payment_id, refund_id).await?;
                return self.refund_outcome(refund_id).await;
            }
            let mut payment = payment;
            if refund.sends > 0 && read_back {
                match self.read_back_refund(&payment, &refund).await {
                    Sent::Done(outcome) => return *outcome,
                    Sent::Again => {}
                }
                payment = self.find(payment_id).await?;
            }
            if refund.sends > 0 && refund.created_at + self.settings.confirm_window < now {
                // Too late to send again; the read-back fails it once its last send is over.
                // (A refund never sent has nothing at Toss: its first send may come any time,
                // however long it waited for its turn, or it would wait forever.)
                return self.refund_later(&payment, &refund).await;
            }
            match self.send_cancel(&payment, &refund, driven_by).await {
                Sent::Done(outcome) => return *outcome,
                Sent::Again if Instant::now() + CANCEL_SPACING < deadline => {
                    // The last send's read-back just showed Toss does not have it.
                    read_back = false;
                    tokio::time::sleep(CANCEL_SPACING).await;
                }
                Sent::Again => return self.refund_later(&payment, &refund).await,
            }
        }
    }

    /// One send of `refund`'s cancel, holding the payment's cancel slot.
    async fn send_cancel(&self, payment: &Payment, refund: &Refund, driven_by: DrivenBy) -> Sent {
        match self.try_send_cancel(payment, refund, driven_by).await {
            Ok(sent) => sent,
            Err(error) => done(Err(error)),
        }
    }

    async fn try_send_cancel(
        &self,
        payment: &Payment,
        refund: &Refund,
        driven_by: DrivenBy,
    ) -> Result<Sent, AppError> {
        // Forgotten only when refused before anything about it was answered or sent.
        let answered = driven_by == DrivenBy::Later || refund.sends > 0;
        let recorded = match payment.pg_ref() {
            // The Toss key was recorded by a trusted caller, not adopted from Toss's answer:
            // before anything is cancelled under it, Toss's record must be this order's. (With
            // nothing recorded, nothing is either: the check refuses it.)
            PgRef::Recorded { .. } | PgRef::None => true,
            PgRef::Adopted(_) | PgRef::Attempt(_) => false,
        };
        if refund.sends == 0
            && recorded
            && let Some(sent) = self.check_recorded_key(payment, refund, answered).await?
        {
            return Ok(sent);
        }
        let now = Utc::now();
        if !self
            .store
            .mark_refund_sent(refund.id, now, self.claim_expiry())
            .await?
        {
            self.store.free_cancel_slot(payment.id, refund.id).await?;
            return Ok(done(self.refund_outcome(refund.id).await));
        }
        let send = refund.sends + 1;
        tracing::info!(payment_id = %payment.id, refund_id = %refund.id, amount_krw = refund.amount_krw, send, "cancelling at the PG");
        let answer = match (cancel_key(payment), self.refund_account(refund)) {
            (Ok(payment_key), Ok(refund_account)) => {
                let request = CancelRequest {
                    payment_key,
                    reason: refund.reason.clone(),
                    amount: Some(refund.amount_krw),
                    // Our view of Toss's balance: everything our completed refunds took. Only
                    // this refund's cancel is at Toss now (it holds the slot).
                    refundable_amount: Some(payment.amount_krw - payment.refunded_amount_krw),
                    // Stored with the refund: every send carries the same.
                    tax_free_amount: (payment.tax_free_amount_krw > 0
                        || refund.tax_free_amount_krw > 0)
                        .then_some(refund.tax_free_amount_krw),
                    refund_account,
                    idempotency_key: refund_idempotency_key(refund.id, send),
                };
                self.pg_for(payment).cancel(&request).await
            }
            (Err(refusal), _) | (_, Err(refusal)) => Err(refusal),
        };
        match answer {
            Ok(record) => {
                let adopted = self
                    .adopt_record(payment.id, &record, Some(refund.id))
                    .await?;
                self.store.free_cancel_slot(payment.id, refund.id).await?;
                if let Verdict::Contradiction(_) = adopted.verdict {
                    // Flagged for a person, but still looked at again: a flag never stops it.
                    self.store
                        .schedule_refund(refund.id, self.backoff(refund.reconcile_attempts))
                        .await?;
                    return Ok(done(Err(AppError::PgResponseMismatch)));
                }
                if adopted
                    .refunds
                    .iter()
                    .any(|r| r.id == refund.id && r.status == RefundStatus::Pending)
                {
                    // Toss answered 200 without our cancel in it: treat it as unknown.
                    tracing::warn!(refund_id = %refund.id, "Toss's cancel reply does not show this refund; reading it back later");
                    return Ok(done(self.refund_later(payment, refund).await));
                }
                Ok(done(self.refund_outcome(refund.id).await))
            }
            Err(GatewayError::Declined { code, message }) => {
                let failure = Failure {
                    code: code.clone(),
                    message: message.clone(),
                    retryable: None,
                };
                // A first send refused on the request that made the refund leaves no trace (the
                // caller hears 402 now); any other refusal ends a refund that may have been
                // answered 202 (waiting for its turn, or after an unknown outcome) as FAILED,
                // with its event: an answered refund is never forgotten.
                let keep = answered.then_some(failure);
                self.abandon(payment.id, refund.id, keep).await?;
                tracing::info!(payment_id = %payment.id, refund_id = %refund.id, pg_code = %code, "PG declined the refund");
                Ok(done(Err(AppError::PgDeclined {
                    code,
                    message,
                    retryable: None,
                })))
            }
            Err(GatewayError::Misconfigured { code, message }) => {
                tracing::error!(payment_id = %payment.id, pg_code = %code, "PG rejected our configuration; refund not made");
                if refund.sends > 0 {
                    // An earlier send may have landed: its record decides, later.
                    self.refund_later(payment, refund).await?;
                } else {
                    // Nothing reached Toss: the refund did not happen.
                    let failure = Failure::new(code.clone(), message.clone());
                    self.abandon(payment.id, refund.id, answered.then_some(failure))
                        .await?;
                }
                Ok(done(Err(AppError::PgMisconfigured { code, message })))
            }
            Err(GatewayError::Unknown { reason, code, .. }) => {
                tracing::warn!(payment_id = %payment.id, refund_id = %refund.id, %reason, pg_code = ?code, "refund outcome unknown; reading the payment back");
                let sent = Refund {
                    sends: send,
                    ..refund.clone()
                };
                match self.read_back_refund(payment, &sent).await {
                    // Toss answered (one cancel per second, a stale balance, a passing error)
                    // and does not have it: send again now. Without an answer (a timeout) the
                    // request answers 202 and the settler sends again shortly.
                    Sent::Again if code.is_none() => {
                        Ok(done(self.refund_later(payment, &sent).await))
                    }
                    other => Ok(other),
                }
            }
        }
    }

    /// Reads Toss's record under the key a trusted caller recorded for `payment` (the service
    /// never adopted it) and checks it is this order's, of its amount, approved. `None`: it
    /// is, send. Otherwise the refund is answered without sending anything: refused 409
    /// `PG_RESPONSE_MISMATCH` with the payment set aside (a record of another order, or none),
    /// or, when Toss could not be read, tried again later (refused 503 if nobody heard of it).
    async fn check_recorded_key(
        &self,
        payment: &Payment,
        refund: &Refund,
        answered: bool,
    ) -> Result<Option<Sent>, AppError> {
        let lookup = match payment.pg_ref().lookup_key() {
            Some(key) => self.record_by_key(payment, key).await,
            None => Ok(None),
        };
        let wrong = match lookup {
            Ok(Some(record)) => match names_this_payment(payment, &record) {
                Ok(()) => return Ok(None),
                Err(wrong) => wrong,
            },
            Ok(None) => "Toss has no payment under the recorded pg_transaction_id".to_owned(),
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, refund_id = %refund.id, %error, "could not read the recorded Toss payment; nothing sent");
                if answered {
                    return Ok(Some(done(self.refund_later(payment, refund).await)));
                }
                self.abandon(payment.id, refund.id, None).await?;
                return Ok(Some(done(Err(AppError::Unavailable(
                    "Toss's record of the payment could not be read; nothing was sent".to_owned(),
                )))));
            }
        };
        let reason = format!("refund refused before any cancel: {wrong}");
        tracing::error!(alert = "pg_record_foreign", payment_id = %payment.id, refund_id = %refund.id, %reason, "the recorded Toss payment is not this order's; nothing cancelled");
        let failure = Failure::new("PG_RESPONSE_MISMATCH", reason.clone());
        let now = Utc::now();
        let actor = self.record_actor();
        self.store
            .adopt(payment.id, |ours, refunds| {
                let plan = abandon_refund(
                    ours,
                    refunds,
                    refund.id,
                    answered.then_some(failure),
                    &actor,
                )
                .map(|mut plan| {
                    let flag = PaymentUpdate::SetAside {
                        reason: reason.clone(),
                    };
                    plan.payment = flag.applied_to(&plan.payment, now);
                    plan
                });
                (plan, ())
            })
            .await?;
        Ok(Some(done(Err(AppError::ForeignPgRecord(format!(
            "the Toss payment recorded for this payment is not its own ({wrong}); nothing was \
             cancelled and the payment was set aside for review"
        ))))))
    }

    /// Reads Toss's record after a send whose outcome is unknown and adopts it. `Again` when
    /// Toss's record is consistent with ours and does not show the refund: it never got there.
    async fn read_back_refund(&self, payment: &Payment, refund: &Refund) -> Sent {
        let lookup = match payment.pg_ref().lookup_key() {
            Some(key) => self.record_by_key(payment, key).await,
            None => Ok(None),
        };
        let record = match lookup {
            Ok(Some(record)) => record,
            Ok(None) => {
                tracing::error!(alert = "pg_record_missing", payment_id = %payment.id, refund_id = %refund.id, "PG does not know a payment we refunded through it");
                return done(self.refund_later(payment, refund).await);
            }
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, %error, "read-back failed; will retry");
                return done(self.refund_later(payment, refund).await);
            }
        };
        let adopted = match self.adopt_record(payment.id, &record, None).await {
            Ok(adopted) => adopted,
            Err(error) => return done(Err(error)),
        };
        if let Verdict::Contradiction(_) = adopted.verdict {
            let _ = self.store.free_cancel_slot(payment.id, refund.id).await;
            let at = self.backoff(refund.reconcile_attempts);
            let _ = self.store.schedule_refund(refund.id, at).await;
            return done(Err(AppError::PgResponseMismatch));
        }
        let still_pending = adopted
            .refunds
            .iter()
            .any(|r| r.id == refund.id && r.status == RefundStatus::Pending);
        if still_pending {
            return Sent::Again;
        }
        let _ = self.store.free_cancel_slot(payment.id, refund.id).await;
        done(self.refund_outcome(refund.id).await)
    }

    /// Gives the slot back and leaves the refund to the settler's next look.
    async fn refund_later(
        &self,
        payment: &Payment,
        refund: &Refund,
    ) -> Result<RefundOutcome, AppError> {
        self.store.free_cancel_slot(payment.id, refund.id).await?;
        self.store
            .schedule_refund(refund.id, self.backoff(refund.reconcile_attempts))
            .await?;
        self.refund_outcome(refund.id).await
    }

    /// A refund the PG refused: forgotten (`failure` None), or `FAILED` with `refund.failed`.
    /// Its amount goes back to the balance and the cancel slot is freed, in one transaction.
    async fn abandon(
        &self,
        payment_id: PaymentId,
        refund_id: RefundId,
        failure: Option<Failure>,
    ) -> Result<(), AppError> {
        let actor = self.record_actor();
        self.store
            .adopt(payment_id, |payment, refunds| {
                (
                    abandon_refund(payment, refunds, refund_id, failure, &actor),
                    (),
                )
            })
            .await?;
        Ok(())
    }

    async fn stored_refund(&self, refund_id: RefundId) -> Result<Refund, AppError> {
        self.store
            .refund(refund_id)
            .await?
            .ok_or_else(|| AppError::Internal(format!("refund {refund_id} vanished")))
    }

    async fn refund_outcome(&self, refund_id: RefundId) -> Result<RefundOutcome, AppError> {
        let Some(refund) = self.store.refund(refund_id).await? else {
            // Forgotten after the PG refused it at once.
            return Err(AppError::InvalidState(
                "the refund was refused by the PG".to_owned(),
            ));
        };
        let payment = self.find(refund.payment_id).await?;
        match refund.status {
            RefundStatus::Completed => Ok(RefundOutcome::Completed { refund, payment }),
            RefundStatus::Pending => Ok(RefundOutcome::Unsettled { refund, payment }),
            RefundStatus::Failed => {
                let failure = refund.failure.unwrap_or(Failure {
                    code: "PG_CANCEL_FAILED".to_owned(),
                    message: "the refund did not happen".to_owned(),
                    retryable: None,
                });
                Err(AppError::PgDeclined {
                    code: failure.code,
                    message: failure.message,
                    retryable: failure.retryable,
                })
            }
        }
    }
}

impl PaymentService {
    /// The refund account kept (sealed) with the refund, opened for its cancel. One that no
    /// longer opens (sealed under a key no longer configured, or altered) is refused as Toss
    /// refuses a wrong account, without sending.
    fn refund_account(&self, refund: &Refund) -> Result<Option<RefundAccount>, GatewayError> {
        let Some(sealed) = &refund.refund_account else {
            return Ok(None);
        };
        match self.settings.account_sealer.open(refund.id, sealed) {
            Some(account) => Ok(Some(account)),
            None => Err(GatewayError::Declined {
                code: "REFUND_ACCOUNT_UNREADABLE".to_owned(),
                message: "the refund account kept for this refund cannot be read (sealed under \
                          a key no longer configured?) (checked locally; nothing was sent to \
                          Toss)"
                    .to_owned(),
            }),
        }
    }
}

/// The key a refund's cancel goes to the PG with: the approved attempt's. A transaction id that
/// a trusted caller recorded and that is not a `paymentKey` names no payment at Toss: refused
/// as Toss refuses a key it does not know, without sending.
fn cancel_key(payment: &Payment) -> Result<PaymentKey, GatewayError> {
    match payment.pg_ref().lookup_key() {
        Some(Ok(key)) => Ok(key),
        Some(Err(error)) => Err(GatewayError::Declined {
            code: "NOT_FOUND_PAYMENT".to_owned(),
            message: format!(
                "the recorded pg_transaction_id is not a Toss paymentKey ({}) (checked locally; \
                 nothing was sent to Toss)",
                error.reason
            ),
        }),
        // Refunds go through the PG only for payments with a transaction id.
        None => Err(GatewayError::Misconfigured {
            code: "INVALID_REQUEST".to_owned(),
            message: "the payment has no paymentKey (checked locally; nothing was sent to Toss)"
                .to_owned(),
        }),
    }
}

/// Whether Toss's `record` is the one `payment` was paid by: this order, this amount, approved.
/// `Err`: what differs.
fn names_this_payment(payment: &Payment, record: &PgPayment) -> Result<(), String> {
    if record.order_id != payment.order_id.as_str() {
        return Err(format!(
            "Toss's record names order {:?}, not {}",
            record.order_id, payment.order_id
        ));
    }
    if record.total_amount != Some(payment.amount_krw) {
        return Err(format!(
            "Toss's record is of {:?} KRW, not {}",
            record.total_amount, payment.amount_krw
        ));
    }
    if record.approved_at.is_none() {
        return Err("Toss's record shows no approval".to_owned());
    }
    Ok(())
}

/// One Toss `Idempotency-Key` per send of a refund's cancel: Toss replays a reused key's answer,
/// errors included, so a resend needs a fresh one (and `refundableAmount` makes it safe).
fn refund_idempotency_key(refund_id: RefundId, send: i32) -> String {
    if send <= 1 {
        format!("refund-{refund_id}")
    } else {
        format!("refund-{refund_id}-{send}")
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::OrderId;

    fn payment(amount: i64, tax_free: i64) -> Payment {
        Payment {
            tax_free_amount_krw: tax_free,
            ..Payment::new_pending(
                "u-1".into(),
                OrderId::parse("order_tax_free").unwrap(),
                amount,
                "card".into(),
                Utc::now(),
            )
        }
    }

    fn refund_of(payment: &Payment, amount: i64, tax_free: i64) -> Refund {
        Refund {
            id: RefundId::new(),
            payment_id: payment.id,
            amount_krw: amount,
            reason: "r".into(),
            status: RefundStatus::Completed,
            pg_cancel_key: None,
            idempotency_key: None,
            origin: RefundOrigin::Service,
            sends: 1,
            last_sent_at: None,
            failure: None,
            reconcile_attempts: 0,
            next_reconcile_at: None,
            created_at: Utc::now(),
            refunded_at: Some(Utc::now()),
            tax_free_amount_krw: tax_free,
            refund_account: None,
            requested_by: crate::domain::Actor::api_key("key-1"),
        }
    }

    proptest! {
        /// However the amount is split, and whatever valid parts are given, the tax-free parts
        /// add up to the payment's, each within its refund.
        #[test]
        fn tax_free_parts_add_up(
            amount in 1i64..=1_000_000_000,
            tax_free_share in 0.0f64..=1.0,
            cuts in proptest::collection::vec((0.0f64..=1.0, any::<bool>(), 0.0f64..=1.0), 0..8),
        ) {
            let tax_free = ((amount as f64) * tax_free_share) as i64;
            let mut ours = payment(amount, tax_free.min(amount));
            let mut refunds = Vec::new();
            for (cut, give, pick) in cuts.into_iter().chain(std::iter::once((1.0, false, 0.0))) {
                let left = ours.refundable_krw();
                if left == 0 {
                    break;
                }
                let part = ((left as f64 * cut) as i64).clamp(1, left);
                let requested = give.then(|| {
                    let taken: i64 = refunds.iter().map(|r: &Refund| r.tax_free_amount_krw).sum();
                    let remaining = ours.tax_free_amount_krw - taken;
                    let least = (remaining - (left - part)).max(0);
                    let most = remaining.min(part);
                    least + ((most - least) as f64 * pick) as i64
                });
                let share = tax_free_part(&ours, &refunds, part, requested).unwrap();
                prop_assert!((0..=part).contains(&share), "{share} of {part}");
                refunds.push(refund_of(&ours, part, share));
                ours.refunded_amount_krw += part;
            }
            prop_assert_eq!(ours.refundable_krw(), 0);
            let total: i64 = refunds.iter().map(|r| r.tax_free_amount_krw).sum();
            prop_assert_eq!(total, ours.tax_free_amount_krw);
        }
    }

    #[test]
    fn a_recorded_key_must_name_this_order_amount_and_an_approval() {
        let ours = payment(10_000, 0);
        let record = |order: &str, total: Option<i64>, approved: bool| PgPayment {
            payment_key: PaymentKey::parse("pk_x").unwrap(),
            order_id: order.to_owned(),
            status: crate::gateway::PgStatus::Done,
            total_amount: total,
            balance_amount: total,
            currency: Some("KRW".into()),
            method: None,
            secret: None,
            last_transaction_key: None,
            approved_at: approved.then(Utc::now),
            tax_free_amount: None,
            deposit_expired: false,
            cancels: Vec::new(),
            failure: None,
            details: Default::default(),
        };
        assert!(names_this_payment(&ours, &record("order_tax_free", Some(10_000), true)).is_ok());
        for (order, total, approved) in [
            ("order_someone_else", Some(10_000), true),
            ("order_tax_free", Some(9_999), true),
            ("order_tax_free", None, true),
            ("order_tax_free", Some(10_000), false),
        ] {
            assert!(
                names_this_payment(&ours, &record(order, total, approved)).is_err(),
                "{order} {total:?} {approved}"
            );
        }
    }

    #[test]
    fn a_given_part_out_of_bounds_is_refused() {
        let ours = payment(10_000, 2_000);
        assert!(tax_free_part(&ours, &[], 5_000, Some(2_001)).is_err());
        assert!(tax_free_part(&ours, &[], 1_000, Some(1_001)).is_err());
        assert!(
            tax_free_part(&ours, &[], 9_000, Some(0)).is_err(),
            "leaves 2000 in 1000"
        );
        assert_eq!(
            tax_free_part(&ours, &[], 9_000, Some(1_000)).unwrap(),
            1_000
        );
        assert_eq!(tax_free_part(&ours, &[], 3_333, None).unwrap(), 666);
        assert_eq!(tax_free_part(&ours, &[], 10_000, None).unwrap(), 2_000);
    }
}
