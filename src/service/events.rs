//! The events of the service's changes, in the envelope the old Go service published
//! (`{event_id, event_type, version, timestamp, source, user_id, payload}`, with `actor`); the
//! payloads are `domain::events`'s types.

use chrono::Utc;
use uuid::Uuid;

use crate::domain::{
    Actor, EventPayload, Payment, PaymentCancelled, PaymentCompleted, PaymentFailed,
    PaymentRefunded, PaymentUpdate, PaymentWaitingForDeposit, Refund,
};
use crate::store::NewEvent;

/// The event of `payload`, a change of `payment` made by `actor`.
pub fn envelope(payment: &Payment, payload: EventPayload, actor: &Actor) -> NewEvent {
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

/// `payment` as it is after the refund was counted.
pub fn refunded(payment: &Payment, refund: &Refund, actor: &Actor) -> NewEvent {
    envelope(payment, PaymentRefunded::of(payment, refund), actor)
}

/// The event a named change of a payment records, if any; `after` is the payment as the change
/// leaves it, `actor` who made the change.
pub fn of_update(update: &PaymentUpdate, after: &Payment, actor: &Actor) -> Option<NewEvent> {
    let provider = after.pg_provider.as_deref();
    let payload = match update {
        PaymentUpdate::Complete { payment_key, .. } => {
            PaymentCompleted::of(after, provider, Some(payment_key.as_str()))
        }
        PaymentUpdate::Record { .. } => {
            PaymentCompleted::of(after, provider, after.pg_ref().paid_by())
        }
        PaymentUpdate::AwaitDeposit { .. } => PaymentWaitingForDeposit::of(after),
        PaymentUpdate::Release {
            failure: Some(failure),
        }
        | PaymentUpdate::Annotate { failure, .. } => PaymentFailed::of(after, failure),
        PaymentUpdate::Cancel {
            reason,
            requested_by,
        } => PaymentCancelled::of(after, reason, requested_by),
        PaymentUpdate::Release { failure: None }
        | PaymentUpdate::RequestCancel { .. }
        | PaymentUpdate::Claim { .. }
        | PaymentUpdate::Charge { .. }
        | PaymentUpdate::Resend { .. }
        | PaymentUpdate::Reschedule { .. }
        | PaymentUpdate::SetAside { .. }
        | PaymentUpdate::Resolve => return None,
    };
    Some(envelope(after, payload, actor))
}
