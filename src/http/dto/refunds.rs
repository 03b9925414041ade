//! Refunds: the request (with the account a virtual account's money goes back to) and the
//! refund as shown.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FailureDto, text, timestamp};
use crate::domain::{Actor, Payment, PaymentStatus, Refund, RefundAccount, RefundStatus};
use crate::error::AppError;

/// Body of `POST /payments/{payment_id}/refund`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "customer changed their mind", "refund_amount_krw": 5000}))]
pub struct RefundRequest {
    /// 1..200 characters, not blank, no control characters; sent to Toss as `cancelReason`.
    #[schema(min_length = 1, max_length = 200, pattern = "visible text")]
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

impl RefundRequest {
    /// The rules of the request's own fields: `reason` is visible text, the amounts are not
    /// negative (the service checks them against the payment).
    pub fn check(&self) -> Result<(), AppError> {
        text("reason", &self.reason, 200)?;
        for (field, amount) in [
            ("refund_amount_krw", self.refund_amount_krw),
            ("tax_free_amount_krw", self.tax_free_amount_krw),
        ] {
            if amount.is_some_and(|amount| amount < 0) {
                return Err(AppError::unprocessable(format!(
                    "{field}: must not be negative"
                )));
            }
        }
        Ok(())
    }
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
    #[schema(min_length = 1, max_length = 60, pattern = "visible text")]
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
    pub status: RefundStatus,
    /// The payment's status after this refund.
    pub payment_status: PaymentStatus,
    #[schema(format = DateTime)]
    pub refunded_at: Option<String>,
    /// The tax-free part of this refund, sent to Toss as `taxFreeAmount`.
    pub tax_free_amount_krw: i64,
    /// Why the PG did not make this refund (`FAILED` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureDto>,
    /// Who asked for it: the API key (by name), or `toss` for a cancel made at Toss outside
    /// this service (its dashboard), found in Toss's record.
    pub requested_by: Actor,
}

impl RefundDto {
    pub fn new(refund: &Refund, payment: &Payment) -> Self {
        Self {
            refund_id: refund.id.to_string(),
            payment_id: refund.payment_id.to_string(),
            refund_amount_krw: refund.amount_krw,
            reason: refund.reason.clone(),
            status: refund.status,
            payment_status: payment.status,
            refunded_at: refund.refunded_at.map(timestamp),
            tax_free_amount_krw: refund.tax_free_amount_krw,
            failure: refund.failure.as_ref().map(|f| FailureDto {
                retryable: None,
                ..FailureDto::from(f)
            }),
            requested_by: refund.requested_by.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundListDto {
    pub refunds: Vec<RefundDto>,
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
        // Shown as is in the API's views too (`VirtualAccountDto`).
        let shown = format!("{issued:?}");
        assert!(!shown.contains("X6516521381011"), "{shown}");
    }

    #[test]
    fn a_refund_request_has_a_visible_reason_and_no_negative_amount() {
        let request =
            |body: serde_json::Value| -> RefundRequest { serde_json::from_value(body).unwrap() };
        use serde_json::json;
        assert!(
            request(json!({"reason": "returned", "refund_amount_krw": 0}))
                .check()
                .is_ok()
        );
        for (body, why) in [
            (json!({"reason": " "}), "reason"),
            (
                json!({"reason": "x", "refund_amount_krw": -1}),
                "refund_amount_krw",
            ),
            (
                json!({"reason": "x", "tax_free_amount_krw": -1}),
                "tax_free_amount_krw",
            ),
        ] {
            let error = request(body).check().unwrap_err();
            assert!(error.to_string().starts_with(why), "{error}");
        }
    }
}
