//! `/reconciliation/runs`: our books checked against Toss's transactions and settlements for one
//! KST business day.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::dto::{IdempotencyKeyHeader, timestamp};
use super::extract::{ApiKey, AppJson, AppQuery};
use super::problem::Problem;
use crate::domain::reconciliation::{Discrepancy, ReconciliationRun, RunSummary, Side};
use crate::error::AppError;

pub const TAG: &str = "reconciliation";

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

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatusDto {
    /// Toss's lists are being read and compared.
    Running,
    /// The comparison finished, whatever it found.
    Completed,
    /// Toss or the database could not be read; start the date again.
    Failed,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscrepancyKindDto {
    /// Toss has an approval or cancel (or a settlement) we have no record of.
    MissingHere,
    /// We hold a completed payment or refund of that day that Toss does not.
    MissingAtToss,
    AmountMismatch,
    StatusMismatch,
}

/// The run's totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunSummaryDto {
    /// Toss's transactions of the day (approvals, cancels, issued virtual accounts).
    pub toss_transactions: i64,
    /// Toss transactions matched to our records.
    pub matched: i64,
    /// The number of `discrepancies`.
    pub discrepancies: i64,
    /// Sum of Toss's approvals of the day.
    pub approved_krw: i64,
    /// Sum of Toss's cancels of the day.
    pub cancelled_krw: i64,
    /// What Toss keeps of the day's sales (settlements' amount minus payout), cancels netted.
    pub fees_krw: i64,
    /// What Toss pays out for the day's sales (settlements' `payOutAmount`), cancels netted.
    pub payout_krw: i64,
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
    pub kind: DiscrepancyKindDto,
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
    pub status: RunStatusDto,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// `null` until the run `COMPLETED`.
    pub summary: Option<RunSummaryDto>,
    /// Every discrepancy found (empty until the run `COMPLETED`).
    pub discrepancies: Vec<DiscrepancyDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunListDto {
    pub runs: Vec<RunDto>,
}

impl RunDto {
    fn new(run: &ReconciliationRun, discrepancies: &[Discrepancy]) -> Self {
        use crate::domain::reconciliation::{DiscrepancyKind as Kind, RunStatus};
        Self {
            run_id: run.id.to_string(),
            date: run.date.to_string(),
            status: match run.status {
                RunStatus::Running => RunStatusDto::Running,
                RunStatus::Completed => RunStatusDto::Completed,
                RunStatus::Failed => RunStatusDto::Failed,
            },
            started_at: timestamp(run.started_at),
            finished_at: run.finished_at.map(timestamp),
            summary: run.summary.as_ref().map(|s: &RunSummary| RunSummaryDto {
                toss_transactions: s.toss_transactions,
                matched: s.matched,
                discrepancies: s.discrepancies,
                approved_krw: s.approved_krw,
                cancelled_krw: s.cancelled_krw,
                fees_krw: s.fees_krw,
                payout_krw: s.payout_krw,
            }),
            discrepancies: discrepancies
                .iter()
                .map(|d| DiscrepancyDto {
                    kind: match d.kind {
                        Kind::MissingHere => DiscrepancyKindDto::MissingHere,
                        Kind::MissingAtToss => DiscrepancyKindDto::MissingAtToss,
                        Kind::AmountMismatch => DiscrepancyKindDto::AmountMismatch,
                        Kind::StatusMismatch => DiscrepancyKindDto::StatusMismatch,
                    },
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

/// `YYYY-MM-DD`, exactly.
fn parse_date(raw: &str) -> Option<NaiveDate> {
    let digits = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    digits
        .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
}

async fn dto(state: &AppState, run: &ReconciliationRun) -> Result<RunDto, AppError> {
    let discrepancies = state.reconciliation.discrepancies(run).await?;
    Ok(RunDto::new(run, &discrepancies))
}

/// Start a reconciliation run of one KST date.
///
/// Reads Toss's transactions of the date (`GET /v1/transactions`, every page) and the
/// settlements of its sales (`GET /v1/settlements`, every page), compares them with our
/// payments and refunds, and sets aside every payment a discrepancy names. Answers at once with
/// the run `RUNNING`; poll `GET /reconciliation/runs/{run_id}`. A date already running is
/// answered as it is; a finished date is run again and its result replaced.
#[utoipa::path(
    post, path = "/reconciliation/runs", tag = TAG,
    request_body = StartRunRequest,
    params(IdempotencyKeyHeader),
    responses(
        (status = 202, description = "The run, `RUNNING`", body = RunDto,
            example = json!({"run_id": "019ad1c4-3b7e-7f10-8a2c-5d9e4f6a7b80", "date": "2026-11-29", "status": "RUNNING",
                "started_at": "2026-11-29T19:00:00.120Z", "finished_at": null, "summary": null, "discrepancies": []})),
        (status = 400, description = "Malformed JSON, or an `Idempotency-Key` that is not 1..255 printable ASCII", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`REQUEST_IN_PROGRESS`: a duplicate under the same `Idempotency-Key` is still running", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: the body is over `server.body_limit_bytes`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`VALIDATION_ERROR` (`date` is not `YYYY-MM-DD` or is after today in Korea) or `IDEMPOTENCY_KEY_REUSED`", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/validation-error", "title": "Validation error", "status": 422, "detail": "date: 2030-01-01 is after today in Korea (2026-11-30)", "code": "VALIDATION_ERROR"})),
        (status = 503, description = "`PG_NOT_CONFIGURED`: no Toss key, so no books to read; or the database unreachable", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/pg-not-configured", "title": "PG not configured", "status": 503, "detail": "no payment gateway is configured that could verify this payment", "code": "PG_NOT_CONFIGURED"})),
    ),
    security(("api_key" = []))
)]
pub async fn start_run(
    State(state): State<AppState>,
    _: ApiKey,
    AppJson(body): AppJson<StartRunRequest>,
) -> Result<Response, AppError> {
    let date = parse_date(&body.date)
        .ok_or_else(|| AppError::unprocessable("date: must be a date written YYYY-MM-DD"))?;
    let run = state.reconciliation.start(date).await?;
    Ok((StatusCode::ACCEPTED, Json(dto(&state, &run).await?)).into_response())
}

/// A reconciliation run, with its summary and discrepancies once `COMPLETED`.
#[utoipa::path(
    get, path = "/reconciliation/runs/{run_id}", tag = TAG,
    params(("run_id" = String, Path, format = Uuid, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = RunDto),
        (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_run(
    State(state): State<AppState>,
    _: ApiKey,
    Path(run_id): Path<String>,
) -> Result<Json<RunDto>, AppError> {
    let run = state.reconciliation.run(&run_id).await?;
    Ok(Json(dto(&state, &run).await?))
}

/// Reconciliation runs: the run of a date, or the latest 31 runs, newest date first.
#[utoipa::path(
    get, path = "/reconciliation/runs", tag = TAG,
    params(ListRunsParams),
    responses(
        (status = 200, description = "The runs", body = RunListDto),
        (status = 400, description = "`VALIDATION_ERROR`: `date` is not `YYYY-MM-DD`, or an unknown parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_runs(
    State(state): State<AppState>,
    _: ApiKey,
    AppQuery(params): AppQuery<ListRunsParams>,
) -> Result<Json<RunListDto>, AppError> {
    let date = params
        .date
        .as_deref()
        .map(|raw| {
            parse_date(raw)
                .ok_or_else(|| AppError::validation("date: must be a date written YYYY-MM-DD"))
        })
        .transpose()?;
    let mut runs = Vec::new();
    for run in state.reconciliation.runs(date).await? {
        runs.push(dto(&state, &run).await?);
    }
    Ok(Json(RunListDto { runs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_exactly_yyyy_mm_dd() {
        assert_eq!(
            parse_date("2026-11-29"),
            NaiveDate::from_ymd_opt(2026, 11, 29)
        );
        for bad in [
            "2026-1-29",
            "2026-11-31",
            "+2026-11-2",
            "2026/11/29",
            "２026-11-29",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
