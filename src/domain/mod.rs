//! Types with meaning. Nothing here knows about HTTP, SQL or Toss's JSON.

mod changes;
mod ids;
pub mod reconciliation;
mod records;
mod status;

pub use changes::{Patch, PaymentUpdate, status_after_refunds};
pub use ids::{
    Amount, Caller, DomainError, OrderId, PaymentId, PaymentKey, PaymentRef, RefundId, ScopedKey,
    UserId,
};
pub use records::{Payment, Refund, Review, Settlement, StoredEvent};
pub use status::{PaymentStatus, PaymentType, RefundOrigin, RefundStatus};

/// Why the last attempt to pay failed, as the PG (or the buyer's browser) reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}
