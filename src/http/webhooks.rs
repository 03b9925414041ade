//! `POST /webhooks/toss`: Toss's webhook deliveries. Unsigned, so only a hint (see
//! `service::webhooks`). 200 when handled or deliberately ignored; 503 only when a retry is wanted.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{json_has_nul, nul_in_body};
use crate::domain::Actor;
use crate::error::AppError;
use crate::service::{WebhookOutcome, read_webhook};

pub const TRANSMISSION_ID: &str = "tosspayments-webhook-transmission-id";

const WEBHOOK_BUDGET: std::time::Duration = std::time::Duration::from_secs(8);

/// A Toss webhook body: `PAYMENT_STATUS_CHANGED` (a Payment in `data`), `CANCEL_STATUS_CHANGED`
/// (a Cancel in `data`), `BILLING_DELETED` (`data: {billingKey, reason}`), or `DEPOSIT_CALLBACK`
/// (flat, no `eventType`, with `secret`).
// The body's schema for the OpenAPI document only; the service reads the body.
#[derive(Debug, ToSchema)]
#[expect(dead_code, reason = "documents the body; the parser has its own type")]
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
/// Toss's dashboard shows up as a refund. `BILLING_DELETED` marks the billing key it names
/// `DELETED` (it only ever disables one; an unknown key is ignored with 200).
#[utoipa::path(
    post, path = "/webhooks/toss", tag = "toss redirects",
    request_body = TossWebhook,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented body and the parser agree: the schema's example names a payment.
    #[test]
    fn the_documented_example_is_a_webhook_the_parser_reads() {
        let doc = serde_json::to_value(crate::http::openapi()).unwrap();
        let example = &doc["components"]["schemas"]["TossWebhook"]["example"];
        assert!(example.is_object(), "{example}");
        let delivery = read_webhook(example.to_string().as_bytes()).unwrap();
        let hint = delivery.hint.unwrap();
        assert_eq!(hint.event_type, "PAYMENT_STATUS_CHANGED");
        assert!(matches!(
            hint.payment,
            crate::service::HintedPayment::ByOrder(_)
        ));
    }
}
