//! Reconciliation runs: our books checked against Toss's for one KST day.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::timestamp;
use crate::domain::reconciliation::{
    Discrepancy, DiscrepancyKind, ReconciliationRun, RunStatus, RunSummary, Side,
};

/// Body of `POST /reconciliation/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"date": "2026-11-29"}))]
pub struct StartRunRequest {
    /// A KST calendar date, `YYYY-MM-DD`, up to and including today in Korea (today covers
    /// what happened so far).
    #[schema(format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", min_length = 10, max_length = 10)]
    pub date: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListRunsParams {
    /// Only the run of this KST date (`YYYY-MM-DD`). Absent: the latest 31 runs.
    #[param(format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", min_length = 10, max_length = 10)]
    pub date: Option<String>,
}

/// Our record in a discrepancy: the payment's status and amount (for an approval), or the
/// refund's (for a cancel).
#[derive(Debug, Serialize, ToSchema)]
pub struct OursDto {
    /// The payment concerned: it is set aside for review (`POST /payments/{payment_id}/review`).
    #[schema(format = Uuid)]
    pub payment_id: Option<String>,
    pub status: String,
    pub amount_krw: Option<i64>,
}

/// Toss's record in a discrepancy: the transaction's `status` and amount, or `SETTLED` and a
/// settlement row's amount.
#[derive(Debug, Serialize, ToSchema)]
pub struct TheirsDto {
    pub status: String,
    pub amount_krw: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiscrepancyDto {
    pub kind: DiscrepancyKind,
    pub order_id: Option<String>,
    pub payment_key: Option<String>,
    /// Toss's `transactionKey` of the approval or cancel.
    pub transaction_key: Option<String>,
    /// `null`: we have no record of it (`MISSING_HERE`).
    pub ours: Option<OursDto>,
    /// `null`: Toss has no record of it (`MISSING_AT_TOSS`).
    pub theirs: Option<TheirsDto>,
}

/// A reconciliation run: one per KST date (starting a date again replaces its result).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "run_id": "019ad1c4-3b7e-7f10-8a2c-5d9e4f6a7b80",
    "date": "2026-11-29",
    "status": "COMPLETED",
    "started_at": "2026-11-29T19:00:00.120Z",
    "finished_at": "2026-11-29T19:00:04.871Z",
    "summary": {"toss_transactions": 1204, "matched": 1203, "discrepancies": 1,
                "approved_krw": 18250000, "cancelled_krw": 730000, "fees_krw": 556000, "payout_krw": 16964000},
    "discrepancies": [{
        "kind": "MISSING_HERE", "order_id": "order_20261129_0042",
        "payment_key": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
        "transaction_key": "090A796806E726BBB929F4A2CA7DB9A7",
        "ours": null, "theirs": {"status": "PARTIAL_CANCELED", "amount_krw": 5000}
    }]
}))]
pub struct RunDto {
    #[schema(format = Uuid)]
    pub run_id: String,
    #[schema(format = Date)]
    pub date: String,
    pub status: RunStatus,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// `null` until the run `COMPLETED`.
    pub summary: Option<RunSummary>,
    /// Every discrepancy found (empty until the run `COMPLETED`).
    pub discrepancies: Vec<DiscrepancyDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunListDto {
    pub runs: Vec<RunDto>,
}

impl RunDto {
    pub fn new(run: &ReconciliationRun, discrepancies: &[Discrepancy]) -> Self {
        Self {
            run_id: run.id.to_string(),
            date: run.date.to_string(),
            status: run.status,
            started_at: timestamp(run.started_at),
            finished_at: run.finished_at.map(timestamp),
            summary: run.summary.clone(),
            discrepancies: discrepancies
                .iter()
                .map(|d| DiscrepancyDto {
                    kind: d.kind,
                    order_id: d.order_id.clone(),
                    payment_key: d.payment_key.clone(),
                    transaction_key: d.transaction_key.clone(),
                    ours: d.ours.as_ref().map(|side: &Side| OursDto {
                        payment_id: d.payment_id.clone(),
                        status: side.status.clone(),
                        amount_krw: side.amount_krw,
                    }),
                    theirs: d.theirs.as_ref().map(|side| TheirsDto {
                        status: side.status.clone(),
                        amount_krw: side.amount_krw,
                    }),
                })
                .collect(),
        }
    }
}
