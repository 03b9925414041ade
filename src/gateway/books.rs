//! Toss's books: the transactions of a day (`GET /v1/transactions`) and the settlements of a
//! day's sales (`GET /v1/settlements`), one page per call. Reconciliation reads them page by page
//! (`service::reconciliation`); Toss's JSON never leaves `toss`.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::GatewayError;

/// What a transaction did, from its `status` (the payment's status after it, §17.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionKind {
    /// `DONE`: the approval (or a virtual account's deposit).
    Approval,
    /// `CANCELED` / `PARTIAL_CANCELED`: one cancel.
    Cancel,
    /// Anything else (`WAITING_FOR_DEPOSIT`: a virtual account was issued; no money moved).
    Other,
}

impl TransactionKind {
    pub fn of_status(status: &str) -> Self {
        match status {
            "DONE" => Self::Approval,
            "CANCELED" | "PARTIAL_CANCELED" => Self::Cancel,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approval => "APPROVAL",
            Self::Cancel => "CANCEL",
            Self::Other => "OTHER",
        }
    }
}

/// One row of `GET /v1/transactions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTransaction {
    pub transaction_key: String,
    pub payment_key: String,
    pub order_id: String,
    /// Toss's `status` as written.
    pub status: String,
    /// Always positive: what the approval took or the cancel gave back.
    pub amount: i64,
    /// `transactionAt` as Toss wrote it.
    pub transaction_at: Option<String>,
}

impl PgTransaction {
    pub fn kind(&self) -> TransactionKind {
        TransactionKind::of_status(&self.status)
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

/// The most rows Toss returns per page of either list (§17.3, §17.4).
pub const MAX_PAGE: u32 = 5000;

/// Toss's transaction and settlement lists, one page per call. Only the Toss client has them;
/// without Toss, reconciliation answers `PG_NOT_CONFIGURED`.
#[async_trait]
pub trait Books: Send + Sync + 'static {
    /// Transactions of `date` (00:00:00–23:59:59 KST), oldest first, after the transaction
    /// `starting_after`, at most `limit` (1..=5000).
    async fn transactions(
        &self,
        date: NaiveDate,
        starting_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PgTransaction>, GatewayError>;

    /// Settlements of the sales of `date` (`dateType=soldDate`), page `page` (from 1) of `size`
    /// (1..=5000) rows.
    async fn settlements(
        &self,
        date: NaiveDate,
        page: u32,
        size: u32,
    ) -> Result<Vec<PgSettlement>, GatewayError>;
}
