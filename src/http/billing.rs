//! Toss billing (자동결제) routes: customer keys, billing keys (issue, list, read, delete), the
//! card registration's redirects, and charging a payment with a billing key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::dto::{
    BillingCustomerDto, BillingFailParams, BillingKeyDto, BillingKeyListDto, BillingSuccessParams,
    ChargePaymentRequest, CreateCustomerRequest, IssueBillingKeyRequest, ListBillingKeysParams,
    PaymentDto, body_id,
};
use super::extract::{ApiKey, AppJson, AppQuery};
use super::openapi::PgFailed;
use super::payments::{confirm_response, payment_id};
use super::problem::Problem;
use super::redirects::{failure_from_redirect, failure_of, see_other};
use crate::domain::{Actor, AuthKey, BillingKeyId, Caller, CustomerKey, UserId};
use crate::error::AppError;
use crate::service::CustomerOutcome;

pub const TAG: &str = "billing";

/// An id in a path that is not a UUID names no billing key.
fn billing_key_id(raw: &str) -> Result<BillingKeyId, AppError> {
    raw.parse()
        .map_err(|_| AppError::NotFound(format!("billing key {raw} not found")))
}

/// The user's customer key (created at random on first call).
///
/// The frontend passes `customer_key` to Toss's `requestBillingAuth`. Two calls racing for one
/// user end with one key.
#[utoipa::path(
    post, path = "/billing/customers", tag = TAG,
    request_body = CreateCustomerRequest,
    responses(
        (status = 201, description = "A new customer key", body = BillingCustomerDto),
        (status = 200, description = "The user's existing customer key", body = BillingCustomerDto),
        (status = 422, description = "`VALIDATION_ERROR`"),
    ),
)]
pub async fn create_customer(
    State(state): State<AppState>,
    _: ApiKey,
    AppJson(body): AppJson<CreateCustomerRequest>,
) -> Result<Response, AppError> {
    let user = UserId::parse(&body.user_id)?;
    let (status, customer) = match state.service.billing_customer(user.as_str()).await? {
        CustomerOutcome::Created(customer) => (StatusCode::CREATED, customer),
        CustomerOutcome::Existing(customer) => (StatusCode::OK, customer),
    };
    Ok((status, Json(BillingCustomerDto::from(&customer))).into_response())
}

fn parse_issue(customer_key: &str, auth_key: &str) -> Result<(CustomerKey, AuthKey), AppError> {
    let customer_key = CustomerKey::parse(customer_key)
        .map_err(|e| AppError::validation(format!("customer_key: {}", e.reason)))?;
    let auth_key = AuthKey::parse(auth_key)
        .map_err(|e| AppError::validation(format!("auth_key: {}", e.reason)))?;
    Ok((customer_key, auth_key))
}

/// Issue a billing key from a card registration (for a frontend that posts).
///
/// Calls Toss's `POST /v1/billing/authorizations/issue`. The same `auth_key` again (a reload,
/// a retry) answers the key it issued, and Toss is called once. Unknown `customer_key`: 404,
/// Toss not called.
#[utoipa::path(
    post, path = "/billing-keys", tag = TAG,
    request_body = IssueBillingKeyRequest,
    responses(
        (status = 201, description = "The billing key (issued now, or before for this `auth_key`)", body = BillingKeyDto),
        (status = 402, description = "`PG_DECLINED`: Toss refused to issue (a used or wrong `authKey`, ...)"),
        (status = 404, description = "`NOT_FOUND`: unknown `customer_key` (Toss not called)"),
        (status = 409, description = "`REQUEST_IN_PROGRESS`: the same `auth_key` is being issued by another request, or Toss did not answer (retry with the same `auth_key`: Toss is asked again once the first request's lease passes)"),
        (status = 422, description = "`VALIDATION_ERROR`"),
        PgFailed,
        (status = 503, description = "`PG_NOT_CONFIGURED` (no Toss key: no billing), or `SERVICE_UNAVAILABLE` (database unreachable)"),
    ),
)]
pub async fn issue_billing_key(
    State(state): State<AppState>,
    _: ApiKey,
    AppJson(body): AppJson<IssueBillingKeyRequest>,
) -> Result<Response, AppError> {
    let (customer_key, auth_key) = parse_issue(&body.customer_key, &body.auth_key)?;
    let issued = state
        .service
        .issue_billing_key(customer_key, auth_key)
        .await?;
    Ok((StatusCode::CREATED, Json(BillingKeyDto::from(&issued.key))).into_response())
}

/// Toss's success redirect after the buyer registered a card: issues the billing key.
///
/// With `redirect.billing_success_url` configured the browser is sent on with 303 See Other to
/// `{billing_success_url}?billing_key_id=…`; otherwise the answer is the billing key (201). A
/// reload answers the same key and Toss is called once. Unknown `customerKey`: 404, Toss not
/// called.
#[utoipa::path(
    get, path = "/billing/toss/success", tag = TAG,
    params(BillingSuccessParams),
    responses(
        (status = 201, description = "Issued (JSON mode)", body = BillingKeyDto),
        (status = 303, description = "Redirect to `redirect.billing_success_url` (or, on an error, `redirect.billing_fail_url`)"),
        (status = 400, description = "Missing or malformed query parameter"),
        (status = 402, description = "`PG_DECLINED`: Toss refused to issue"),
        (status = 404, description = "`NOT_FOUND`: unknown `customerKey` (Toss not called)"),
        (status = 409, description = "`REQUEST_IN_PROGRESS`: the same `authKey` is being issued by another request, or Toss did not answer (reloading asks again once the first request's lease passes)"),
        PgFailed,
        (status = 503, description = "`PG_NOT_CONFIGURED` (no Toss key), or `SERVICE_UNAVAILABLE` (database unreachable)"),
    )
)]
pub async fn billing_success(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<BillingSuccessParams>,
) -> Response {
    let result = async {
        let (customer_key, auth_key) = parse_issue(
            params.customer_key.as_deref().unwrap_or_default(),
            params.auth_key.as_deref().unwrap_or_default(),
        )
        .map_err(|_| {
            AppError::validation(
                "customerKey and authKey: required, as Toss sends them (customerKey 2..300 of A-Z a-z 0-9 - _ = . , @)",
            )
        })?;
        state
            .service
            .issue_billing_key(customer_key, auth_key)
            .await
    }
    .await;
    let redirect = &state.redirect;
    match (
        result,
        &redirect.billing_success_url,
        &redirect.billing_fail_url,
    ) {
        (Ok(issued), Some(success_url), _) => see_other(
            success_url,
            &[("billing_key_id", &issued.key.id.to_string())],
        ),
        (Ok(issued), None, _) => {
            (StatusCode::CREATED, Json(BillingKeyDto::from(&issued.key))).into_response()
        }
        (Err(error), _, Some(fail_url)) => {
            let (problem, message) = failure_of(&error);
            see_other(
                fail_url,
                &[("code", problem.code.as_str()), ("message", &message)],
            )
        }
        (Err(error), _, None) => error.into_response(),
    }
}

/// Toss's fail redirect of a card registration (the buyer closed the window, the card was
/// refused, ...). Nothing is stored.
///
/// 303 to `{billing_fail_url}?code=…&message=…` when configured; otherwise a problem (402
/// `PG_DECLINED` with Toss's `code` and `message` as `pg_code`/`pg_message`).
#[utoipa::path(
    get, path = "/billing/toss/fail", tag = TAG,
    params(BillingFailParams),
    responses(
        (status = 303, description = "Redirect to `redirect.billing_fail_url`"),
        (status = 400, description = "Malformed query"),
        (status = 402, description = "`PG_DECLINED` (JSON mode): the registration failed at Toss", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/pg-declined", "title": "Pg declined", "status": 402, "detail": "the payment gateway declined: 사용자에 의해 결제가 취소되었습니다.", "code": "PG_DECLINED", "pg_code": "PAY_PROCESS_CANCELED", "pg_message": "사용자에 의해 결제가 취소되었습니다."})),
    )
)]
pub async fn billing_fail(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<BillingFailParams>,
) -> Response {
    let (code, message) = failure_from_redirect(params.code.as_deref(), params.message.as_deref());
    tracing::info!(pg_code = %code, "card registration failed at Toss (billing fail redirect)");
    match &state.redirect.billing_fail_url {
        Some(fail_url) => see_other(fail_url, &[("code", &code), ("message", &message)]),
        None => AppError::PgDeclined {
            code,
            message,
            retryable: None,
        }
        .into_response(),
    }
}

/// A user's billing keys (active and deleted), oldest first.
#[utoipa::path(
    get, path = "/billing-keys", tag = TAG,
    params(ListBillingKeysParams),
    responses(
        (status = 200, description = "The user's billing keys", body = BillingKeyListDto),
        (status = 400, description = "Missing `user_id`, or a bad query"),
        (status = 422, description = "`VALIDATION_ERROR`: a blank `user_id` or one with control characters"),
    ),
)]
pub async fn list_billing_keys(
    State(state): State<AppState>,
    _: ApiKey,
    AppQuery(params): AppQuery<ListBillingKeysParams>,
) -> Result<Json<BillingKeyListDto>, AppError> {
    let Some(raw) = params.user_id else {
        return Err(AppError::validation("user_id: required"));
    };
    let user = UserId::parse(&raw)?;
    let keys = state.service.billing_keys_of(user.as_str()).await?;
    Ok(Json(BillingKeyListDto {
        billing_keys: keys.iter().map(BillingKeyDto::from).collect(),
    }))
}

/// One billing key.
#[utoipa::path(
    get, path = "/billing-keys/{billing_key_id}", tag = TAG,
    responses(
        (status = 200, description = "The billing key", body = BillingKeyDto),
    ),
)]
pub async fn get_billing_key(
    State(state): State<AppState>,
    _: ApiKey,
    Path(raw_id): Path<String>,
) -> Result<Json<BillingKeyDto>, AppError> {
    let key = state.service.billing_key(billing_key_id(&raw_id)?).await?;
    Ok(Json(BillingKeyDto::from(&key)))
}

/// Disable a billing key here (`DELETED`); Toss is not called. Deleting it again answers it as
/// it is.
#[utoipa::path(
    delete, path = "/billing-keys/{billing_key_id}", tag = TAG,
    responses(
        (status = 200, description = "The billing key, `DELETED`", body = BillingKeyDto),
    ),
)]
pub async fn delete_billing_key(
    State(state): State<AppState>,
    _: ApiKey,
    Path(raw_id): Path<String>,
) -> Result<Json<BillingKeyDto>, AppError> {
    let key = state
        .service
        .delete_billing_key(billing_key_id(&raw_id)?)
        .await?;
    Ok(Json(BillingKeyDto::from(&key)))
}

/// Charge a `PENDING` payment with a billing key (a subscription's renewal, no buyer present).
///
/// Calls Toss's `POST /v1/billing/{billingKey}` with the **stored** amount, order id and order
/// name. Answers as confirm does. A decline (402) carries `retryable`: `true` when the same card
/// may pass later (limit, balance, card company error), `false` when it never will (lost,
/// stopped, expired card); the payment stays `PENDING` with `failure` (with `retryable` too)
/// and may be charged again. One payment is approved at Toss at most once, whatever the
/// retries, races or instances.
#[utoipa::path(
    post, path = "/payments/{payment_id}/charge", tag = TAG,
    request_body = ChargePaymentRequest,
    responses(
        (status = 200, description = "`COMPLETED` (now, or already by this billing key)", body = PaymentDto),
        (status = 202, description = "Outcome at Toss unknown: the payment is `IN_PROGRESS` and the service settles it by reading the order back from Toss", body = PaymentDto),
        (status = 402, description = "`PG_DECLINED` with `retryable`: the payment stays `PENDING` with `failure`", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/pg-declined", "title": "Pg declined", "status": 402, "detail": "the payment gateway declined: 한도초과 혹은 잔액부족으로 결제에 실패했습니다.", "code": "PG_DECLINED", "pg_code": "REJECT_CARD_PAYMENT", "pg_message": "한도초과 혹은 잔액부족으로 결제에 실패했습니다.", "retryable": true})),
        (status = 404, description = "No such payment or billing key"),
        (status = 409, description = "`BILLING_KEY_INACTIVE` (deleted, or not decryptable with the configured key), or `INVALID_STATE` (not `PENDING`)", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/billing-key-inactive", "title": "Billing key inactive", "status": 409, "detail": "the billing key is not ACTIVE (it was deleted)", "code": "BILLING_KEY_INACTIVE"})),
        (status = 422, description = "`BILLING_KEY_MISMATCH` (the key is another user's) or `VALIDATION_ERROR`", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/billing-key-mismatch", "title": "Billing key mismatch", "status": 422, "detail": "the billing key belongs to another user than the payment", "code": "BILLING_KEY_MISMATCH"})),
        PgFailed,
        (status = 503, description = "`PG_NOT_CONFIGURED`: no Toss key, so no billing"),
    ),
)]
pub async fn charge_payment(
    State(state): State<AppState>,
    _: ApiKey,
    actor: Actor,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ChargePaymentRequest>,
) -> Result<Response, AppError> {
    let payment_id = payment_id(&raw_id)?;
    let key_id: BillingKeyId = body_id("billing_key_id", &body.billing_key_id)?;
    let outcome = state
        .service
        .acting_for(actor)
        .charges()
        .charge(payment_id, key_id)
        .await?;
    Ok(confirm_response(outcome, Caller::Merchant))
}
