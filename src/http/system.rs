//! Health, readiness and the event log.

use axum::Json;
use axum::extract::State;

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
pub async fn ready(State(state): State<AppState>) -> Result<Json<ReadyDto>, AppError> {
    state.service.ready().await?;
    Ok(Json(ReadyDto {
        status: "ready".to_owned(),
        database: "ok".to_owned(),
        pg_gateway: state.service.pg_provider().unwrap_or("noop").to_owned(),
    }))
}

/// The durable event log, oldest first after the cursor.
///
/// Every state change and its event are committed in one database transaction, so a consumer
/// that pages with `after` = the last `cursor` it saw misses nothing and sees nothing twice.
#[utoipa::path(
    get, path = "/events", tag = "events",
    params(EventParams),
    responses(
        (status = 200, description = "A page of events", body = EventListDto, examples(
            ("payment.failed" = (summary = "A payment attempt failed", value = json!({"events": [{
                "cursor": 2, "event_id": "019ab5b3-1d2e-7f3a-8b4c-5d6e7f8a9b0c", "event_type": "payment.failed",
                "version": "1.0", "timestamp": "2026-11-23T09:35:10.002Z", "source": "payment-service", "user_id": "u-2",
                "payload": {"payment_id": "019ab5b2-8d2f-7e4b-8a5f-3c9d7e2f1a4b", "order_id": "order_20261123_0002",
                    "amount": 30000, "currency": "KRW", "error_code": "REJECT_CARD_PAYMENT",
                    "error_message": "한도초과 혹은 잔액부족으로 결제에 실패했습니다."}}], "next_cursor": 2}))),
            ("payment.refunded" = (summary = "A payment was (partly) refunded", value = json!({"events": [{
                "cursor": 3, "event_id": "019ab5b4-2e3f-7a4b-9c5d-6e7f8a9b0c1d", "event_type": "payment.refunded",
                "version": "1.0", "timestamp": "2026-11-23T10:02:11.120Z", "source": "payment-service", "user_id": "u-1",
                "payload": {"payment_id": "019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a",
                    "refund_id": "019ab5b4-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "refund_amount": 5000, "currency": "KRW",
                    "reason": "customer changed their mind", "is_full_refund": false}}], "next_cursor": 3}))),
        )),
        (status = 400, description = "Bad query"),
    ),
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
