//! Payments: create, confirm (and Toss's redirects), cancel, and the payment as shown.

use serde::{Deserialize, Serialize, Serializer};
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::{FailureDto, body_id, optional_text, text, timestamp};
use crate::domain::{
    Amount, CardSummary, DomainError, OrderId, Payment, PaymentKey, PaymentStatus, PaymentType,
    Settlement, UserId, VirtualAccount,
};
use crate::error::AppError;
use crate::service::{ConfirmCommand, NewPayment, PaymentRef};

/// Body of `POST /payments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "user_id": "u-1",
    "order_id": "order_20261123_0001",
    "order_name": "Vitamin D x 3",
    "payment_type": "ONE_TIME",
    "amount_krw": 15000,
    "tax_free_amount_krw": 5000,
    "payment_method": "card"
}))]
pub struct CreatePaymentRequest {
    /// 1..64 characters, not blank, no control characters.
    #[schema(pattern = "user id")]
    pub user_id: String,
    /// 6..64 characters of `A-Z a-z 0-9 - _`; unique.
    #[schema(pattern = "order id")]
    pub order_id: String,
    /// 1..100 characters, not blank, no control characters.
    #[schema(min_length = 1, max_length = 100, pattern = "visible text")]
    pub order_name: Option<String>,
    /// For subscription payments; 1..128 characters, not blank, no control characters.
    #[schema(pattern = "subscription id")]
    pub subscription_id: Option<String>,
    /// Default `ONE_TIME`.
    pub payment_type: Option<PaymentType>,
    /// 1..=1,000,000,000 KRW.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount_krw: i64,
    /// The tax-free part of `amount_krw` (goods exempt from VAT), default 0; at most
    /// `amount_krw` (else 422 `VALIDATION_ERROR`). Refunds send their share to Toss as
    /// `taxFreeAmount`.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub tax_free_amount_krw: Option<i64>,
    /// "card", "bank_transfer", "kakao_pay", ...; 1..64 characters, not blank, no control
    /// characters.
    #[schema(min_length = 1, max_length = 64, pattern = "visible text")]
    pub payment_method: String,
}

impl TryFrom<CreatePaymentRequest> for NewPayment {
    type Error = AppError;
    fn try_from(body: CreatePaymentRequest) -> Result<Self, Self::Error> {
        let tax_free_amount_krw = body.tax_free_amount_krw.unwrap_or(0);
        if !(0..=body.amount_krw.max(0)).contains(&tax_free_amount_krw) {
            return Err(DomainError::new(
                "tax_free_amount_krw",
                "must be between 0 and amount_krw",
            )
            .into());
        }
        Ok(NewPayment {
            tax_free_amount_krw,
            user_id: UserId::parse(&body.user_id)?,
            order_id: OrderId::parse(&body.order_id)?,
            order_name: optional_text("order_name", body.order_name, 100)?,
            subscription_id: optional_text("subscription_id", body.subscription_id, 128)?,
            payment_type: body.payment_type.unwrap_or_default(),
            amount: Amount::new(body.amount_krw)?,
            payment_method: text("payment_method", &body.payment_method, 64)?,
            idempotency_key: None,
        })
    }
}

/// Body of `POST /payments/confirm`: `payment_id` or `order_id`, exactly one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "order_id": "order_20261123_0001",
    "payment_key": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
    "amount_krw": 15000
}))]
pub struct ConfirmPaymentRequest {
    #[schema(format = Uuid)]
    pub payment_id: Option<String>,
    /// 6..64 characters of `A-Z a-z 0-9 - _`.
    #[schema(pattern = "order id")]
    pub order_id: Option<String>,
    /// Toss's `paymentKey` from the success redirect: 1..200 printable ASCII characters, not `.`
    /// or `..`. With the Toss gateway, Toss confirms the payment and no API key is needed.
    #[schema(pattern = "payment key")]
    pub payment_key: Option<String>,
    /// When given, must equal the stored amount (else 422 `AMOUNT_MISMATCH`, Toss not called).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount_krw: Option<i64>,
    /// Without `payment_key` (or with the no-op gateway): recorded as given. Needs the API key.
    /// 1..200 characters, not blank, no control characters.
    #[schema(min_length = 1, max_length = 200, pattern = "visible text")]
    pub pg_transaction_id: Option<String>,
    /// Without `payment_key` (or with the no-op gateway): recorded as given. Needs the API key.
    /// 1..32 characters, not blank, no control characters.
    #[schema(min_length = 1, max_length = 32, pattern = "visible text")]
    pub pg_provider: Option<String>,
}

impl TryFrom<ConfirmPaymentRequest> for ConfirmCommand {
    type Error = AppError;
    fn try_from(body: ConfirmPaymentRequest) -> Result<Self, Self::Error> {
        let payment = match (body.payment_id, body.order_id) {
            (Some(id), None) => PaymentRef::Id(body_id("payment_id", &id)?),
            (None, Some(order_id)) => PaymentRef::OrderId(OrderId::parse(&order_id)?),
            _ => {
                return Err(AppError::unprocessable(
                    "give exactly one of payment_id and order_id",
                ));
            }
        };
        Ok(ConfirmCommand {
            payment,
            payment_key: body
                .payment_key
                .as_deref()
                .map(PaymentKey::parse)
                .transpose()?,
            amount_krw: body.amount_krw,
            pg_transaction_id: optional_text("pg_transaction_id", body.pg_transaction_id, 200)?,
            pg_provider: optional_text("pg_provider", body.pg_provider, 32)?,
        })
    }
}

/// The derived schema of `ConfirmPaymentRequest` lists its fields; this adds the rule
/// `ConfirmCommand::try_from` enforces across two of them: exactly one of `payment_id` and
/// `order_id` is given (a string), the other absent or null.
pub fn document_one_payment_ref(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{AllOf, Object, OneOf, Type};
    let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else {
        return;
    };
    let Some(fields) = schemas.remove("ConfirmPaymentRequest") else {
        return;
    };
    let one = |given: &str, absent: &str| {
        Object::builder()
            .property(given, Object::with_type(Type::String))
            .property(absent, Object::with_type(Type::Null))
            .required(given)
    };
    let mut one_of = OneOf::new();
    one_of.items = vec![
        one("payment_id", "order_id").into(),
        one("order_id", "payment_id").into(),
    ];
    let mut schema = AllOf::new();
    schema.items = vec![fields, Schema::OneOf(one_of).into()];
    schemas.insert(
        "ConfirmPaymentRequest".to_owned(),
        RefOr::T(Schema::AllOf(schema)),
    );
}

/// Body of `POST /payments/{payment_id}/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "order cancelled before payment"}))]
pub struct CancelPaymentRequest {
    /// 1..200 characters, not blank, no control characters; sent to Toss as `cancelReason`
    /// when a virtual account is cancelled.
    #[schema(min_length = 1, max_length = 200, pattern = "visible text")]
    pub reason: String,
}

/// A payment.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "payment_id": "019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a",
    "user_id": "u-1",
    "order_id": "order_20261123_0001",
    "order_name": "Vitamin D x 3",
    "subscription_id": null,
    "payment_type": "ONE_TIME",
    "payment_method": "card",
    "amount_krw": 15000,
    "refunded_amount_krw": 0,
    "currency": "KRW",
    "status": "COMPLETED",
    "pg_provider": "toss",
    "pg_transaction_id": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
    "failure": null,
    "needs_review": false,
    "review_reason": null,
    "tax_free_amount_krw": 5000,
    "pg_method": "카드",
    "receipt_url": "https://dashboard.tosspayments.com/receipt/redirection?transactionId=tviva20261123093057MvuS8&ref=PX",
    "card": {"issuer_code": "71", "number": "12345678****000*", "installment_plan_months": 0, "approve_no": "00000000"},
    "virtual_account": null,
    "settlement": {"fee_krw": 495, "payout_krw": 14505, "sold_date": "2026-11-23", "paid_out_date": "2026-11-26"},
    "created_at": "2026-11-23T09:30:00.000Z",
    "updated_at": "2026-11-23T09:31:02.412Z",
    "completed_at": "2026-11-23T09:31:02.000Z"
}))]
pub struct PaymentDto {
    #[schema(format = Uuid)]
    pub payment_id: String,
    pub user_id: String,
    pub order_id: String,
    pub order_name: Option<String>,
    pub subscription_id: Option<String>,
    pub payment_type: PaymentType,
    pub payment_method: String,
    pub amount_krw: i64,
    pub refunded_amount_krw: i64,
    pub currency: String,
    pub status: PaymentStatus,
    pub pg_provider: Option<String>,
    pub pg_transaction_id: Option<String>,
    /// Why the last attempt to pay failed; null once paid.
    pub failure: Option<FailureDto>,
    /// True while Toss's record contradicts ours (amount, a refund Toss does not show, a second
    /// approval, a reversed deposit): a person must look (`GET /payments?needs_review=true`,
    /// `POST /payments/{payment_id}/review`); the reconciler leaves it alone meanwhile.
    pub needs_review: bool,
    /// Why the payment was set aside, while it is (`null` otherwise).
    pub review_reason: Option<String>,
    /// The tax-free part of `amount_krw` (0 unless given at creation).
    pub tax_free_amount_krw: i64,
    /// The method Toss reports (`카드`, `가상계좌`, `간편결제`, `계좌이체`, `휴대폰`, ...), once
    /// Toss approved the payment or issued its virtual account; `null` before, or without Toss.
    pub pg_method: Option<String>,
    /// Toss's receipt (`receipt.url`), once Toss approved the payment.
    pub receipt_url: Option<String>,
    /// The card, as Toss reports it (its number masked by Toss); `null` for other methods.
    pub card: Option<CardSummary>,
    /// Where the buyer must deposit (`WAITING_FOR_DEPOSIT`), from Toss's `virtualAccount`; kept
    /// after the deposit, the expiry or the cancel, until another attempt starts (the latest
    /// attempt's; every attempt's is at `GET /payments/{payment_id}/attempts`).
    pub virtual_account: Option<VirtualAccount>,
    /// What Toss settles for the sale (from its settlements, read by a reconciliation run of
    /// the day it was sold); `null` until a run has read it.
    pub settlement: Option<Settlement>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    /// The payment's scheduled charge (`POST /payments/{payment_id}/schedule`); `null` without
    /// one. Shown by `GET /payments/{payment_id}`, `GET /payments` and the schedule routes.
    pub schedule: Option<crate::http::schedules::ScheduleDto>,
}

impl From<&Payment> for PaymentDto {
    fn from(p: &Payment) -> Self {
        Self {
            payment_id: p.id.to_string(),
            user_id: p.user_id.clone(),
            order_id: p.order_id.to_string(),
            order_name: p.order_name.clone(),
            subscription_id: p.subscription_id.clone(),
            payment_type: p.payment_type,
            payment_method: p.payment_method.clone(),
            amount_krw: p.amount_krw,
            refunded_amount_krw: p.refunded_amount_krw,
            currency: p.currency.clone(),
            status: p.status,
            pg_provider: p.pg_provider.clone(),
            pg_transaction_id: p.pg_transaction_id.clone(),
            failure: p.failure.as_ref().map(FailureDto::from),
            needs_review: p.needs_review,
            review_reason: p.review_reason.clone(),
            tax_free_amount_krw: p.tax_free_amount_krw,
            pg_method: p.pg_method.clone(),
            receipt_url: p.receipt_url.clone(),
            card: p.card.clone(),
            virtual_account: p.virtual_account.clone(),
            settlement: p.settlement.clone(),
            created_at: timestamp(p.created_at),
            updated_at: timestamp(p.updated_at),
            completed_at: p.completed_at.map(timestamp),
            schedule: None,
        }
    }
}

/// A payment as shown to a caller without an API key (the public confirm, Toss's success
/// redirect): the whole payment but who pays (`user_id`) and the subscription it belongs to
/// (`subscription_id`), nor its renewal schedule. Its schema is the payment's without them, and closed
/// (`additionalProperties: false`) so that a whole payment does not pass for this one.
#[derive(Debug)]
pub struct PublicPaymentDto(PaymentDto);

impl PublicPaymentDto {
    const HIDDEN: [&str; 3] = ["user_id", "subscription_id", "schedule"];
}

impl Serialize for PublicPaymentDto {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut payment = serde_json::to_value(&self.0).map_err(serde::ser::Error::custom)?;
        if let Some(fields) = payment.as_object_mut() {
            for field in Self::HIDDEN {
                fields.remove(field);
            }
        }
        payment.serialize(serializer)
    }
}

impl PartialSchema for PublicPaymentDto {
    fn schema() -> RefOr<Schema> {
        let mut schema = PaymentDto::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            for field in Self::HIDDEN {
                object.properties.remove(field);
                object.required.retain(|name| name != field);
                if let Some(example) = object.example.as_mut().and_then(|e| e.as_object_mut()) {
                    example.remove(field);
                }
            }
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            object.description = Some(
                "A payment as shown to a caller without an API key (the public confirm, Toss's \
                 success redirect): everything but who pays (`user_id`), the subscription it \
                 belongs to (`subscription_id`) and its renewal schedule."
                    .to_owned(),
            );
        }
        schema
    }
}

impl ToSchema for PublicPaymentDto {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        PaymentDto::schemas(schemas);
    }
}

impl From<&Payment> for PublicPaymentDto {
    fn from(payment: &Payment) -> Self {
        Self(PaymentDto::from(payment))
    }
}

/// What Toss's fail redirect shows the buyer's browser (which anyone can forge with an order
/// id): the order, its status and why its last attempt failed; nothing else of the payment (no
/// key, card, account, receipt, settlement or review).
#[derive(Debug, Serialize, ToSchema)]
// Only for the schema: `additionalProperties: false`.
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "order_id": "order_20261123_0001",
    "status": "PENDING",
    "failure": {"code": "PAY_PROCESS_CANCELED", "message": "사용자에 의해 결제가 취소되었습니다."}
}))]
pub struct PaymentFailViewDto {
    pub order_id: String,
    pub status: PaymentStatus,
    /// Why the last attempt to pay failed; null when none did, and once paid.
    #[schema(required = true)]
    pub failure: Option<FailureDto>,
}

impl From<&Payment> for PaymentFailViewDto {
    fn from(payment: &Payment) -> Self {
        Self {
            order_id: payment.order_id.to_string(),
            status: payment.status,
            failure: payment.failure.as_ref().map(FailureDto::from),
        }
    }
}

/// The confirm's answer: the whole payment to a caller with an API key, the public view of it
/// to a caller without one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ConfirmedPaymentDto {
    Full(PaymentDto),
    Public(PublicPaymentDto),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentListDto {
    pub payments: Vec<PaymentDto>,
    /// How many payments match the filter in all.
    pub total_count: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListPaymentsParams {
    /// Only this user's payments.
    #[param(pattern = "user id")]
    pub user_id: Option<String>,
    /// `true`: only payments set aside for review (Toss's record contradicts ours).
    pub needs_review: Option<bool>,
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Default 0.
    #[param(maximum = 9_223_372_036_854_775_807_i64)]
    pub offset: Option<u64>,
}

/// Query of `GET /payments/toss/success`, as Toss sends it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct TossSuccessParams {
    /// Toss's key of the authenticated payment: 1..200 printable ASCII characters, not `.` or
    /// `..`.
    #[param(required = true, pattern = "payment key")]
    pub payment_key: Option<String>,
    /// 6..64 characters of `A-Z a-z 0-9 - _`.
    #[param(required = true, pattern = "order id")]
    pub order_id: Option<String>,
    /// The amount the buyer authenticated, in KRW; must equal the stored amount.
    #[param(required = true, value_type = i64, minimum = 1, maximum = 1_000_000_000)]
    pub amount: Option<String>,
    /// `NORMAL` or `KEYIN` (Toss also sends `BRANDPAY`, which this service does not confirm:
    /// 422).
    #[param(pattern = "^(NORMAL|KEYIN)$")]
    pub payment_type: Option<String>,
}

/// Query of `GET /payments/toss/fail`, as Toss sends it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct TossFailParams {
    /// Toss's error code, e.g. `PAY_PROCESS_CANCELED`. Anything but 1..64 characters of
    /// `A-Z a-z 0-9 _` is recorded as `UNKNOWN`.
    #[param(pattern = r"^[^\u0000]*$")]
    pub code: Option<String>,
    /// Toss's message; control characters are dropped and it is cut at 510 characters.
    #[param(pattern = r"^[^\u0000]*$")]
    pub message: Option<String>,
    /// 6..64 characters of `A-Z a-z 0-9 - _`.
    #[param(required = true, pattern = "order id")]
    pub order_id: Option<String>,
}
