//! Toss's books: the transactions of a day (`GET /v1/transactions`) and the settlements of a
//! day's sales (`GET /v1/settlements`), one page per call. Reconciliation reads them page by page
//! (`service::reconciliation`); Toss's JSON never leaves `toss`.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::GatewayError;
use crate::domain::{PgSettlement, PgTransaction};

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
