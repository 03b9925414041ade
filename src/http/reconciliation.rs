//! `/reconciliation/runs`: our books checked against Toss's transactions and settlements for one
//! KST business day.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::dto::{ListRunsParams, RunDto, RunListDto, StartRunRequest};
use super::extract::{ApiKey, AppJson, AppQuery};
use super::problem::Problem;
use crate::domain::reconciliation::{ReconciliationRun, run_date};
use crate::error::AppError;

pub const TAG: &str = "reconciliation";

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
    responses(
        (status = 202, description = "The run, `RUNNING`", body = RunDto,
            example = json!({"run_id": "019ad1c4-3b7e-7f10-8a2c-5d9e4f6a7b80", "date": "2026-11-29", "status": "RUNNING",
                "started_at": "2026-11-29T19:00:00.120Z", "finished_at": null, "summary": null, "discrepancies": []})),
        (status = 422, description = "`VALIDATION_ERROR` (`date` is not `YYYY-MM-DD` or is after today in Korea)", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/validation-error", "title": "Validation error", "status": 422, "detail": "date: 2030-01-01 is after today in Korea (2026-11-30)", "code": "VALIDATION_ERROR"})),
        (status = 503, description = "`PG_NOT_CONFIGURED`: no Toss key, so no books to read; or the database unreachable", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/pg-not-configured", "title": "PG not configured", "status": 503, "detail": "no payment gateway is configured that could verify this payment", "code": "PG_NOT_CONFIGURED"})),
    ),
)]
pub async fn start_run(
    State(state): State<AppState>,
    _: ApiKey,
    AppJson(body): AppJson<StartRunRequest>,
) -> Result<Response, AppError> {
    let date = run_date(&body.date)
        .ok_or_else(|| AppError::unprocessable("date: must be a date written YYYY-MM-DD"))?;
    let run = state.reconciliation.start(date).await?;
    Ok((StatusCode::ACCEPTED, Json(dto(&state, &run).await?)).into_response())
}

/// A reconciliation run, with its summary and discrepancies once `COMPLETED`.
#[utoipa::path(
    get, path = "/reconciliation/runs/{run_id}", tag = TAG,
    responses(
        (status = 200, description = "The run", body = RunDto),
    ),
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
        (status = 400, description = "`VALIDATION_ERROR`: `date` is not `YYYY-MM-DD`, or an unknown parameter"),
    ),
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
            run_date(raw)
                .ok_or_else(|| AppError::validation("date: must be a date written YYYY-MM-DD"))
        })
        .transpose()?;
    let mut runs = Vec::new();
    for run in state.reconciliation.runs(date).await? {
        runs.push(dto(&state, &run).await?);
    }
    Ok(Json(RunListDto { runs }))
}
