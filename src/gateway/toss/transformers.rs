//! Toss's JSON and ours: the bodies of a cancel and an issue (a confirm's and a charge's are
//! their requests serialized), and Toss's Payment object read into a [`PgPayment`]. Toss adds
//! fields and nulls others without a version bump (`docs/toss-api.md` §1, §4), so replies are
//! read tolerantly.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::errors::unknown;
use crate::domain::{
    BillingKeySecret, CardInfo, CardSummary, PaymentKey, PgDetails, VirtualAccount,
};
use crate::gateway::{
    CancelRequest, GatewayError, IssueRequest, PgBillingKey, PgCancel, PgFailure, PgPayment,
    PgStatus,
};

/// A 2xx reply's body: Toss's Payment object. A reply that is not one leaves the outcome unknown.
pub(super) fn parse_payment(body: &[u8]) -> Result<PgPayment, GatewayError> {
    let payment: TossPayment = serde_json::from_slice(body)
        .map_err(|error| unknown(format!("2xx reply is not a Toss Payment: {error}")))?;
    payment.into_pg().map_err(unknown)
}

/// Body of `POST /v1/payments/{paymentKey}/cancel`; the key goes in the path. Absent values
/// are left out, never sent as `null` (`docs/toss-api.md` §5.1).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CancelBody<'a> {
    cancel_reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refundable_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_free_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_receive_account: Option<RefundReceiveAccount<'a>>,
}

/// The request names the bank `bank` (the Payment object's copy says `bankCode`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundReceiveAccount<'a> {
    bank: &'a str,
    account_number: &'a str,
    holder_name: &'a str,
}

impl<'a> From<&'a CancelRequest> for CancelBody<'a> {
    fn from(request: &'a CancelRequest) -> Self {
        Self {
            cancel_reason: &request.reason,
            cancel_amount: request.amount,
            refundable_amount: request.refundable_amount,
            tax_free_amount: request.tax_free_amount,
            refund_receive_account: request.refund_account.as_ref().map(|account| {
                RefundReceiveAccount {
                    bank: &account.bank,
                    account_number: account.expose_account_number(),
                    holder_name: &account.holder_name,
                }
            }),
        }
    }
}

/// Body of `POST /v1/billing/authorizations/issue`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IssueBody<'a> {
    auth_key: &'a str,
    customer_key: &'a str,
}

impl<'a> From<&'a IssueRequest> for IssueBody<'a> {
    fn from(request: &'a IssueRequest) -> Self {
        Self {
            auth_key: request.auth_key.expose(),
            customer_key: request.customer_key.as_str(),
        }
    }
}

/// Toss's Billing object (§17.1), the fields we keep.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossBilling {
    billing_key: String,
    customer_key: Option<String>,
    method: Option<String>,
    card: Option<CardInfo>,
}

/// A 2xx reply of an issue: Toss's Billing object. Without a billing key in it, nothing usable
/// was issued as far as we can tell.
pub(super) fn parse_billing(body: &[u8]) -> Result<PgBillingKey, GatewayError> {
    let billing: TossBilling = serde_json::from_slice(body)
        .map_err(|_| unknown("2xx reply is not a Toss Billing object"))?;
    if billing.billing_key.is_empty() {
        return Err(unknown("Toss's Billing object has an empty billingKey"));
    }
    Ok(PgBillingKey {
        billing_key: BillingKeySecret::new(billing.billing_key),
        customer_key: billing.customer_key.unwrap_or_default(),
        method: billing.method,
        card: billing.card,
    })
}

/// `{"code","message"}`, sometimes with `"data": null` and whatever Toss adds next.
#[derive(Deserialize)]
pub(super) struct TossErrorBody {
    pub(super) code: String,
    pub(super) message: Option<String>,
}

/// Toss's Payment object, only the fields we keep. Toss adds fields and nulls others without a
/// version bump (§1, §4), hence no `deny_unknown_fields` and `Option` nearly everywhere.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossPayment {
    payment_key: String,
    order_id: String,
    status: String,
    total_amount: Option<i64>,
    balance_amount: Option<i64>,
    currency: Option<String>,
    method: Option<String>,
    secret: Option<String>,
    last_transaction_key: Option<String>,
    approved_at: Option<String>,
    tax_free_amount: Option<i64>,
    cancels: Option<Vec<TossCancel>>,
    failure: Option<TossFailure>,
    card: Option<CardSummary>,
    virtual_account: Option<TossVirtualAccount>,
    receipt: Option<TossReceipt>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossVirtualAccount {
    bank_code: Option<String>,
    account_number: Option<String>,
    customer_name: Option<String>,
    /// `yyyy-MM-dd'T'HH:mm:ss`, KST when without an offset.
    due_date: Option<String>,
    /// Past its due date without a deposit.
    expired: Option<bool>,
}

#[derive(Deserialize)]
struct TossReceipt {
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossCancel {
    transaction_key: Option<String>,
    cancel_amount: Option<i64>,
    cancel_reason: Option<String>,
    cancel_status: Option<String>,
    canceled_at: Option<String>,
    tax_free_amount: Option<i64>,
}

#[derive(Deserialize)]
struct TossFailure {
    code: Option<String>,
    message: Option<String>,
}

impl TossPayment {
    /// A key that could not be ours (nor addressed at Toss) makes the whole reply doubtful.
    fn into_pg(self) -> Result<PgPayment, String> {
        let payment_key = PaymentKey::parse(&self.payment_key)
            .map_err(|error| format!("the Toss reply's paymentKey {}", error.reason))?;
        let cancels = self
            .cancels
            .unwrap_or_default()
            .into_iter()
            .map(TossCancel::into_pg)
            .collect::<Result<Vec<_>, _>>()?;
        let failure = self
            .failure
            .filter(|failure| failure.code.is_some() || failure.message.is_some())
            .map(|failure| PgFailure {
                code: failure.code.unwrap_or_default(),
                message: failure.message.unwrap_or_default(),
            });
        let deposit_expired = self
            .virtual_account
            .as_ref()
            .and_then(|account| account.expired)
            .unwrap_or(false);
        // Paid means approved: an `approvedAt` Toss wrote is kept as a fact even when its
        // timestamp cannot be read (then the time is now's).
        let approved_at = self
            .approved_at
            .as_deref()
            .filter(|raw| !raw.trim().is_empty())
            .map(|raw| parse_timestamp(Some(raw)).unwrap_or_else(Utc::now));
        let details = PgDetails {
            method: self.method.clone().filter(|m| !m.is_empty()),
            receipt_url: self.receipt.and_then(|r| r.url).filter(|u| !u.is_empty()),
            card: self.card,
            // Without a bank and a number there is nowhere to deposit: not an account.
            virtual_account: self.virtual_account.and_then(|account| {
                Some(VirtualAccount {
                    bank_code: account.bank_code.filter(|b| !b.is_empty())?,
                    account_number: account.account_number.filter(|n| !n.is_empty())?,
                    customer_name: account.customer_name,
                    due_date: parse_timestamp(account.due_date.as_deref()),
                })
            }),
        };
        Ok(PgPayment {
            details,
            payment_key,
            order_id: self.order_id,
            status: PgStatus::parse(self.status),
            total_amount: self.total_amount,
            balance_amount: self.balance_amount,
            currency: self.currency,
            method: self.method,
            secret: self.secret,
            last_transaction_key: self.last_transaction_key,
            approved_at,
            tax_free_amount: self.tax_free_amount,
            deposit_expired,
            cancels,
            failure,
        })
    }
}

impl TossCancel {
    /// A cancel without its key or amount cannot be matched to a refund: the whole reply is
    /// then in doubt rather than quietly shorter.
    fn into_pg(self) -> Result<PgCancel, String> {
        let (Some(transaction_key), Some(amount)) = (self.transaction_key, self.cancel_amount)
        else {
            return Err("a cancel in the Toss reply lacks transactionKey or cancelAmount".into());
        };
        Ok(PgCancel {
            transaction_key,
            amount,
            reason: self.cancel_reason,
            status: self.cancel_status,
            canceled_at: parse_timestamp(self.canceled_at.as_deref()),
            tax_free_amount: self.tax_free_amount.unwrap_or(0),
        })
    }
}

/// Toss writes `2024-02-13T12:18:14+09:00`, but older payloads drop the offset; those are KST.
/// A timestamp is informative only, so an unreadable one becomes `None` instead of an error.
fn parse_timestamp(raw: Option<&str>) -> Option<DateTime<Utc>> {
    let raw = raw?.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(time) = DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(time.with_timezone(&Utc));
    }
    let kst = FixedOffset::east_opt(9 * 3600)?;
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()?
        .and_local_timezone(kst)
        .single()
        .map(|time| time.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ConfirmRequest;
    use chrono::TimeZone as _;
    use serde_json::json;

    #[test]
    fn request_bodies_carry_tosss_names_and_our_values() {
        let confirm = ConfirmRequest {
            payment_key: PaymentKey::parse("pk_1").unwrap(),
            order_id: crate::domain::OrderId::parse("order-1").unwrap(),
            amount: 1000,
            idempotency_key: "confirm-1".to_owned(),
        };
        assert_eq!(
            serde_json::to_value(&confirm).unwrap(),
            json!({"paymentKey": "pk_1", "orderId": "order-1", "amount": 1000})
        );
        let cancel = CancelRequest::refund("pk_1", "고객 변심", 400);
        // The key goes in the path, the idempotency key in a header: neither is in the body.
        assert_eq!(
            serde_json::to_value(CancelBody::from(&cancel)).unwrap(),
            json!({"cancelReason": "고객 변심", "cancelAmount": 400, "refundableAmount": 1000})
        );
        let account = crate::domain::RefundAccount::parse("88", "110123456789", "홍길동").unwrap();
        let refund = CancelRequest {
            tax_free_amount: Some(300),
            refund_account: Some(account),
            ..cancel.clone()
        };
        assert_eq!(
            serde_json::to_value(CancelBody::from(&refund)).unwrap(),
            json!({"cancelReason": "고객 변심", "cancelAmount": 400, "refundableAmount": 1000,
                   "taxFreeAmount": 300,
                   "refundReceiveAccount": {"bank": "88", "accountNumber": "110123456789", "holderName": "홍길동"}})
        );
        assert!(!format!("{refund:?}").contains("110123456789"));
        let unpaid = CancelRequest {
            amount: None,
            refundable_amount: None,
            ..cancel
        };
        assert_eq!(
            serde_json::to_value(CancelBody::from(&unpaid)).unwrap(),
            json!({"cancelReason": "고객 변심"})
        );
    }

    #[test]
    fn tolerant_payment_parses() {
        let body = json!({
            "paymentKey": "pk_new",
            "orderId": "order-new",
            "status": "SOMETHING_NEW",
            "brandNewField": {"nested": [1, 2, 3]},
            "method": "",
            "totalAmount": 50_000_000_000_i64,
            "balanceAmount": null,
            "currency": null,
            "secret": null,
            "lastTransactionKey": null,
            "approvedAt": "not a time",
            "cancels": null,
            "failure": null,
            "card": null,
            "version": null
        });
        let payment = parse_payment(body.to_string().as_bytes()).unwrap();
        assert_eq!(payment.status, PgStatus::Other("SOMETHING_NEW".to_owned()));
        assert_eq!(payment.method.as_deref(), Some(""));
        assert_eq!(payment.total_amount, Some(50_000_000_000));
        assert_eq!(payment.balance_amount, None);
        // Toss wrote an approval: kept as one (paid means approved), its time unreadable.
        assert!(payment.approved_at.is_some());
        assert!(payment.cancels.is_empty());
        assert_eq!(payment.tax_free_amount, None);
        assert!(!payment.deposit_expired);

        let minimal = parse_payment(br#"{"paymentKey":"pk","orderId":"o","status":"EXPIRED","failure":{"code":"EXPIRED_PAYMENT","message":"m"}}"#).unwrap();
        assert_eq!(minimal.status, PgStatus::Expired);
        assert_eq!(minimal.approved_at, None);
        assert_eq!(
            minimal.failure,
            Some(PgFailure {
                code: "EXPIRED_PAYMENT".to_owned(),
                message: "m".to_owned()
            })
        );
    }

    #[test]
    fn the_virtual_account_card_and_receipt_are_read() {
        let body = json!({
            "paymentKey": "pk_va", "orderId": "order-va", "status": "WAITING_FOR_DEPOSIT",
            "method": "가상계좌", "totalAmount": 1000, "secret": "ps_x",
            "virtualAccount": {"accountType": "일반", "accountNumber": "X6516521381011",
                "bankCode": "20", "customerName": "박토스", "dueDate": "2024-02-20T23:59:59",
                "refundStatus": "NONE", "expired": true, "settlementStatus": "INCOMPLETED"},
            "approvedAt": null, "taxFreeAmount": 300,
            "receipt": {"url": "https://dashboard.tosspayments.com/receipt/x"},
            "card": {"issuerCode": "71", "number": "12345678****000*", "installmentPlanMonths": 3, "approveNo": "00000000"},
            "cancels": [{"transactionKey": "c1", "cancelAmount": 10, "taxFreeAmount": 4}]
        });
        let payment = parse_payment(body.to_string().as_bytes()).unwrap();
        assert!(payment.deposit_expired, "virtualAccount.expired");
        assert_eq!(payment.tax_free_amount, Some(300));
        assert_eq!(payment.approved_at, None);
        let account = payment.details.virtual_account.unwrap();
        assert_eq!(account.bank_code, "20");
        assert_eq!(account.account_number, "X6516521381011");
        assert_eq!(account.customer_name.as_deref(), Some("박토스"));
        assert_eq!(
            account.due_date,
            Some(Utc.with_ymd_and_hms(2024, 2, 20, 14, 59, 59).unwrap())
        );
        assert_eq!(payment.details.method.as_deref(), Some("가상계좌"));
        assert_eq!(
            payment.details.receipt_url.as_deref(),
            Some("https://dashboard.tosspayments.com/receipt/x")
        );
        let card = payment.details.card.unwrap();
        assert_eq!(card.installment_plan_months, Some(3));
        assert_eq!(card.number.as_deref(), Some("12345678****000*"));
        assert_eq!(payment.cancels[0].tax_free_amount, 4);
    }

    #[test]
    fn payment_without_required_fields_is_unknown() {
        for body in [
            r#"{"orderId":"o","status":"DONE"}"#,
            r#"{"paymentKey":"pk","status":"DONE"}"#,
            r#"{"paymentKey":"pk","orderId":"o"}"#,
            r#"{"paymentKey":"pk","orderId":"o","status":null}"#,
            r#"{"paymentKey":"pk","orderId":"o","status":"CANCELED","cancels":[{"cancelAmount":1}]}"#,
        ] {
            assert!(
                matches!(
                    parse_payment(body.as_bytes()),
                    Err(GatewayError::Unknown { .. })
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn a_payment_key_that_could_not_be_ours_is_unknown() {
        let long = "k".repeat(201);
        for key in ["", "..", "key with space", "키", long.as_str()] {
            let body = json!({"paymentKey": key, "orderId": "order-1", "status": "DONE"});
            assert!(
                matches!(
                    parse_payment(body.to_string().as_bytes()),
                    Err(GatewayError::Unknown { code: None, .. })
                ),
                "{key}"
            );
        }
    }

    #[test]
    fn timestamps_parse_leniently() {
        let expected = Some(Utc.with_ymd_and_hms(2024, 2, 13, 3, 18, 14).unwrap());
        for (raw, parsed) in [
            (Some("2024-02-13T12:18:14+09:00"), expected),
            (Some("2024-02-13T12:18:14+0900"), expected),
            (Some("2024-02-13T12:18:14.000"), expected),
            (Some("yesterday"), None),
            (None, None),
        ] {
            assert_eq!(parse_timestamp(raw), parsed, "{raw:?}");
        }
    }
}
