//! What the PG's records say, as the service and the store read them: a payment's status at
//! Toss, and the rows of Toss's books (transactions and settlements) a reconciliation run stages.

use chrono::NaiveDate;

/// Toss's payment statuses (`status` of the Payment object), as Toss writes them.
#[derive(Debug, Clone, PartialEq, Eq, strum::EnumString, strum::AsRefStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum PgStatus {
    Ready,
    InProgress,
    WaitingForDeposit,
    Done,
    Canceled,
    PartialCanceled,
    Aborted,
    Expired,
    /// A status this code does not know yet (Toss adds values without notice).
    #[strum(default, transparent)]
    Other(String),
}

impl PgStatus {
    /// Toss's `status` as written; a value this code does not know is kept.
    pub fn parse(status: String) -> Self {
        status.parse().unwrap_or(Self::Other(status))
    }

    pub fn as_str(&self) -> &str {
        self.as_ref()
    }
}

text_enum! {
    /// What a transaction did, from its `status` (the payment's status after it, §17.3).
    pub enum TransactionKind in "kind", "transaction kind" {
        /// `DONE`: the approval (or a virtual account's deposit).
        Approval = "APPROVAL",
        /// `CANCELED` / `PARTIAL_CANCELED`: one cancel.
        Cancel = "CANCEL",
        /// Anything else (`WAITING_FOR_DEPOSIT`: a virtual account was issued; no money moved).
        Other = "OTHER",
    }
}

/// One row of `GET /v1/transactions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTransaction {
    pub transaction_key: String,
    pub payment_key: String,
    pub order_id: String,
    /// The payment's status after the transaction.
    pub status: PgStatus,
    /// Always positive: what the approval took or the cancel gave back.
    pub amount: i64,
    /// `transactionAt` as Toss wrote it.
    pub transaction_at: Option<String>,
}

impl PgTransaction {
    pub fn kind(&self) -> TransactionKind {
        match self.status {
            PgStatus::Done => TransactionKind::Approval,
            PgStatus::Canceled | PgStatus::PartialCanceled => TransactionKind::Cancel,
            _ => TransactionKind::Other,
        }
    }
}

/// One row of `GET /v1/settlements`: a sale, or a cancel (negative amounts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSettlement {
    pub payment_key: String,
    pub transaction_key: Option<String>,
    pub order_id: String,
    /// Negative for a cancel.
    pub amount: i64,
    /// What Toss keeps: `amount - payOutAmount` (its fees and their VAT).
    pub fee: i64,
    /// `payOutAmount`: what Toss pays out.
    pub payout: i64,
    pub sold_date: Option<NaiveDate>,
    pub paid_out_date: Option<NaiveDate>,
    /// The row is a cancel's (`cancel` is not null, or the amount is negative).
    pub is_cancel: bool,
}
