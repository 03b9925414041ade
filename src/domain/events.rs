//! The events the service publishes (the outbox, `GET /events`, NATS), as types: the contract
//! with the consumers. The payloads of `payment.completed`, `payment.failed` and
//! `payment.refunded` are the ones the old Go service's consumers read; the others are the
//! contract's. The envelope (`event_id`, `event_type`, `version`, `timestamp`, `source`,
//! `user_id`, `actor`) is added by the service and the relay.

use serde::Serialize;

use super::{Actor, Failure, Payment, PaymentKey, Refund};

/// Each event's payload; `event_type` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::VariantNames)]
#[serde(untagged)]
pub enum EventPayload {
    #[strum(serialize = "payment.completed")]
    Completed(PaymentCompleted),
    #[strum(serialize = "payment.failed")]
    Failed(PaymentFailed),
    #[strum(serialize = "payment.refunded")]
    Refunded(PaymentRefunded),
    #[strum(serialize = "payment.waiting_for_deposit")]
    WaitingForDeposit(PaymentWaitingForDeposit),
    #[strum(serialize = "payment.cancelled")]
    Cancelled(PaymentCancelled),
    #[strum(serialize = "refund.failed")]
    RefundFailed(RefundFailed),
    #[strum(serialize = "payment.retry_scheduled")]
    RetryScheduled(PaymentRetryScheduled),
    #[strum(serialize = "payment.retries_exhausted")]
    RetriesExhausted(PaymentRetriesExhausted),
}

impl EventPayload {
    /// Every event type the service publishes.
    pub const TYPES: &[&str] = <Self as strum::VariantNames>::VARIANTS;

    pub fn event_type(&self) -> &'static str {
        self.into()
    }
}

/// What `payment.completed` and `payment.waiting_for_deposit` both say of the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaidWith {
    pub payment_id: String,
    pub order_id: String,
    pub amount: i64,
    pub currency: String,
    pub payment_method: String,
    pub pg_provider: Option<String>,
    pub pg_transaction_id: Option<String>,
}

impl PaidWith {
    fn new(payment: &Payment, pg_provider: Option<&str>, pg_transaction_id: Option<&str>) -> Self {
        Self {
            payment_id: payment.id.to_string(),
            order_id: payment.order_id.as_str().to_owned(),
            amount: payment.amount_krw,
            currency: payment.currency.clone(),
            payment_method: payment.payment_method.clone(),
            pg_provider: pg_provider.map(str::to_owned),
            pg_transaction_id: pg_transaction_id.map(str::to_owned),
        }
    }
}

/// `payment.completed`: the payment as it is after completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentCompleted {
    #[serde(flatten)]
    pub payment: PaidWith,
    pub payment_type: &'static str,
    pub subscription_id: Option<String>,
}

impl PaymentCompleted {
    pub fn of(
        payment: &Payment,
        pg_provider: Option<&str>,
        pg_transaction_id: Option<&str>,
    ) -> EventPayload {
        EventPayload::Completed(Self {
            payment: PaidWith::new(payment, pg_provider, pg_transaction_id),
            payment_type: payment.payment_type.as_str(),
            subscription_id: payment.subscription_id.clone(),
        })
    }
}

/// `payment.failed`: an attempt to pay failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentFailed {
    pub payment_id: String,
    pub order_id: String,
    pub amount: i64,
    pub currency: String,
    pub error_code: String,
    pub error_message: String,
}

impl PaymentFailed {
    pub fn of(payment: &Payment, failure: &Failure) -> EventPayload {
        EventPayload::Failed(Self {
            payment_id: payment.id.to_string(),
            order_id: payment.order_id.as_str().to_owned(),
            amount: payment.amount_krw,
            currency: payment.currency.clone(),
            error_code: failure.code.clone(),
            error_message: failure.message.clone(),
        })
    }
}

/// `payment.refunded`: the payment as it is after the refund was counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentRefunded {
    pub payment_id: String,
    pub refund_id: String,
    pub refund_amount: i64,
    pub currency: String,
    pub reason: String,
    pub is_full_refund: bool,
    pub requested_by: Actor,
}

impl PaymentRefunded {
    pub fn of(payment: &Payment, refund: &Refund) -> EventPayload {
        EventPayload::Refunded(Self {
            payment_id: payment.id.to_string(),
            refund_id: refund.id.to_string(),
            refund_amount: refund.amount_krw,
            currency: payment.currency.clone(),
            reason: refund.reason.clone(),
            is_full_refund: payment.refunded_amount_krw >= payment.amount_krw,
            requested_by: refund.requested_by.clone(),
        })
    }
}

/// `payment.waiting_for_deposit`: a virtual account was issued; the buyer has not paid yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentWaitingForDeposit {
    #[serde(flatten)]
    pub payment: PaidWith,
}

impl PaymentWaitingForDeposit {
    pub fn of(payment: &Payment) -> EventPayload {
        let key = payment.payment_key.as_ref().map(PaymentKey::as_str);
        let payment = PaidWith::new(payment, payment.pg_provider.as_deref(), key);
        EventPayload::WaitingForDeposit(Self { payment })
    }
}

/// `payment.cancelled`: nobody paid and the merchant cancelled the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentCancelled {
    pub payment_id: String,
    pub order_id: String,
    pub reason: String,
    pub cancelled_at: String,
    pub requested_by: Actor,
}

impl PaymentCancelled {
    pub fn of(payment: &Payment, reason: &str, requested_by: &Actor) -> EventPayload {
        EventPayload::Cancelled(Self {
            payment_id: payment.id.to_string(),
            order_id: payment.order_id.as_str().to_owned(),
            reason: reason.to_owned(),
            cancelled_at: super::timestamps::text(payment.updated_at),
            requested_by: requested_by.clone(),
        })
    }
}

/// `refund.failed`: a refund answered 202 (or queued) that did not happen after all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundFailed {
    pub payment_id: String,
    pub refund_id: String,
    pub refund_amount: i64,
    pub reason: String,
    pub failure: FailureBody,
    pub requested_by: Actor,
}

/// A failure as `refund.failed` shows it: `{code, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureBody {
    pub code: String,
    pub message: String,
}

impl RefundFailed {
    pub fn of(payment: &Payment, refund: &Refund, failure: &Failure) -> EventPayload {
        EventPayload::RefundFailed(Self {
            payment_id: payment.id.to_string(),
            refund_id: refund.id.to_string(),
            refund_amount: refund.amount_krw,
            reason: refund.reason.clone(),
            failure: FailureBody {
                code: failure.code.clone(),
                message: failure.message.clone(),
            },
            requested_by: refund.requested_by.clone(),
        })
    }
}

/// `payment.retry_scheduled`: a scheduled charge was declined retryably; it is tried again at
/// `next_attempt_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentRetryScheduled {
    pub payment_id: String,
    pub order_id: String,
    pub subscription_id: Option<String>,
    pub attempt: i32,
    pub next_attempt_at: String,
    /// `{code, message, retryable}`.
    pub failure: Failure,
}

impl PaymentRetryScheduled {
    pub fn of(
        payment: &Payment,
        attempt: i32,
        next_attempt_at: chrono::DateTime<chrono::Utc>,
        failure: &Failure,
    ) -> EventPayload {
        EventPayload::RetryScheduled(Self {
            payment_id: payment.id.to_string(),
            order_id: payment.order_id.as_str().to_owned(),
            subscription_id: payment.subscription_id.clone(),
            attempt,
            next_attempt_at: super::timestamps::text(next_attempt_at),
            failure: failure.clone(),
        })
    }
}

/// `payment.retries_exhausted`: a scheduled charge ended without payment (a final decline, the
/// end of its delays, an inactive billing key or a missing consent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentRetriesExhausted {
    pub payment_id: String,
    pub order_id: String,
    pub subscription_id: Option<String>,
    pub attempts_made: i32,
    /// `{code, message, retryable}`.
    pub failure: Failure,
}

impl PaymentRetriesExhausted {
    pub fn of(payment: &Payment, attempts_made: i32, failure: &Failure) -> EventPayload {
        EventPayload::RetriesExhausted(Self {
            payment_id: payment.id.to_string(),
            order_id: payment.order_id.as_str().to_owned(),
            subscription_id: payment.subscription_id.clone(),
            attempts_made,
            failure: failure.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
