//! Types with meaning. Nothing here knows about HTTP, SQL or Toss's JSON.

mod changes;
mod ids;
mod methods;
mod records;
mod status;

pub use changes::{Patch, PaymentUpdate, status_after_refunds};
pub use ids::{
    Amount, Caller, DomainError, OrderId, PaymentId, PaymentKey, PaymentRef, RefundId, ScopedKey,
    UserId,
};
pub use methods::{
    CardSummary, PgDetails, RefundAccount, SealedAccount, VIRTUAL_ACCOUNT_METHOD, VirtualAccount,
    mask,
};
pub use records::{Payment, Refund, Review, StoredEvent};
pub use status::{PaymentStatus, PaymentType, RefundOrigin, RefundStatus};

/// Why the last attempt to pay failed, as the PG (or the buyer's browser) reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}
