//! The event log (`GET /events`, a payment's events) and who made each change.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::timestamp;
use crate::domain::{Actor, StoredEvent};

/// A payment's events, in the envelope of `GET /events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentEventListDto {
    /// In the order they happened (by `cursor`).
    pub events: Vec<EventDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Cursor: events after this one. Default 0 (from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// One event of the log, in the envelope consumers already know, plus its cursor.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "cursor": 42,
    "event_id": "019ab5b3-0c4d-7e5f-8a9b-0c1d2e3f4a5b",
    "event_type": "payment.completed",
    "version": "1.0",
    "timestamp": "2026-11-23T09:31:02.415Z",
    "source": "payment-service",
    "user_id": "u-1",
    "actor": {"type": "buyer", "name": null},
    "payload": {
        "payment_id": "019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a",
        "order_id": "order_20261123_0001",
        "amount": 15000,
        "currency": "KRW",
        "payment_method": "card",
        "pg_provider": "toss",
        "pg_transaction_id": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
        "payment_type": "ONE_TIME",
        "subscription_id": null
    }
}))]
pub struct EventDto {
    /// Position in the log; pass the last one seen as `after`.
    pub cursor: i64,
    #[schema(format = Uuid)]
    pub event_id: String,
    /// `payment.completed`, `payment.failed`, `payment.refunded`, `payment.waiting_for_deposit`,
    /// `payment.cancelled` or `refund.failed`.
    #[schema(example = "payment.cancelled")]
    pub event_type: String,
    pub version: String,
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub source: String,
    pub user_id: String,
    /// Who made the change: the caller of the request (an API key by name, or the buyer),
    /// `toss` when Toss's webhook or a read-back of Toss's record drove it, `system` when the
    /// service's own rule did (a window passing). Events written before version 3: `system`.
    pub actor: Actor,
    /// completed: {payment_id, order_id, amount, currency, payment_method, pg_provider,
    /// pg_transaction_id, payment_type, subscription_id}; failed: {payment_id, order_id, amount,
    /// currency, error_code, error_message}; refunded: {payment_id, refund_id, refund_amount,
    /// currency, reason, is_full_refund, requested_by}; waiting_for_deposit: {payment_id,
    /// order_id, amount, currency, payment_method, pg_provider, pg_transaction_id}; cancelled:
    /// {payment_id, order_id, reason, cancelled_at, requested_by}; refund.failed: {payment_id,
    /// refund_id, refund_amount, reason, failure: {code, message}, requested_by}. `requested_by`
    /// (the shape of `actor`) is who asked for the refund or the cancel; `actor` who made this
    /// change (e.g. `toss` when a webhook settled a cancel an API key asked for).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<StoredEvent> for EventDto {
    fn from(e: StoredEvent) -> Self {
        Self {
            cursor: e.seq,
            event_id: e.event_id,
            event_type: e.event_type,
            version: e.version,
            timestamp: timestamp(e.occurred_at),
            source: e.source,
            user_id: e.user_id,
            actor: e.actor,
            payload: e.payload,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventListDto {
    pub events: Vec<EventDto>,
    /// Pass as `after` to get the next page (equal to `after` when there is nothing new).
    pub next_cursor: i64,
}
