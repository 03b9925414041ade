//! Where Toss sends the buyer's browser after the payment window: the success and fail URLs.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

use super::AppState;
use super::dto::{PaymentFailViewDto, PublicPaymentDto, TossFailParams, TossSuccessParams};
use super::extract::AppQuery;
use super::openapi::PgFailed;
use super::payments::confirm_response;
use super::problem::{Problem, log_cause};
use crate::domain::{Actor, Caller};
use crate::domain::{Failure, OrderId, PaymentKey};
use crate::error::AppError;
use crate::service::ConfirmOutcome;

pub const TAG: &str = "toss redirects";

/// Toss's success redirect: confirms the payment with the stored amount.
///
/// The query's `amount` must equal the stored amount (else Toss is not called). With
/// `redirect.success_url`/`redirect.fail_url` configured the browser is sent on with 303 See
/// Other to `{success_url}?payment_id=…&order_id=…&status=…` or
/// `{fail_url}?order_id=…&code=…&message=…`; otherwise the answer is JSON. Reloading gives the
/// same answer and never a second Toss confirm. The buyer's browser needs no API key, so the
/// JSON answer is the public view of the payment, whoever calls (no `user_id` or
/// `subscription_id`), and only to the caller who presented the payment's own `paymentKey`:
/// another key for a paid order is a problem that shows nothing of it.
#[utoipa::path(
    get, path = "/payments/toss/success", tag = TAG,
    params(TossSuccessParams),
    responses(
        (status = 200, description = "Confirmed (JSON mode)", body = PublicPaymentDto),
        (status = 202, description = "Outcome at Toss unknown; settles by itself (JSON mode)", body = PublicPaymentDto),
        (status = 303, description = "Redirect to the configured success or fail URL"),
        (status = 400, description = "Missing or malformed query parameter"),
        (status = 402, description = "`PG_DECLINED`: Toss declined (the payment stays `PENDING` with `failure`), or Toss has no record of the `paymentKey` for this order (nothing recorded: no `failure`, no event)"),
        (status = 409, description = "`INVALID_STATE`: the payment is not confirmable with this `paymentKey` (paid by another key, cancelled, or another attempt Toss knows is in flight); nothing of the payment is shown"),
        (status = 404, description = "Unknown orderId"),
        (status = 422, description = "`AMOUNT_MISMATCH`: the redirect's amount differs from the stored one (Toss not called); or an unsupported `paymentType`"),
        PgFailed,
        (status = 503, description = "`PG_NOT_CONFIGURED`: the service runs the no-op gateway"),
    )
)]
pub async fn toss_success(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<TossSuccessParams>,
) -> Response {
    let order_id = params.order_id.clone();
    let result = async {
        let order_id = OrderId::parse(params.order_id.as_deref().unwrap_or_default())
            .map_err(|e| AppError::validation(format!("orderId: {}", e.reason)))?;
        let key = PaymentKey::parse(params.payment_key.as_deref().unwrap_or_default())
            .map_err(|e| AppError::validation(format!("paymentKey: {}", e.reason)))?;
        // BRANDPAY payments are confirmed at a different Toss endpoint this service does not call.
        if let Some(kind) = params.payment_type.as_deref()
            && !matches!(kind, "NORMAL" | "KEYIN")
        {
            return Err(AppError::unprocessable(format!(
                "paymentType: {kind:?} payments are not supported (NORMAL or KEYIN)"
            )));
        }
        let amount = params
            .amount
            .as_deref()
            .and_then(|a| a.parse::<i64>().ok())
            .ok_or_else(|| AppError::validation("amount: must be a whole number of KRW"))?;
        // Toss sends the buyer's browser here.
        state
            .service
            .acting_for(Actor::buyer())
            .confirms()
            .confirm_redirect(key, order_id, amount)
            .await
    }
    .await;
    let redirect = &state.redirect;
    match (result, &redirect.success_url, &redirect.fail_url) {
        (Ok(outcome), Some(success_url), _) => {
            let payment = outcome.payment();
            let status = match &outcome {
                ConfirmOutcome::Completed(_) | ConfirmOutcome::AwaitingDeposit(_) => {
                    payment.status.as_str()
                }
                ConfirmOutcome::Unsettled(_) => "IN_PROGRESS",
            };
            see_other(
                success_url,
                &[
                    ("payment_id", &payment.id.to_string()),
                    ("order_id", payment.order_id.as_str()),
                    ("status", status),
                ],
            )
        }
        (Ok(outcome), None, _) => confirm_response(outcome, Caller::Anonymous),
        (Err(error), _, Some(fail_url)) => {
            let (problem, message) = failure_of(&error);
            let order_id = order_id.unwrap_or_default();
            let mut query = vec![
                ("order_id", order_id.as_str()),
                ("code", &problem.code),
                ("message", &message),
            ];
            if let Some(pg_code) = &problem.pg_code {
                query.push(("pg_code", pg_code));
            }
            see_other(fail_url, &query)
        }
        (Err(error), _, None) => error.into_response(),
    }
}

/// Toss's fail redirect: records why the buyer's attempt failed.
///
/// On a `PENDING` payment it sets `failure` and records a `payment.failed` event (once per
/// attempt); the payment stays `PENDING` so the buyer can try again. A payment in any other
/// status (paid, in flight, waiting for its deposit, cancelled) is not changed. With
/// `redirect.fail_url` configured the browser is sent on with 303; otherwise the answer is JSON:
/// only the order id, the status and the failure (anyone with an order id can call this, so it
/// shows nothing else of the payment).
#[utoipa::path(
    get, path = "/payments/toss/fail", tag = TAG,
    params(TossFailParams),
    responses(
        (status = 200, description = "JSON mode: the order, its status and its failure (recorded now when the payment was `PENDING`)", body = PaymentFailViewDto),
        (status = 303, description = "Redirect to the configured fail URL"),
        (status = 400, description = "Missing or malformed query parameter"),
        (status = 404, description = "Unknown orderId"),
    )
)]
pub async fn toss_fail(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<TossFailParams>,
) -> Response {
    let (code, message) = failure_from_redirect(params.code.as_deref(), params.message.as_deref());
    let result = async {
        let order_id = OrderId::parse(params.order_id.as_deref().unwrap_or_default())
            .map_err(|e| AppError::validation(format!("orderId: {}", e.reason)))?;
        state
            .service
            .acting_for(Actor::buyer())
            .confirms()
            .record_redirect_failure(
                &order_id,
                Failure {
                    code: code.clone(),
                    message: message.clone(),
                    retryable: None,
                },
            )
            .await
    }
    .await;
    match (&state.redirect.fail_url, result) {
        (Some(fail_url), result) => {
            if let Err(error) = &result {
                log_cause(error);
            }
            see_other(
                fail_url,
                &[
                    ("order_id", params.order_id.as_deref().unwrap_or_default()),
                    ("code", &code),
                    ("message", &message),
                ],
            )
        }
        (None, Ok(payment)) => {
            (StatusCode::OK, Json(PaymentFailViewDto::from(&payment))).into_response()
        }
        (None, Err(error)) => error.into_response(),
    }
}

pub(super) fn see_other(base: &str, query: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(base) else {
        return AppError::Internal(format!("redirect URL {base:?} is not a URL")).into_response();
    };
    url.query_pairs_mut().extend_pairs(query);
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => {
            AppError::Internal("redirect location is not a header value".to_owned()).into_response()
        }
    }
}

/// What a fail URL is told of `error` (whose cause is logged): its problem, and the message
/// for the buyer, Toss's own when Toss gave one.
pub(super) fn failure_of(error: &AppError) -> (Problem, String) {
    log_cause(error);
    let problem = Problem::from(error);
    let message = problem.pg_message.clone().unwrap_or(problem.detail.clone());
    (problem, message)
}

/// Toss's `code` and `message` from a fail redirect (the buyer's browser can send anything), as
/// they are recorded and passed on: the code when it looks like one of Toss's (else `UNKNOWN`),
/// the message without control characters and at most 510 characters.
pub(super) fn failure_from_redirect(code: Option<&str>, message: Option<&str>) -> (String, String) {
    let code = code
        .filter(|c| {
            (1..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .unwrap_or("UNKNOWN")
        .to_owned();
    let message = message
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(510)
        .collect();
    (code, message)
}
