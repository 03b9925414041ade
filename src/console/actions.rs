//! The console's forms (POST): resolving a review and starting a reconciliation run. Each
//! checks the session's CSRF token first, then calls the same use case as the API's route,
//! acting for the operator; on success it answers 303 back to its page (post/redirect/get).

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::auth::{SignedIn, csrf_refused};
use super::{BASE, Console, Failure, to};
use crate::domain::reconciliation::{RunTrigger, run_date};
use crate::error::{AppError, payment_id};
use crate::service::{ReviewAction, ReviewCommand};

/// The longest note, as the API's review route takes it.
const MAX_NOTE: usize = 500;

#[derive(Deserialize)]
pub struct ReviewForm {
    csrf_token: Option<String>,
    action: Option<String>,
    note: Option<String>,
}

/// The note as the API takes it: 1..500 characters, line breaks allowed (a browser sends them
/// as CR LF), no other control character.
fn note(raw: Option<&str>) -> Result<String, AppError> {
    let note = raw.unwrap_or_default().replace("\r\n", "\n");
    let length = note.chars().count();
    if note.trim().is_empty() || length > MAX_NOTE {
        return Err(AppError::unprocessable(format!(
            "note: must be 1 to {MAX_NOTE} characters"
        )));
    }
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::unprocessable(
            "note: must not contain control characters",
        ));
    }
    Ok(note)
}

/// `POST /console/payments/{payment_id}/review`: `resync` or `dismiss` with a note, recorded as
/// the operator's review (the API's `POST /payments/{payment_id}/review`).
pub async fn review(
    State(console): State<Console>,
    signed_in: SignedIn,
    Path(raw_id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, Failure> {
    if !signed_in.csrf_ok(form.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let payment_id = payment_id(&raw_id)?;
    let action = match form.action.as_deref() {
        Some("resync") => ReviewAction::Resync,
        Some("dismiss") => ReviewAction::Dismiss,
        _ => Err(AppError::unprocessable("action: must be resync or dismiss"))?,
    };
    let note = note(form.note.as_deref())?;
    let command = ReviewCommand {
        payment_id,
        action,
        note,
    };
    signed_in
        .service(&console)
        .reviewing()
        .review(command)
        .await?;
    Ok(to(&format!("{BASE}/?notice=resolved")))
}

#[derive(Deserialize)]
pub struct RunForm {
    csrf_token: Option<String>,
    date: Option<String>,
}

/// `POST /console/reconciliation/runs`: starts a run of the date (the API's
/// `POST /reconciliation/runs`), recorded as started from the console.
pub async fn start_run(
    State(console): State<Console>,
    signed_in: SignedIn,
    Form(form): Form<RunForm>,
) -> Result<Response, Failure> {
    if !signed_in.csrf_ok(form.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let date = form
        .date
        .as_deref()
        .map(str::trim)
        .and_then(run_date)
        .ok_or_else(|| AppError::unprocessable("date: must be a date written YYYY-MM-DD"))?;
    tracing::info!(operator = %signed_in.session.operator, %date, "console: reconciliation run asked for");
    console
        .reconciliation
        .start_from(date, RunTrigger::Console)
        .await?;
    Ok(to(&format!("{BASE}/reconciliation?notice=run_started")))
}
