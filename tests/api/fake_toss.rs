//! A fake Toss Payments on loopback with Toss's own behaviour: confirm moves an authenticated
//! payment to DONE once (a second confirm is ALREADY_PROCESSED_PAYMENT), cancels append to
//! `cancels[]` and shrink `balanceAmount`, lookups return the current record, and a repeated
//! `Idempotency-Key` replays the first response. Tests mount error or delay mocks in front of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const SECRET_KEY: &str = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R";
/// base64("test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R:"), from reference/toss-api.md §2.1.
pub const BASIC_AUTH: &str = "Basic dGVzdF9za196WExrS0V5cE5BcldtbzUwblgzbG1lYXhZRzVSOg==";

#[derive(Debug, Clone)]
pub struct FakePayment {
    pub payment_key: String,
    pub order_id: String,
    pub total: i64,
    pub balance: i64,
    pub status: String,
    pub cancels: Vec<Value>,
    pub last_transaction_key: String,
}

#[derive(Default)]
struct State {
    payments: HashMap<String, FakePayment>,
    /// (url path, Idempotency-Key) -> the first response.
    replies: HashMap<(String, String), (u16, Value)>,
    /// Toss refuses a cancel of a payment within this long of the previous one
    /// (`FORBIDDEN_CONSECUTIVE_REQUEST`); off unless a test turns it on.
    cancel_spacing: Option<std::time::Duration>,
    last_cancel: HashMap<String, std::time::Instant>,
}

#[derive(Clone, Default)]
pub struct FakeToss {
    state: Arc<Mutex<State>>,
}

impl FakeToss {
    /// Mounts Toss's endpoints at low priority, so a test's own mocks answer first.
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("POST"))
            .and(path("/v1/payments/confirm"))
            .respond_with(Handler(self.clone(), Kind::Confirm))
            .with_priority(100)
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1/payments/[^/]+/cancel$"))
            .respond_with(Handler(self.clone(), Kind::Cancel))
            .with_priority(100)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/v1/payments/orders/[^/]+$"))
            .respond_with(Handler(self.clone(), Kind::ByOrder))
            .with_priority(100)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/v1/payments/[^/]+$"))
            .respond_with(Handler(self.clone(), Kind::ByKey))
            .with_priority(101)
            .mount(server)
            .await;
    }

    /// Toss's confirm endpoint answering only after `delay`; the charge itself happens at once,
    /// as when Toss is slow to reply.
    pub async fn slow_confirm(&self, server: &MockServer, delay: std::time::Duration) {
        Mock::given(method("POST"))
            .and(path("/v1/payments/confirm"))
            .respond_with(Delayed(Handler(self.clone(), Kind::Confirm), delay))
            .with_priority(50)
            .mount(server)
            .await;
    }

    /// Toss's cancel endpoint answering only after `delay`; the cancel happens at once.
    pub async fn slow_cancel(&self, server: &MockServer, delay: std::time::Duration) {
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1/payments/[^/]+/cancel$"))
            .respond_with(Delayed(Handler(self.clone(), Kind::Cancel), delay))
            .with_priority(50)
            .mount(server)
            .await;
    }

    /// The next confirm (`cancel` false) or cancel happens at Toss, but its answer comes only
    /// after `delay`: past the client's read timeout, a reply lost.
    pub async fn slow_next(&self, server: &MockServer, cancel: bool, delay: std::time::Duration) {
        let (matcher, kind) = if cancel {
            (path_regex(r"^/v1/payments/[^/]+/cancel$"), Kind::Cancel)
        } else {
            (path_regex(r"^/v1/payments/confirm$"), Kind::Confirm)
        };
        Mock::given(method("POST"))
            .and(matcher)
            .respond_with(Delayed(Handler(self.clone(), kind), delay))
            .up_to_n_times(1)
            .with_priority(40)
            .mount(server)
            .await;
    }

    /// The buyer authenticated in the payment window: Toss knows the payment as IN_PROGRESS.
    pub fn authenticate(&self, payment_key: &str, order_id: &str, amount: i64) {
        self.state.lock().unwrap().payments.insert(
            payment_key.to_owned(),
            FakePayment {
                payment_key: payment_key.to_owned(),
                order_id: order_id.to_owned(),
                total: amount,
                balance: amount,
                status: "IN_PROGRESS".to_owned(),
                cancels: Vec::new(),
                last_transaction_key: String::new(),
            },
        );
    }

    /// Toss's one-cancel-per-payment-per-`spacing` rule (1 s at Toss), for tests of it.
    pub fn space_cancels(&self, spacing: std::time::Duration) {
        self.state.lock().unwrap().cancel_spacing = Some(spacing);
    }

    /// Sets Toss's status of a payment, as if something happened on Toss's side.
    pub fn set_status(&self, payment_key: &str, status: &str) {
        if let Some(p) = self.state.lock().unwrap().payments.get_mut(payment_key) {
            p.status = status.to_owned();
        }
    }

    pub fn payment(&self, payment_key: &str) -> Option<FakePayment> {
        self.state
            .lock()
            .unwrap()
            .payments
            .get(payment_key)
            .cloned()
    }

    /// A cancel made in Toss's dashboard, not through the service.
    pub fn cancel_in_dashboard(&self, payment_key: &str, amount: i64) {
        let mut state = self.state.lock().unwrap();
        let payment = state.payments.get_mut(payment_key).expect("known payment");
        apply_cancel(payment, amount, "dashboard");
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Confirm,
    Cancel,
    ByKey,
    ByOrder,
}

struct Handler(FakeToss, Kind);

struct Delayed(Handler, std::time::Duration);

impl Respond for Delayed {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request).set_delay(self.1)
    }
}

impl Respond for Handler {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            != Some(BASIC_AUTH)
        {
            return error(
                401,
                "UNAUTHORIZED_KEY",
                "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
            );
        }
        let mut state = self.0.state.lock().unwrap();
        let idempotency = request
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(|key| (request.url.path().to_owned(), key.to_owned()));
        if let Some(key) = &idempotency
            && let Some((status, body)) = state.replies.get(key)
        {
            return ResponseTemplate::new(*status).set_body_json(body.clone());
        }
        let (status, body) = match self.1 {
            Kind::Confirm => confirm(&mut state, request),
            Kind::Cancel => cancel(&mut state, request),
            Kind::ByKey => {
                let key = last_segment(request);
                match state.payments.get(&key) {
                    Some(p) => (200, to_json(p)),
                    None => not_found(),
                }
            }
            Kind::ByOrder => {
                let order = last_segment(request);
                match state.payments.values().find(|p| p.order_id == order) {
                    Some(p) => (200, to_json(p)),
                    None => not_found(),
                }
            }
        };
        if let Some(key) = idempotency {
            state.replies.insert(key, (status, body.clone()));
        }
        ResponseTemplate::new(status).set_body_json(body)
    }
}

fn last_segment(request: &Request) -> String {
    let segment = request
        .url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default();
    percent_decode(segment)
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn confirm(state: &mut State, request: &Request) -> (u16, Value) {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let (Some(key), Some(order), Some(amount)) = (
        body["paymentKey"].as_str(),
        body["orderId"].as_str(),
        body["amount"].as_i64(),
    ) else {
        return (
            400,
            json!({"code": "INVALID_REQUEST", "message": "잘못된 요청입니다."}),
        );
    };
    let payment = state
        .payments
        .entry(key.to_owned())
        .or_insert_with(|| FakePayment {
            payment_key: key.to_owned(),
            order_id: order.to_owned(),
            total: amount,
            balance: amount,
            status: "IN_PROGRESS".to_owned(),
            cancels: Vec::new(),
            last_transaction_key: String::new(),
        });
    if payment.order_id != order || payment.total != amount {
        return (
            400,
            json!({"code": "INVALID_REQUEST", "message": "결제 금액 또는 주문번호가 일치하지 않습니다."}),
        );
    }
    match payment.status.as_str() {
        "IN_PROGRESS" => {
            payment.status = "DONE".to_owned();
            payment.last_transaction_key = format!("tx_{}", uuid::Uuid::new_v4().simple());
            (200, to_json(payment))
        }
        "ABORTED" | "EXPIRED" => (
            404,
            json!({"code": "NOT_FOUND_PAYMENT_SESSION", "message": "결제 시간이 만료되어 결제 진행 데이터가 존재하지 않습니다."}),
        ),
        _ => (
            400,
            json!({"code": "ALREADY_PROCESSED_PAYMENT", "message": "이미 처리된 결제 입니다."}),
        ),
    }
}

fn cancel(state: &mut State, request: &Request) -> (u16, Value) {
    let segments: Vec<&str> = request
        .url
        .path_segments()
        .map(|s| s.collect())
        .unwrap_or_default();
    let key = percent_decode(segments.get(2).copied().unwrap_or_default());
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let Some(payment) = state.payments.get(&key) else {
        return not_found();
    };
    if !matches!(payment.status.as_str(), "DONE" | "PARTIAL_CANCELED") {
        return (
            403,
            json!({"code": "NOT_CANCELABLE_PAYMENT", "message": "취소 할 수 없는 결제 입니다."}),
        );
    }
    if let Some(spacing) = state.cancel_spacing {
        let now = std::time::Instant::now();
        if state
            .last_cancel
            .get(&key)
            .is_some_and(|last| now.duration_since(*last) < spacing)
        {
            return (
                403,
                json!({"code": "FORBIDDEN_CONSECUTIVE_REQUEST", "message": "반복적인 요청은 허용되지 않습니다. 잠시 후 다시 시도해주세요."}),
            );
        }
        state.last_cancel.insert(key.clone(), now);
    }
    let Some(payment) = state.payments.get_mut(&key) else {
        return not_found();
    };
    if let Some(refundable) = body["refundableAmount"].as_i64()
        && refundable != payment.balance
    {
        return (
            400,
            json!({"code": "NOT_MATCHES_REFUNDABLE_AMOUNT", "message": "잔액 결과가 일치하지 않습니다."}),
        );
    }
    let amount = body["cancelAmount"].as_i64().unwrap_or(payment.balance);
    if amount > payment.balance {
        return (
            403,
            json!({"code": "NOT_CANCELABLE_AMOUNT", "message": "취소 할 수 없는 금액 입니다."}),
        );
    }
    apply_cancel(
        payment,
        amount,
        body["cancelReason"].as_str().unwrap_or_default(),
    );
    (200, to_json(payment))
}

fn apply_cancel(payment: &mut FakePayment, amount: i64, reason: &str) {
    let transaction_key = format!("cx_{}", uuid::Uuid::new_v4().simple());
    payment.balance -= amount;
    payment.status = if payment.balance == 0 {
        "CANCELED"
    } else {
        "PARTIAL_CANCELED"
    }
    .to_owned();
    payment.last_transaction_key = transaction_key.clone();
    payment.cancels.push(json!({
        "transactionKey": transaction_key,
        "cancelReason": reason,
        "taxExemptionAmount": 0,
        "canceledAt": "2026-11-23T12:20:23+09:00",
        "cancelAmount": amount,
        "taxFreeAmount": 0,
        "refundableAmount": payment.balance,
        "cancelStatus": "DONE",
        "cancelRequestId": null
    }));
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"code": "NOT_FOUND_PAYMENT", "message": "존재하지 않는 결제 정보 입니다."}),
    )
}

pub fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"code": code, "message": message, "data": null}))
}

/// The webhook secret Toss gives an attempt: its own, per `paymentKey`.
pub fn secret_of(payment_key: &str) -> String {
    let digest: u32 = payment_key.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!("ps_{digest:08x}")
}

pub fn to_json(p: &FakePayment) -> Value {
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
        "approvedAt": if p.status == "IN_PROGRESS" { Value::Null } else { json!("2026-11-23T12:18:14+09:00") },
        "useEscrow": false,
        "cultureExpense": false,
        "card": {"issuerCode": "71", "acquirerCode": "71", "number": "12345678****000*", "installmentPlanMonths": 0,
                 "isInterestFree": false, "interestPayer": null, "approveNo": "00000000", "useCardPoint": false,
                 "cardType": "신용", "ownerType": "개인", "acquireStatus": "READY", "amount": p.total},
        "virtualAccount": null, "transfer": null, "mobilePhone": null, "giftCertificate": null,
        "cashReceipt": null, "cashReceipts": null, "discount": null,
        "cancels": if p.cancels.is_empty() { Value::Null } else { json!(p.cancels) },
        "secret": secret_of(&p.payment_key),
        "type": "NORMAL",
        "easyPay": null,
        "country": "KR",
        "failure": null,
        "isPartialCancelable": true,
        "receipt": {"url": "https://dashboard.tosspayments.com/receipt"},
        "checkout": {"url": "https://api.tosspayments.com/checkout"},
        "currency": "KRW",
        "totalAmount": p.total,
        "balanceAmount": p.balance,
        "suppliedAmount": p.balance * 10 / 11,
        "vat": p.balance - p.balance * 10 / 11,
        "taxFreeAmount": 0,
        "method": "카드",
        "metadata": null,
        "someFieldTossAddedLater": {"nested": true}
    })
}
