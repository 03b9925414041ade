//! Review of payments set aside because Toss's record contradicted ours.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::KeyHolder;
use super::dto::{ActorDto, IdempotencyKeyHeader, PaymentDto};
use super::extract::{ApiKey, AppJson};
use super::payments::{TAG, payment_id};
use super::problem::Problem;
use crate::domain::{Actor, ActorType, Review};
use crate::error::AppError;
use crate::service::{ReviewAction, ReviewCommand};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewActionDto {
    /// Read Toss's record and adopt it as it is (refunds for its cancels, its status), then
    /// clear the flag.
    Resync,
    /// Clear the flag and change nothing else.
    Dismiss,
}

/// Body of `POST /payments/{payment_id}/review`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "resync", "note": "Toss dashboard shows the partial cancel; adopting it"}))]
pub struct ReviewRequest {
    pub action: ReviewActionDto,
    /// 1..500 characters: why. Not blank; no control characters but line feeds.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewDto {
    pub review_id: String,
    pub payment_id: String,
    pub action: ReviewActionDto,
    pub note: String,
    /// Kept for version 2 clients (read `requested_by`): the name of the API key that made it
    /// (`key-1`, `key-2`, … for `API_KEYS`; its `name` in `API_KEYS_FILE`), never the key;
    /// `system` for a flag the service cleared itself. Reviews made before version 3 show
    /// `api-key-<n>`.
    pub reviewer: String,
    /// Who made the review: an API key by name (never the key), `system` for a flag the
    /// service cleared itself, `operator` from the console.
    pub requested_by: ActorDto,
    /// What the review did.
    pub outcome: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewListDto {
    pub reviews: Vec<ReviewDto>,
}

impl From<&Review> for ReviewDto {
    fn from(review: &Review) -> Self {
        Self {
            review_id: review.id.clone(),
            payment_id: review.payment_id.to_string(),
            action: if review.action == ReviewAction::Resync.as_str() {
                ReviewActionDto::Resync
            } else {
                ReviewActionDto::Dismiss
            },
            note: review.note.clone(),
            reviewer: review.reviewer.clone(),
            requested_by: ActorDto::from(&review.requested_by),
            outcome: review.outcome.clone(),
            created_at: review.created_at,
        }
    }
}

/// Resolve a payment set aside for review.
#[utoipa::path(
    post, path = "/payments/{payment_id}/review", tag = TAG,
    params(
        ("payment_id" = String, Path, format = Uuid, description = "The payment's id"),
        IdempotencyKeyHeader,
    ),
    request_body = ReviewRequest,
    responses(
        (status = 200, description = "The payment, flag cleared (after adopting Toss's record for `resync`)", body = PaymentDto),
        (status = 400, description = "Malformed JSON, or an `Idempotency-Key` that is not 1..255 printable ASCII", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`INVALID_STATE`: the payment is not set aside, or (`resync`) Toss's record still contradicts ours; `REQUEST_IN_PROGRESS`", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/invalid-state", "title": "Invalid state", "status": 409, "detail": "the payment is not set aside for review", "code": "INVALID_STATE"})),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: the body is over `server.body_limit_bytes`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`VALIDATION_ERROR` (unknown action, note not 1..500 characters) or `IDEMPOTENCY_KEY_REUSED`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`PG_NOT_CONFIGURED` (`resync` without Toss) or Toss/the database unreachable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn review_payment(
    State(state): State<AppState>,
    _: ApiKey,
    holder: Option<KeyHolder>,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ReviewRequest>,
) -> Result<Json<PaymentDto>, AppError> {
    let payment_id = payment_id(&raw_id)?;
    let length = body.note.chars().count();
    if !(1..=500).contains(&length)
        || body.note.trim().is_empty()
        || body.note.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(AppError::unprocessable(
            "note: must be 1 to 500 characters, not blank, without control characters",
        ));
    }
    let actor = holder.map_or_else(
        || Actor::unnamed(ActorType::ApiKey),
        |holder| holder.actor(),
    );
    let payment = state
        .service
        .acting_for(actor)
        .review(ReviewCommand {
            payment_id,
            action: match body.action {
                ReviewActionDto::Resync => ReviewAction::Resync,
                ReviewActionDto::Dismiss => ReviewAction::Dismiss,
            },
            note: body.note,
        })
        .await?;
    Ok(Json(PaymentDto::from(&payment)))
}

/// The reviews of a payment, oldest first.
#[utoipa::path(
    get, path = "/payments/{payment_id}/reviews", tag = TAG,
    params(("payment_id" = String, Path, format = Uuid, description = "The payment's id")),
    responses(
        (status = 200, description = "Every review made of the payment", body = ReviewListDto),
        (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_reviews(
    State(state): State<AppState>,
    _: ApiKey,
    Path(raw_id): Path<String>,
) -> Result<Json<ReviewListDto>, AppError> {
    let reviews = state.service.reviews(payment_id(&raw_id)?).await?;
    Ok(Json(ReviewListDto {
        reviews: reviews.iter().map(ReviewDto::from).collect(),
    }))
}
