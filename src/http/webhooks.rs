//! `POST /webhooks/toss`: Toss's webhook deliveries. Unsigned, so only a hint (see
//! `service::webhooks`). 200 when handled or deliberately ignored; 503 only when a retry is wanted.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{json_has_nul, nul_in_body};
use crate::domain::Actor;
use crate::error::AppError;
use crate::service::{WebhookOutcome, read_webhook};

pub const TRANSMISSION_ID: &str = "tosspayments-webhook-transmission-id";

const WEBHOOK_BUDGET: std::time::Duration = std::time::Duration::from_secs(8);

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
/// Toss's dashboard shows up as a refund. `BILLING_DELETED` marks the billing key it names
/// `DELETED` (it only ever disables one; an unknown key is ignored with 200).
#[utoipa::path(
    post, path = "/webhooks/toss", tag = "toss redirects",
    request_body = crate::gateway::toss::webhook::Body,
    params(("tosspayments-webhook-transmission-id" = Option<String>, Header, description = "Toss's id of this delivery; retries repeat it")),
    responses(
        (status = 200, description = "Handled, ignored, or a duplicate", body = WebhookReply),
        (status = 400, description = "Not a JSON object, or one whose known fields have other types than these"),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: the body is over `server.body_limit_bytes`"),
        (status = 422, description = "A string of the body contains U+0000 (NUL)"),
        (status = 503, description = "Database or Toss unreachable: Toss should retry"),
    )
)]
pub async fn toss_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookReply>, AppError> {
    let delivery = read_webhook(&body)?;
    // Toss never sends one; any of its strings may end up in a query.
    if json_has_nul(&body) {
        return Err(nul_in_body());
    }
    if let Some(fingerprint) = &delivery.billing_deleted {
        // Only Toss knows billing keys, and this can only disable one: applied as it comes.
        let applied = state
            .service
            .billing_key_deleted_at_toss(fingerprint)
            .await?;
        tracing::info!(event_type = ?delivery.event_type, applied, "billing webhook handled");
        let reason = (!applied).then_some("no active billing key of ours");
        return reply(if applied { "applied" } else { "ignored" }, reason);
    }
    let transmission_id = headers
        .get(TRANSMISSION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| (1..=128).contains(&id.len()));
    let hint = match delivery.hint {
        Ok(hint) => hint,
        Err(reason) => {
            tracing::info!(event_type = ?delivery.event_type, reason, "webhook ignored");
            return reply("ignored", Some(reason));
        }
    };
    // Toss wants its answer within about 10 s; a read-back slower than that is better retried.
    let outcome = tokio::time::timeout(
        WEBHOOK_BUDGET,
        state
            .service
            .acting_for(Actor::toss())
            .webhooks()
            .handle_webhook(transmission_id, hint),
    )
    .await
    .map_err(|_| AppError::Unavailable("webhook read-back took too long".to_owned()))??;
    tracing::info!(
        event_type = ?delivery.event_type,
        created_at = ?delivery.created_at,
        claimed_status = ?delivery.claimed_status,
        transaction_key = ?delivery.transaction_key,
        outcome = outcome.as_str(),
        "webhook handled"
    );
    let reason = match outcome {
        WebhookOutcome::Ignored(reason) => Some(reason),
        WebhookOutcome::Applied | WebhookOutcome::Duplicate => None,
    };
    reply(outcome.as_str(), reason)
}

fn reply(result: &str, reason: Option<&str>) -> Result<Json<WebhookReply>, AppError> {
    Ok(Json(WebhookReply {
        result: result.to_owned(),
        reason: reason.map(str::to_owned),
    }))
}
