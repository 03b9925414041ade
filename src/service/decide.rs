//! Toss's record against ours: one total, pure function from (our payment and its refunds,
//! Toss's record) to the changes that make our books say what Toss's say. Confirm and cancel
//! replies, read-backs, webhooks, the settler and review's `resync` all go through [`decide`]
//! (applied by `adopt`); nothing else turns a Toss record into our state. The cancels Toss
//! lists are matched to our refunds in [`cancels`].

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::codes::Code;
use super::events;
use crate::domain::{Actor, Failure, Payment, PaymentStatus, PaymentUpdate, Refund, RefundId};
use crate::gateway::{PgPayment, PgStatus};
use crate::store::Plan;

mod attempt;
mod cancels;

pub(super) use attempt::Attempt;
pub use cancels::abandon_refund;
use cancels::adopt_cancels;

/// What [`decide`] needs besides the rows and the record.
#[derive(Debug, Clone)]
pub struct Context {
    pub now: DateTime<Utc>,
    /// The PG's name for the payments it approves (`toss`).
    pub provider: &'static str,
    /// How long the PG keeps a buyer's authentication: within it, an unapproved attempt may
    /// still be approved (and its confirm is sent again); after it, a cancel we cannot find
    /// did not happen.
    pub window: Duration,
    /// How long a sent cancel may still be on its way to the PG.
    pub send_lease: Duration,
    /// When to look again at an attempt the PG has not decided yet.
    pub retry_at: DateTime<Utc>,
    /// When to look again at a payment waiting for its deposit.
    pub deposit_check_at: DateTime<Utc>,
    /// A cancel reply: the cancel it names (`lastTransactionKey`) is this refund's.
    pub cancel_of: Option<RefundId>,
    /// Who the changes Toss's record drives are recorded as made by: the caller whose reply
    /// is adopted, or Toss (a webhook, a read-back on the service's schedule). A change the
    /// service's own rule makes (a window passing) is the `system`'s whatever this says.
    pub actor: Actor,
}

/// What the record meant for our payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Our books now say what Toss's say (whether or not anything had to change).
    Settled,
    /// Toss has not decided the attempt yet. `resend`: the confirm may be sent again now.
    Undecided { resend: bool },
    /// The record is about another order: it proves nothing about ours. Our claim on the
    /// attempt it names, if any, was released.
    Foreign,
    /// The record contradicts ours; the payment was set aside for a person.
    Contradiction(String),
    /// Nothing of ours to act on (another attempt's unapproved record, a closed payment).
    Ignored(&'static str),
}

/// The decision: the writes (if any), what they mean, and an alert to log.
#[derive(Debug, Clone)]
pub struct Decision {
    pub plan: Option<Plan>,
    /// When the plan is exactly one named change of the payment: that change (which the store
    /// can apply as one conditional statement instead of the locking transaction).
    pub update: Option<PaymentUpdate>,
    pub verdict: Verdict,
    pub alert: Option<(&'static str, String)>,
}

impl Decision {
    fn nothing(verdict: Verdict) -> Self {
        Self {
            plan: None,
            update: None,
            verdict,
            alert: None,
        }
    }

    /// `update` applied to the payment, with its event.
    fn one(ours: &Payment, update: PaymentUpdate, verdict: Verdict, ctx: &Context) -> Self {
        Self {
            plan: Some(plan_update(ours, update.clone(), ctx)),
            update: Some(update),
            verdict,
            alert: None,
        }
    }

    fn alert(mut self, name: &'static str, detail: impl Into<String>) -> Self {
        self.alert = Some((name, detail.into()));
        self
    }
}

/// The whole of Toss's record, against the whole of ours: the payment, the attempt it has in
/// flight or last had ([`Attempt::of`]), its refunds. Total over (our status × Toss's status);
/// the unit tests below enumerate every pair.
pub fn decide(
    ours: &Payment,
    attempt: Option<&Attempt>,
    refunds: &[Refund],
    record: &PgPayment,
    ctx: &Context,
) -> Decision {
    use PaymentStatus as Ours;
    // A charge in flight has no `paymentKey` yet: Toss's record of its order is its record.
    let in_flight = matches!(ours.status, Ours::InProgress | Ours::WaitingForDeposit)
        && match attempt {
            Some(Attempt::Confirm(key)) => key == &record.payment_key,
            Some(Attempt::Charge(_)) => true,
            None => false,
        };
    let charging = matches!(attempt, Some(Attempt::Charge(_)));
    if record.order_id != ours.order_id.as_str() {
        let detail = format!(
            "Toss's record of paymentKey is about order {:?}, not ours",
            record.order_id
        );
        if in_flight {
            // A stranger's key (or a confused frontend): give the order back to its buyer.
            let release = PaymentUpdate::Release { failure: None };
            return Decision::one(ours, release, Verdict::Foreign, ctx)
                .alert("pg_record_foreign", detail);
        }
        return Decision::nothing(Verdict::Foreign).alert("pg_record_foreign", detail);
    }
    let paid = is_paid(record);
    if let Some(reason) = contradicts_amount(ours, record) {
        if !paid && !in_flight {
            return Decision::nothing(Verdict::Ignored("an unapproved record of another amount"));
        }
        return set_aside(ours, reason, ctx);
    }
    let approved_key = ours.pg_ref().paid_by();
    match ours.status {
        Ours::Pending => {
            if paid {
                // Toss approved an attempt we had let go (a late DONE after our window, or one
                // we never claimed): the money was taken, so our books must say so, and the
                // order can never be charged again.
                return approve(ours, refunds, record, ctx).alert(
                    "pg_done_unknown_attempt",
                    "Toss approved an attempt this service had released or never sent",
                );
            }
            match record.status {
                PgStatus::WaitingForDeposit if record.deposit_expired => Decision::nothing(
                    Verdict::Ignored("an expired virtual account of an attempt we let go"),
                ),
                PgStatus::WaitingForDeposit => {
                    let update = await_deposit(record, ctx);
                    Decision::one(ours, update, Verdict::Settled, ctx).alert(
                        "pg_done_unknown_attempt",
                        "Toss issued a virtual account for an attempt this service had released",
                    )
                }
                PgStatus::Ready
                | PgStatus::InProgress
                | PgStatus::Done
                | PgStatus::PartialCanceled
                | PgStatus::Canceled
                | PgStatus::Aborted
                | PgStatus::Expired
                | PgStatus::Other(_) => {
                    Decision::nothing(Verdict::Ignored("no attempt of ours in flight"))
                }
            }
        }
        Ours::InProgress | Ours::WaitingForDeposit => {
            if !in_flight {
                if paid {
                    return approve(ours, refunds, record, ctx).alert(
                        "pg_done_unknown_attempt",
                        "Toss approved another attempt of this order than the one in flight",
                    );
                }
                return Decision::nothing(Verdict::Ignored("another attempt than ours"));
            }
            match &record.status {
                PgStatus::Done | PgStatus::PartialCanceled | PgStatus::Canceled if paid => {
                    approve(ours, refunds, record, ctx)
                }
                PgStatus::Canceled | PgStatus::Aborted | PgStatus::Expired if charging => {
                    // Read back by order id, and an order has one attempt at Toss per charge:
                    // an unpaid end may be an earlier attempt's, and proves nothing about this
                    // one. It is settled by sending it again with its own Toss key (Toss
                    // replays its first answer), never released on this record.
                    let update = PaymentUpdate::Reschedule {
                        at: ctx.retry_at,
                        secret: None,
                    };
                    Decision::one(ours, update, Verdict::Undecided { resend: true }, ctx)
                }
                PgStatus::Canceled | PgStatus::Aborted | PgStatus::Expired => {
                    let failure = failure_of(record, ours.status == Ours::WaitingForDeposit);
                    Decision::one(ours, ended_unpaid(ours, failure), Verdict::Settled, ctx)
                }
                PgStatus::WaitingForDeposit if record.deposit_expired => {
                    // Past its due date: Toss keeps the account waiting, takes no deposit and
                    // sends no webhook; the attempt is over.
                    let failure = failure_of(record, true);
                    Decision::one(ours, ended_unpaid(ours, failure), Verdict::Settled, ctx)
                }
                PgStatus::WaitingForDeposit => {
                    let update = if ours.status == Ours::InProgress {
                        await_deposit(record, ctx)
                    } else {
                        PaymentUpdate::Reschedule {
                            at: deposit_check(ours, record, ctx),
                            secret: record.secret.clone(),
                        }
                    };
                    Decision::one(ours, update, Verdict::Settled, ctx)
                }
                PgStatus::Ready
                | PgStatus::InProgress
                | PgStatus::Done
                | PgStatus::PartialCanceled
                | PgStatus::Other(_) => {
                    // `Done`/`PartialCanceled` reach here unpaid only without an amount, which
                    // `contradicts_amount` already refused; kept for totality.
                    let started = ours.confirm_started_at.unwrap_or(ours.updated_at);
                    let resend = ours.status == Ours::InProgress
                        && started + ctx.window > ctx.now
                        && matches!(record.status, PgStatus::Ready | PgStatus::InProgress);
                    let at = if ours.status == Ours::WaitingForDeposit {
                        deposit_check(ours, record, ctx)
                    } else {
                        ctx.retry_at
                    };
                    let update = PaymentUpdate::Reschedule {
                        at,
                        secret: record.secret.clone(),
                    };
                    Decision::one(ours, update, Verdict::Undecided { resend }, ctx)
                }
            }
        }
        Ours::Completed | Ours::PartialRefund | Ours::Refunded => {
            if approved_key != Some(record.payment_key.as_str()) {
                if paid {
                    return set_aside(
                        ours,
                        "Toss approved a second attempt of an order we had completed".to_owned(),
                        ctx,
                    )
                    .alert("pg_double_charge", "two approved attempts of one order");
                }
                return Decision::nothing(Verdict::Ignored("another attempt than the paid one"));
            }
            match &record.status {
                PgStatus::Done | PgStatus::PartialCanceled | PgStatus::Canceled if paid => {
                    let (base, note) = take_tax_free(ours.clone(), record);
                    with_note(adopt_cancels(base, ours, refunds, record, ctx, None), note)
                }
                PgStatus::WaitingForDeposit => set_aside(
                    ours,
                    "Toss shows the deposit reversed (DONE back to WAITING_FOR_DEPOSIT)".to_owned(),
                    ctx,
                )
                .alert("pg_deposit_reversed", "a deposit error after completion"),
                other => set_aside(
                    ours,
                    format!("Toss shows {} for a payment we completed", other.as_str()),
                    ctx,
                ),
            }
        }
        Ours::Failed | Ours::Cancelled => {
            if paid {
                return set_aside(
                    ours,
                    format!("Toss approved a payment that is {} here", ours.status),
                    ctx,
                )
                .alert("pg_done_unknown_attempt", "approval of a closed payment");
            }
            Decision::nothing(Verdict::Ignored("payment is closed"))
        }
    }
}

/// Who asked for the cancel `ours` waits on (recorded with it; a row from before requesters
/// were recorded was asked for by an API key, the only caller that could).
fn cancel_requester(ours: &Payment) -> Actor {
    ours.cancel_requested_by
        .clone()
        .unwrap_or_else(|| Actor::unnamed(crate::domain::ActorType::ApiKey))
}

/// Whether the record shows money taken: approved (`approvedAt` set), possibly cancelled
/// since. A virtual account cancelled before its deposit reads `CANCELED`, its cancel listed
/// in `cancels[]` like any other, but `approvedAt` null: nothing was paid (§4).
fn is_paid(record: &PgPayment) -> bool {
    match record.status {
        PgStatus::Done | PgStatus::PartialCanceled | PgStatus::Canceled => {
            record.total_amount.is_some() && record.approved_at.is_some()
        }
        PgStatus::Ready
        | PgStatus::InProgress
        | PgStatus::WaitingForDeposit
        | PgStatus::Aborted
        | PgStatus::Expired
        | PgStatus::Other(_) => false,
    }
}

fn contradicts_amount(ours: &Payment, record: &PgPayment) -> Option<String> {
    match record.total_amount {
        Some(total) if total != ours.amount_krw => {
            return Some(format!(
                "Toss's totalAmount {total} differs from ours {}",
                ours.amount_krw
            ));
        }
        None if matches!(
            record.status,
            PgStatus::Done | PgStatus::PartialCanceled | PgStatus::WaitingForDeposit
        ) =>
        {
            return Some("Toss's record has no totalAmount".to_owned());
        }
        _ => {}
    }
    match &record.currency {
        Some(currency) if currency != &ours.currency => Some(format!(
            "Toss's currency {currency} differs from ours {}",
            ours.currency
        )),
        _ => None,
    }
}

/// An attempt in flight Toss ended unpaid: a virtual account we asked Toss to cancel ends as we
/// asked; anything else is released with why.
fn ended_unpaid(ours: &Payment, failure: Failure) -> PaymentUpdate {
    match (&ours.status, &ours.cancel_reason) {
        (PaymentStatus::WaitingForDeposit, Some(reason)) => PaymentUpdate::Cancel {
            reason: reason.clone(),
            requested_by: cancel_requester(ours),
        },
        _ => PaymentUpdate::Release {
            failure: Some(failure),
        },
    }
}

/// Why an attempt ended unpaid: Toss's own code when it gives one; else, for a virtual account
/// (`deposit`), whether it was cancelled at Toss (by someone else than us) or expired (past its
/// due date Toss keeps it `WAITING_FOR_DEPOSIT` with `virtualAccount.expired`).
fn failure_of(record: &PgPayment, deposit: bool) -> Failure {
    if let Some(f) = record.failure.as_ref().filter(|f| !f.code.is_empty()) {
        return Failure::new(f.code.clone(), f.message.clone());
    }
    match &record.status {
        _ if !deposit => Failure::new(
            format!("PG_{}", record.status.as_str()),
            "the PG ended the payment attempt without approval",
        ),
        PgStatus::Canceled => Code::VirtualAccountCancelled
            .failure("the virtual account was cancelled at the PG before any deposit"),
        _ => Code::VirtualAccountExpired.failure("the virtual account expired before the deposit"),
    }
}

/// The tax-free part Toss approved: what it holds now (`taxFreeAmount` shrinks with each
/// cancel) and what its done cancels took. `None` when the record does not say.
fn tosss_tax_free(record: &PgPayment) -> Option<i64> {
    let left = record.tax_free_amount?;
    let cancelled: i64 = record
        .cancels
        .iter()
        .filter(|c| c.status.as_deref().is_none_or(|s| s == "DONE"))
        .map(|c| c.tax_free_amount)
        .sum();
    Some(left + cancelled)
}

/// Toss's tax-free amount is Toss's: the payment window fixed it, and Toss splits each cancel
/// from it. When the approved record's differs from ours, the payment takes Toss's (so that
/// refunds split what Toss holds) and is flagged for a person, with why.
fn take_tax_free(mut payment: Payment, record: &PgPayment) -> (Payment, Option<String>) {
    let Some(theirs) = tosss_tax_free(record) else {
        return (payment, None);
    };
    if theirs == payment.tax_free_amount_krw || !(0..=payment.amount_krw).contains(&theirs) {
        return (payment, None);
    }
    let note = format!(
        "Toss's taxFreeAmount {theirs} differs from ours {}; Toss's was taken",
        payment.tax_free_amount_krw
    );
    payment.tax_free_amount_krw = theirs;
    payment.review_reason = Some(match payment.review_reason.take() {
        Some(earlier) if payment.needs_review => format!("{earlier}; {note}"),
        Some(_) | None => note.clone(),
    });
    payment.needs_review = true;
    (payment, Some(note))
}

/// `decision`, with the alert of a tax-free amount taken from Toss (when one was).
fn with_note(decision: Decision, note: Option<String>) -> Decision {
    match note {
        Some(note) if decision.alert.is_none() => decision.alert("pg_tax_free_mismatch", note),
        Some(_) | None => decision,
    }
}

fn await_deposit(record: &PgPayment, ctx: &Context) -> PaymentUpdate {
    PaymentUpdate::AwaitDeposit {
        payment_key: record.payment_key.clone(),
        provider: ctx.provider.to_owned(),
        secret: record.secret.clone(),
        check_at: due_check(record.details.virtual_account.as_ref(), ctx),
        details: record.details.clone(),
    }
}

/// The next look at a payment waiting for its deposit: at the slow pace, and once more just
/// after the account's due date (when Toss expires it), whichever comes first; with the fast
/// backoff while a cancel we asked for has not reached Toss (it is sent again then).
fn deposit_check(ours: &Payment, record: &PgPayment, ctx: &Context) -> DateTime<Utc> {
    if ours.cancel_reason.is_some() {
        return ctx.retry_at;
    }
    due_check(
        record
            .details
            .virtual_account
            .as_ref()
            .or(ours.virtual_account.as_ref()),
        ctx,
    )
}

/// Toss sends nothing when an account passes its due date (§4): the service reads it back
/// just after it, and, while Toss does not show it expired yet, again every few seconds for a
/// while; otherwise at the slow pace.
fn due_check(account: Option<&crate::domain::VirtualAccount>, ctx: &Context) -> DateTime<Utc> {
    match account.and_then(|a| a.due_date) {
        Some(due) if due + DUE_GRACE > ctx.now => (due + DUE_GRACE).min(ctx.deposit_check_at),
        Some(due) if due + DUE_WATCH > ctx.now => (ctx.now + DUE_RECHECK).min(ctx.deposit_check_at),
        _ => ctx.deposit_check_at,
    }
}

/// How long after a virtual account's due date it is read back (Toss's `dueDate` has whole
/// seconds: the account takes deposits through that second).
const DUE_GRACE: chrono::Duration = chrono::Duration::seconds(1);
/// How often a passed due date Toss does not show expired yet is looked at again, and for how
/// long after the due date.
const DUE_RECHECK: chrono::Duration = chrono::Duration::seconds(5);
const DUE_WATCH: chrono::Duration = chrono::Duration::minutes(10);

/// The PG approved `record`'s attempt: completed, then its cancels adopted.
fn approve(ours: &Payment, refunds: &[Refund], record: &PgPayment, ctx: &Context) -> Decision {
    let update = PaymentUpdate::Complete {
        payment_key: record.payment_key.clone(),
        provider: ctx.provider.to_owned(),
        secret: record.secret.clone(),
        approved_at: record.approved_at.unwrap_or(ctx.now),
        details: record.details.clone(),
        // After a cancel, `lastTransactionKey` is the cancel's: the approval's is not in it.
        approval_key: record
            .cancels
            .is_empty()
            .then(|| record.last_transaction_key.clone())
            .flatten(),
    };
    let completed = update.applied_to(ours, ctx.now);
    let (base, note) = take_tax_free(completed.clone(), record);
    let event = events::of_update(&update, &base, &ctx.actor);
    let mut decision = adopt_cancels(base, ours, refunds, record, ctx, event);
    if let Some(plan) = &decision.plan
        && plan.refunds.is_empty()
        && plan.payment == completed
    {
        decision.update = Some(update);
    }
    with_note(decision, note)
}

/// A refused cancel of an unpaid virtual account: the request is forgotten (never sent again),
/// and the account keeps waiting for its deposit, looked at again at the slow deposit pace.
/// `None` when there is no such request (any more) to forget.
pub fn forget_cancel(ours: &Payment, ctx: &Context) -> Option<Plan> {
    if ours.status != PaymentStatus::WaitingForDeposit || ours.cancel_reason.is_none() {
        return None;
    }
    let mut after = ours.clone();
    after.cancel_reason = None;
    after.next_reconcile_at = Some(due_check(ours.virtual_account.as_ref(), ctx));
    after.reconcile_attempts = 0;
    Some(Plan::payment(after))
}

/// A plan that applies one named change of the payment (and its event).
fn plan_update(ours: &Payment, update: PaymentUpdate, ctx: &Context) -> Plan {
    let after = update.applied_to(ours, ctx.now);
    Plan {
        events: events::of_update(&update, &after, &ctx.actor)
            .into_iter()
            .collect(),
        ..Plan::payment(after)
    }
}

/// The record contradicts ours: flagged for a person. A flag is a note, never a stop sign: a
/// payment in flight is still looked at again (at its usual pace), and whatever settles it
/// settles it.
fn set_aside(ours: &Payment, reason: String, ctx: &Context) -> Decision {
    let update = PaymentUpdate::SetAside {
        reason: reason.clone(),
    };
    let next_look = match ours.status {
        PaymentStatus::InProgress => Some(ctx.retry_at),
        PaymentStatus::WaitingForDeposit if ours.cancel_reason.is_some() => Some(ctx.retry_at),
        PaymentStatus::WaitingForDeposit => Some(due_check(ours.virtual_account.as_ref(), ctx)),
        PaymentStatus::Pending
        | PaymentStatus::Completed
        | PaymentStatus::PartialRefund
        | PaymentStatus::Refunded
        | PaymentStatus::Failed
        | PaymentStatus::Cancelled => None,
    };
    let decision = match next_look {
        None => Decision::one(ours, update, Verdict::Contradiction(reason.clone()), ctx),
        Some(at) => {
            let mut plan = plan_update(ours, update, ctx);
            plan.payment.next_reconcile_at = Some(at);
            Decision {
                plan: Some(plan),
                update: None,
                verdict: Verdict::Contradiction(reason.clone()),
                alert: None,
            }
        }
    };
    decision.alert("pg_record_mismatch", reason)
}

#[cfg(test)]
mod deposit_tests;
#[cfg(test)]
pub(super) mod tests;
