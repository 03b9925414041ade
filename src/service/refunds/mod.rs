//! Refunds: full or partial, repeatedly, until nothing is left. Money is reserved before the PG
//! is called, so concurrent refunds can never promise more than the balance. Toss takes one
//! cancel of a payment at a time (and refuses a second within a second), so each refund's cancel
//! is sent only while it holds the payment's cancel slot; refunds asked for meanwhile wait their
//! turn, and all complete. Every cancel carries `refundableAmount`, our view of the balance
//! before it, so a resend can never apply twice.

use std::sync::Arc;

use chrono::Utc;

use super::adopt::Adoption;
use super::codes::{Code, declined};
use super::{Pg, ServiceSettings, events, find};
use crate::domain::{
    Actor, Payment, PaymentId, PgRef, Refund, RefundAccount, RefundId, RefundOrigin, RefundStatus,
    ScopedKey,
};
use crate::error::AppError;
use crate::store::{Reservation, SendNow, Store, StoreError};

mod send;

pub(super) use send::DrivenBy;
use send::{Fresh, REQUEST_PATIENCE};

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
    Done(Box<Fresh>),
    /// Answered already (recorded without a PG, or the same key's refund).
    Outcome(Box<Result<RefundOutcome, AppError>>),
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

/// Refunds of paid payments, asked for by one actor, and the settling of their cancels.
pub struct Refunding {
    pub(super) store: Store,
    pub(super) pg: Pg,
    pub(super) settings: Arc<ServiceSettings>,
    pub(super) actor: Actor,
    pub(super) adoption: Adoption,
}

impl Refunding {
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
        for _ in 0..RESERVE_RETRIES {
            match self.try_reserve(&command, refund_id).await? {
                Reserved::Done(fresh) => {
                    // The refund as just reserved: its first send does not read it again.
                    let (id, payment_id) = (fresh.refund.id, fresh.refund.payment_id);
                    let driven_by = DrivenBy::ItsRequest;
                    return self
                        .drive(id, payment_id, REQUEST_PATIENCE, driven_by, Some(*fresh))
                        .await;
                }
                Reserved::Outcome(outcome) => return *outcome,
                // The balance moved between the read and the reservation: the tax-free part was
                // computed from a stale balance; compute it again.
                Reserved::Moved => {}
            }
        }
        Err(AppError::RequestInProgress)
    }

    /// Reads the payment, builds the refund and reserves its amount (or records it outright
    /// when no PG is involved).
    async fn try_reserve(
        &self,
        command: &RefundCommand,
        refund_id: RefundId,
    ) -> Result<Reserved, AppError> {
        let payment = find(&self.store, command.payment_id).await?;
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
        let status = if via_pg {
            RefundStatus::Pending
        } else {
            RefundStatus::Completed
        };
        let refund = Refund {
            id: refund_id,
            tax_free_amount_krw: tax_free,
            // Only a deposit is refunded to an account; a card's cancel is never sent one.
            refund_account: command
                .refund_account
                .as_ref()
                .filter(|_| payment.paid_by_virtual_account())
                .map(|account| self.settings.account_sealer.seal(refund_id, account)),
            idempotency_key: command.idempotency_key.clone(),
            // If this request dies, the settler takes the refund over from then.
            next_reconcile_at: via_pg.then(|| self.settings.claim_expiry()),
            refunded_at: (!via_pg).then_some(now),
            ..Refund::new(
                payment.id,
                amount,
                command.reason.clone(),
                status,
                RefundOrigin::Service,
                self.actor.clone(),
                now,
            )
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
            return Ok(Reserved::Outcome(Box::new(Ok(RefundOutcome::Completed {
                refund,
                payment: after,
            }))));
        }
        // A key Toss gave us is sent to at once: the reservation takes the cancel slot and
        // records the send too. (A key a caller recorded is checked at Toss first.)
        let send = matches!(payment.pg_ref(), PgRef::Adopted(_)).then(|| SendNow {
            now,
            slot_until: now + self.settings.claim_lease(),
            lease_until: self.settings.claim_expiry(),
        });
        match self.store.reserve_refund(&refund, taken, send).await {
            Ok(Reservation::Sending(sending)) => Ok(Reserved::Done(Box::new(Fresh {
                refund,
                sending: Some(sending),
            }))),
            Ok(Reservation::Reserved) => Ok(Reserved::Done(Box::new(Fresh {
                refund,
                sending: None,
            }))),
            Ok(Reservation::Refused) => self.reservation_refused(&payment, amount, taken).await,
            // The same key won a race against this request: answer with its refund.
            Err(StoreError::AlreadyRecorded(_)) if command.idempotency_key.is_some() => {
                let key = command.idempotency_key.as_ref().expect("checked");
                Ok(Reserved::Outcome(Box::new(
                    match self.store.refund_by_key(payment.id, key).await? {
                        Some(made) => self.refund_outcome(made.id).await,
                        None => Err(AppError::RequestInProgress),
                    },
                )))
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
            let now = find(&self.store, payment.id).await?;
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
        let gateway = self.pg.payments.provider();
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
        match find(&self.store, payment_id).await {
            Ok(payment) => match self.refund_amount(&payment, Some(amount)) {
                Err(error) => error,
                Ok(_) => AppError::RequestInProgress,
            },
            Err(error) => error,
        }
    }

    async fn refund_outcome(&self, refund_id: RefundId) -> Result<RefundOutcome, AppError> {
        let Some(refund) = self.store.refund(refund_id).await? else {
            return Err(forgotten());
        };
        let payment = find(&self.store, refund.payment_id).await?;
        outcome_of(refund, payment)
    }
}

/// A refund forgotten after the PG refused it at once.
fn forgotten() -> AppError {
    AppError::InvalidState("the refund was refused by the PG".to_owned())
}

/// What `refund` of `payment`, as they are, answers.
fn outcome_of(refund: Refund, payment: Payment) -> Result<RefundOutcome, AppError> {
    match refund.status {
        RefundStatus::Completed => Ok(RefundOutcome::Completed { refund, payment }),
        RefundStatus::Pending => Ok(RefundOutcome::Unsettled { refund, payment }),
        RefundStatus::Failed => {
            let failure = refund
                .failure
                .unwrap_or_else(|| Code::PgCancelFailed.failure("the refund did not happen"));
            Err(declined(failure))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use proptest::prelude::*;

    use super::*;

    fn payment(amount: i64, tax_free: i64) -> Payment {
        Payment {
            tax_free_amount_krw: tax_free,
            ..Payment::sample("order_tax_free", amount, Utc::now())
        }
    }

    fn refund_of(payment: &Payment, amount: i64, tax_free: i64) -> Refund {
        Refund {
            tax_free_amount_krw: tax_free,
            ..Refund::sample(payment.id, amount, Utc::now())
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
    fn a_given_part_out_of_bounds_is_refused() {
        let ours = payment(10_000, 2_000);
        // (refund, part asked for, part taken; `None`: refused)
        for (amount, requested, taken) in [
            (5_000, Some(2_001), None),
            (1_000, Some(1_001), None),
            // Leaves 2000 tax-free in 1000.
            (9_000, Some(0), None),
            (9_000, Some(1_000), Some(1_000)),
            (3_333, None, Some(666)),
            (10_000, None, Some(2_000)),
        ] {
            let part = tax_free_part(&ours, &[], amount, requested).ok();
            assert_eq!(part, taken, "{amount} {requested:?}");
        }
    }
}
