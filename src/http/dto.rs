//! What goes over the wire: request bodies (parsed into domain types at the edge) and
//! responses (built from domain records). Field names are fixed by the API contract.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{
    Actor, ActorType, Amount, Attempt, AttemptKind, AttemptStatus, DomainError, OrderId, Payment,
    PaymentKey, PaymentStatus, PaymentType, Refund, RefundAccount, RefundStatus, StoredEvent,
    UserId,
};
use crate::error::AppError;
use crate::service::{ConfirmCommand, NewPayment, PaymentRef};

/// RFC 3339 in UTC, e.g. `2026-11-23T09:30:00.123Z`.
pub(super) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Text a person typed: length in characters, no control characters.
///
/// The OpenAPI document says the same with `minLength`/`maxLength` and the pattern below, which
/// every field checked by `text` carries: no control character (Unicode `Cc`), and at least one
/// character that is neither a control character nor white space (what `str::trim` removes).
fn text(field: &'static str, value: &str, min: usize, max: usize) -> Result<String, DomainError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(DomainError::new(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::new(
            field,
            "must not contain control characters",
        ));
    }
    if min > 0 && value.trim().is_empty() {
        return Err(DomainError::new(field, "must not be blank"));
    }
    Ok(value.to_owned())
}

fn optional_text(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    value.map(|v| text(field, &v, 1, max)).transpose()
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentTypeDto {
    OneTime,
    Subscription,
}

impl From<PaymentTypeDto> for PaymentType {
    fn from(value: PaymentTypeDto) -> Self {
        match value {
            PaymentTypeDto::OneTime => PaymentType::OneTime,
            PaymentTypeDto::Subscription => PaymentType::Subscription,
        }
    }
}

impl From<PaymentType> for PaymentTypeDto {
    fn from(value: PaymentType) -> Self {
        match value {
            PaymentType::OneTime => PaymentTypeDto::OneTime,
            PaymentType::Subscription => PaymentTypeDto::Subscription,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatusDto {
    Pending,
    InProgress,
    WaitingForDeposit,
    Completed,
    Failed,
    Cancelled,
    Refunded,
    PartialRefund,
}

impl From<PaymentStatus> for PaymentStatusDto {
    fn from(value: PaymentStatus) -> Self {
        match value {
            PaymentStatus::Pending => Self::Pending,
            PaymentStatus::InProgress => Self::InProgress,
            PaymentStatus::WaitingForDeposit => Self::WaitingForDeposit,
            PaymentStatus::Completed => Self::Completed,
            PaymentStatus::Failed => Self::Failed,
            PaymentStatus::Cancelled => Self::Cancelled,
            PaymentStatus::Refunded => Self::Refunded,
            PaymentStatus::PartialRefund => Self::PartialRefund,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatusDto {
    Pending,
    Completed,
    Failed,
}

impl From<RefundStatus> for RefundStatusDto {
    fn from(value: RefundStatus) -> Self {
        match value {
            RefundStatus::Pending => Self::Pending,
            RefundStatus::Completed => Self::Completed,
            RefundStatus::Failed => Self::Failed,
        }
    }
}

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
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub user_id: String,
    /// 6..64 characters of `A-Z a-z 0-9 - _`; unique.
    #[schema(min_length = 6, max_length = 64, pattern = r"^[A-Za-z0-9_-]{6,64}$")]
    pub order_id: String,
    /// 1..100 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub order_name: Option<String>,
    /// For subscription payments; 1..128 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub subscription_id: Option<String>,
    /// Default `ONE_TIME`.
    pub payment_type: Option<PaymentTypeDto>,
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
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
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
            payment_type: body.payment_type.unwrap_or(PaymentTypeDto::OneTime).into(),
            amount: Amount::new(body.amount_krw)?,
            payment_method: text("payment_method", &body.payment_method, 1, 64)?,
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
    #[schema(min_length = 6, max_length = 64, pattern = r"^[A-Za-z0-9_-]{6,64}$")]
    pub order_id: Option<String>,
    /// Toss's `paymentKey` from the success redirect: 1..200 printable ASCII characters, not `.`
    /// or `..`. With the Toss gateway, Toss confirms the payment and no API key is needed.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^(?!\.\.?$)[!-~]{1,200}$"
    )]
    pub payment_key: Option<String>,
    /// When given, must equal the stored amount (else 422 `AMOUNT_MISMATCH`, Toss not called).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount_krw: Option<i64>,
    /// Without `payment_key` (or with the no-op gateway): recorded as given. Needs the API key.
    /// 1..200 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub pg_transaction_id: Option<String>,
    /// Without `payment_key` (or with the no-op gateway): recorded as given. Needs the API key.
    /// 1..32 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub pg_provider: Option<String>,
}

impl TryFrom<ConfirmPaymentRequest> for ConfirmCommand {
    type Error = AppError;
    fn try_from(body: ConfirmPaymentRequest) -> Result<Self, Self::Error> {
        let payment = match (body.payment_id, body.order_id) {
            (Some(id), None) => PaymentRef::Id(
                id.parse()
                    .map_err(|_| AppError::unprocessable("payment_id: must be a UUID"))?,
            ),
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
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AllOf, Object, OneOf, Schema, Type};
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

/// Body of `POST /payments/{payment_id}/refund`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "customer changed their mind", "refund_amount_krw": 5000}))]
pub struct RefundRequest {
    /// 1..200 characters, not blank, no control characters; sent to Toss as `cancelReason`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub reason: String,
    /// Absent or 0: the whole remaining balance. More than the balance: 409
    /// `REFUND_EXCEEDS_BALANCE`.
    #[schema(minimum = 0)]
    pub refund_amount_krw: Option<i64>,
    /// The tax-free part of this refund, at most what is left of the payment's tax-free amount
    /// and at most the refund (else 422 `VALIDATION_ERROR`). Absent: the remaining tax-free
    /// amount × refund / remaining balance, rounded down; a refund of the whole remaining
    /// balance takes all of the remaining tax-free amount. Sent to Toss as `taxFreeAmount`.
    #[schema(minimum = 0)]
    pub tax_free_amount_krw: Option<i64>,
    /// Required when the payment was paid by virtual account (else 422
    /// `REFUND_ACCOUNT_REQUIRED`, Toss not called): where Toss sends the money back. Sent to
    /// Toss as `refundReceiveAccount`; the account number is never logged nor shown in full.
    pub refund_receive_account: Option<RefundReceiveAccountDto>,
}

/// A bank account to refund a virtual-account payment to. `Debug` shows only the last four
/// digits of the number.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"bank": "88", "account_number": "110123456789", "holder_name": "홍길동"}))]
pub struct RefundReceiveAccountDto {
    /// Toss's bank code (e.g. `88` 신한, `20` 우리): 1..20 letters or digits.
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9]{1,20}$")]
    pub bank: String,
    /// 1..20 digits, nothing else.
    #[schema(min_length = 1, max_length = 20, pattern = r"^[0-9]{1,20}$")]
    pub account_number: String,
    /// 1..60 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 60,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub holder_name: String,
}

impl std::fmt::Debug for RefundReceiveAccountDto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefundReceiveAccountDto")
            .field("bank", &self.bank)
            .field("account_number", &crate::domain::mask(&self.account_number))
            .field("holder_name", &self.holder_name)
            .finish()
    }
}

impl TryFrom<RefundReceiveAccountDto> for RefundAccount {
    type Error = AppError;
    fn try_from(dto: RefundReceiveAccountDto) -> Result<Self, Self::Error> {
        Ok(RefundAccount::parse(
            &dto.bank,
            &dto.account_number,
            &dto.holder_name,
        )?)
    }
}

/// Body of `POST /payments/{payment_id}/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "order cancelled before payment"}))]
pub struct CancelPaymentRequest {
    /// 1..200 characters, not blank, no control characters; sent to Toss as `cancelReason`
    /// when a virtual account is cancelled.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailureDto {
    pub code: String,
    pub message: String,
    /// Charges of a billing key only: whether charging the same card again later may pass
    /// (limit, balance, card company error) or never will (lost, stopped, expired card).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// The card a payment was made with, as Toss reports it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"issuer_code": "71", "number": "12345678****000*", "installment_plan_months": 0, "approve_no": "00000000"}))]
pub struct CardDto {
    /// Toss's card company code (`issuerCode`).
    pub issuer_code: Option<String>,
    /// Masked by Toss.
    pub number: Option<String>,
    /// 0 = paid at once.
    pub installment_plan_months: Option<i32>,
    /// The card company's approval number.
    pub approve_no: Option<String>,
}

/// The virtual account (가상계좌) Toss issued for the buyer's deposit.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"bank_code": "20", "account_number": "X6516521381011", "customer_name": "박토스", "due_date": "2026-11-30T14:59:59.000Z"}))]
pub struct VirtualAccountDto {
    /// Toss's bank code.
    pub bank_code: String,
    pub account_number: String,
    /// The depositor name the buyer gave.
    pub customer_name: Option<String>,
    /// Deposit by then, or the account expires.
    #[schema(format = DateTime)]
    pub due_date: Option<String>,
}

impl std::fmt::Debug for VirtualAccountDto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualAccountDto")
            .field("bank_code", &self.bank_code)
            .field("account_number", &crate::domain::mask(&self.account_number))
            .field("customer_name", &self.customer_name)
            .field("due_date", &self.due_date)
            .finish()
    }
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
    pub payment_type: PaymentTypeDto,
    pub payment_method: String,
    pub amount_krw: i64,
    pub refunded_amount_krw: i64,
    pub currency: String,
    pub status: PaymentStatusDto,
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
    pub card: Option<CardDto>,
    /// Where the buyer must deposit (`WAITING_FOR_DEPOSIT`), from Toss's `virtualAccount`; kept
    /// after the deposit, the expiry or the cancel, until another attempt starts (the latest
    /// attempt's; every attempt's is at `GET /payments/{payment_id}/attempts`).
    pub virtual_account: Option<VirtualAccountDto>,
    /// What Toss settles for the sale (from its settlements, read by a reconciliation run of
    /// the day it was sold); `null` until a run has read it.
    pub settlement: Option<SettlementDto>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    /// The payment's scheduled charge (`POST /payments/{payment_id}/schedule`); `null` without
    /// one. Shown by `GET /payments/{payment_id}`, `GET /payments` and the schedule routes.
    pub schedule: Option<super::schedules::ScheduleDto>,
}

/// Toss's settlement of a payment's sale (the settlements row of the sale, not of its cancels).
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementDto {
    /// What Toss keeps: the sale's amount minus `payout_krw` (its fees and their VAT).
    pub fee_krw: i64,
    /// What Toss pays out for the sale (`payOutAmount`).
    pub payout_krw: i64,
    /// The KST date of the sale (`soldDate`).
    #[schema(format = Date)]
    pub sold_date: String,
    /// The KST date Toss pays it out (`paidOutDate`).
    #[schema(format = Date)]
    pub paid_out_date: Option<String>,
}

impl From<&Payment> for PaymentDto {
    fn from(p: &Payment) -> Self {
        Self {
            payment_id: p.id.to_string(),
            user_id: p.user_id.clone(),
            order_id: p.order_id.to_string(),
            order_name: p.order_name.clone(),
            subscription_id: p.subscription_id.clone(),
            payment_type: p.payment_type.into(),
            payment_method: p.payment_method.clone(),
            amount_krw: p.amount_krw,
            refunded_amount_krw: p.refunded_amount_krw,
            currency: p.currency.clone(),
            status: p.status.into(),
            pg_provider: p.pg_provider.clone(),
            pg_transaction_id: p.pg_transaction_id.clone(),
            failure: p.failure.as_ref().map(|f| FailureDto {
                code: f.code.clone(),
                message: f.message.clone(),
                retryable: f.retryable,
            }),
            needs_review: p.needs_review,
            review_reason: p.review_reason.clone(),
            tax_free_amount_krw: p.tax_free_amount_krw,
            pg_method: p.pg_method.clone(),
            receipt_url: p.receipt_url.clone(),
            card: p.card.as_ref().map(|card| CardDto {
                issuer_code: card.issuer_code.clone(),
                number: card.number.clone(),
                installment_plan_months: card.installment_plan_months,
                approve_no: card.approve_no.clone(),
            }),
            virtual_account: p.virtual_account.as_ref().map(|account| VirtualAccountDto {
                bank_code: account.bank_code.clone(),
                account_number: account.account_number.clone(),
                customer_name: account.customer_name.clone(),
                due_date: account.due_date.map(timestamp),
            }),
            settlement: p.settlement.as_ref().map(|s| SettlementDto {
                fee_krw: s.fee_krw,
                payout_krw: s.payout_krw,
                sold_date: s.sold_date.clone(),
                paid_out_date: s.paid_out_date.clone(),
            }),
            created_at: timestamp(p.created_at),
            updated_at: timestamp(p.updated_at),
            completed_at: p.completed_at.map(timestamp),
            schedule: None,
        }
    }
}

/// A payment as shown to a caller without an API key (the public confirm, Toss's success and
/// fail redirects): everything but who pays (`user_id`) and the subscription it belongs to
/// (`subscription_id`).
#[derive(Debug, Serialize, ToSchema)]
// Only for the schema: `additionalProperties: false`, so that a whole payment does not pass
// for this one.
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "payment_id": "019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a",
    "order_id": "order_20261123_0001",
    "order_name": "Vitamin D x 3",
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
    "settlement": null,
    "created_at": "2026-11-23T09:30:00.000Z",
    "updated_at": "2026-11-23T09:31:02.412Z",
    "completed_at": "2026-11-23T09:31:02.000Z"
}))]
pub struct PublicPaymentDto {
    #[schema(format = Uuid)]
    pub payment_id: String,
    pub order_id: String,
    pub order_name: Option<String>,
    pub payment_type: PaymentTypeDto,
    pub payment_method: String,
    pub amount_krw: i64,
    pub refunded_amount_krw: i64,
    pub currency: String,
    pub status: PaymentStatusDto,
    pub pg_provider: Option<String>,
    pub pg_transaction_id: Option<String>,
    /// Why the last attempt to pay failed; null once paid.
    pub failure: Option<FailureDto>,
    /// True when Toss's record contradicted ours: a person resolves it.
    pub needs_review: bool,
    /// Why, while it is set aside.
    pub review_reason: Option<String>,
    /// The tax-free part of `amount_krw` (0 unless given at creation).
    pub tax_free_amount_krw: i64,
    /// The method Toss reports (`카드`, `가상계좌`, `간편결제`, `계좌이체`, `휴대폰`, ...), once
    /// Toss approved the payment or issued its virtual account; `null` before, or without Toss.
    pub pg_method: Option<String>,
    /// Toss's receipt (`receipt.url`), once Toss approved the payment.
    pub receipt_url: Option<String>,
    /// The card, as Toss reports it (its number masked by Toss); `null` for other methods.
    pub card: Option<CardDto>,
    /// Where the buyer must deposit (`WAITING_FOR_DEPOSIT`), from Toss's `virtualAccount`; kept
    /// after the deposit, the expiry or the cancel.
    pub virtual_account: Option<VirtualAccountDto>,
    /// What Toss settles for the sale, once a reconciliation run read it.
    pub settlement: Option<SettlementDto>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
}

impl From<PaymentDto> for PublicPaymentDto {
    fn from(payment: PaymentDto) -> Self {
        // Every field named, so that a field added to the payment is a decision here too.
        let PaymentDto {
            payment_id,
            user_id: _,
            order_id,
            order_name,
            subscription_id: _,
            payment_type,
            payment_method,
            amount_krw,
            refunded_amount_krw,
            currency,
            status,
            pg_provider,
            pg_transaction_id,
            failure,
            needs_review,
            review_reason,
            tax_free_amount_krw,
            pg_method,
            receipt_url,
            card,
            virtual_account,
            settlement,
            created_at,
            updated_at,
            completed_at,
            schedule: _,
        } = payment;
        Self {
            payment_id,
            order_id,
            order_name,
            payment_type,
            payment_method,
            amount_krw,
            refunded_amount_krw,
            currency,
            status,
            pg_provider,
            pg_transaction_id,
            failure,
            needs_review,
            review_reason,
            tax_free_amount_krw,
            pg_method,
            receipt_url,
            card,
            virtual_account,
            settlement,
            created_at,
            updated_at,
            completed_at,
        }
    }
}

impl From<&Payment> for PublicPaymentDto {
    fn from(payment: &Payment) -> Self {
        PaymentDto::from(payment).into()
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
    pub status: PaymentStatusDto,
    /// Why the last attempt to pay failed; null when none did, and once paid.
    #[schema(required = true)]
    pub failure: Option<FailureDto>,
}

impl From<&Payment> for PaymentFailViewDto {
    fn from(payment: &Payment) -> Self {
        Self {
            order_id: payment.order_id.to_string(),
            status: payment.status.into(),
            failure: payment.failure.as_ref().map(|f| FailureDto {
                code: f.code.clone(),
                message: f.message.clone(),
                retryable: f.retryable,
            }),
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

/// A refund.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "refund_id": "019ab5b4-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "payment_id": "019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a",
    "refund_amount_krw": 5000,
    "reason": "customer changed their mind",
    "status": "COMPLETED",
    "payment_status": "PARTIAL_REFUND",
    "refunded_at": "2026-11-23T10:02:11.000Z",
    "tax_free_amount_krw": 1666,
    "requested_by": {"type": "api_key", "name": "key-1"}
}))]
pub struct RefundDto {
    #[schema(format = Uuid)]
    pub refund_id: String,
    #[schema(format = Uuid)]
    pub payment_id: String,
    pub refund_amount_krw: i64,
    pub reason: String,
    pub status: RefundStatusDto,
    /// The payment's status after this refund.
    pub payment_status: PaymentStatusDto,
    #[schema(format = DateTime)]
    pub refunded_at: Option<String>,
    /// The tax-free part of this refund, sent to Toss as `taxFreeAmount`.
    pub tax_free_amount_krw: i64,
    /// Why the PG did not make this refund (`FAILED` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureDto>,
    /// Who asked for it: the API key (by name), or `toss` for a cancel made at Toss outside
    /// this service (its dashboard), found in Toss's record.
    pub requested_by: ActorDto,
}

impl RefundDto {
    pub fn new(refund: &Refund, payment: &Payment) -> Self {
        Self {
            refund_id: refund.id.to_string(),
            payment_id: refund.payment_id.to_string(),
            refund_amount_krw: refund.amount_krw,
            reason: refund.reason.clone(),
            status: refund.status.into(),
            payment_status: payment.status.into(),
            refunded_at: refund.refunded_at.map(timestamp),
            tax_free_amount_krw: refund.tax_free_amount_krw,
            failure: refund.failure.as_ref().map(|f| FailureDto {
                code: f.code.clone(),
                message: f.message.clone(),
                retryable: None,
            }),
            requested_by: ActorDto::from(&refund.requested_by),
        }
    }
}

/// Who made a change: on every event (`actor`) and on refunds, cancels and reviews
/// (`requested_by`). An API key is named (`key-1`, … for `API_KEYS`), never shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"type": "api_key", "name": "key-1"}))]
pub struct ActorDto {
    #[serde(rename = "type")]
    pub kind: ActorTypeDto,
    /// The API key's or the operator's name; `null` for the others.
    #[schema(required = true)]
    pub name: Option<String>,
}

/// `api_key`: a caller with an API key; `buyer`: the public confirm and Toss's success/fail
/// redirects; `toss`: Toss's webhooks, its records read back and adopted, cancels made at Toss;
/// `operator`: a person in the operator console; `system`: the service's own rules (a window
/// passing, scheduled runs, housekeeping).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorTypeDto {
    ApiKey,
    Buyer,
    Toss,
    Operator,
    System,
}

impl From<&Actor> for ActorDto {
    fn from(actor: &Actor) -> Self {
        Self {
            kind: match actor.kind {
                ActorType::ApiKey => ActorTypeDto::ApiKey,
                ActorType::Buyer => ActorTypeDto::Buyer,
                ActorType::Toss => ActorTypeDto::Toss,
                ActorType::Operator => ActorTypeDto::Operator,
                ActorType::System => ActorTypeDto::System,
            },
            name: actor.name.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundListDto {
    pub refunds: Vec<RefundDto>,
}

/// What was tried at Toss.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptKindDto {
    /// The confirm of a buyer's `paymentKey`.
    Confirm,
    /// A charge of a billing key.
    Charge,
}

impl From<AttemptKind> for AttemptKindDto {
    fn from(value: AttemptKind) -> Self {
        match value {
            AttemptKind::Confirm => Self::Confirm,
            AttemptKind::Charge => Self::Charge,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptStatusDto {
    InProgress,
    Approved,
    WaitingForDeposit,
    Failed,
    Expired,
    Cancelled,
}

impl From<AttemptStatus> for AttemptStatusDto {
    fn from(value: AttemptStatus) -> Self {
        match value {
            AttemptStatus::InProgress => Self::InProgress,
            AttemptStatus::Approved => Self::Approved,
            AttemptStatus::WaitingForDeposit => Self::WaitingForDeposit,
            AttemptStatus::Failed => Self::Failed,
            AttemptStatus::Expired => Self::Expired,
            AttemptStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// Why an attempt failed, as Toss (or the service, for an attempt Toss never answered) said.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptFailureDto {
    pub code: String,
    pub message: String,
    /// Charges only: whether charging the same card again later may pass; `null` where nobody
    /// can say.
    #[schema(required = true)]
    pub retryable: Option<bool>,
}

/// One try at Toss of a payment: the confirm of one `paymentKey`, or one billing charge.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "attempt_id": "019ab5b2-9a1b-7c2d-8e3f-4a5b6c7d8e9f",
    "kind": "confirm",
    "payment_key": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
    "status": "FAILED",
    "method": null,
    "virtual_account": null,
    "failure": {"code": "REJECT_CARD_PAYMENT", "message": "한도초과 혹은 잔액부족으로 결제에 실패했습니다.", "retryable": null},
    "toss_sends": 1,
    "started_at": "2026-11-23T09:30:00.123Z",
    "finished_at": "2026-11-23T09:30:01.002Z"
}))]
pub struct AttemptDto {
    #[schema(format = Uuid)]
    pub attempt_id: String,
    pub kind: AttemptKindDto,
    /// Toss's key of the attempt: the buyer's for a confirm; for a charge, Toss's answer
    /// (`null` until then).
    #[schema(required = true)]
    pub payment_key: Option<String>,
    pub status: AttemptStatusDto,
    /// The method Toss reports (`카드`, `가상계좌`, ...), once Toss named it.
    #[schema(required = true)]
    pub method: Option<String>,
    /// The virtual account Toss issued for this attempt; kept after its deposit, expiry or
    /// cancel.
    #[schema(required = true)]
    pub virtual_account: Option<VirtualAccountDto>,
    /// Why it failed (`FAILED`, `EXPIRED`).
    #[schema(required = true)]
    pub failure: Option<AttemptFailureDto>,
    /// How often it was sent to Toss.
    pub toss_sends: i32,
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When it was approved, failed, expired or cancelled; `null` while open.
    #[schema(format = DateTime, required = true)]
    pub finished_at: Option<String>,
}

impl From<&Attempt> for AttemptDto {
    fn from(a: &Attempt) -> Self {
        Self {
            attempt_id: a.id.to_string(),
            kind: a.kind.into(),
            payment_key: a.payment_key.as_ref().map(ToString::to_string),
            status: a.status.into(),
            method: a.method.clone(),
            virtual_account: a.virtual_account.as_ref().map(|account| VirtualAccountDto {
                bank_code: account.bank_code.clone(),
                account_number: account.account_number.clone(),
                customer_name: account.customer_name.clone(),
                due_date: account.due_date.map(timestamp),
            }),
            failure: a.failure.as_ref().map(|f| AttemptFailureDto {
                code: f.code.clone(),
                message: f.message.clone(),
                retryable: f.retryable,
            }),
            toss_sends: a.toss_sends,
            started_at: timestamp(a.started_at),
            finished_at: a.finished_at.map(timestamp),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptListDto {
    /// Oldest first.
    pub attempts: Vec<AttemptDto>,
}

/// A payment's events, in the envelope of `GET /events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentEventListDto {
    /// In the order they happened (by `cursor`).
    pub events: Vec<EventDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListPaymentsParams {
    /// Only this user's payments.
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Cursor: events after this one. Default 0 (from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// One event of the log, in the envelope consumers already know, plus its cursor.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "cursor": 42,
    "event_id": "019ab5b3-0c4d-7e5f-8a9b-0c1d2e3f4a5b",
    "event_type": "payment.completed",
    "version": "1.0",
    "timestamp": "2026-11-23T09:31:02.415Z",
    "source": "payment-service",
    "user_id": "u-1",
    "actor": {"type": "buyer", "name": null},
    "payload": {
        "payment_id": "019ab5b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a",
        "order_id": "order_20261123_0001",
        "amount": 15000,
        "currency": "KRW",
        "payment_method": "card",
        "pg_provider": "toss",
        "pg_transaction_id": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
        "payment_type": "ONE_TIME",
        "subscription_id": null
    }
}))]
pub struct EventDto {
    /// Position in the log; pass the last one seen as `after`.
    pub cursor: i64,
    #[schema(format = Uuid)]
    pub event_id: String,
    /// `payment.completed`, `payment.failed`, `payment.refunded`, `payment.waiting_for_deposit`,
    /// `payment.cancelled` or `refund.failed`.
    #[schema(example = "payment.cancelled")]
    pub event_type: String,
    pub version: String,
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub source: String,
    pub user_id: String,
    /// Who made the change: the caller of the request (an API key by name, or the buyer),
    /// `toss` when Toss's webhook or a read-back of Toss's record drove it, `system` when the
    /// service's own rule did (a window passing). Events written before version 3: `system`.
    pub actor: ActorDto,
    /// completed: {payment_id, order_id, amount, currency, payment_method, pg_provider,
    /// pg_transaction_id, payment_type, subscription_id}; failed: {payment_id, order_id, amount,
    /// currency, error_code, error_message}; refunded: {payment_id, refund_id, refund_amount,
    /// currency, reason, is_full_refund, requested_by}; waiting_for_deposit: {payment_id,
    /// order_id, amount, currency, payment_method, pg_provider, pg_transaction_id}; cancelled:
    /// {payment_id, order_id, reason, cancelled_at, requested_by}; refund.failed: {payment_id,
    /// refund_id, refund_amount, reason, failure: {code, message}, requested_by}. `requested_by`
    /// (the shape of `actor`) is who asked for the refund or the cancel; `actor` who made this
    /// change (e.g. `toss` when a webhook settled a cancel an API key asked for).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<StoredEvent> for EventDto {
    fn from(e: StoredEvent) -> Self {
        Self {
            cursor: e.seq,
            event_id: e.event_id,
            event_type: e.event_type,
            version: e.version,
            timestamp: timestamp(e.occurred_at),
            source: e.source,
            user_id: e.user_id,
            actor: ActorDto::from(&e.actor),
            payload: e.payload,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventListDto {
    pub events: Vec<EventDto>,
    /// Pass as `after` to get the next page (equal to `after` when there is nothing new).
    pub next_cursor: i64,
}

/// The `Idempotency-Key` header of the POST routes (all but the webhook), as the idempotency
/// layer checks it: 1..255 printable ASCII characters (spaces inside the key are kept; HTTP drops
/// them at its ends), else 400 before anything else runs.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// 1..255 printable ASCII characters (else 400). A retry with the same key and body replays
    /// the first response; another body is 422 `IDEMPOTENCY_KEY_REUSED`; a duplicate still
    /// running is 409 `REQUEST_IN_PROGRESS`. Keys of callers with an API key are one namespace;
    /// a caller without one shares keys only with requests naming the same `payment_key`, and
    /// its key is ignored when the request names none.
    #[expect(
        dead_code,
        reason = "documentation only: the idempotency layer reads the header"
    )]
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[ -~]*[!-~][ -~]*$"
    )]
    pub idempotency_key: Option<String>,
}

/// Query of `GET /payments/toss/success`, as Toss sends it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct TossSuccessParams {
    /// Toss's key of the authenticated payment: 1..200 printable ASCII characters, not `.` or
    /// `..`.
    #[param(
        required = true,
        min_length = 1,
        max_length = 200,
        pattern = r"^(?!\.\.?$)[!-~]{1,200}$"
    )]
    pub payment_key: Option<String>,
    /// 6..64 characters of `A-Z a-z 0-9 - _`.
    #[param(
        required = true,
        min_length = 6,
        max_length = 64,
        pattern = r"^[A-Za-z0-9_-]{6,64}$"
    )]
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
    #[param(
        required = true,
        min_length = 6,
        max_length = 64,
        pattern = r"^[A-Za-z0-9_-]{6,64}$"
    )]
    pub order_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthDto {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "database": "ok", "pg_gateway": "toss"}))]
pub struct ReadyDto {
    pub status: String,
    pub database: String,
    /// `toss` or `noop`.
    pub pg_gateway: String,
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn no_debug_shows_an_account_number() {
        let request: RefundRequest = serde_json::from_value(serde_json::json!({
            "reason": "returned",
            "refund_amount_krw": 1000,
            "refund_receive_account": {"bank": "88", "account_number": "110123456789", "holder_name": "홍길동"}
        }))
        .unwrap();
        let shown = format!("{request:?}");
        assert!(!shown.contains("110123456789"), "{shown}");
        assert!(shown.contains("********6789"), "{shown}");

        let issued = crate::domain::VirtualAccount {
            bank_code: "20".to_owned(),
            account_number: "X6516521381011".to_owned(),
            customer_name: Some("박토스".to_owned()),
            due_date: None,
        };
        let shown = format!("{issued:?}");
        assert!(!shown.contains("X6516521381011"), "{shown}");
        let dto = VirtualAccountDto {
            bank_code: "20".to_owned(),
            account_number: "X6516521381011".to_owned(),
            customer_name: None,
            due_date: None,
        };
        let shown = format!("{dto:?}");
        assert!(!shown.contains("X6516521381011"), "{shown}");
    }
}
