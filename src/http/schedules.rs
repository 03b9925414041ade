//! `POST/DELETE /payments/{payment_id}/schedule`: a subscription's renewal charged at a time
//! with a billing key, and again after each retryable decline; the payment's `schedule`.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::consents::rfc3339;
use super::dto::{PaymentDto, body_id, timestamp};
use super::extract::{ApiKey, AppJson};
use super::payments::payment_id;
use crate::domain::{Actor, BillingKeyId, Payment, Schedule, ScheduleStatus, retry_delays};
use crate::error::AppError;
use crate::service::ScheduleCommand;

const TAG: &str = "billing";

/// Body of `POST /payments/{payment_id}/schedule`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"billing_key_id": "019ad0c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
    "charge_at": "2026-12-20T00:00:00+09:00", "retry_after_seconds": [86400, 259200, 604800]}))]
pub struct ScheduleRequest {
    /// An `ACTIVE` billing key of the payment's user.
    #[schema(format = Uuid)]
    pub billing_key_id: String,
    /// When to charge (RFC 3339); a time past is due at once.
    #[schema(format = DateTime)]
    pub charge_at: String,
    /// Documented by `retry_delays_schema`.
    #[schema(schema_with = retry_delays_schema)]
    pub retry_after_seconds: Option<Vec<i64>>,
}

/// A payment's scheduled charge.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"billing_key_id": "019ad0c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
    "charge_at": "2026-12-19T15:00:00.000Z", "next_attempt_at": "2026-12-20T15:00:00.000Z",
    "attempts_made": 1, "retry_after_seconds": [86400, 259200, 604800], "status": "SCHEDULED"}))]
pub struct ScheduleDto {
    #[schema(format = Uuid)]
    pub billing_key_id: String,
    #[schema(format = DateTime)]
    pub charge_at: String,
    /// When the next attempt is due (`SCHEDULED`), or the one being made was (`CHARGING`);
    /// `null` once it ended.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// Attempts Toss answered (declined or approved).
    pub attempts_made: i32,
    pub retry_after_seconds: Vec<u32>,
    pub status: ScheduleStatus,
}

impl From<&Schedule> for ScheduleDto {
    fn from(s: &Schedule) -> Self {
        Self {
            billing_key_id: s.billing_key_id.to_string(),
            charge_at: timestamp(s.charge_at),
            next_attempt_at: s.next_attempt_at.map(timestamp),
            attempts_made: s.attempts_made,
            retry_after_seconds: s.retry_after_seconds.clone(),
            status: s.status,
        }
    }
}

impl PaymentDto {
    /// The payment with its schedule (`None`: it has none).
    pub fn with_schedule(mut self, schedule: Option<&Schedule>) -> Self {
        self.schedule = schedule.map(ScheduleDto::from);
        self
    }
}

/// The payment as answered by the schedule routes.
fn answer(payment: &Payment, schedule: &Schedule) -> Json<PaymentDto> {
    Json(PaymentDto::from(payment).with_schedule(Some(schedule)))
}

/// Schedule the charge of a `PENDING` payment (a subscription's renewal).
///
/// At `charge_at` the service charges the payment with the billing key, as
/// `POST /payments/{payment_id}/charge` does (the **stored** amount; the consent guard; one
/// approval at most, whatever the crashes or instances), within 60 s of its time. After a
/// `retryable` decline it tries again after the next delay of `retry_after_seconds`
/// (`payment.failed`, then `payment.retry_scheduled`); a final decline, the end of the list, an
/// inactive billing key or a missing consent ends it `EXHAUSTED` (`payment.retries_exhausted`).
/// Scheduling again replaces a schedule that has made no attempt yet.
#[utoipa::path(
    post, path = "/payments/{payment_id}/schedule", tag = TAG,
    request_body = ScheduleRequest,
    responses(
        (status = 200, description = "The payment, with its `schedule`", body = PaymentDto),
        (status = 404, description = "No such payment or billing key"),
        (status = 409, description = "`BILLING_KEY_INACTIVE`, or `INVALID_STATE` (not `PENDING`, or a schedule that made an attempt already)"),
        (status = 422, description = "`BILLING_KEY_MISMATCH` (another user's key) or `VALIDATION_ERROR`"),
    ),
)]
pub async fn schedule_payment(
    State(state): State<AppState>,
    _: ApiKey,
    actor: Actor,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ScheduleRequest>,
) -> Result<Json<PaymentDto>, AppError> {
    let payment_id = payment_id(&raw_id)?;
    let billing_key_id: BillingKeyId = body_id("billing_key_id", &body.billing_key_id)?;
    let charge_at = rfc3339("charge_at", &body.charge_at)?;
    let retry_after_seconds = body
        .retry_after_seconds
        .as_deref()
        .map(retry_delays)
        .transpose()
        .map_err(|e| AppError::unprocessable(e.to_string()))?;
    let (payment, schedule) = state
        .service
        .acting_for(actor)
        .schedules()
        .schedule_charge(ScheduleCommand {
            payment_id,
            billing_key_id,
            charge_at,
            retry_after_seconds,
        })
        .await?;
    Ok(answer(&payment, &schedule))
}

/// Cancel a payment's scheduled charge (`CANCELLED`); a charge already at Toss finishes.
#[utoipa::path(
    delete, path = "/payments/{payment_id}/schedule", tag = TAG,
    responses(
        (status = 200, description = "The payment, its `schedule` `CANCELLED`", body = PaymentDto),
        (status = 404, description = "No such payment, or it has no schedule"),
        (status = 409, description = "`INVALID_STATE`: the schedule ended already (`DONE`, `EXHAUSTED`)"),
    ),
)]
pub async fn cancel_schedule(
    State(state): State<AppState>,
    _: ApiKey,
    actor: Actor,
    Path(raw_id): Path<String>,
) -> Result<Json<PaymentDto>, AppError> {
    let (payment, schedule) = state
        .service
        .acting_for(actor)
        .schedules()
        .cancel_schedule(payment_id(&raw_id)?)
        .await?;
    Ok(answer(&payment, &schedule))
}

/// `retry_after_seconds` as the document shows it: 1..10 delays, each 1..2592000 seconds.
fn retry_delays_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let delay = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .minimum(Some(1))
        .maximum(Some(2_592_000));
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(delay)
        .min_items(Some(1))
        .max_items(Some(10))
        .description(Some(
            "Seconds to wait after each `retryable` decline before the next attempt: 1..10 \
             entries, each 1..2592000. Default: `[billing] retry_after_seconds` (1, 3 and 7 days).",
        ))
        .build()
}
