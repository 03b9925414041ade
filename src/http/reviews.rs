//! Review of payments set aside because Toss's record contradicted ours.

use axum::Json;
use axum::extract::{Path, State};

use super::AppState;
use super::auth::KeyHolder;
use super::dto::{PaymentDto, ReviewDto, ReviewListDto, ReviewRequest, lines};
use super::extract::{ApiKey, AppJson};
use super::payments::{TAG, payment_id};
use super::problem::Problem;
use crate::domain::{Actor, ActorType};
use crate::error::AppError;
use crate::service::ReviewCommand;

/// Resolve a payment set aside for review.
#[utoipa::path(
    post, path = "/payments/{payment_id}/review", tag = TAG,
    request_body = ReviewRequest,
    responses(
        (status = 200, description = "The payment, flag cleared (after adopting Toss's record for `resync`)", body = PaymentDto),
        (status = 409, description = "`INVALID_STATE`: the payment is not set aside, or (`resync`) Toss's record still contradicts ours", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/invalid-state", "title": "Invalid state", "status": 409, "detail": "the payment is not set aside for review", "code": "INVALID_STATE"})),
        (status = 422, description = "`VALIDATION_ERROR` (unknown action, note not 1..500 characters)"),
        (status = 503, description = "`PG_NOT_CONFIGURED` (`resync` without Toss) or Toss/the database unreachable"),
    ),
)]
pub async fn review_payment(
    State(state): State<AppState>,
    _: ApiKey,
    holder: Option<KeyHolder>,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ReviewRequest>,
) -> Result<Json<PaymentDto>, AppError> {
    let payment_id = payment_id(&raw_id)?;
    lines("note", &body.note, 500)?;
    let actor = holder.map_or_else(
        || Actor::unnamed(ActorType::ApiKey),
        |holder| holder.actor(),
    );
    let payment = state
        .service
        .acting_for(actor)
        .reviewing()
        .review(ReviewCommand {
            payment_id,
            action: body.action,
            note: body.note,
        })
        .await?;
    Ok(Json(PaymentDto::from(&payment)))
}

/// The reviews of a payment, oldest first.
#[utoipa::path(
    get, path = "/payments/{payment_id}/reviews", tag = TAG,
    responses(
        (status = 200, description = "Every review made of the payment", body = ReviewListDto),
    ),
)]
pub async fn list_reviews(
    State(state): State<AppState>,
    _: ApiKey,
    Path(raw_id): Path<String>,
) -> Result<Json<ReviewListDto>, AppError> {
    let reviews = state
        .service
        .reviewing()
        .reviews(payment_id(&raw_id)?)
        .await?;
    Ok(Json(ReviewListDto {
        reviews: reviews.iter().map(ReviewDto::from).collect(),
    }))
}
