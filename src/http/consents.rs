//! `POST/GET /billing/consents`: a buyer's consent to a subscription's amount (전자상거래법
//! §13⑥). Every charge, immediate or scheduled, above it is refused 409 `CONSENT_REQUIRED`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::dto::text;
use super::extract::{ApiKey, AppJson, AppQuery};
use crate::domain::{Amount, Consent, UserId};
use crate::error::AppError;
use crate::service::NewConsent;

const TAG: &str = "billing";

/// An RFC 3339 timestamp of a request field.
pub(super) fn rfc3339(field: &str, value: &str) -> Result<DateTime<Utc>, AppError> {
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            AppError::unprocessable(format!(
                "{field}: must be an RFC 3339 timestamp (e.g. 2026-12-01T09:00:00Z)"
            ))
        })
}

/// Body of `POST /billing/consents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": "u-1", "subscription_id": "sub-1", "max_amount_krw": 33000,
    "consented_at": "2026-12-01T09:00:00Z", "evidence": "price-change notice of 2026-11-20 accepted in the app (checkbox), session 8f2c"}))]
pub struct CreateConsentRequest {
    /// The buyer (1..64 characters, not blank, no control characters).
    #[schema(pattern = "user id")]
    pub user_id: String,
    /// The subscription (1..128 characters, not blank, no control characters).
    #[schema(pattern = "subscription id")]
    pub subscription_id: String,
    /// The most a charge of the subscription may be, in KRW (1..1,000,000,000).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub max_amount_krw: i64,
    /// When the buyer agreed (RFC 3339, not in the future).
    #[schema(format = DateTime)]
    pub consented_at: String,
    /// How the buyer agreed (1..500 characters, not blank, no control characters).
    #[schema(min_length = 1, max_length = 500, pattern = "visible text")]
    pub evidence: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentListDto {
    /// Newest first.
    pub consents: Vec<Consent>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListConsentsParams {
    /// The subscription whose consents to list (required).
    #[param(required = true, pattern = "subscription id")]
    pub subscription_id: Option<String>,
}

/// Record a buyer's consent to a subscription's amount.
///
/// A charge (immediate or scheduled) of a payment of this user and subscription whose amount is
/// above the newest consent's `max_amount_krw` is refused 409 `CONSENT_REQUIRED` before Toss is
/// called. Without any consent, the subscription's first approved charge's amount is the limit
/// (the first charge itself is not limited).
#[utoipa::path(
    post, path = "/billing/consents", tag = TAG,
    request_body = CreateConsentRequest,
    responses(
        (status = 201, description = "The consent, recorded", body = Consent),
        (status = 422, description = "`VALIDATION_ERROR` (a field out of its bounds, `consented_at` in the future)"),
    ),
)]
pub async fn create_consent(
    State(state): State<AppState>,
    _: ApiKey,
    AppJson(body): AppJson<CreateConsentRequest>,
) -> Result<Response, AppError> {
    let user_id = UserId::parse(&body.user_id)?;
    let subscription_id = text("subscription_id", &body.subscription_id, 128)?;
    let max_amount = Amount::new(body.max_amount_krw)
        .map_err(|e| AppError::unprocessable(format!("max_amount_krw: {}", e.reason)))?;
    let consented_at = rfc3339("consented_at", &body.consented_at)?;
    let evidence = text("evidence", &body.evidence, 500)?;
    let consent = state
        .service
        .schedules()
        .record_consent(NewConsent {
            user_id: user_id.as_str().to_owned(),
            subscription_id,
            max_amount_krw: max_amount.get(),
            consented_at,
            evidence,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(consent)).into_response())
}

/// A subscription's consents, newest first.
#[utoipa::path(
    get, path = "/billing/consents", tag = TAG,
    params(ListConsentsParams),
    responses(
        (status = 200, description = "The subscription's consents", body = ConsentListDto),
        (status = 400, description = "Missing `subscription_id`, or a bad query"),
        (status = 422, description = "`VALIDATION_ERROR`: a blank `subscription_id` or one with control characters"),
    ),
)]
pub async fn list_consents(
    State(state): State<AppState>,
    _: ApiKey,
    AppQuery(params): AppQuery<ListConsentsParams>,
) -> Result<Json<ConsentListDto>, AppError> {
    let Some(raw) = params.subscription_id else {
        return Err(AppError::validation("subscription_id: required"));
    };
    let subscription_id = text("subscription_id", &raw, 128)?;
    let consents = state.service.schedules().consents(&subscription_id).await?;
    Ok(Json(ConsentListDto { consents }))
}
