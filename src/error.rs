//! The one error type that leaves the service. `http::problem` turns it into problem+json.

use crate::domain::{DomainError, PaymentId};
use crate::gateway::GatewayError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A request body or parameter broke a rule. `unprocessable` picks 422 over 400.
    #[error("{message}")]
    Validation {
        message: String,
        unprocessable: bool,
    },
    #[error("missing or invalid API key")]
    Unauthorized,
    /// A valid API key without the scope the route needs (the scope is named, never the key).
    #[error("this API key lacks the scope {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("a payment with this order_id already exists")]
    DuplicateOrderId,
    #[error("{0}")]
    InvalidState(String),
    #[error("amount_krw does not match the amount of the payment")]
    AmountMismatch,
    #[error("refund of {requested} KRW exceeds the refundable balance of {balance} KRW")]
    RefundExceedsBalance { requested: i64, balance: i64 },
    #[error(
        "this payment was paid by virtual account: refund_receive_account is required to refund it"
    )]
    RefundAccountRequired,
    /// `retryable`: for a charge, whether the same card may pass later.
    #[error("the payment gateway declined: {message}")]
    PgDeclined {
        code: String,
        message: String,
        retryable: Option<bool>,
    },
    /// The billing key is not `ACTIVE` (deleted here or at Toss), or cannot be used.
    #[error("{0}")]
    BillingKeyInactive(String),
    #[error("the billing key belongs to another user than the payment")]
    BillingKeyMismatch,
    /// The payment's amount is above what the buyer consented to for its subscription
    /// (Toss not called).
    #[error("{0}")]
    ConsentRequired(String),
    #[error(
        "the payment gateway rejected our credentials or request; an operator must fix the configuration"
    )]
    PgMisconfigured { code: String, message: String },
    #[error("the payment gateway's reply does not match the payment; it was set aside for review")]
    PgResponseMismatch,
    /// The PG's record a trusted caller recorded for the payment is not this order's (or not
    /// of its amount): nothing was sent, the payment was set aside. 409, unlike the 502 of a
    /// PG reply that contradicts us.
    #[error("{0}")]
    ForeignPgRecord(String),
    #[error("no payment gateway is configured that could verify this payment")]
    PgNotConfigured,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    RequestInProgress,
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the service is temporarily unavailable")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

/// A payment id from a path (the API's and the console's): one that is not a UUID names no
/// payment.
pub fn payment_id(raw: &str) -> Result<PaymentId, AppError> {
    raw.parse()
        .map_err(|_| AppError::NotFound(format!("payment {raw} not found")))
}

impl AppError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            unprocessable: false,
        }
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            unprocessable: true,
        }
    }

    pub fn code(&self) -> &'static str {
        self.answer().1
    }

    pub fn status(&self) -> u16 {
        self.answer().0
    }

    /// The HTTP status and the machine-readable code the error is answered with.
    fn answer(&self) -> (u16, &'static str) {
        match self {
            Self::Validation {
                unprocessable: true,
                ..
            } => (422, "VALIDATION_ERROR"),
            Self::Validation { .. } => (400, "VALIDATION_ERROR"),
            Self::Unauthorized => (401, "UNAUTHORIZED"),
            Self::Forbidden(_) => (403, "FORBIDDEN"),
            Self::NotFound(_) => (404, "NOT_FOUND"),
            Self::DuplicateOrderId => (409, "DUPLICATE_ORDER_ID"),
            Self::InvalidState(_) => (409, "INVALID_STATE"),
            Self::AmountMismatch => (422, "AMOUNT_MISMATCH"),
            Self::RefundExceedsBalance { .. } => (409, "REFUND_EXCEEDS_BALANCE"),
            Self::RefundAccountRequired => (422, "REFUND_ACCOUNT_REQUIRED"),
            Self::PgDeclined { .. } => (402, "PG_DECLINED"),
            Self::BillingKeyInactive(_) => (409, "BILLING_KEY_INACTIVE"),
            Self::BillingKeyMismatch => (422, "BILLING_KEY_MISMATCH"),
            Self::ConsentRequired(_) => (409, "CONSENT_REQUIRED"),
            Self::PgMisconfigured { .. } => (502, "PG_MISCONFIGURED"),
            Self::PgResponseMismatch => (502, "PG_RESPONSE_MISMATCH"),
            Self::ForeignPgRecord(_) => (409, "PG_RESPONSE_MISMATCH"),
            Self::PgNotConfigured => (503, "PG_NOT_CONFIGURED"),
            Self::IdempotencyKeyReused => (422, "IDEMPOTENCY_KEY_REUSED"),
            Self::RequestInProgress => (409, "REQUEST_IN_PROGRESS"),
            Self::MethodNotAllowed(_) => (405, "METHOD_NOT_ALLOWED"),
            Self::PayloadTooLarge => (413, "PAYLOAD_TOO_LARGE"),
            Self::UnsupportedMediaType(_) => (415, "UNSUPPORTED_MEDIA_TYPE"),
            Self::Unavailable(_) => (503, "SERVICE_UNAVAILABLE"),
            Self::Internal(_) => (500, "INTERNAL_ERROR"),
        }
    }

    /// Toss's own `code`/`message`, for the problem's `pg_code`/`pg_message`.
    pub fn pg_error(&self) -> Option<(&str, &str)> {
        match self {
            Self::PgDeclined { code, message, .. } | Self::PgMisconfigured { code, message } => {
                Some((code, message))
            }
            _ => None,
        }
    }
}

impl From<DomainError> for AppError {
    fn from(error: DomainError) -> Self {
        Self::unprocessable(error.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateOrderId => Self::DuplicateOrderId,
            StoreError::AlreadyRecorded(what) => {
                Self::InvalidState(format!("already recorded: {what}"))
            }
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            StoreError::Other(cause) => Self::Internal(cause),
        }
    }
}

impl From<GatewayError> for AppError {
    /// Only for the final classes; an unknown outcome is not an error to the caller (202).
    fn from(error: GatewayError) -> Self {
        match error {
            GatewayError::Declined { code, message } => Self::PgDeclined {
                code,
                message,
                retryable: None,
            },
            GatewayError::Misconfigured { code, message } => {
                Self::PgMisconfigured { code, message }
            }
            GatewayError::Unknown { reason, .. } => {
                Self::Internal(format!("unknown PG outcome surfaced as an error: {reason}"))
            }
        }
    }
}
