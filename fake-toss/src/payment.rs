//! Toss's Payment object: a payment as the fake keeps it ([`FakePayment`]) and as Toss answers it
//! ([`to_json`]), with the KST timestamps and the per-attempt webhook `secret` Toss gives it.

use serde_json::{Value, json};

use crate::virtual_accounts::DUE_IN;

/// A payment as Toss keeps it.
#[derive(Debug, Clone, Default)]
pub struct FakePayment {
    pub payment_key: String,
    pub order_id: String,
    pub total: i64,
    pub balance: i64,
    pub status: String,
    pub cancels: Vec<Value>,
    pub last_transaction_key: String,
    /// Paid by virtual account (가상계좌) rather than by card: a confirm issues the account
    /// (`WAITING_FOR_DEPOSIT`), the deposit completes it, and its refunds need
    /// `refundReceiveAccount`.
    pub virtual_account: bool,
    /// What is left of the tax-free amount (Toss's `taxFreeAmount`, which shrinks with cancels).
    pub tax_free: i64,
    /// Why it ended without approval (`EXPIRED`, ...).
    pub failure: Option<(String, String)>,
    /// `approvedAt` (KST, RFC 3339) once approved.
    pub approved_at: Option<String>,
    /// A virtual account's `dueDate` (KST, `yyyy-MM-dd'T'HH:mm:ss`), set when the buyer chose
    /// the account: seven days on.
    pub due_date: Option<String>,
}

impl FakePayment {
    /// A virtual account past its due date without a deposit: Toss keeps it
    /// `WAITING_FOR_DEPOSIT` with `virtualAccount.expired: true` (and sends no webhook).
    pub fn deposit_expired(&self) -> bool {
        let now = chrono::Utc::now().with_timezone(&kst()).naive_local();
        self.virtual_account
            && self.status == "WAITING_FOR_DEPOSIT"
            && self.due_date.as_deref().is_some_and(|due| {
                chrono::NaiveDateTime::parse_from_str(due, "%Y-%m-%dT%H:%M:%S")
                    .is_ok_and(|due| due <= now)
            })
    }
}

impl FakePayment {
    /// The buyer authenticated in the payment window; nothing is approved yet.
    pub(crate) fn authenticated(payment_key: &str, order_id: &str, amount: i64) -> Self {
        Self {
            payment_key: payment_key.to_owned(),
            order_id: order_id.to_owned(),
            total: amount,
            balance: amount,
            status: "IN_PROGRESS".to_owned(),
            cancels: Vec::new(),
            last_transaction_key: String::new(),
            ..Self::default()
        }
    }

    /// Toss approves it now: `DONE`, with a new transaction key.
    pub(crate) fn approve_now(&mut self) {
        self.status = "DONE".to_owned();
        self.last_transaction_key = format!("tx_{}", uuid::Uuid::new_v4().simple());
        self.approved_at = Some(now_kst());
    }
}

pub(crate) fn kst() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(9 * 3600).expect("a valid offset")
}

/// Now in Korea, as Toss writes its timestamps.
pub(crate) fn now_kst() -> String {
    chrono::Utc::now()
        .with_timezone(&kst())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// `at` as Toss writes a virtual account's `dueDate`: KST, no offset.
pub fn due_date_of(at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&kst())
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// The webhook secret Toss gives an attempt: its own, per `paymentKey`.
pub fn secret_of(payment_key: &str) -> String {
    let digest: u32 = payment_key.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!("ps_{digest:08x}")
}

/// Toss's Payment object, with the fields a card payment carries (the size of a real reply) and
/// one Toss might add later (clients must ignore it).
pub fn to_json(p: &FakePayment) -> Value {
    // A virtual account is approved by its deposit only: one cancelled before it never was.
    let cancelled_unpaid = p.virtual_account && p.status == "CANCELED" && p.approved_at.is_none();
    let approved = !cancelled_unpaid
        && !matches!(
            p.status.as_str(),
            "READY" | "IN_PROGRESS" | "WAITING_FOR_DEPOSIT" | "EXPIRED" | "ABORTED"
        );
    let card = json!({"issuerCode": "71", "acquirerCode": "71", "number": "12345678****000*", "installmentPlanMonths": 0,
                 "isInterestFree": false, "interestPayer": null, "approveNo": "00000000", "useCardPoint": false,
                 "cardType": "신용", "ownerType": "개인", "acquireStatus": "READY", "amount": p.total});
    let virtual_account = json!({"accountType": "일반", "accountNumber": "X6516521381011", "bankCode": "20",
                 "customerName": "박토스", "depositorName": null,
                 "dueDate": p.due_date.clone().unwrap_or_else(|| due_date_of(chrono::Utc::now() + DUE_IN)),
                 "refundStatus": "NONE", "expired": p.deposit_expired(), "settlementStatus": "INCOMPLETED",
                 "refundReceiveAccount": null});
    json!({
        "mId": "tosspayments",
        "version": "2022-11-16",
        "lastTransactionKey": if p.last_transaction_key.is_empty() { Value::Null } else { json!(p.last_transaction_key) },
        "paymentKey": p.payment_key,
        "orderId": p.order_id,
        "orderName": "test order",
        "taxExemptionAmount": 0,
        "status": p.status,
        "requestedAt": "2026-11-23T12:17:57+09:00",
        "approvedAt": if approved {
            json!(p.approved_at.as_deref().unwrap_or("2026-11-23T12:18:14+09:00"))
        } else {
            Value::Null
        },
        "useEscrow": false,
        "cultureExpense": false,
        "card": if p.virtual_account { Value::Null } else { card },
        "virtualAccount": if p.virtual_account { virtual_account } else { Value::Null },
        "transfer": null, "mobilePhone": null, "giftCertificate": null,
        "cashReceipt": null, "cashReceipts": null, "discount": null,
        "cancels": if p.cancels.is_empty() { Value::Null } else { json!(p.cancels) },
        "secret": secret_of(&p.payment_key),
        "type": "NORMAL",
        "easyPay": null,
        "country": "KR",
        "failure": p.failure.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
        "isPartialCancelable": true,
        "receipt": if approved { json!({"url": format!("https://dashboard.tosspayments.com/receipt/{}", p.payment_key)}) } else { Value::Null },
        "checkout": {"url": "https://api.tosspayments.com/checkout"},
        "currency": "KRW",
        "totalAmount": p.total,
        "balanceAmount": p.balance,
        // vat = round((amount − taxFreeAmount) / 11) (§4).
        "suppliedAmount": p.balance - p.tax_free - (p.balance - p.tax_free + 5) / 11,
        "vat": (p.balance - p.tax_free + 5) / 11,
        "taxFreeAmount": p.tax_free,
        "method": if p.virtual_account { "가상계좌" } else { "카드" },
        "metadata": null,
        "someFieldTossAddedLater": {"nested": true}
    })
}
