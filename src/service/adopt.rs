//! Adopting the PG's record of a payment: one total function from (our payment and its refunds,
//! Toss's record) to the changes that make our books say what Toss's say, applied in one
//! transaction. Confirm and cancel replies, read-backs, webhooks, the reconciler and review's
//! `resync` all go through [`decide`]; nothing else turns a Toss record into our state.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{PaymentService, events};
use crate::domain::{
    Actor, Failure, Payment, PaymentId, PaymentStatus, PaymentUpdate, Refund, RefundId,
    RefundOrigin, RefundStatus, status_after_refunds,
};
use crate::error::AppError;
use crate::gateway::{PgCancel, PgPayment, PgStatus};
use crate::store::{Plan, RefundWrite, Target};

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

/// The whole of Toss's record, against the whole of ours. Total over (our status × Toss's
/// status); the unit tests below enumerate every pair.
pub fn decide(ours: &Payment, refunds: &[Refund], record: &PgPayment, ctx: &Context) -> Decision {
    use PaymentStatus as Ours;
    // A charge in flight has no `paymentKey` yet: Toss's record of its order is its record.
    let in_flight = matches!(ours.status, Ours::InProgress | Ours::WaitingForDeposit)
        && (ours.payment_key.as_ref() == Some(&record.payment_key) || ours.charge_in_flight());
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
        return set_aside(ours, refunds, reason, ctx);
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
                PgStatus::Canceled | PgStatus::Aborted | PgStatus::Expired
                    if ours.charge_in_flight() =>
                {
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
                    let update = match (&ours.status, &ours.cancel_reason) {
                        // We asked Toss to cancel the account: it ends as we asked.
                        (Ours::WaitingForDeposit, Some(reason)) => PaymentUpdate::Cancel {
                            reason: reason.clone(),
                            requested_by: cancel_requester(ours),
                        },
                        (Ours::WaitingForDeposit, None) => PaymentUpdate::Release {
                            failure: Some(deposit_failure(record)),
                        },
                        _ => PaymentUpdate::Release {
                            failure: Some(failure_of(record)),
                        },
                    };
                    Decision::one(ours, update, Verdict::Settled, ctx)
                }
                PgStatus::WaitingForDeposit if record.deposit_expired => {
                    // Past its due date: Toss keeps the account waiting, takes no deposit and
                    // sends no webhook; the attempt is over.
                    let update = match (&ours.status, &ours.cancel_reason) {
                        (Ours::WaitingForDeposit, Some(reason)) => PaymentUpdate::Cancel {
                            reason: reason.clone(),
                            requested_by: cancel_requester(ours),
                        },
                        _ => PaymentUpdate::Release {
                            failure: Some(expired_failure()),
                        },
                    };
                    Decision::one(ours, update, Verdict::Settled, ctx)
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
                        refunds,
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
                    refunds,
                    "Toss shows the deposit reversed (DONE back to WAITING_FOR_DEPOSIT)".to_owned(),
                    ctx,
                )
                .alert("pg_deposit_reversed", "a deposit error after completion"),
                other => set_aside(
                    ours,
                    refunds,
                    format!("Toss shows {} for a payment we completed", other.as_str()),
                    ctx,
                ),
            }
        }
        Ours::Failed | Ours::Cancelled => {
            if paid {
                return set_aside(
                    ours,
                    refunds,
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

fn failure_of(record: &PgPayment) -> Failure {
    match &record.failure {
        Some(f) if !f.code.is_empty() => Failure {
            code: f.code.clone(),
            message: f.message.clone(),
            retryable: None,
        },
        _ => Failure {
            code: format!("PG_{}", record.status.as_str()),
            message: "the PG ended the payment attempt without approval".to_owned(),
            retryable: None,
        },
    }
}

/// Why a virtual account ended without a deposit (expired, or cancelled at Toss by someone
/// else than us): Toss's own code when it gives one.
fn deposit_failure(record: &PgPayment) -> Failure {
    match &record.failure {
        Some(f) if !f.code.is_empty() => Failure::new(f.code.clone(), f.message.clone()),
        _ if record.status == PgStatus::Canceled => Failure::new(
            "VIRTUAL_ACCOUNT_CANCELLED",
            "the virtual account was cancelled at the PG before any deposit",
        ),
        _ => Failure::new(
            "VIRTUAL_ACCOUNT_EXPIRED",
            "the virtual account expired before the deposit",
        ),
    }
}

/// A virtual account past its due date without a deposit (`virtualAccount.expired`).
fn expired_failure() -> Failure {
    Failure::new(
        "VIRTUAL_ACCOUNT_EXPIRED",
        "the virtual account expired before the deposit",
    )
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

/// Each done cancel in Toss's record becomes, or matches, a refund: by `transactionKey`, else
/// the oldest sent `PENDING` refund of the same amount, else a refund made outside the service.
/// Then our refunds must account for exactly what Toss cancelled.
fn adopt_cancels(
    base: Payment,
    ours: &Payment,
    refunds: &[Refund],
    record: &PgPayment,
    ctx: &Context,
    first_event: Option<crate::store::NewEvent>,
) -> Decision {
    let mut after = base;
    let mut events: Vec<crate::store::NewEvent> = first_event.into_iter().collect();
    let mut rows: Vec<Refund> = refunds.to_vec();
    let mut writes: Vec<RefundWrite> = Vec::new();
    let done: Vec<&PgCancel> = record
        .cancels
        .iter()
        .filter(|c| c.status.as_deref().is_none_or(|s| s == "DONE"))
        .collect();
    let replied = ctx
        .cancel_of
        .and(record.last_transaction_key.as_deref())
        .and_then(|key| done.iter().find(|c| c.transaction_key == key).copied());
    for cancel in &done {
        if rows
            .iter()
            .any(|r| r.pg_cancel_key.as_deref() == Some(cancel.transaction_key.as_str()))
        {
            continue;
        }
        let expected = ctx
            .cancel_of
            .filter(|_| replied.is_some_and(|r| r.transaction_key == cancel.transaction_key));
        let matched = match expected {
            Some(id) => rows
                .iter()
                .position(|r| r.id == id && r.status == RefundStatus::Pending),
            None => rows.iter().position(|r| {
                r.status == RefundStatus::Pending
                    && r.sends > 0
                    && r.pg_cancel_key.is_none()
                    && r.amount_krw == cancel.amount
            }),
        };
        let at = cancel.canceled_at.unwrap_or(ctx.now);
        match matched {
            Some(index) => {
                let refund = &mut rows[index];
                if refund.amount_krw != cancel.amount {
                    return set_aside(
                        ours,
                        refunds,
                        format!(
                            "Toss's cancel of {} does not match refund {} of {}",
                            cancel.amount, refund.id, refund.amount_krw
                        ),
                        ctx,
                    );
                }
                refund.status = RefundStatus::Completed;
                refund.pg_cancel_key = Some(cancel.transaction_key.clone());
                refund.refunded_at = Some(at);
                refund.next_reconcile_at = None;
                after.refund_reserved_krw -= refund.amount_krw;
                after.refunded_amount_krw += refund.amount_krw;
                if after.cancel_slot == Some(refund.id) {
                    after.cancel_slot = None;
                    after.cancel_slot_until = None;
                }
                after.status = status_after_refunds(&after);
                events.push(events::refunded(&after, refund, &ctx.actor));
                writes.push(RefundWrite::Update(refund.clone()));
            }
            None => {
                let refund = Refund {
                    id: RefundId::new(),
                    payment_id: ours.id,
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
                    idempotency_key: None,
                    origin: RefundOrigin::Pg,
                    sends: 0,
                    last_sent_at: None,
                    failure: None,
                    reconcile_attempts: 0,
                    next_reconcile_at: None,
                    created_at: ctx.now,
                    refunded_at: Some(at),
                    tax_free_amount_krw: cancel.tax_free_amount,
                    refund_account: None,
                    // Made outside the service (Toss's dashboard, its API under our key).
                    requested_by: Actor::toss(),
                };
                after.refunded_amount_krw += refund.amount_krw;
                after.status = status_after_refunds(&after);
                events.push(events::refunded(&after, &refund, &Actor::toss()));
                writes.push(RefundWrite::Insert(refund.clone()));
                rows.push(refund);
            }
        }
    }
    // Our books against Toss's, after adopting everything Toss shows.
    if after.refunded_amount_krw > after.amount_krw {
        return set_aside(
            ours,
            refunds,
            "Toss cancelled more than the payment's amount".to_owned(),
            ctx,
        )
        .alert("pg_cancel_exceeds_books", "cancels exceed the amount");
    }
    let toss_keys: Vec<&str> = record
        .cancels
        .iter()
        .map(|c| c.transaction_key.as_str())
        .collect();
    if let Some(missing) = rows.iter().find(|r| {
        r.status == RefundStatus::Completed
            && r.pg_cancel_key
                .as_deref()
                .is_some_and(|key| !toss_keys.contains(&key))
    }) {
        return set_aside(
            ours,
            refunds,
            format!("refund {} is not among Toss's cancels", missing.id),
            ctx,
        );
    }
    let all_done = done.len() == record.cancels.len();
    if let Some(balance) = record.balance_amount
        && all_done
        && balance != after.amount_krw - after.refunded_amount_krw
    {
        return set_aside(
            ours,
            refunds,
            format!(
                "Toss's balance {balance} differs from ours {}",
                after.amount_krw - after.refunded_amount_krw
            ),
            ctx,
        );
    }
    // Our refunds Toss does not show: one that no longer fits Toss's balance can never land
    // (Toss refuses a cancel beyond its balance, and every send carries the balance it expects);
    // one sent long enough ago did not happen. Either ends FAILED, its amount released.
    for refund in rows.iter_mut() {
        let settled_here = writes.iter().any(|w| match w {
            RefundWrite::Update(r) | RefundWrite::Insert(r) => r.id == refund.id,
            RefundWrite::Delete(id) => *id == refund.id,
        });
        if refund.status != RefundStatus::Pending || settled_here {
            continue;
        }
        let balance = after.amount_krw - after.refunded_amount_krw;
        // Toss's balance is Toss's record; a window passing is the service's own rule.
        let (failure, actor) = if refund.amount_krw > balance {
            let failure = Failure {
                code: "PG_BALANCE_EXHAUSTED".to_owned(),
                message: "Toss's remaining balance no longer covers this refund".to_owned(),
                retryable: None,
            };
            (failure, ctx.actor.clone())
        } else if refund.sends > 0
            && refund.created_at + ctx.window < ctx.now
            && refund
                .last_sent_at
                .is_none_or(|at| at + ctx.send_lease < ctx.now)
        {
            let failure = Failure {
                code: "PG_CANCEL_NOT_FOUND".to_owned(),
                message: "the PG shows no such cancel; the refund did not happen".to_owned(),
                retryable: None,
            };
            (failure, Actor::system())
        } else {
            continue;
        };
        refund.status = RefundStatus::Failed;
        refund.failure = Some(failure.clone());
        refund.next_reconcile_at = None;
        after.refund_reserved_krw -= refund.amount_krw;
        if after.cancel_slot == Some(refund.id) {
            after.cancel_slot = None;
            after.cancel_slot_until = None;
        }
        events.push(events::refund_failed(&after, refund, &failure, &actor));
        writes.push(RefundWrite::Update(refund.clone()));
    }
    if !writes.is_empty() {
        after.updated_at = ctx.now;
    }
    let changed = after != *ours || !writes.is_empty();
    Decision {
        plan: changed.then_some(Plan {
            payment: after,
            refunds: writes,
            events,
        }),
        update: None,
        verdict: Verdict::Settled,
        alert: None,
    }
}

/// A refund the PG refused: its reservation goes back to the balance and the cancel slot is
/// freed; it is forgotten (`failure` None: refused at once, the caller hears it now) or kept as
/// `FAILED` with `refund.failed` (it had been answered 202). `None` if it is no longer pending.
pub fn abandon_refund(
    ours: &Payment,
    refunds: &[Refund],
    refund_id: RefundId,
    failure: Option<Failure>,
    actor: &Actor,
) -> Option<Plan> {
    let refund = refunds
        .iter()
        .find(|r| r.id == refund_id && r.status == RefundStatus::Pending)?;
    let mut after = ours.clone();
    after.refund_reserved_krw -= refund.amount_krw;
    if after.cancel_slot == Some(refund_id) {
        after.cancel_slot = None;
        after.cancel_slot_until = None;
    }
    let (write, events) = match failure {
        None => (RefundWrite::Delete(refund_id), Vec::new()),
        Some(failure) => {
            let mut failed = refund.clone();
            failed.status = RefundStatus::Failed;
            failed.failure = Some(failure.clone());
            failed.next_reconcile_at = None;
            let event = events::refund_failed(&after, &failed, &failure, actor);
            (RefundWrite::Update(failed), vec![event])
        }
    };
    Some(Plan {
        payment: after,
        refunds: vec![write],
        events,
    })
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
    Some(Plan {
        payment: after,
        refunds: Vec::new(),
        events: Vec::new(),
    })
}

/// A plan that applies one named change of the payment (and its event).
fn plan_update(ours: &Payment, update: PaymentUpdate, ctx: &Context) -> Plan {
    let after = update.applied_to(ours, ctx.now);
    Plan {
        events: events::of_update(&update, &after, &ctx.actor)
            .into_iter()
            .collect(),
        payment: after,
        refunds: Vec::new(),
    }
}

/// The record contradicts ours: flagged for a person. A flag is a note, never a stop sign: a
/// payment in flight is still looked at again (at its usual pace), and whatever settles it
/// settles it.
fn set_aside(ours: &Payment, _refunds: &[Refund], reason: String, ctx: &Context) -> Decision {
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

/// What adopting a record left: the payment and its refunds as they now are, and the verdict.
#[derive(Debug, Clone)]
pub struct Adopted {
    pub payment: Payment,
    pub refunds: Vec<Refund>,
    pub verdict: Verdict,
}

impl PaymentService {
    /// Adopts `record` for payment `id` through [`decide`], in one transaction. A flag a
    /// reconciliation run set goes once the payment no longer disagrees with what it found.
    pub(super) async fn adopt_record(
        &self,
        id: PaymentId,
        record: &PgPayment,
        cancel_of: Option<RefundId>,
    ) -> Result<Adopted, AppError> {
        let adopted = self.adopt_only(id, record, cancel_of).await?;
        let payment = self
            .unflag_if_resolved(adopted.payment, &adopted.refunds)
            .await;
        Ok(Adopted { payment, ..adopted })
    }

    /// [`PaymentService::adopt_record`], the flag left to the caller (a person's review).
    pub(super) async fn adopt_only(
        &self,
        id: PaymentId,
        record: &PgPayment,
        cancel_of: Option<RefundId>,
    ) -> Result<Adopted, AppError> {
        let adopted = self
            .store
            .adopt(id, |payment, refunds| {
                let decision = decide(payment, refunds, record, &self.context(payment, cancel_of));
                (decision.plan, (decision.verdict, decision.alert))
            })
            .await?;
        let Some((payment, refunds, (verdict, alert))) = adopted else {
            return Err(AppError::NotFound(format!("payment {id} not found")));
        };
        Self::report(&payment, record, &verdict, alert);
        Ok(Adopted {
            payment,
            refunds,
            verdict,
        })
    }

    /// A payment a reconciliation run flagged, whose adopted record no longer disagrees with
    /// what the run found, is no longer flagged by it. Best effort: the flag is only a note.
    async fn unflag_if_resolved(&self, payment: Payment, refunds: &[Refund]) -> Payment {
        if !payment.needs_review {
            return payment;
        }
        match super::reconciliation::clear_resolved_flag(&self.store, &payment, refunds).await {
            Ok(Some(cleared)) => cleared,
            Ok(None) => payment,
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "review flag not re-checked");
                payment
            }
        }
    }

    /// A confirm reply for the attempt `claimed` was just claimed for. The usual answer (approved,
    /// nothing cancelled) is one named change, applied as one conditional statement on the row
    /// as claimed; anything else, or a row that moved meanwhile, takes the locking transaction.
    pub(super) async fn adopt_reply(
        &self,
        claimed: &Payment,
        record: &PgPayment,
    ) -> Result<Adopted, AppError> {
        let decision = decide(claimed, &[], record, &self.context(claimed, None));
        if let (Some(update), Verdict::Settled, None) =
            (&decision.update, &decision.verdict, &decision.alert)
        {
            let after = update.applied_to(claimed, Utc::now());
            if let Some(payment) = self
                .store
                .update_payment(
                    Target::attempt(claimed),
                    update,
                    events::of_update(update, &after, &self.record_actor()),
                )
                .await?
            {
                Self::report(&payment, record, &Verdict::Settled, None);
                let payment = self.unflag_if_resolved(payment, &[]).await;
                return Ok(Adopted {
                    payment,
                    refunds: Vec::new(),
                    verdict: Verdict::Settled,
                });
            }
        }
        self.adopt_record(claimed.id, record, None).await
    }

    /// Forgets the refused cancel request of a payment waiting for its deposit (see
    /// [`forget_cancel`]), in one transaction; the payment as it then is.
    pub(super) async fn forget_cancel_request(&self, id: PaymentId) -> Result<Payment, AppError> {
        let forgotten = self
            .store
            .adopt(id, |payment, _| {
                (forget_cancel(payment, &self.context(payment, None)), ())
            })
            .await?;
        match forgotten {
            Some((payment, _, ())) => Ok(payment),
            None => Err(AppError::NotFound(format!("payment {id} not found"))),
        }
    }

    fn context(&self, payment: &Payment, cancel_of: Option<RefundId>) -> Context {
        let now = Utc::now();
        Context {
            now,
            provider: self.gateway.provider().unwrap_or("toss"),
            window: self.settings.confirm_window,
            send_lease: self.settings.pg_read_timeout + Duration::from_secs(5),
            retry_at: self.backoff(payment.reconcile_attempts),
            deposit_check_at: now + DEPOSIT_CHECK_INTERVAL,
            cancel_of,
            actor: self.record_actor(),
        }
    }

    fn report(
        payment: &Payment,
        record: &PgPayment,
        verdict: &Verdict,
        alert: Option<(&'static str, String)>,
    ) {
        let id = payment.id;
        if let Some((alert, detail)) = alert {
            tracing::error!(alert, payment_id = %id, order_id = %payment.order_id, %detail, "Toss's record needs attention");
        }
        match &verdict {
            Verdict::Settled => {
                tracing::info!(payment_id = %id, status = %payment.status, pg_status = record.status.as_str(), "adopted Toss's record")
            }
            Verdict::Undecided { .. } => {
                tracing::info!(payment_id = %id, pg_status = record.status.as_str(), "Toss has not decided the attempt yet")
            }
            Verdict::Foreign => {
                tracing::warn!(payment_id = %id, "Toss's record is about another order; ignored")
            }
            Verdict::Contradiction(reason) => {
                tracing::warn!(payment_id = %id, %reason, "payment set aside for review")
            }
            Verdict::Ignored(why) => {
                tracing::info!(payment_id = %id, why, "Toss's record changes nothing here")
            }
        }
    }
}

/// How often a payment waiting for its virtual-account deposit is read back (webhooks usually
/// tell first).
const DEPOSIT_CHECK_INTERVAL: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests;
