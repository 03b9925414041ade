//! Toss's cancels against our refunds: each done cancel becomes, or matches, a refund; our
//! refunds must then account for exactly what Toss cancelled.

use super::{Context, Decision, Verdict, set_aside};
use crate::domain::{
    Actor, Failure, Payment, Refund, RefundFailed, RefundId, RefundOrigin, RefundStatus,
    status_after_refunds,
};
use crate::gateway::{PgCancel, PgPayment};
use crate::service::codes::Code;
use crate::service::events;
use crate::store::{NewEvent, Plan, RefundWrite};

/// Each done cancel in Toss's record becomes, or matches, a refund: by `transactionKey`, else
/// the oldest sent `PENDING` refund of the same amount, else a refund made outside the service.
/// Then our refunds must account for exactly what Toss cancelled.
pub(super) fn adopt_cancels(
    base: Payment,
    ours: &Payment,
    refunds: &[Refund],
    record: &PgPayment,
    ctx: &Context,
    first_event: Option<NewEvent>,
) -> Decision {
    let mut after = base;
    let mut events: Vec<NewEvent> = first_event.into_iter().collect();
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
                release_reservation(&mut after, refund);
                after.refunded_amount_krw += refund.amount_krw;
                after.status = status_after_refunds(&after);
                events.push(events::refunded(&after, refund, &ctx.actor));
                writes.push(RefundWrite::Update(refund.clone()));
            }
            None => {
                let reason = cancel
                    .reason
                    .clone()
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| "cancelled at Toss".to_owned())
                    .chars()
                    .take(200)
                    .collect();
                let refund = Refund {
                    pg_cancel_key: Some(cancel.transaction_key.clone()),
                    refunded_at: Some(at),
                    tax_free_amount_krw: cancel.tax_free_amount,
                    // Made outside the service (Toss's dashboard, its API under our key).
                    ..Refund::new(
                        ours.id,
                        cancel.amount,
                        reason,
                        RefundStatus::Completed,
                        RefundOrigin::Pg,
                        Actor::toss(),
                        ctx.now,
                    )
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
            let failure = Code::PgBalanceExhausted
                .failure("Toss's remaining balance no longer covers this refund");
            (failure, ctx.actor.clone())
        } else if refund.sends > 0
            && refund.created_at + ctx.window < ctx.now
            && refund
                .last_sent_at
                .is_none_or(|at| at + ctx.send_lease < ctx.now)
        {
            let failure = Code::PgCancelNotFound
                .failure("the PG shows no such cancel; the refund did not happen");
            (failure, Actor::system())
        } else {
            continue;
        };
        events.push(fail(&mut after, refund, failure, &actor));
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
    let (write, events) = match failure {
        None => {
            release_reservation(&mut after, refund);
            (RefundWrite::Delete(refund_id), Vec::new())
        }
        Some(failure) => {
            let mut failed = refund.clone();
            let event = fail(&mut after, &mut failed, failure, actor);
            (RefundWrite::Update(failed), vec![event])
        }
    };
    Some(Plan {
        payment: after,
        refunds: vec![write],
        events,
    })
}

/// Takes `refund`'s amount out of the reservation and frees the cancel slot it held.
fn release_reservation(after: &mut Payment, refund: &Refund) {
    after.refund_reserved_krw -= refund.amount_krw;
    if after.cancel_slot == Some(refund.id) {
        after.cancel_slot = None;
        after.cancel_slot_until = None;
    }
}

/// `refund` ends `FAILED` with `failure`, its amount back in the balance: its `refund.failed`.
fn fail(after: &mut Payment, refund: &mut Refund, failure: Failure, actor: &Actor) -> NewEvent {
    release_reservation(after, refund);
    refund.status = RefundStatus::Failed;
    refund.next_reconcile_at = None;
    let event = events::envelope(after, RefundFailed::of(after, refund, &failure), actor);
    refund.failure = Some(failure);
    event
}

#[cfg(test)]
mod tests;
