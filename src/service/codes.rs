//! The failure codes the service writes itself (on a payment's or refund's `failure`, in
//! `payment.failed` / `refund.failed` and in 402 answers) where Toss gave none: one list, so a
//! consumer can know them all. Toss's own codes pass through as Toss wrote them.

use crate::domain::Failure;
use crate::error::AppError;
use crate::gateway::GatewayError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A key Toss has no record of (Toss's own code for it; said locally for a recorded
    /// transaction id that is not a `paymentKey`).
    NotFoundPayment,
    /// A charge Toss still shows nothing of after every send and the window.
    PgPaymentNotFound,
    /// The recorded Toss payment is not this order's: nothing was cancelled.
    PgResponseMismatch,
    /// A refund that ended `FAILED` without a reason kept.
    PgCancelFailed,
    /// A sent refund Toss never shows, once its window passed.
    PgCancelNotFound,
    /// Toss's balance no longer covers a pending refund.
    PgBalanceExhausted,
    /// The sealed refund account no longer opens.
    RefundAccountUnreadable,
    /// A refund through the PG of a payment without a key (checked locally).
    InvalidRequest,
    VirtualAccountCancelled,
    VirtualAccountExpired,
    /// A scheduled charge refused before Toss: the amount is above the buyer's consent.
    ConsentRequired,
    /// A scheduled charge refused before Toss: its billing key was deleted since (here or at
    /// Toss), or no longer decrypts.
    BillingKeyInactive,
}

impl Code {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFoundPayment => "NOT_FOUND_PAYMENT",
            Self::PgPaymentNotFound => "PG_PAYMENT_NOT_FOUND",
            Self::PgResponseMismatch => "PG_RESPONSE_MISMATCH",
            Self::PgCancelFailed => "PG_CANCEL_FAILED",
            Self::PgCancelNotFound => "PG_CANCEL_NOT_FOUND",
            Self::PgBalanceExhausted => "PG_BALANCE_EXHAUSTED",
            Self::RefundAccountUnreadable => "REFUND_ACCOUNT_UNREADABLE",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::VirtualAccountCancelled => "VIRTUAL_ACCOUNT_CANCELLED",
            Self::VirtualAccountExpired => "VIRTUAL_ACCOUNT_EXPIRED",
            Self::ConsentRequired => "CONSENT_REQUIRED",
            Self::BillingKeyInactive => "BILLING_KEY_INACTIVE",
        }
    }

    pub fn failure(self, message: impl Into<String>) -> Failure {
        Failure::new(self.as_str(), message)
    }

    /// A refusal decided here, answered as Toss's would be, with nothing sent.
    pub fn declined_locally(self, message: impl std::fmt::Display) -> GatewayError {
        GatewayError::Declined {
            code: self.as_str().to_owned(),
            message: format!("{message} (checked locally; nothing was sent to Toss)"),
        }
    }
}

/// The 402 answer of an attempt or refund that ended with `failure`.
pub fn declined(failure: Failure) -> AppError {
    AppError::PgDeclined {
        code: failure.code,
        message: failure.message,
        retryable: failure.retryable,
    }
}
