//! Health, readiness and the event log.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::dto::{EventDto, EventListDto, EventParams, HealthDto, ReadyDto};
use super::extract::{ApiKey, AppQuery};
use super::problem::Problem;
use crate::error::AppError;

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/health", tag = "system",
    responses((status = 200, description = "Alive", body = HealthDto))
)]
pub async fn health() -> Json<HealthDto> {
    Json(HealthDto {
        status: "ok".to_owned(),
    })
}

/// Readiness: the database answers.
#[utoipa::path(
    get, path = "/ready", tag = "system",
    responses(
        (status = 200, description = "Ready", body = ReadyDto),
        (status = 503, description = "The database is unreachable", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/service-unavailable", "title": "Service unavailable", "status": 503, "detail": "the service cannot reach its database; retry later", "code": "SERVICE_UNAVAILABLE"})),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.service.store().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(ReadyDto {
                status: "ready".to_owned(),
                database: "ok".to_owned(),
                pg_gateway: state.service.pg_provider().unwrap_or("noop").to_owned(),
            }),
        )
            .into_response(),
        Err(error) => AppError::Unavailable(error.to_string()).into_response(),
    }
}

/// The durable event log, oldest first after the cursor.
///
/// Every state change and its event are committed in one database transaction, so a consumer
/// that pages with `after` = the last `cursor` it saw misses nothing and sees nothing twice.
#[utoipa::path(
    get, path = "/events", tag = "events",
    params(EventParams),
    responses(
        (status = 200, description = "A page of events", body = EventListDto),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    _: ApiKey,
    AppQuery(params): AppQuery<EventParams>,
) -> Result<Json<EventListDto>, AppError> {
    let after = params.after.unwrap_or(0);
    if after < 0 {
        return Err(AppError::validation("after: must not be negative"));
    }
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::validation("limit: must be 1 to 1000"));
    }
    let events = state.service.events_after(after, limit).await?;
    let next_cursor = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventListDto {
        events: events.into_iter().map(EventDto::from).collect(),
        next_cursor,
    }))
}
