//! Types with meaning. Nothing here knows about HTTP, SQL or Toss's JSON.

mod actor;
mod attempts;
mod billing;
mod changes;
mod ids;
mod methods;
mod pg_ref;
pub mod reconciliation;
mod records;
mod schedule;
mod status;

pub use actor::{Actor, ActorType};
pub use attempts::{Attempt, AttemptKind, AttemptStatus, AttemptWrite, EXPIRED_CODES, Settled};
pub use billing::{
    AuthKey, BillingCustomer, BillingKey, BillingKeySecret, BillingKeyStatus, CardInfo, CustomerKey,
};
pub use changes::{Patch, PaymentUpdate, status_after_refunds};
pub use ids::{
    Amount, AttemptId, BillingKeyId, Caller, DomainError, OrderId, PaymentId, PaymentKey,
    PaymentRef, RefundId, ScopedKey, UserId,
};
pub use methods::{
    CardSummary, PgDetails, RefundAccount, SealedAccount, VIRTUAL_ACCOUNT_METHOD, VirtualAccount,
    mask,
};
pub use pg_ref::PgRef;
pub use records::{Payment, Refund, Review, Settlement, StoredEvent};
pub use schedule::{
    BILLING_KEY_INACTIVE, CONSENT_REQUIRED, ChargeEnd, Consent, Next, Schedule, ScheduleStatus,
    retry_delays,
};
pub use status::{PaymentStatus, PaymentType, RefundOrigin, RefundStatus};

/// Why the last attempt to pay failed, as the PG (or the buyer's browser) reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
    /// For a declined charge: whether the same card may pass if tried again later (limit,
    /// balance, card company error) or never will (lost, stopped, expired card). `None` where
    /// nobody can say (a one-time confirm, a redirect).
    pub retryable: Option<bool>,
}

impl Failure {
    /// A failure with nothing to say about retrying.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: None,
        }
    }
}
