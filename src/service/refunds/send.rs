//! A refund's cancel at Toss: one at a time per payment (the cancel slot), read back first when
//! an earlier send may have landed, sent again while Toss does not have it, adopted when Toss
//! answers. Whatever is left unsettled is the settler's.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::{RefundOutcome, Refunding, forgotten, outcome_of};
use crate::domain::{
    Failure, Payment, PaymentId, PaymentKey, PaymentUpdate, PgRef, Refund, RefundAccount, RefundId,
    RefundStatus,
};
use crate::error::AppError;
use crate::gateway::{CancelRequest, GatewayError, PgPayment};
use crate::service::codes::{Code, declined};
use crate::service::decide::{Attempt, Context, Verdict, abandon_refund, decide};
use crate::service::{find, key_of_send};
use crate::store::{Seen, Sending};

/// How long a refund request keeps driving its cancel (waiting for its turn, resending after
/// Toss's "one cancel per second") before answering 202 and leaving the rest to the settler.
pub(super) const REQUEST_PATIENCE: Duration = Duration::from_secs(10);
/// Toss refuses a second cancel of one payment within a second.
const CANCEL_SPACING: Duration = Duration::from_millis(1100);
const SLOT_POLL: Duration = Duration::from_millis(100);

/// A refund as its request just reserved it: not read again when its first send follows at
/// once. `sending`: the reservation took the cancel slot and recorded that first send already.
pub(in crate::service) struct Fresh {
    pub(super) refund: Refund,
    pub(super) sending: Option<Box<Sending>>,
}

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
pub(in crate::service) enum DrivenBy {
    /// The request that made it, before it answered: a refusal of its first send is its
    /// answer (402), and the refund, of which nobody heard, is forgotten.
    ItsRequest,
    /// Anyone after (the settler): the request may have answered 202 (or died after
    /// sending). The refund ends `COMPLETED` or `FAILED` with `refund.failed`, and stays listed.
    Later,
}

impl Refunding {
    /// Brings a `PENDING` refund as far as it can go within `patience`: waits for the payment's
    /// cancel slot, reads Toss's record first if an earlier send may have landed, sends (again)
    /// while Toss does not have it, and adopts what Toss answers. Whatever is left unsettled
    /// is the settler's. `fresh`: the refund as its request just reserved it, not read again
    /// when the slot is free at once (nobody else drives it within its lease).
    pub(in crate::service) async fn drive(
        &self,
        refund_id: RefundId,
        payment_id: PaymentId,
        patience: Duration,
        driven_by: DrivenBy,
        fresh: Option<Fresh>,
    ) -> Result<RefundOutcome, AppError> {
        let deadline = Instant::now() + patience;
        let lease = self.settings.claim_lease();
        let mut read_back = true;
        let (mut fresh, mut sending) = match fresh {
            Some(Fresh { refund, sending }) => (Some(refund), sending),
            None => (None, None),
        };
        loop {
            let now = Utc::now();
            // The reservation took the slot already (and recorded the send): as taken here.
            let (taken, seen) = match sending.take() {
                Some(sending) => {
                    let Sending { payment, seen } = *sending;
                    (Some(payment), Some(Box::new(seen)))
                }
                None => (
                    self.store
                        .take_cancel_slot(payment_id, refund_id, now, now + lease)
                        .await?,
                    None,
                ),
            };
            let Some(payment) = taken else {
                fresh = None;
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
            let refund = match fresh.take() {
                Some(refund) => refund,
                None => self.stored_refund(refund_id).await?,
            };
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
                payment = find(&self.store, payment_id).await?;
            }
            if refund.sends > 0 && refund.created_at + self.settings.confirm_window < now {
                // Too late to send again; the read-back fails it once its last send is over.
                // (A refund never sent has nothing at Toss: its first send may come any time,
                // however long it waited for its turn, or it would wait forever.)
                return self.refund_later(&payment, &refund).await;
            }
            // Boxed: the settler's pass polls this on its caller's stack.
            let sent = Box::pin(self.send_cancel(&payment, &refund, driven_by, seen)).await;
            match sent.unwrap_or_else(|error| done(Err(error))) {
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

    /// One send of `refund`'s cancel, holding the payment's cancel slot. `seen`: the send is
    /// recorded already (by the reservation, with the payment and its refunds as it left them,
    /// which the answer's adoption starts from).
    async fn send_cancel(
        &self,
        payment: &Payment,
        refund: &Refund,
        driven_by: DrivenBy,
        seen: Option<Box<Seen>>,
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
        if seen.is_none()
            && !self
                .store
                .mark_refund_sent(refund.id, now, self.settings.claim_expiry())
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
                self.pg.of(payment).cancel(&request).await
            }
            (Err(refusal), _) | (_, Err(refusal)) => Err(refusal),
        };
        match answer {
            Ok(record) => {
                // Boxed: a settler's pass polls this on its caller's stack.
                let seen = seen.map(|seen| *seen);
                let adoption =
                    self.adoption
                        .record_seen(payment.id, seen, &record, Some(refund.id));
                let mut adopted = Box::pin(adoption).await?;
                // The adoption frees the slot with the refund it settles; otherwise it is
                // given back here.
                if adopted.payment.cancel_slot == Some(refund.id) {
                    self.store.free_cancel_slot(payment.id, refund.id).await?;
                    adopted.payment.cancel_slot = None;
                    adopted.payment.cancel_slot_until = None;
                }
                if let Verdict::Contradiction(_) = adopted.verdict {
                    // Flagged for a person, but still looked at again: a flag never stops it.
                    self.store
                        .schedule_refund(
                            refund.id,
                            self.settings.backoff(refund.reconcile_attempts),
                        )
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
                // As the adoption left them: nothing to read again.
                let settled = adopted.refunds.into_iter().find(|r| r.id == refund.id);
                Ok(done(match settled {
                    Some(settled) => outcome_of(settled, adopted.payment),
                    None => Err(forgotten()),
                }))
            }
            Err(GatewayError::Declined { code, message }) => {
                let failure = Failure::new(code, message);
                // A first send refused on the request that made the refund leaves no trace (the
                // caller hears 402 now); any other refusal ends a refund that may have been
                // answered 202 (waiting for its turn, or after an unknown outcome) as FAILED,
                // with its event: an answered refund is never forgotten.
                let keep = answered.then(|| failure.clone());
                self.abandon(payment, refund, keep, None).await?;
                tracing::info!(payment_id = %payment.id, refund_id = %refund.id, pg_code = %failure.code, "PG declined the refund");
                Ok(done(Err(declined(failure))))
            }
            Err(GatewayError::Misconfigured { code, message }) => {
                tracing::error!(payment_id = %payment.id, pg_code = %code, "PG rejected our configuration; refund not made");
                if refund.sends > 0 {
                    // An earlier send may have landed: its record decides, later.
                    self.refund_later(payment, refund).await?;
                } else {
                    // Nothing reached Toss: the refund did not happen.
                    let failure = Failure::new(code.clone(), message.clone());
                    self.abandon(payment, refund, answered.then_some(failure), None)
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
        let wrong = match self.pg.record_of(payment, false).await {
            Ok(Some(record)) => match names_this_payment(
                payment,
                &self.store.refunds_of(payment.id).await?,
                &record,
                &self.adoption.context(payment, None),
            ) {
                Ok(()) => return Ok(None),
                Err(wrong) => wrong,
            },
            Ok(None) => "Toss has no payment under the recorded pg_transaction_id".to_owned(),
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, refund_id = %refund.id, %error, "could not read the recorded Toss payment; nothing sent");
                if answered {
                    return Ok(Some(done(self.refund_later(payment, refund).await)));
                }
                self.abandon(payment, refund, None, None).await?;
                return Ok(Some(done(Err(AppError::Unavailable(
                    "Toss's record of the payment could not be read; nothing was sent".to_owned(),
                )))));
            }
        };
        let reason = format!("refund refused before any cancel: {wrong}");
        tracing::error!(alert = "pg_record_foreign", payment_id = %payment.id, refund_id = %refund.id, %reason, "the recorded Toss payment is not this order's; nothing cancelled");
        let failure = Code::PgResponseMismatch.failure(reason.clone());
        self.abandon(payment, refund, answered.then_some(failure), Some(reason))
            .await?;
        Ok(Some(done(Err(AppError::ForeignPgRecord(format!(
            "the Toss payment recorded for this payment is not its own ({wrong}); nothing was \
             cancelled and the payment was set aside for review"
        ))))))
    }

    /// Reads Toss's record after a send whose outcome is unknown and adopts it. `Again` when
    /// Toss's record is consistent with ours and does not show the refund: it never got there.
    async fn read_back_refund(&self, payment: &Payment, refund: &Refund) -> Sent {
        let record = match self.pg.record_of(payment, false).await {
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
        let adopted = match self.adoption.record(payment.id, &record, None).await {
            Ok(adopted) => adopted,
            Err(error) => return done(Err(error)),
        };
        if let Verdict::Contradiction(_) = adopted.verdict {
            let _ = self.store.free_cancel_slot(payment.id, refund.id).await;
            let at = self.settings.backoff(refund.reconcile_attempts);
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
            .schedule_refund(refund.id, self.settings.backoff(refund.reconcile_attempts))
            .await?;
        self.refund_outcome(refund.id).await
    }

    /// A refund the PG refused: forgotten (`failure` None), or `FAILED` with `refund.failed`.
    /// Its amount goes back to the balance and the cancel slot is freed, in one transaction;
    /// with `set_aside`, the payment is flagged for review with that reason in it too.
    async fn abandon(
        &self,
        payment: &Payment,
        refund: &Refund,
        failure: Option<Failure>,
        set_aside: Option<String>,
    ) -> Result<(), AppError> {
        let actor = self.actor.adopting();
        let now = Utc::now();
        self.store
            .adopt(payment.id, |payment, refunds| {
                let plan = abandon_refund(payment, refunds, refund.id, failure, &actor);
                let plan = plan.map(|mut plan| {
                    if let Some(reason) = set_aside {
                        let flag = PaymentUpdate::SetAside { reason };
                        plan.payment = flag.applied_to(&plan.payment, now);
                    }
                    plan
                });
                (plan, ())
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

    /// The refund account kept (sealed) with the refund, opened for its cancel. One that no
    /// longer opens (sealed under a key no longer configured, or altered) is refused as Toss
    /// refuses a wrong account, without sending.
    fn refund_account(&self, refund: &Refund) -> Result<Option<RefundAccount>, GatewayError> {
        let Some(sealed) = &refund.refund_account else {
            return Ok(None);
        };
        match self.settings.account_sealer.open(refund.id, sealed) {
            Some(account) => Ok(Some(account)),
            None => Err(Code::RefundAccountUnreadable.declined_locally(
                "the refund account kept for this refund cannot be read (sealed under a key no \
                 longer configured?)",
            )),
        }
    }
}

/// The key a refund's cancel goes to the PG with: the approved attempt's. A transaction id that
/// a trusted caller recorded and that is not a `paymentKey` names no payment at Toss: refused
/// as Toss refuses a key it does not know, without sending.
fn cancel_key(payment: &Payment) -> Result<PaymentKey, GatewayError> {
    match payment.pg_ref().lookup_key() {
        Some(Ok(key)) => Ok(key),
        Some(Err(error)) => Err(Code::NotFoundPayment.declined_locally(format!(
            "the recorded pg_transaction_id is not a Toss paymentKey ({})",
            error.reason
        ))),
        // Refunds go through the PG only for payments with a transaction id.
        None => Err(GatewayError::Misconfigured {
            code: Code::InvalidRequest.as_str().to_owned(),
            message: "the payment has no paymentKey (checked locally; nothing was sent to Toss)"
                .to_owned(),
        }),
    }
}

/// Whether Toss's `record` is the one `payment` was paid by, as [`decide`] judges a record:
/// this order, this amount, approved, consistent with our refunds. `Err`: what differs.
fn names_this_payment(
    payment: &Payment,
    refunds: &[Refund],
    record: &PgPayment,
    ctx: &Context,
) -> Result<(), String> {
    match decide(payment, Attempt::of(payment).as_ref(), refunds, record, ctx).verdict {
        Verdict::Settled => Ok(()),
        Verdict::Foreign => Err(format!(
            "Toss's record names order {:?}, not {}",
            record.order_id, payment.order_id
        )),
        Verdict::Contradiction(reason) => Err(reason),
        Verdict::Undecided { .. } | Verdict::Ignored(_) => {
            Err("Toss's record shows no approval of this payment".to_owned())
        }
    }
}

/// One Toss `Idempotency-Key` per send of a refund's cancel: Toss replays a reused key's answer,
/// errors included, so a resend needs a fresh one (and `refundableAmount` makes it safe).
fn refund_idempotency_key(refund_id: RefundId, send: i32) -> String {
    key_of_send(format!("refund-{refund_id}"), send)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaymentStatus;
    use crate::service::decide::tests::{ctx, record as toss_record};

    #[test]
    fn a_recorded_key_must_name_this_order_amount_and_an_approval() {
        let now = Utc::now();
        // Confirmed by a trusted caller who recorded `pk_x`, never adopted from Toss.
        let ours = Payment {
            status: PaymentStatus::Completed,
            pg_provider: Some("toss".into()),
            pg_transaction_id: Some("pk_x".into()),
            ..Payment::sample("order_recorded", 10_000, now)
        };
        let ctx = ctx();
        let check = |record| names_this_payment(&ours, &[], &record, &ctx);
        let record = |order: &str, total: Option<i64>, approved: bool| PgPayment {
            payment_key: PaymentKey::parse("pk_x").unwrap(),
            order_id: order.to_owned(),
            total_amount: total,
            balance_amount: total,
            approved_at: approved.then(Utc::now),
            ..toss_record("DONE")
        };
        assert_eq!(check(record("order_recorded", Some(10_000), true)), Ok(()));
        for (order, total, approved) in [
            ("order_someone_else", Some(10_000), true),
            ("order_recorded", Some(9_999), true),
            ("order_recorded", None, true),
            ("order_recorded", Some(10_000), false),
        ] {
            assert!(
                check(record(order, total, approved)).is_err(),
                "{order} {total:?} {approved}"
            );
        }
    }
}
