//! `POST /webhooks/toss`: Toss's webhook deliveries. Unsigned, so only a hint (see
//! `service::webhooks`). 200 when handled or deliberately ignored; 503 only when a retry is wanted.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{json_has_nul, nul_in_body};
use super::problem::Problem;
use crate::error::AppError;
use crate::service::{WebhookHint, WebhookOutcome};

pub const TRANSMISSION_ID: &str = "tosspayments-webhook-transmission-id";

const WEBHOOK_BUDGET: std::time::Duration = std::time::Duration::from_secs(8);

/// A Toss webhook body: `PAYMENT_STATUS_CHANGED` (a Payment in `data`), `CANCEL_STATUS_CHANGED`
/// (a Cancel in `data`), or `DEPOSIT_CALLBACK` (flat, no `eventType`, with `secret`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "eventType": "PAYMENT_STATUS_CHANGED",
    "createdAt": "2026-11-23T12:18:15.000000",
    "data": {
        "paymentKey": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
        "orderId": "order_20261123_0001",
        "status": "DONE",
        "totalAmount": 15000,
        "secret": "ps_eqRGgYO1r57E4Z541ZMW3QnN2Eya"
    }
}))]
pub struct TossWebhook {
    /// Absent for `DEPOSIT_CALLBACK`.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub event_type: Option<String>,
    #[schema(pattern = r"^[^\u0000]*$")]
    pub created_at: Option<String>,
    /// The Payment (or Cancel) object; its contents are only a hint. Any JSON value is taken (a
    /// body without an object here is ignored), as long as no string in it holds U+0000.
    pub data: Option<Value>,
    /// `DEPOSIT_CALLBACK` only.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub secret: Option<String>,
    /// `DEPOSIT_CALLBACK` only.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub status: Option<String>,
    /// `DEPOSIT_CALLBACK` only.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub order_id: Option<String>,
    /// `DEPOSIT_CALLBACK` only.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub transaction_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"result": "applied"}))]
pub struct WebhookReply {
    /// `applied`, `ignored` or `duplicate`.
    pub result: String,
    /// Why it was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Receive a Toss webhook.
///
/// The body is never trusted: the service reads the payment back from Toss (by `paymentKey`,
/// or by `orderId` for `DEPOSIT_CALLBACK`) and applies Toss's record, moving states forward
/// only. A `secret` that differs from the one Toss returned at confirm time is ignored.
/// Deliveries are de-duplicated by `tosspayments-webhook-transmission-id`. A cancel made in
/// Toss's dashboard shows up as a refund.
#[utoipa::path(
    post, path = "/webhooks/toss", tag = "toss redirects",
    request_body = TossWebhook,
    params(("tosspayments-webhook-transmission-id" = Option<String>, Header, description = "Toss's id of this delivery; retries repeat it")),
    responses(
        (status = 200, description = "Handled, ignored, or a duplicate", body = WebhookReply),
        (status = 400, description = "Not a JSON object, or one whose known fields have other types than these", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: the body is over `server.body_limit_bytes`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A string of the body contains U+0000 (NUL)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: this address is over the public routes' limit (`limits.public_requests_per_sec`, `limits.public_burst`)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until a request from this address is let through again"))),
        (status = 503, description = "Database or Toss unreachable: Toss should retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn toss_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookReply>, AppError> {
    // serde fills a struct from an array too, by position; Toss sends an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AppError::validation(
            "not a Toss webhook body: expected a JSON object",
        ));
    }
    let webhook: TossWebhook = serde_json::from_slice(&body)
        .map_err(|e| AppError::validation(format!("not a Toss webhook body: {e}")))?;
    // Toss never sends one; any of its strings may end up in a query.
    if json_has_nul(&body) {
        return Err(nul_in_body());
    }
    let transmission_id = headers
        .get(TRANSMISSION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| (1..=128).contains(&id.len()));
    let hint = match hint_of(&webhook) {
        Ok(hint) => hint,
        Err(reason) => {
            tracing::info!(event_type = ?webhook.event_type, reason, "webhook ignored");
            return Ok(Json(WebhookReply {
                result: "ignored".to_owned(),
                reason: Some(reason.to_owned()),
            }));
        }
    };
    // Toss wants its answer within about 10 s; a read-back slower than that is better retried.
    let outcome = tokio::time::timeout(
        WEBHOOK_BUDGET,
        state.service.handle_webhook(transmission_id, hint),
    )
    .await
    .map_err(|_| AppError::Unavailable("webhook read-back took too long".to_owned()))??;
    tracing::info!(
        event_type = ?webhook.event_type,
        created_at = ?webhook.created_at,
        claimed_status = ?webhook.status,
        transaction_key = ?webhook.transaction_key,
        outcome = outcome.as_str(),
        "webhook handled"
    );
    Ok(Json(WebhookReply {
        result: outcome.as_str().to_owned(),
        reason: match outcome {
            WebhookOutcome::Ignored(reason) => Some(reason.to_owned()),
            WebhookOutcome::Applied | WebhookOutcome::Duplicate => None,
        },
    }))
}

fn text(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .map(str::to_owned)
}

fn hint_of(webhook: &TossWebhook) -> Result<WebhookHint, &'static str> {
    match webhook.event_type.as_deref() {
        Some(kind @ ("PAYMENT_STATUS_CHANGED" | "CANCEL_STATUS_CHANGED")) => {
            let data = webhook.data.as_ref().ok_or("no data")?;
            Ok(WebhookHint {
                event_type: kind.to_owned(),
                payment_key: text(data.get("paymentKey")),
                order_id: text(data.get("orderId")),
                secret: text(data.get("secret")),
            })
        }
        Some(_) => Err("not a payment event"),
        None if webhook.order_id.is_some() && webhook.secret.is_some() => Ok(WebhookHint {
            event_type: "DEPOSIT_CALLBACK".to_owned(),
            payment_key: None,
            order_id: webhook.order_id.clone().filter(|o| o.len() <= 64),
            secret: webhook.secret.clone().filter(|s| s.len() <= 64),
        }),
        None => Err("unrecognised body"),
    }
}
