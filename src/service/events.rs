//! The events of the service's changes, in the envelope the old Go service published
//! (`{event_id, event_type, version, timestamp, source, user_id, payload}`, with `actor`); the
//! payloads are `domain::events`'s types.

use chrono::Utc;
use uuid::Uuid;

use crate::domain::{
    Actor, EventPayload, Failure, Payment, PaymentCancelled, PaymentCompleted, PaymentFailed,
    PaymentRefunded, PaymentRetriesExhausted, PaymentRetryScheduled, PaymentUpdate,
    PaymentWaitingForDeposit, Refund, RefundFailed,
};
use crate::store::NewEvent;

fn envelope(payment: &Payment, payload: EventPayload, actor: &Actor) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7().to_string(),
        event_type: payload.event_type(),
        version: "1.0",
        source: "payment-service",
        occurred_at: Utc::now(),
        user_id: payment.user_id.clone(),
        payment_id: payment.id.to_string(),
        payload: serde_json::to_value(payload).expect("a payload serialises"),
        actor: actor.clone(),
        // The request (or background job) that made the change; consumers continue its trace.
        trace_context: crate::telemetry::current_traceparent(),
    }
}

/// `payment` as it is after completion (provider and transaction id set).
pub fn completed(
    payment: &Payment,
    pg_provider: Option<&str>,
    pg_transaction_id: Option<&str>,
    actor: &Actor,
) -> NewEvent {
    let payload = PaymentCompleted::of(payment, pg_provider, pg_transaction_id);
    envelope(payment, payload, actor)
}

pub fn failed(payment: &Payment, failure: &Failure, actor: &Actor) -> NewEvent {
    envelope(payment, PaymentFailed::of(payment, failure), actor)
}

/// `payment` as it is after the refund was counted.
pub fn refunded(payment: &Payment, refund: &Refund, actor: &Actor) -> NewEvent {
    envelope(payment, PaymentRefunded::of(payment, refund), actor)
}

pub fn waiting_for_deposit(payment: &Payment, actor: &Actor) -> NewEvent {
    envelope(payment, PaymentWaitingForDeposit::of(payment), actor)
}

pub fn refund_failed(
    payment: &Payment,
    refund: &Refund,
    failure: &Failure,
    actor: &Actor,
) -> NewEvent {
    envelope(payment, RefundFailed::of(payment, refund, failure), actor)
}

/// A scheduled charge declined retryably, tried again at `next_attempt_at`.
pub fn retry_scheduled(
    payment: &Payment,
    attempt: i32,
    next_attempt_at: chrono::DateTime<Utc>,
    failure: &Failure,
    actor: &Actor,
) -> NewEvent {
    let payload = PaymentRetryScheduled::of(payment, attempt, next_attempt_at, failure);
    envelope(payment, payload, actor)
}

/// A scheduled charge ended without payment after `attempts_made` attempts.
pub fn retries_exhausted(
    payment: &Payment,
    attempts_made: i32,
    failure: &Failure,
    actor: &Actor,
) -> NewEvent {
    let payload = PaymentRetriesExhausted::of(payment, attempts_made, failure);
    envelope(payment, payload, actor)
}

pub fn cancelled(payment: &Payment, reason: &str, requested_by: &Actor, actor: &Actor) -> NewEvent {
    let payload = PaymentCancelled::of(payment, reason, requested_by);
    envelope(payment, payload, actor)
}

/// The event a named change of a payment records, if any; `after` is the payment as the change
/// leaves it, `actor` who made the change.
pub fn of_update(update: &PaymentUpdate, after: &Payment, actor: &Actor) -> Option<NewEvent> {
    match update {
        PaymentUpdate::Complete { payment_key, .. } => Some(completed(
            after,
            after.pg_provider.as_deref(),
            Some(payment_key.as_str()),
            actor,
        )),
        PaymentUpdate::Record { .. } => Some(completed(
            after,
            after.pg_provider.as_deref(),
            after.pg_ref().paid_by(),
            actor,
        )),
        PaymentUpdate::AwaitDeposit { .. } => Some(waiting_for_deposit(after, actor)),
        PaymentUpdate::Release { failure } => failure.as_ref().map(|f| failed(after, f, actor)),
        PaymentUpdate::Annotate { failure, .. } => Some(failed(after, failure, actor)),
        PaymentUpdate::Cancel {
            reason,
            requested_by,
        } => Some(cancelled(after, reason, requested_by, actor)),
        PaymentUpdate::RequestCancel { .. }
        | PaymentUpdate::Claim { .. }
        | PaymentUpdate::Charge { .. }
        | PaymentUpdate::Resend { .. }
        | PaymentUpdate::Reschedule { .. }
        | PaymentUpdate::SetAside { .. }
        | PaymentUpdate::Resolve => None,
    }
}
