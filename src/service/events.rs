//! Event envelopes and payloads, as the old Go service published them: the envelope
//! `{event_id, event_type, version, timestamp, source, user_id, payload}` with the payloads
//! its consumers already read (`payment.completed`, `payment.failed`, `payment.refunded`), and the
//! version 2 events in the same envelope.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::domain::{Actor, Failure, Payment, PaymentKey, PaymentUpdate, Refund};
use crate::store::NewEvent;

pub const PAYMENT_COMPLETED: &str = "payment.completed";
pub const PAYMENT_FAILED: &str = "payment.failed";
pub const PAYMENT_REFUNDED: &str = "payment.refunded";
pub const PAYMENT_WAITING_FOR_DEPOSIT: &str = "payment.waiting_for_deposit";
pub const REFUND_FAILED: &str = "refund.failed";
pub const PAYMENT_CANCELLED: &str = "payment.cancelled";

fn envelope(
    event_type: &'static str,
    payment: &Payment,
    payload: serde_json::Value,
    actor: &Actor,
) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7().to_string(),
        event_type,
        version: "1.0",
        source: "payment-service",
        occurred_at: Utc::now(),
        user_id: payment.user_id.clone(),
        payment_id: payment.id.to_string(),
        payload,
        actor: actor.clone(),
    }
}

/// `requested_by` as the payloads of refunds and cancels show it (the envelope's `actor`
/// shape).
pub fn actor_json(actor: &Actor) -> serde_json::Value {
    json!({"type": actor.kind.as_str(), "name": actor.name})
}

/// `payment` as it is after completion (provider and transaction id set).
pub fn completed(
    payment: &Payment,
    pg_provider: Option<&str>,
    pg_transaction_id: Option<&str>,
    actor: &Actor,
) -> NewEvent {
    envelope(
        PAYMENT_COMPLETED,
        payment,
        json!({
            "payment_id": payment.id.to_string(),
            "order_id": payment.order_id.as_str(),
            "amount": payment.amount_krw,
            "currency": payment.currency,
            "payment_method": payment.payment_method,
            "pg_provider": pg_provider,
            "pg_transaction_id": pg_transaction_id,
            "payment_type": payment.payment_type.as_str(),
            "subscription_id": payment.subscription_id,
        }),
        actor,
    )
}

pub fn failed(payment: &Payment, failure: &Failure, actor: &Actor) -> NewEvent {
    envelope(
        PAYMENT_FAILED,
        payment,
        json!({
            "payment_id": payment.id.to_string(),
            "order_id": payment.order_id.as_str(),
            "amount": payment.amount_krw,
            "currency": payment.currency,
            "error_code": failure.code,
            "error_message": failure.message,
        }),
        actor,
    )
}

/// `payment` as it is after the refund was counted.
pub fn refunded(payment: &Payment, refund: &Refund, actor: &Actor) -> NewEvent {
    envelope(
        PAYMENT_REFUNDED,
        payment,
        json!({
            "payment_id": payment.id.to_string(),
            "refund_id": refund.id.to_string(),
            "refund_amount": refund.amount_krw,
            "currency": payment.currency,
            "reason": refund.reason,
            "is_full_refund": payment.refunded_amount_krw >= payment.amount_krw,
            "requested_by": actor_json(&refund.requested_by),
        }),
        actor,
    )
}

/// A virtual account was issued; the buyer has not paid yet.
pub fn waiting_for_deposit(payment: &Payment, actor: &Actor) -> NewEvent {
    envelope(
        PAYMENT_WAITING_FOR_DEPOSIT,
        payment,
        json!({
            "payment_id": payment.id.to_string(),
            "order_id": payment.order_id.as_str(),
            "amount": payment.amount_krw,
            "currency": payment.currency,
            "payment_method": payment.payment_method,
            "pg_provider": payment.pg_provider,
            "pg_transaction_id": payment.payment_key.as_ref().map(PaymentKey::as_str),
        }),
        actor,
    )
}

/// A refund answered 202 (or queued) that did not happen after all.
pub fn refund_failed(
    payment: &Payment,
    refund: &Refund,
    failure: &Failure,
    actor: &Actor,
) -> NewEvent {
    envelope(
        REFUND_FAILED,
        payment,
        json!({
            "payment_id": payment.id.to_string(),
            "refund_id": refund.id.to_string(),
            "refund_amount": refund.amount_krw,
            "reason": refund.reason,
            "failure": {"code": failure.code, "message": failure.message},
            "requested_by": actor_json(&refund.requested_by),
        }),
        actor,
    )
}

/// Nobody paid and the merchant cancelled the payment.
pub fn cancelled(payment: &Payment, reason: &str, requested_by: &Actor, actor: &Actor) -> NewEvent {
    envelope(
        PAYMENT_CANCELLED,
        payment,
        json!({
            "payment_id": payment.id.to_string(),
            "order_id": payment.order_id.as_str(),
            "reason": reason,
            "cancelled_at": payment.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "requested_by": actor_json(requested_by),
        }),
        actor,
    )
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
