//! `/payments` routes: extract, validate, call one service function, answer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::{self, ApiScope, KeyHolder};
use super::dto::{
    AttemptDto, AttemptListDto, CancelPaymentRequest, ConfirmPaymentRequest, ConfirmedPaymentDto,
    CreatePaymentRequest, EventDto, ListPaymentsParams, PaymentDto, PaymentEventListDto,
    PaymentListDto, PublicPaymentDto, RefundDto, RefundListDto, RefundRequest, text,
};
use super::extract::{ApiKey, AppJson, AppQuery};
use super::openapi::PgFailed;
use super::problem::Problem;
use crate::domain::{Actor, Caller, RefundAccount, ScopedKey, UserId};
use crate::error::AppError;
use crate::idempotency::InFlight;
use crate::service::{
    CancelCommand, CancelOutcome, ConfirmCommand, ConfirmOutcome, NewPayment, RefundCommand,
    RefundOutcome,
};

pub const TAG: &str = "payments";

pub(super) use crate::error::payment_id;

/// Create a payment (`PENDING`).
#[utoipa::path(
    post, path = "/payments", tag = TAG,
    request_body = CreatePaymentRequest,
    responses(
        (status = 201, description = "Created; or, for a retry under the same `Idempotency-Key` whose first answer was lost, the payment that request created", body = PaymentDto),
        (status = 409, description = "`DUPLICATE_ORDER_ID`: a payment with this `order_id` exists", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/duplicate-order-id", "title": "Duplicate order id", "status": 409, "detail": "a payment with this order_id already exists", "code": "DUPLICATE_ORDER_ID"})),
        (status = 422, description = "`VALIDATION_ERROR`, or `IDEMPOTENCY_KEY_REUSED` when the key created this order with other details", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/validation-error", "title": "Validation error", "status": 422, "detail": "amount_krw: must be between 1 and 1000000000", "code": "VALIDATION_ERROR"})),
    ),
)]
pub async fn create_payment(
    State(state): State<AppState>,
    _: ApiKey,
    idempotency_key: Option<ScopedKey>,
    AppJson(body): AppJson<CreatePaymentRequest>,
) -> Result<Response, AppError> {
    let new = NewPayment {
        idempotency_key,
        ..NewPayment::try_from(body)?
    };
    let payment = state.service.create(new).await?;
    Ok((StatusCode::CREATED, Json(PaymentDto::from(&payment))).into_response())
}

/// List payments, newest first.
#[utoipa::path(
    get, path = "/payments", tag = TAG,
    params(ListPaymentsParams),
    responses(
        (status = 200, description = "A page of payments", body = PaymentListDto),
        (status = 400, description = "Bad query"),
    ),
)]
pub async fn list_payments(
    State(state): State<AppState>,
    _: ApiKey,
    AppQuery(params): AppQuery<ListPaymentsParams>,
) -> Result<Json<PaymentListDto>, AppError> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(AppError::validation("limit: must be 1 to 100"));
    }
    let offset = params.offset.unwrap_or(0);
    if offset > i64::MAX as u64 {
        return Err(AppError::validation("offset: too large"));
    }
    let user_id = params
        .user_id
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(|e| AppError::validation(e.to_string()))?;
    let (payments, total_count) = state
        .service
        .list(
            user_id.as_ref().map(UserId::as_str),
            params.needs_review,
            limit,
            offset,
        )
        .await?;
    let (payments, schedules) = state.service.schedules().with_schedules(payments).await?;
    let schedule_of = |id| schedules.iter().find(|s| s.payment_id == id);
    Ok(Json(PaymentListDto {
        payments: payments
            .iter()
            .map(|p| PaymentDto::from(p).with_schedule(schedule_of(p.id)))
            .collect(),
        total_count,
    }))
}

/// Get one payment.
#[utoipa::path(
    get, path = "/payments/{payment_id}", tag = TAG,
    responses(
        (status = 200, description = "The payment", body = PaymentDto),
    ),
)]
pub async fn get_payment(
    State(state): State<AppState>,
    _: ApiKey,
    Path(raw_id): Path<String>,
) -> Result<Json<PaymentDto>, AppError> {
    let id = payment_id(&raw_id)?;
    // The schedule first: it only ever lags its payment (a DONE schedule's payment is paid).
    let schedule = state.service.schedules().schedule_of(id).await?;
    let payment = state.service.get(id).await?;
    Ok(Json(
        PaymentDto::from(&payment).with_schedule(schedule.as_ref()),
    ))
}

/// Confirm a payment.
///
/// With the Toss gateway and a `payment_key`, Toss confirms the payment with the **stored**
/// order id and amount; no API key is needed because Toss's answer is the proof. Without a
/// `payment_key`, or with the no-op gateway, the caller's `pg_transaction_id`/`pg_provider` are
/// recorded as given, which needs an API key with the scope `payments:write`.
///
/// A caller with the API key gets the whole payment (`PaymentDto`); a caller without one gets
/// it without `user_id` and `subscription_id` (`PublicPaymentDto`). Either is shown the payment
/// only as the attempt of the `payment_key` it presented: another key for a paid order is a
/// problem (409 `INVALID_STATE`) that shows nothing of the payment.
#[utoipa::path(
    post, path = "/payments/confirm", tag = TAG,
    request_body = ConfirmPaymentRequest,
    responses(
        (status = 200, description = "`COMPLETED` (now, or already by the same `payment_key`), or `WAITING_FOR_DEPOSIT` (Toss issued a virtual account); the whole payment with the API key, the public view without", body = ConfirmedPaymentDto),
        (status = 202, description = "Outcome at Toss unknown (timeout, 5xx, ...): the payment is `IN_PROGRESS` and the service settles it from Toss's record", body = ConfirmedPaymentDto),
        (status = 403, description = "`FORBIDDEN`: an unverified confirm needs an API key with the scope `payments:write`"),
        (status = 401, description = "API key required for an unverified confirm"),
        (status = 402, description = "`PG_DECLINED` with Toss's `pg_code` and `pg_message`. Toss declined: the payment stays `PENDING` with `failure`. A `payment_key` Toss has no record of for this order (its confirm answers `NOT_FOUND_PAYMENT_SESSION` or `NOT_FOUND_PAYMENT` and its read-back finds nothing, or another order's) changes nothing: the payment stays as it was, with no `failure` and no event; so does a confirm whose outcome was unknown and whose read-back finds no record of the key (`pg_code` `NOT_FOUND_PAYMENT`). An expired or aborted attempt of this order is a real failure and is recorded", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/pg-declined", "title": "Pg declined", "status": 402, "detail": "the payment gateway declined: 한도초과 혹은 잔액부족으로 결제에 실패했습니다.", "code": "PG_DECLINED", "pg_code": "REJECT_CARD_PAYMENT", "pg_message": "한도초과 혹은 잔액부족으로 결제에 실패했습니다."})),
        (status = 404, description = "No such payment"),
        (status = 409, description = "`INVALID_STATE` (not confirmable: paid, cancelled, or another `payment_key`'s attempt that Toss knows for this order is in flight; an attempt of a key Toss does not know for this order is released first and does not block)", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/invalid-state", "title": "Invalid state", "status": 409, "detail": "a payment in status REFUNDED cannot be confirmed", "code": "INVALID_STATE"})),
        (status = 422, description = "`AMOUNT_MISMATCH` (Toss not called) or `VALIDATION_ERROR` (also when Toss's record of the `payment_key` is about another order: the attempt is released, nothing else changes)", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/amount-mismatch", "title": "Amount mismatch", "status": 422, "detail": "amount_krw does not match the amount of the payment", "code": "AMOUNT_MISMATCH"})),
        (status = 502, description = "`PG_MISCONFIGURED` (Toss rejected our key), or `PG_RESPONSE_MISMATCH` (Toss's reply contradicts the payment; set aside for review)", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/pg-misconfigured", "title": "Pg misconfigured", "status": 502, "detail": "the payment gateway rejected our credentials or request; an operator must fix the configuration", "code": "PG_MISCONFIGURED", "pg_code": "UNAUTHORIZED_KEY", "pg_message": "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다."})),
    ),
    security((), ("api_key" = ["payments:write"]))
)]
pub async fn confirm_payment(
    State(state): State<AppState>,
    caller: Caller,
    holder: Option<KeyHolder>,
    AppJson(body): AppJson<ConfirmPaymentRequest>,
) -> Result<Response, AppError> {
    let command = ConfirmCommand::try_from(body)?;
    if state.service.confirms().confirm_needs_api_key(&command) {
        auth::require(holder.as_ref(), ApiScope::PaymentsWrite)?;
    }
    // With a key, the key's holder confirms; without, the buyer's frontend.
    let actor = holder.as_ref().map_or_else(Actor::buyer, KeyHolder::actor);
    Ok(confirm_response(
        state
            .service
            .acting_for(actor)
            .confirms()
            .confirm(command)
            .await?,
        caller,
    ))
}

/// 200 or 202 with the payment as `caller` may see it.
pub fn confirm_response(outcome: ConfirmOutcome, caller: Caller) -> Response {
    let status = match outcome {
        ConfirmOutcome::Completed(_) | ConfirmOutcome::AwaitingDeposit(_) => StatusCode::OK,
        ConfirmOutcome::Unsettled(_) => StatusCode::ACCEPTED,
    };
    let payment = outcome.payment();
    let body = match caller {
        Caller::Merchant => ConfirmedPaymentDto::Full(PaymentDto::from(payment)),
        Caller::Anonymous => ConfirmedPaymentDto::Public(PublicPaymentDto::from(payment)),
    };
    (status, Json(body)).into_response()
}

/// Refund a payment, fully or partly; repeatable until nothing is left.
#[utoipa::path(
    post, path = "/payments/{payment_id}/refund", tag = TAG,
    request_body = RefundRequest,
    responses(
        (status = 200, description = "Refunded; the payment is `PARTIAL_REFUND` or `REFUNDED`", body = RefundDto),
        (status = 202, description = "Outcome at Toss unknown, or waiting for its turn (Toss takes one cancel of a payment at a time): the refund is `PENDING` and the service settles it from Toss's record, sending the cancel again while Toss does not have it", body = RefundDto),
        (status = 402, description = "Toss refused the cancel; nothing changed"),
        (status = 503, description = "`PG_NOT_CONFIGURED`: the payment was paid through Toss and this instance has no Toss key; nothing recorded. `SERVICE_UNAVAILABLE`: among others, Toss's record of a transaction id recorded without `payment_key` could not be read to check it; nothing sent"),
        (status = 409, description = "`REFUND_EXCEEDS_BALANCE` (Toss not called), `INVALID_STATE`, or `PG_RESPONSE_MISMATCH`: the payment was confirmed without `payment_key` and Toss's record under its recorded `pg_transaction_id` is not this order's (or not of its amount, or not approved); nothing was cancelled and the payment is set aside for review (`needs_review`)", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/refund-exceeds-balance", "title": "Refund exceeds balance", "status": 409, "detail": "refund of 20000 KRW exceeds the refundable balance of 10000 KRW", "code": "REFUND_EXCEEDS_BALANCE"})),
        (status = 422, description = "`VALIDATION_ERROR` (also a `tax_free_amount_krw` over the payment's remaining tax-free amount or over the refund) or `REFUND_ACCOUNT_REQUIRED` (a virtual-account payment without `refund_receive_account`; Toss not called)", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/refund-account-required", "title": "Refund account required", "status": 422, "detail": "this payment was paid by virtual account: refund_receive_account is required to refund it", "code": "REFUND_ACCOUNT_REQUIRED"})),
        PgFailed,
    ),
)]
pub async fn refund_payment(
    State(state): State<AppState>,
    _: ApiKey,
    actor: Actor,
    idempotency_key: Option<ScopedKey>,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<RefundRequest>,
) -> Result<Response, AppError> {
    let payment_id = payment_id(&raw_id)?;
    body.check()?;
    let refund_account = body
        .refund_receive_account
        .map(RefundAccount::try_from)
        .transpose()?;
    let outcome = state
        .service
        .acting_for(actor)
        .refunding()
        .refund(RefundCommand {
            payment_id,
            idempotency_key,
            amount_krw: body.refund_amount_krw,
            reason: body.reason,
            tax_free_amount_krw: body.tax_free_amount_krw,
            refund_account,
        })
        .await?;
    let (status, refund, payment) = match &outcome {
        RefundOutcome::Completed { refund, payment } => (StatusCode::OK, refund, payment),
        RefundOutcome::Unsettled { refund, payment } => (StatusCode::ACCEPTED, refund, payment),
    };
    let mut response = (status, Json(RefundDto::new(refund, payment))).into_response();
    if status == StatusCode::ACCEPTED {
        // Not replayed: a retry with its key answers the refund as it then stands.
        response.extensions_mut().insert(InFlight);
    }
    Ok(response)
}

/// Cancel a payment nobody paid.
///
/// `PENDING`: `CANCELLED` at once (no PG call). `WAITING_FOR_DEPOSIT`: the virtual account is
/// cancelled at Toss (no amount, no refund account), then `CANCELLED`; should the deposit win
/// the race, the payment is `COMPLETED` and this answers 409. Already `CANCELLED`: 200 with the
/// payment, nothing repeated. A cancelled payment can never be confirmed or paid. Event
/// `payment.cancelled {payment_id, order_id, reason, cancelled_at, requested_by}`: the cancel's
/// `requested_by` is this request's API key (by name), kept with the request until the cancel
/// ends, whoever settles it (the event's `actor`: `toss` when its webhook or a read-back did).
#[utoipa::path(
    post, path = "/payments/{payment_id}/cancel", tag = TAG,
    request_body = CancelPaymentRequest,
    responses(
        (status = 200, description = "`CANCELLED` (now, or before)", body = PaymentDto),
        (status = 202, description = "Toss's answer to the virtual account's cancel is not known yet: the payment is still `WAITING_FOR_DEPOSIT` with the cancel recorded, and the service finishes it from Toss's record (`CANCELLED`, or `COMPLETED` if the deposit came first)", body = PaymentDto),
        (status = 402, description = "`PG_DECLINED`: Toss refused to cancel the virtual account; the payment still waits for its deposit"),
        (status = 409, description = "`INVALID_STATE` (`IN_PROGRESS`, `COMPLETED`, `PARTIAL_REFUND`, `REFUNDED`: paid money leaves through a refund)", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "/problems/invalid-state", "title": "Invalid state", "status": 409, "detail": "a payment in status COMPLETED cannot be cancelled (paid money leaves through a refund)", "code": "INVALID_STATE"})),
        (status = 422, description = "`VALIDATION_ERROR`"),
        PgFailed,
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database is unreachable"),
    ),
)]
pub async fn cancel_payment(
    State(state): State<AppState>,
    _: ApiKey,
    actor: Actor,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<CancelPaymentRequest>,
) -> Result<Response, AppError> {
    let payment_id = payment_id(&raw_id)?;
    text("reason", &body.reason, 200)?;
    let outcome = state
        .service
        .acting_for(actor)
        .cancels()
        .cancel(CancelCommand {
            payment_id,
            reason: body.reason,
        })
        .await?;
    let (status, payment) = match &outcome {
        CancelOutcome::Cancelled(payment) => (StatusCode::OK, payment),
        CancelOutcome::Unsettled(payment) => (StatusCode::ACCEPTED, payment),
    };
    Ok((status, Json(PaymentDto::from(payment))).into_response())
}

/// A payment's refunds, oldest first.
#[utoipa::path(
    get, path = "/payments/{payment_id}/refunds", tag = TAG,
    responses(
        (status = 200, description = "The refunds", body = RefundListDto),
    ),
)]
pub async fn list_refunds(
    State(state): State<AppState>,
    _: ApiKey,
    Path(raw_id): Path<String>,
) -> Result<Json<RefundListDto>, AppError> {
    let (payment, refunds) = state.service.refunds(payment_id(&raw_id)?).await?;
    Ok(Json(RefundListDto {
        refunds: refunds
            .iter()
            .map(|refund| RefundDto::new(refund, &payment))
            .collect(),
    }))
}

/// A payment's attempts at Toss, oldest first: each confirm of a `paymentKey` and each billing
/// charge, with what Toss made of it. A key Toss has no record of makes no attempt (one let go
/// with no failure of its own is kept for the operators, not listed). The payment's
/// own `failure`, `virtual_account` and `pg_method` are those of its latest attempt (of the
/// approved one once paid).
#[utoipa::path(
    get, path = "/payments/{payment_id}/attempts", tag = TAG,
    responses(
        (status = 200, description = "The attempts", body = AttemptListDto),
    ),
)]
pub async fn list_attempts(
    State(state): State<AppState>,
    _: ApiKey,
    Path(raw_id): Path<String>,
) -> Result<Json<AttemptListDto>, AppError> {
    let attempts = state.service.attempts(payment_id(&raw_id)?).await?;
    Ok(Json(AttemptListDto {
        attempts: attempts.iter().filter_map(AttemptDto::listed).collect(),
    }))
}

/// A payment's events, in the order they happened, in the envelope of `GET /events` (its
/// `cursor` is the event's place in the whole log).
#[utoipa::path(
    get, path = "/payments/{payment_id}/events", tag = TAG,
    responses(
        (status = 200, description = "The payment's events", body = PaymentEventListDto),
    ),
)]
pub async fn list_payment_events(
    State(state): State<AppState>,
    _: ApiKey,
    Path(raw_id): Path<String>,
) -> Result<Json<PaymentEventListDto>, AppError> {
    let events = state.service.events_of(payment_id(&raw_id)?).await?;
    Ok(Json(PaymentEventListDto {
        events: events.into_iter().map(EventDto::from).collect(),
    }))
}
