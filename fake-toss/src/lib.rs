//! Toss Payments' behaviour in memory, for the fakes that stand in for Toss: the tests' (a
//! wiremock server, `tests/api/fake_toss.rs`) and the benchmark's (an HTTP server in `bench/`).
//!
//! Confirm moves an authenticated payment to DONE once (a second confirm is
//! ALREADY_PROCESSED_PAYMENT), cancels append to `cancels[]` and shrink `balanceAmount` (refused
//! when the caller's `refundableAmount` is not the balance, and, when asked for, within a spacing
//! of the previous cancel), lookups return the current record, every attempt has its own
//! `secret`, and a repeated `Idempotency-Key` replays the first reply. Every approval and cancel
//! is also a transaction in Toss's books: `GET /v1/transactions` lists them (`startingAfter`
//! paging) and `GET /v1/settlements` settles them (`page` paging; a cancel is a negative row;
//! the fee is 3 % plus 10 % VAT on it), and list calls can be made to answer 429. An adapter
//! turns an HTTP request into a [`Call`] and the [`Reply`] back into a response; nothing here
//! knows HTTP.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// Toss's published test secret key (`docs/toss-api.md` §2.3): the fake's default.
pub const SECRET_KEY: &str = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R";
/// base64("test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R:"), from docs/toss-api.md §2.1.
pub const BASIC_AUTH: &str = "Basic dGVzdF9za196WExrS0V5cE5BcldtbzUwblgzbG1lYXhZRzVSOg==";

/// The `Authorization` header Toss expects for `secret_key`: HTTP Basic with an empty password.
pub fn basic_auth(secret_key: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{secret_key}:"));
    format!("Basic {encoded}")
}

/// A payment as Toss keeps it.
#[derive(Debug, Clone)]
pub struct FakePayment {
    pub payment_key: String,
    pub order_id: String,
    pub total: i64,
    pub balance: i64,
    pub status: String,
    pub cancels: Vec<Value>,
    pub last_transaction_key: String,
    /// `approvedAt` (KST, RFC 3339) once approved.
    pub approved_at: Option<String>,
}

impl FakePayment {
    /// The buyer authenticated in the payment window; nothing is approved yet.
    fn authenticated(payment_key: &str, order_id: &str, amount: i64) -> Self {
        Self {
            payment_key: payment_key.to_owned(),
            order_id: order_id.to_owned(),
            total: amount,
            balance: amount,
            status: "IN_PROGRESS".to_owned(),
            cancels: Vec::new(),
            last_transaction_key: String::new(),
            approved_at: None,
        }
    }
}

/// One row of Toss's transactions: an approval (`DONE`) or a cancel (the payment's status after
/// it), in the order they happened.
#[derive(Debug, Clone)]
pub struct FakeTransaction {
    pub transaction_key: String,
    pub payment_key: String,
    pub order_id: String,
    pub status: String,
    pub amount: i64,
    /// KST, RFC 3339 (`2026-11-29T10:00:00+09:00`).
    pub transaction_at: String,
}

/// Now in Korea, as Toss writes its timestamps.
fn now_kst() -> String {
    let kst = chrono::FixedOffset::east_opt(9 * 3600).expect("a valid offset");
    chrono::Utc::now()
        .with_timezone(&kst)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Which of Toss's endpoints a call is for, with the path's parameter (percent-decoded).
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    /// `POST /v1/payments/confirm`
    Confirm,
    /// `POST /v1/payments/{paymentKey}/cancel`
    Cancel { payment_key: &'a str },
    /// `GET /v1/payments/{paymentKey}`
    ByKey { payment_key: &'a str },
    /// `GET /v1/payments/orders/{orderId}`
    ByOrder { order_id: &'a str },
    /// `GET /v1/transactions?{query}`
    Transactions { query: &'a str },
    /// `GET /v1/settlements?{query}`
    Settlements { query: &'a str },
}

/// One request to Toss, as an adapter read it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub endpoint: Endpoint<'a>,
    /// The URL path as sent: Toss scopes an `Idempotency-Key` by URL, not by body.
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub body: &'a [u8],
}

/// Toss's answer: an HTTP status and a JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    fn new(status: u16, body: Value) -> Self {
        Self { status, body }
    }

    fn refused(status: u16, code: &str, message: &str) -> Self {
        Self::new(status, json!({"code": code, "message": message}))
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The secret key a caller must present.
    pub secret_key: String,
    /// How long Toss takes to answer; what a call changes, it changes at once (as when Toss is
    /// slow to reply). An adapter waits this long before it sends the reply.
    pub delay: Duration,
    /// Remember each `Idempotency-Key`'s first reply and replay it. The benchmark, which never
    /// repeats a key, turns it off: a reply kept per call would grow the fake by kilobytes per
    /// flow and make it, not the service, what is measured.
    pub replays: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            secret_key: SECRET_KEY.to_owned(),
            delay: Duration::ZERO,
            replays: true,
        }
    }
}

/// State is sharded by key, so that under load the fake is never what waits.
const SHARDS: usize = 64;

struct Kept {
    payment: FakePayment,
    /// When a cancel of it last went through the API (for the spacing rule).
    last_cancel: Option<Instant>,
}

struct Inner {
    settings: Settings,
    authorization: String,
    hasher: RandomState,
    /// paymentKey -> the payment. Lock order: `replies`, then `payments`, then `orders`.
    payments: Vec<Mutex<HashMap<String, Kept>>>,
    /// orderId -> the paymentKey of its latest attempt, for lookups by order.
    orders: Vec<Mutex<HashMap<String, String>>>,
    /// (URL path, Idempotency-Key) -> the first reply.
    replies: Vec<Mutex<HashMap<(String, String), Reply>>>,
    /// Toss refuses a cancel of a payment within this long of the previous one
    /// (`FORBIDDEN_CONSECUTIVE_REQUEST`); off unless asked for.
    cancel_spacing: Mutex<Option<Duration>>,
    /// Every approval and cancel, oldest first: Toss's transactions.
    transactions: Mutex<Vec<FakeTransaction>>,
    /// The next this many list calls answer 429.
    throttled_lists: Mutex<u32>,
}

/// Toss, in memory. Clones share one state.
#[derive(Clone)]
pub struct FakeToss(Arc<Inner>);

impl Default for FakeToss {
    fn default() -> Self {
        Self::new(Settings::default())
    }
}

fn shards<T: Default>() -> Vec<Mutex<T>> {
    (0..SHARDS).map(|_| Mutex::default()).collect()
}

impl FakeToss {
    pub fn new(settings: Settings) -> Self {
        Self(Arc::new(Inner {
            authorization: basic_auth(&settings.secret_key),
            settings,
            hasher: RandomState::new(),
            payments: shards(),
            orders: shards(),
            replies: shards(),
            cancel_spacing: Mutex::new(None),
            transactions: Mutex::new(Vec::new()),
            throttled_lists: Mutex::new(0),
        }))
    }

    /// The `Authorization` header this fake accepts.
    pub fn authorization(&self) -> &str {
        &self.0.authorization
    }

    /// How long an adapter waits before it sends a reply.
    pub fn delay(&self) -> Duration {
        self.0.settings.delay
    }

    fn lock<'a, K: Hash + ?Sized, T>(&self, shards: &'a [Mutex<T>], key: &K) -> MutexGuard<'a, T> {
        let index = (self.0.hasher.hash_one(key) % SHARDS as u64) as usize;
        shards[index].lock().expect("fake Toss state")
    }

    fn index_order(&self, order_id: &str, payment_key: &str) {
        self.lock(&self.0.orders, order_id)
            .insert(order_id.to_owned(), payment_key.to_owned());
    }

    /// Answers a call as Toss would.
    pub fn handle(&self, call: Call<'_>) -> Reply {
        if call.authorization != Some(self.authorization()) {
            return Reply::new(
                401,
                json!({"code": "UNAUTHORIZED_KEY", "message": "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.", "data": null}),
            );
        }
        let Some(key) = call.idempotency_key.filter(|_| self.0.settings.replays) else {
            return self.answer(call);
        };
        let scope = (call.path.to_owned(), key.to_owned());
        // Held while answering: a repeat that arrives meanwhile waits, then replays.
        let mut replies = self.lock(&self.0.replies, &scope);
        if let Some(reply) = replies.get(&scope) {
            return reply.clone();
        }
        let reply = self.answer(call);
        replies.insert(scope, reply.clone());
        reply
    }

    fn answer(&self, call: Call<'_>) -> Reply {
        match call.endpoint {
            Endpoint::Confirm => self.confirm(call.body),
            Endpoint::Cancel { payment_key } => self.cancel(payment_key, call.body),
            Endpoint::ByKey { payment_key } => self.lookup(payment_key),
            Endpoint::ByOrder { order_id } => {
                let key = self.lock(&self.0.orders, order_id).get(order_id).cloned();
                match key {
                    Some(key) => self.lookup(&key),
                    None => not_found(),
                }
            }
            Endpoint::Transactions { query } => {
                self.throttled().unwrap_or_else(|| self.transactions(query))
            }
            Endpoint::Settlements { query } => {
                self.throttled().unwrap_or_else(|| self.settlements(query))
            }
        }
    }

    fn throttled(&self) -> Option<Reply> {
        let mut left = self.0.throttled_lists.lock().expect("fake Toss state");
        (*left > 0).then(|| {
            *left -= 1;
            Reply::refused(
                429,
                "TOO_MANY_REQUESTS",
                "요청량이 너무 많습니다. 잠시 후 다시 시도해주세요.",
            )
        })
    }

    /// `GET /v1/transactions`: those between `startDate` and `endDate` (KST local times), after
    /// `startingAfter`, at most `limit` (1..=5000, default 100).
    fn transactions(&self, query: &str) -> Reply {
        let params = parameters(query);
        let (Some(start), Some(end)) = (params.get("startDate"), params.get("endDate")) else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
            None => 100,
            Some(Ok(limit)) if (1..=5000).contains(&limit) => limit,
            Some(_) => return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다."),
        };
        let log = self.0.transactions.lock().expect("fake Toss state");
        let in_range = |t: &&FakeTransaction| {
            let local = &t.transaction_at[..19];
            local >= start.as_str() && local <= end.as_str()
        };
        let mut rows = log.iter().filter(in_range);
        if let Some(after) = params.get("startingAfter") {
            // Everything up to and including that transaction is skipped.
            if !rows.by_ref().any(|t| &t.transaction_key == after) {
                return Reply::new(200, json!([]));
            }
        }
        let page: Vec<Value> = rows.take(limit).map(transaction_json).collect();
        Reply::new(200, Value::Array(page))
    }

    /// `GET /v1/settlements?dateType=soldDate`: the day's transactions settled, page `page`
    /// (from 1) of `size` (1..=5000, default 100) rows.
    fn settlements(&self, query: &str) -> Reply {
        let params = parameters(query);
        let (Some(start), Some(end)) = (params.get("startDate"), params.get("endDate")) else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let number = |name: &str, default: usize, max: usize| match params.get(name) {
            None => Some(default),
            Some(raw) => raw.parse::<usize>().ok().filter(|n| (1..=max).contains(n)),
        };
        let (Some(page), Some(size)) = (number("page", 1, usize::MAX), number("size", 100, 5000))
        else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let log = self.0.transactions.lock().expect("fake Toss state");
        let rows: Vec<Value> = log
            .iter()
            .filter(|t| {
                let day = &t.transaction_at[..10];
                day >= start.as_str() && day <= end.as_str() && t.status != "WAITING_FOR_DEPOSIT"
            })
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .map(settlement_json)
            .collect();
        Reply::new(200, Value::Array(rows))
    }

    fn record(&self, payment: &FakePayment, status: &str, amount: i64) {
        self.0
            .transactions
            .lock()
            .expect("fake Toss state")
            .push(FakeTransaction {
                transaction_key: payment.last_transaction_key.clone(),
                payment_key: payment.payment_key.clone(),
                order_id: payment.order_id.clone(),
                status: status.to_owned(),
                amount,
                transaction_at: now_kst(),
            });
    }

    /// The next `count` calls of the transactions or settlements list answer 429.
    pub fn throttle_lists(&self, count: u32) {
        *self.0.throttled_lists.lock().expect("fake Toss state") = count;
    }

    /// Toss's transactions, oldest first.
    pub fn transaction_log(&self) -> Vec<FakeTransaction> {
        self.0.transactions.lock().expect("fake Toss state").clone()
    }

    /// A payment approved at Toss now, with its transaction, as if confirmed (for a benchmark
    /// that fills Toss's books without a confirm per payment). Returns the approval's key.
    pub fn approve(&self, payment_key: &str, order_id: &str, amount: i64) -> String {
        let mut payment = FakePayment::authenticated(payment_key, order_id, amount);
        payment.status = "DONE".to_owned();
        payment.last_transaction_key = format!("tx_{}", uuid::Uuid::new_v4().simple());
        payment.approved_at = Some(now_kst());
        self.record(&payment, "DONE", amount);
        let key = payment.last_transaction_key.clone();
        self.lock(&self.0.payments, payment_key).insert(
            payment_key.to_owned(),
            Kept {
                payment,
                last_cancel: None,
            },
        );
        self.index_order(order_id, payment_key);
        key
    }

    /// Toss's transactions no longer list `transaction_key` (its books lack what ours hold).
    pub fn forget_transaction(&self, transaction_key: &str) {
        self.0
            .transactions
            .lock()
            .expect("fake Toss state")
            .retain(|t| t.transaction_key != transaction_key);
    }

    /// Toss's transaction `transaction_key` now says `amount` (its books disagree with the
    /// payment, as after a partial capture or a data fix on Toss's side).
    pub fn set_transaction_amount(&self, transaction_key: &str, amount: i64) {
        let mut log = self.0.transactions.lock().expect("fake Toss state");
        if let Some(row) = log
            .iter_mut()
            .find(|t| t.transaction_key == transaction_key)
        {
            row.amount = amount;
        }
    }

    fn lookup(&self, payment_key: &str) -> Reply {
        match self.lock(&self.0.payments, payment_key).get(payment_key) {
            Some(kept) => Reply::new(200, to_json(&kept.payment)),
            None => not_found(),
        }
    }

    fn confirm(&self, body: &[u8]) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (Some(key), Some(order), Some(amount)) = (
            body["paymentKey"].as_str(),
            body["orderId"].as_str(),
            body["amount"].as_i64(),
        ) else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let mut payments = self.lock(&self.0.payments, key);
        let kept = match payments.entry(key.to_owned()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                self.index_order(order, key);
                entry.insert(Kept {
                    payment: FakePayment::authenticated(key, order, amount),
                    last_cancel: None,
                })
            }
        };
        let payment = &mut kept.payment;
        if payment.order_id != order || payment.total != amount {
            return Reply::refused(
                400,
                "INVALID_REQUEST",
                "결제 금액 또는 주문번호가 일치하지 않습니다.",
            );
        }
        match payment.status.as_str() {
            "IN_PROGRESS" => {
                payment.status = "DONE".to_owned();
                payment.last_transaction_key = format!("tx_{}", uuid::Uuid::new_v4().simple());
                payment.approved_at = Some(now_kst());
                self.record(payment, "DONE", amount);
                Reply::new(200, to_json(payment))
            }
            "ABORTED" | "EXPIRED" => Reply::refused(
                404,
                "NOT_FOUND_PAYMENT_SESSION",
                "결제 시간이 만료되어 결제 진행 데이터가 존재하지 않습니다.",
            ),
            _ => Reply::refused(400, "ALREADY_PROCESSED_PAYMENT", "이미 처리된 결제 입니다."),
        }
    }

    fn cancel(&self, key: &str, body: &[u8]) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let spacing = *self.0.cancel_spacing.lock().expect("fake Toss state");
        let mut payments = self.lock(&self.0.payments, key);
        let Some(kept) = payments.get_mut(key) else {
            return not_found();
        };
        if !matches!(kept.payment.status.as_str(), "DONE" | "PARTIAL_CANCELED") {
            return Reply::refused(
                403,
                "NOT_CANCELABLE_PAYMENT",
                "취소 할 수 없는 결제 입니다.",
            );
        }
        if let Some(spacing) = spacing {
            let now = Instant::now();
            if kept
                .last_cancel
                .is_some_and(|last| now.duration_since(last) < spacing)
            {
                return Reply::refused(
                    403,
                    "FORBIDDEN_CONSECUTIVE_REQUEST",
                    "반복적인 요청은 허용되지 않습니다. 잠시 후 다시 시도해주세요.",
                );
            }
            kept.last_cancel = Some(now);
        }
        let payment = &mut kept.payment;
        if let Some(refundable) = body["refundableAmount"].as_i64()
            && refundable != payment.balance
        {
            return Reply::refused(
                400,
                "NOT_MATCHES_REFUNDABLE_AMOUNT",
                "잔액 결과가 일치하지 않습니다.",
            );
        }
        let amount = body["cancelAmount"].as_i64().unwrap_or(payment.balance);
        if amount > payment.balance {
            return Reply::refused(403, "NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        apply_cancel(
            payment,
            amount,
            body["cancelReason"].as_str().unwrap_or_default(),
        );
        self.record(payment, &payment.status.clone(), amount);
        Reply::new(200, to_json(payment))
    }

    /// The buyer authenticated in the payment window: Toss knows the payment as IN_PROGRESS.
    pub fn authenticate(&self, payment_key: &str, order_id: &str, amount: i64) {
        let mut payments = self.lock(&self.0.payments, payment_key);
        payments.insert(
            payment_key.to_owned(),
            Kept {
                payment: FakePayment::authenticated(payment_key, order_id, amount),
                last_cancel: None,
            },
        );
        self.index_order(order_id, payment_key);
    }

    /// Toss's one-cancel-per-payment-per-`spacing` rule (1 s at Toss), for tests of it.
    pub fn space_cancels(&self, spacing: Duration) {
        *self.0.cancel_spacing.lock().expect("fake Toss state") = Some(spacing);
    }

    /// Sets Toss's status of a payment, as if something happened on Toss's side.
    pub fn set_status(&self, payment_key: &str, status: &str) {
        if let Some(kept) = self
            .lock(&self.0.payments, payment_key)
            .get_mut(payment_key)
        {
            kept.payment.status = status.to_owned();
        }
    }

    pub fn payment(&self, payment_key: &str) -> Option<FakePayment> {
        self.lock(&self.0.payments, payment_key)
            .get(payment_key)
            .map(|kept| kept.payment.clone())
    }

    /// A cancel made in Toss's dashboard, not through the service.
    pub fn cancel_in_dashboard(&self, payment_key: &str, amount: i64) {
        let mut payments = self.lock(&self.0.payments, payment_key);
        let kept = payments.get_mut(payment_key).expect("known payment");
        apply_cancel(&mut kept.payment, amount, "dashboard");
        let status = kept.payment.status.clone();
        self.record(&kept.payment, &status, amount);
    }

    /// Forgets every payment and reply, so that a benchmark phase does not pay for the maps an
    /// earlier phase filled.
    pub fn forget_all(&self) {
        for shard in &self.0.payments {
            *shard.lock().expect("fake Toss state") = HashMap::new();
        }
        for shard in &self.0.orders {
            *shard.lock().expect("fake Toss state") = HashMap::new();
        }
        for shard in &self.0.replies {
            *shard.lock().expect("fake Toss state") = HashMap::new();
        }
        *self.0.transactions.lock().expect("fake Toss state") = Vec::new();
    }
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
        "canceledAt": now_kst(),
        "cancelAmount": amount,
        "taxFreeAmount": 0,
        "refundableAmount": payment.balance,
        "cancelStatus": "DONE",
        "cancelRequestId": null
    }));
}

fn not_found() -> Reply {
    Reply::refused(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다.")
}

/// `a=1&b=2` into a map (percent-decoded).
fn parameters(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes
            .get(at + 1..at + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[at], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                at += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                at += 1;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A row of `GET /v1/transactions` (§17.3).
fn transaction_json(t: &FakeTransaction) -> Value {
    json!({
        "mId": "tosspayments",
        "transactionKey": t.transaction_key,
        "paymentKey": t.payment_key,
        "orderId": t.order_id,
        "method": "카드",
        "customerKey": null,
        "useEscrow": false,
        "receiptUrl": "https://dashboard.tosspayments.com/receipt",
        "status": t.status,
        "transactionAt": t.transaction_at,
        "currency": "KRW",
        "amount": t.amount
    })
}

/// The fee Toss takes of `amount` in the fake: 3 %, and 10 % VAT on it.
pub fn fee_of(amount: i64) -> (i64, i64) {
    let fee = amount * 3 / 100;
    (fee, fee / 10)
}

/// A row of `GET /v1/settlements` (§17.4): a cancel's amounts are negative.
fn settlement_json(t: &FakeTransaction) -> Value {
    let cancel = t.status != "DONE";
    let sign = if cancel { -1 } else { 1 };
    let (fee, vat) = fee_of(t.amount);
    let sold = &t.transaction_at[..10];
    let paid_out = chrono::NaiveDate::parse_from_str(sold, "%Y-%m-%d")
        .map(|d| (d + chrono::Duration::days(2)).to_string())
        .unwrap_or_else(|_| sold.to_owned());
    json!({
        "mId": "tosspayments",
        "paymentKey": t.payment_key,
        "transactionKey": t.transaction_key,
        "orderId": t.order_id,
        "currency": "KRW",
        "method": "카드",
        "amount": sign * t.amount,
        "interestFee": 0,
        "fees": [{"type": "BASE", "fee": sign * fee}],
        "supplyAmount": sign * (t.amount - t.amount / 11),
        "vat": sign * vat,
        "payOutAmount": sign * (t.amount - fee - vat),
        "approvedAt": t.transaction_at,
        "soldDate": sold,
        "paidOutDate": paid_out,
        "card": null,
        "easyPay": null,
        "cancel": if cancel { json!({"cancelAmount": t.amount, "transactionKey": t.transaction_key}) } else { Value::Null }
    })
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
        "approvedAt": match (&p.approved_at, p.status.as_str()) {
            (_, "IN_PROGRESS") => Value::Null,
            (Some(at), _) => json!(at),
            (None, _) => json!("2026-11-23T12:18:14+09:00"),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(
        endpoint: Endpoint<'a>,
        path: &'a str,
        key: Option<&'a str>,
        body: &'a [u8],
    ) -> Call<'a> {
        Call {
            endpoint,
            path,
            authorization: Some(BASIC_AUTH),
            idempotency_key: key,
            body,
        }
    }

    fn confirm(toss: &FakeToss, key: Option<&str>, payment_key: &str) -> Reply {
        let body = json!({"paymentKey": payment_key, "orderId": "o-1", "amount": 1000}).to_string();
        toss.handle(call(
            Endpoint::Confirm,
            "/v1/payments/confirm",
            key,
            body.as_bytes(),
        ))
    }

    #[test]
    fn the_default_key_is_the_published_one() {
        assert_eq!(basic_auth(SECRET_KEY), BASIC_AUTH);
        assert_eq!(FakeToss::default().authorization(), BASIC_AUTH);
    }

    #[test]
    fn confirms_once_and_replays_a_repeated_key() {
        let toss = FakeToss::default();
        let first = confirm(&toss, Some("k1"), "pk_1");
        assert_eq!(first.status, 200);
        assert_eq!(first.body["secret"], secret_of("pk_1"));
        assert_eq!(confirm(&toss, Some("k1"), "pk_1").body, first.body);
        assert_eq!(
            confirm(&toss, Some("k2"), "pk_1").body["code"],
            "ALREADY_PROCESSED_PAYMENT"
        );
        let by_order = toss.handle(call(
            Endpoint::ByOrder { order_id: "o-1" },
            "/v1/payments/orders/o-1",
            None,
            b"",
        ));
        assert_eq!(by_order.body["status"], "DONE");
    }

    #[test]
    fn without_replays_a_repeated_key_is_a_new_call() {
        let toss = FakeToss::new(Settings {
            replays: false,
            ..Settings::default()
        });
        assert_eq!(confirm(&toss, Some("k1"), "pk_1").status, 200);
        assert_eq!(confirm(&toss, Some("k1"), "pk_1").status, 400);
    }

    #[test]
    fn cancels_check_the_refundable_amount_and_the_spacing() {
        let toss = FakeToss::default();
        confirm(&toss, None, "pk_1");
        toss.space_cancels(Duration::from_secs(60));
        let cancel = |body: Value| {
            let body = body.to_string();
            toss.handle(call(
                Endpoint::Cancel {
                    payment_key: "pk_1",
                },
                "/v1/payments/pk_1/cancel",
                None,
                body.as_bytes(),
            ))
        };
        let stale = cancel(json!({"cancelAmount": 400, "refundableAmount": 900}));
        assert_eq!(stale.body["code"], "NOT_MATCHES_REFUNDABLE_AMOUNT");
        let too_soon = cancel(json!({"cancelAmount": 400, "refundableAmount": 1000}));
        assert_eq!(too_soon.body["code"], "FORBIDDEN_CONSECUTIVE_REQUEST");
        let payment = toss.payment("pk_1").unwrap();
        assert_eq!((payment.balance, payment.status.as_str()), (1000, "DONE"));
    }

    #[test]
    fn refuses_a_wrong_key() {
        let toss = FakeToss::new(Settings {
            secret_key: "test_sk_other".to_owned(),
            ..Settings::default()
        });
        assert_eq!(confirm(&toss, None, "pk_1").status, 401);
    }
}
