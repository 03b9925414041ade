//! The payment gateway (PG) seen by the service: confirm, cancel, read back.
//!
//! `toss` speaks Toss Payments' HTTP API and reads its webhook bodies; `noop` is used when no Toss
//! key is configured and only records what callers claim. Toss's JSON types never leave this
//! module: the service sees [`PgPayment`], [`WebhookHint`] and [`GatewayError`].

pub mod books;
mod metered;
mod noop;
pub mod toss;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    AuthKey, BillingKeySecret, CardInfo, CustomerKey, OrderId, PaymentKey, PgDetails, RefundAccount,
};

pub use crate::domain::{PgSettlement, PgStatus, PgTransaction, TransactionKind};
pub use books::Books;
pub use metered::{MeteredBooks, MeteredGateway};
pub use noop::NoopGateway;
pub use toss::{TossClient, TossOptions};

/// A confirm request. `amount` must come from our database, never from a client. Serialized,
/// it is the body of Toss's `POST /v1/payments/confirm`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmRequest {
    pub payment_key: PaymentKey,
    pub order_id: OrderId,
    pub amount: i64,
    /// Sent as Toss's `Idempotency-Key`: one per confirm attempt, reused on retries of it.
    #[serde(skip)]
    pub idempotency_key: String,
}

/// A cancel (refund) request. Every cancel sends the balance it expects as `refundableAmount`;
/// a refund also sends its amount as `cancelAmount`, while the cancel of a virtual account not
/// yet paid sends no amount (Toss cancels such an account whole).
#[derive(Debug, Clone)]
pub struct CancelRequest {
    pub payment_key: PaymentKey,
    pub reason: String,
    pub amount: Option<i64>,
    /// Our view of the balance before this cancel, sent as `refundableAmount`: Toss refuses the
    /// cancel if its balance differs, so no two cancels can apply to the same balance.
    pub refundable_amount: Option<i64>,
    /// Sent as `taxFreeAmount`.
    pub tax_free_amount: Option<i64>,
    /// Sent as `refundReceiveAccount` (deposited virtual accounts); `Debug` masks the number.
    pub refund_account: Option<RefundAccount>,
    /// Sent as Toss's `Idempotency-Key`: fresh for every send (Toss replays a reused key's
    /// answer, errors included); `refundable_amount` is what makes a resend safe.
    pub idempotency_key: String,
}

#[cfg(test)]
impl CancelRequest {
    /// For tests: a refund of `amount` KRW of the 1,000 refundable under `payment_key`, nothing
    /// tax-free, no account, sent as `refund-1`.
    pub(crate) fn refund(payment_key: &str, reason: &str, amount: i64) -> Self {
        Self {
            payment_key: PaymentKey::parse(payment_key).expect("a valid key"),
            reason: reason.to_owned(),
            amount: Some(amount),
            refundable_amount: Some(1000),
            tax_free_amount: None,
            refund_account: None,
            idempotency_key: "refund-1".to_owned(),
        }
    }
}

/// One cancel in Toss's `cancels[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgCancel {
    pub transaction_key: String,
    pub amount: i64,
    pub reason: Option<String>,
    /// `cancelStatus`; `DONE` for every domestic cancel.
    pub status: Option<String>,
    pub canceled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `taxFreeAmount` of this cancel.
    pub tax_free_amount: i64,
}

/// The PG's own record of a payment, as returned by confirm, cancel and lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgPayment {
    pub payment_key: PaymentKey,
    /// As the PG wrote it: compared with ours, never used to address anything (a record may be
    /// about another order, and the no-op gateway's cancel names none).
    pub order_id: String,
    pub status: PgStatus,
    pub total_amount: Option<i64>,
    pub balance_amount: Option<i64>,
    pub currency: Option<String>,
    pub method: Option<String>,
    /// Webhook verification value (`secret`), stored at confirm time.
    pub secret: Option<String>,
    pub last_transaction_key: Option<String>,
    /// `approvedAt`: set only once Toss approved the payment (money taken, §4). A virtual
    /// account cancelled before its deposit reads `CANCELED` without it.
    pub approved_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `taxFreeAmount`: the tax-free part Toss holds now (fixed by the payment window, not by
    /// us; it shrinks with each cancel's `taxFreeAmount`).
    pub tax_free_amount: Option<i64>,
    /// `virtualAccount.expired`: the account's due date passed without a deposit. Toss keeps
    /// it `WAITING_FOR_DEPOSIT` and sends no webhook.
    pub deposit_expired: bool,
    pub cancels: Vec<PgCancel>,
    /// `failure` of an aborted or expired payment.
    pub failure: Option<PgFailure>,
    /// `method`, `card`, `virtualAccount`, `receipt.url`.
    pub details: PgDetails,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgFailure {
    pub code: String,
    pub message: String,
}

/// What a PG's webhook delivery says, reduced to what can find the payment. Toss does not sign
/// its webhooks, so this is only a hint: the service reads the payment back before acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHint {
    pub event_type: String,
    pub payment: HintedPayment,
    /// `secret` of the body (DEPOSIT_CALLBACK, or the Payment in PAYMENT_STATUS_CHANGED).
    pub secret: Option<String>,
}

/// How a webhook body names its payment. An order id, when the body has one, is what counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HintedPayment {
    ByOrder(OrderId),
    ByKey(PaymentKey),
    /// By a value that is not an order id or a key: no payment of ours has it.
    Malformed,
    /// Not at all.
    Missing,
}

/// Why a PG call did not succeed, classified by what the caller may conclude.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The PG refused for good (card declined, not cancelable, ...). Nothing happened.
    #[error("declined by the PG: {code}")]
    Declined { code: String, message: String },
    /// We do not know whether the operation happened: timeout, connection error, 5xx, or a code
    /// that means "maybe". Read the payment back before deciding anything.
    #[error("outcome unknown: {reason}")]
    Unknown {
        reason: String,
        code: Option<String>,
        message: Option<String>,
    },
    /// Our side is misconfigured (bad key, wrong key set, malformed request). Nothing happened;
    /// a person must fix the configuration.
    #[error("PG misconfigured: {code}")]
    Misconfigured { code: String, message: String },
}

/// How a PG call ended, for logs and metrics (the label is the name in snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    Ok,
    Declined,
    Unknown,
    Misconfigured,
}

impl GatewayError {
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Declined { .. } => Outcome::Declined,
            Self::Unknown { .. } => Outcome::Unknown,
            Self::Misconfigured { .. } => Outcome::Misconfigured,
        }
    }
}

#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// `Some("toss")` for a real PG whose answers prove a payment; `None` for the no-op gateway,
    /// which verifies nothing (the service then records the caller's claim, with an API key).
    fn provider(&self) -> Option<&'static str>;

    /// `POST /v1/payments/confirm`. A 200 is returned as is; the caller checks it.
    async fn confirm(&self, request: &ConfirmRequest) -> Result<PgPayment, GatewayError>;

    /// `POST /v1/payments/{paymentKey}/cancel` with `cancelAmount`.
    async fn cancel(&self, request: &CancelRequest) -> Result<PgPayment, GatewayError>;

    /// `GET /v1/payments/{paymentKey}`; `Ok(None)` when the PG has no such payment.
    async fn payment_by_key(
        &self,
        payment_key: &PaymentKey,
    ) -> Result<Option<PgPayment>, GatewayError>;

    /// `GET /v1/payments/orders/{orderId}`; `Ok(None)` when the PG has no such payment.
    async fn payment_by_order(&self, order_id: &OrderId)
    -> Result<Option<PgPayment>, GatewayError>;
}

/// `POST /v1/billing/authorizations/issue`: turn a card registration's single-use `authKey`
/// into a billing key.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub auth_key: AuthKey,
    pub customer_key: CustomerKey,
    /// Derived from the `authKey`: a repeat of the same issue replays Toss's first answer.
    pub idempotency_key: String,
}

/// A billing key Toss issued (its `Billing` object, what we keep of it).
#[derive(Debug, Clone)]
pub struct PgBillingKey {
    pub billing_key: BillingKeySecret,
    pub customer_key: String,
    pub method: Option<String>,
    pub card: Option<CardInfo>,
}

/// `POST /v1/billing/{billingKey}`: charge a billing key. `amount`, `order_id` and
/// `order_name` come from our database, never from a client. Serialized, it is the body (the
/// billing key goes in the path).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargeRequest {
    #[serde(skip)]
    pub billing_key: BillingKeySecret,
    pub customer_key: CustomerKey,
    pub amount: i64,
    pub order_id: OrderId,
    pub order_name: String,
    pub tax_free_amount: i64,
    /// One per charge attempt, the same for every send of it: Toss replays the first answer,
    /// so a resend after an unknown outcome cannot charge twice.
    #[serde(skip)]
    pub idempotency_key: String,
}

/// Toss billing (자동결제), under the billing contract's secret key. It is a payment gateway too:
/// the payments it charged are read back (`payment_by_order` settles an unknown charge outcome:
/// Toss sends no webhook for billing approvals) and cancelled under the same key (their MID).
#[async_trait]
pub trait BillingGateway: PaymentGateway {
    /// `POST /v1/billing/authorizations/issue`.
    async fn issue_billing_key(&self, request: &IssueRequest)
    -> Result<PgBillingKey, GatewayError>;

    /// `POST /v1/billing/{billingKey}`. A 200 is Toss's Payment object.
    async fn charge(&self, request: &ChargeRequest) -> Result<PgPayment, GatewayError>;

    /// Whether a decline with this code may pass if the same card is charged again later.
    fn decline_is_retryable(&self, code: &str) -> bool;
}

/// Timeouts of the PG client. Confirm and cancel go out to card companies synchronously, so the
/// read timeout is long; see `docs/toss-api.md` §11.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub lookup: Duration,
}
