//! Toss Payments' behaviour in memory, for the fakes that stand in for Toss: the tests' (a
//! wiremock server, `tests/api/fake_toss.rs`) and the benchmark's (an HTTP server in `bench/`).
//!
//! Confirm moves an authenticated payment to DONE once (a second confirm is
//! ALREADY_PROCESSED_PAYMENT), cancels append to `cancels[]` and shrink `balanceAmount` (refused
//! when the caller's `refundableAmount` is not the balance, and, when asked for, within a spacing
//! of the previous cancel), lookups return the current record, every attempt has its own
//! `secret`, and a repeated `Idempotency-Key` replays the first reply. Billing (자동결제): a
//! registered card's `authKey` is issued into a billing key once, a charge approves an order id
//! once (`DUPLICATED_ORDER_ID` after), declines (each an `ABORTED` attempt of the order) and a
//! 500-after-charging can be queued, refusals carry Toss's billing codes (`NOT_FOUND_BILLING`,
//! `INVALID_BILL_KEY_REQUEST`, `NOT_MATCHES_CUSTOMER_KEY`, `docs/toss-api.md` §17), and
//! `BILLING_DELETED` forgets a key; with a billing secret key, billing is another MID whose
//! payments the payment key cannot see. Every approval and cancel is also a transaction in
//! Toss's books: `GET /v1/transactions` lists them (`startingAfter` paging) and
//! `GET /v1/settlements` settles them (`page` paging; a cancel is a negative row; the fee is
//! 3 % plus 10 % VAT on it), and list calls can be made to answer 429. An adapter turns an
//! HTTP request into a [`Call`] and the [`Reply`] back into a response; nothing here knows HTTP.

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
    fn authenticated(payment_key: &str, order_id: &str, amount: i64) -> Self {
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
    fn approve_now(&mut self) {
        self.status = "DONE".to_owned();
        self.last_transaction_key = format!("tx_{}", uuid::Uuid::new_v4().simple());
        self.approved_at = Some(now_kst());
    }
}

/// How long a virtual account takes deposits: seven days.
const DUE_IN: chrono::Duration = chrono::Duration::days(7);
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
    /// The key set whose books list it: each MID sees only its own.
    mid: Mid,
}

fn kst() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(9 * 3600).expect("a valid offset")
}

/// Now in Korea, as Toss writes its timestamps.
fn now_kst() -> String {
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
    /// `POST /v1/billing/authorizations/issue`
    IssueBillingKey,
    /// `POST /v1/billing/{billingKey}`
    Charge { billing_key: &'a str },
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
    /// The billing contract's secret key, another MID: billing calls need it, and the payments
    /// it charged are known only under it (as Toss keeps each MID's payments apart). `None`:
    /// billing runs under `secret_key`.
    pub billing_secret_key: Option<String>,
    /// How long Toss takes to answer; what a call changes, it changes at once (as when Toss is
    /// slow to reply). An adapter waits this long before it sends the reply.
    pub delay: Duration,
    /// Remember each `Idempotency-Key`'s first reply and replay it. The benchmark, which never
    /// repeats a key, turns it off: a reply kept per call would grow the fake by kilobytes per
    /// flow and make it, not the service, what is measured.
    pub replays: bool,
    /// Take a confirm of a `paymentKey` never authenticated as the buyer's authentication and
    /// confirm it (the benchmark has no payment window). Off, as Toss does: such a confirm is
    /// 404 `NOT_FOUND_PAYMENT_SESSION` (`docs/toss-api.md` §17.6), and the test authenticates
    /// each key first ([`FakeToss::authenticate`]).
    pub open_sessions: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            secret_key: SECRET_KEY.to_owned(),
            billing_secret_key: None,
            delay: Duration::ZERO,
            replays: true,
            open_sessions: false,
        }
    }
}

/// State is sharded by key, so that under load the fake is never what waits.
const SHARDS: usize = 64;

/// Which of the merchant's MIDs (key sets) a call or a payment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mid {
    Payments,
    Billing,
}

struct Kept {
    payment: FakePayment,
    mid: Mid,
    /// When a cancel of it last went through the API (for the spacing rule).
    last_cancel: Option<Instant>,
}

struct Inner {
    settings: Settings,
    authorization: String,
    billing_authorization: Option<String>,
    hasher: RandomState,
    /// paymentKey -> the payment. Lock order: `replies`, then `payments`, then `orders`.
    payments: Vec<Mutex<HashMap<String, Kept>>>,
    /// orderId -> the paymentKey of its latest attempt, for lookups by order.
    orders: Vec<Mutex<HashMap<String, String>>>,
    /// orderId -> the attempt a lookup by order shows whatever comes later (a test's choice).
    shown_for_order: Mutex<HashMap<String, String>>,
    /// (URL path, Idempotency-Key) -> the first reply.
    replies: Vec<Mutex<HashMap<(String, String), Reply>>>,
    /// Toss refuses a cancel of a payment within this long of the previous one
    /// (`FORBIDDEN_CONSECUTIVE_REQUEST`); off unless asked for.
    cancel_spacing: Mutex<Option<Duration>>,
    billing: Mutex<Billing>,
    /// Every approval and cancel, oldest first: Toss's transactions.
    transactions: Mutex<Vec<FakeTransaction>>,
    /// The next this many list calls answer 429.
    throttled_lists: Mutex<u32>,
}

/// Billing (자동결제): card registrations waiting to be issued, issued keys, and what the next
/// charges will meet.
#[derive(Default)]
struct Billing {
    /// Unused `authKey` -> the `customerKey` that registered the card (single-use).
    auth_keys: HashMap<String, String>,
    /// billingKey -> its customer key, while Toss keeps it.
    keys: HashMap<String, String>,
    /// customerKey -> its billing keys, newest last.
    by_customer: HashMap<String, Vec<String>>,
    /// Declines the next charges meet, in order: (HTTP status, code, message).
    declines: std::collections::VecDeque<(u16, String, String)>,
    /// The next charge happens, but Toss answers 500.
    fail_after_next_charge: bool,
    /// orderId -> how many charges Toss approved for it.
    approvals: HashMap<String, usize>,
    issues: usize,
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
            billing_authorization: settings.billing_secret_key.as_deref().map(basic_auth),
            settings,
            hasher: RandomState::new(),
            payments: shards(),
            orders: shards(),
            replies: shards(),
            shown_for_order: Mutex::default(),
            cancel_spacing: Mutex::new(None),
            billing: Mutex::default(),
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

    /// Toss keeps `payment`, under `mid`, and finds it by its order id too.
    fn keep(&self, payment: FakePayment, mid: Mid) {
        let (payment_key, order_id) = (payment.payment_key.clone(), payment.order_id.clone());
        self.lock(&self.0.payments, &payment_key).insert(
            payment_key.clone(),
            Kept {
                payment,
                mid,
                last_cancel: None,
            },
        );
        self.index_order(&order_id, &payment_key);
    }

    /// Answers a call as Toss would.
    pub fn handle(&self, call: Call<'_>) -> Reply {
        let mid = if call.authorization == Some(self.authorization()) {
            Mid::Payments
        } else if call.authorization.is_some()
            && call.authorization == self.0.billing_authorization.as_deref()
        {
            Mid::Billing
        } else {
            return unauthorized();
        };
        let billing_call = matches!(
            call.endpoint,
            Endpoint::IssueBillingKey | Endpoint::Charge { .. }
        );
        // Billing needs the billing contract's key, when there is one.
        if billing_call && self.0.billing_authorization.is_some() && mid != Mid::Billing {
            return unauthorized();
        }
        let Some(key) = call.idempotency_key.filter(|_| self.0.settings.replays) else {
            return self.answer(call, mid);
        };
        let scope = (call.path.to_owned(), key.to_owned());
        // Held while answering: a repeat that arrives meanwhile waits, then replays.
        let mut replies = self.lock(&self.0.replies, &scope);
        if let Some(reply) = replies.get(&scope) {
            return reply.clone();
        }
        let reply = self.answer(call, mid);
        replies.insert(scope, reply.clone());
        reply
    }

    fn answer(&self, call: Call<'_>, mid: Mid) -> Reply {
        match call.endpoint {
            Endpoint::Confirm => self.confirm(call.body, mid),
            Endpoint::Cancel { payment_key } => self.cancel(payment_key, call.body, mid),
            Endpoint::ByKey { payment_key } => self.lookup(payment_key, mid),
            Endpoint::IssueBillingKey => self.issue(call.body),
            Endpoint::Charge { billing_key } => self.charge(billing_key, call.body, mid),
            Endpoint::ByOrder { order_id } => {
                let shown = self
                    .0
                    .shown_for_order
                    .lock()
                    .expect("fake Toss state")
                    .get(order_id)
                    .cloned();
                let key =
                    shown.or_else(|| self.lock(&self.0.orders, order_id).get(order_id).cloned());
                match key {
                    Some(key) => self.lookup(&key, mid),
                    None => not_found(),
                }
            }
            Endpoint::Transactions { query } => self
                .throttled()
                .unwrap_or_else(|| self.transactions(query, mid)),
            Endpoint::Settlements { query } => self
                .throttled()
                .unwrap_or_else(|| self.settlements(query, mid)),
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
    fn transactions(&self, query: &str, mid: Mid) -> Reply {
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
            t.mid == mid && local >= start.as_str() && local <= end.as_str()
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
    fn settlements(&self, query: &str, mid: Mid) -> Reply {
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
                t.mid == mid
                    && day >= start.as_str()
                    && day <= end.as_str()
                    && t.status != "WAITING_FOR_DEPOSIT"
            })
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .map(settlement_json)
            .collect();
        Reply::new(200, Value::Array(rows))
    }

    fn record(&self, payment: &FakePayment, mid: Mid, status: &str, amount: i64) {
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
                mid,
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
        payment.approve_now();
        self.record(&payment, Mid::Payments, "DONE", amount);
        let key = payment.last_transaction_key.clone();
        self.keep(payment, Mid::Payments);
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

    fn lookup(&self, payment_key: &str, mid: Mid) -> Reply {
        match self.lock(&self.0.payments, payment_key).get(payment_key) {
            Some(kept) if kept.mid == mid => Reply::new(200, to_json(&kept.payment)),
            Some(_) | None => not_found(),
        }
    }

    fn confirm(&self, body: &[u8], mid: Mid) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (Some(key), Some(order), Some(amount)) = (
            body["paymentKey"].as_str(),
            body["orderId"].as_str(),
            body["amount"].as_i64(),
        ) else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let open_sessions = self.0.settings.open_sessions;
        let mut payments = self.lock(&self.0.payments, key);
        let kept = match payments.entry(key.to_owned()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) if open_sessions => {
                self.index_order(order, key);
                entry.insert(Kept {
                    payment: FakePayment::authenticated(key, order, amount),
                    mid,
                    last_cancel: None,
                })
            }
            // A key nobody authenticated: the same answer as an expired session (§17.6).
            Entry::Vacant(_) => return session_not_found(),
        };
        // Another MID's key, or another order's: Toss has no session of it for this order.
        if kept.mid != mid || kept.payment.order_id != order {
            return session_not_found();
        }
        let payment = &mut kept.payment;
        if payment.total != amount {
            return Reply::refused(
                400,
                "INVALID_REQUEST",
                "결제 금액 또는 주문번호가 일치하지 않습니다.",
            );
        }
        match payment.status.as_str() {
            "IN_PROGRESS" if payment.virtual_account => {
                // The account is issued; the buyer has not paid yet.
                payment.status = "WAITING_FOR_DEPOSIT".to_owned();
                payment.last_transaction_key = format!("tx_{}", uuid::Uuid::new_v4().simple());
                Reply::new(200, to_json(payment))
            }
            "IN_PROGRESS" => {
                payment.approve_now();
                self.record(payment, mid, "DONE", amount);
                Reply::new(200, to_json(payment))
            }
            "ABORTED" | "EXPIRED" => session_not_found(),
            _ => Reply::refused(400, "ALREADY_PROCESSED_PAYMENT", "이미 처리된 결제 입니다."),
        }
    }

    fn cancel(&self, key: &str, body: &[u8], mid: Mid) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let spacing = *self.0.cancel_spacing.lock().expect("fake Toss state");
        let mut payments = self.lock(&self.0.payments, key);
        let Some(kept) = payments.get_mut(key).filter(|kept| kept.mid == mid) else {
            return not_found();
        };
        if kept.payment.status == "WAITING_FOR_DEPOSIT" {
            // Nothing paid: only the whole account can be cancelled (§5.1).
            let payment = &mut kept.payment;
            if body["cancelAmount"]
                .as_i64()
                .is_some_and(|amount| amount != payment.total)
            {
                return Reply::refused(
                    403,
                    "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT",
                    "입금 대기중인 결제는 부분 환불이 불가합니다.",
                );
            }
            cancel_unpaid(payment, body["cancelReason"].as_str().unwrap_or_default());
            return Reply::new(200, to_json(payment));
        }
        if !matches!(kept.payment.status.as_str(), "DONE" | "PARTIAL_CANCELED") {
            return Reply::refused(
                403,
                "NOT_CANCELABLE_PAYMENT",
                "취소 할 수 없는 결제 입니다.",
            );
        }
        if kept.payment.virtual_account {
            // A deposited account is refunded to an account the buyer names.
            let account = &body["refundReceiveAccount"];
            let digits = account["accountNumber"].as_str().is_some_and(|n| {
                !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit())
            });
            if !account.is_object()
                || account["bank"].as_str().is_none_or(str::is_empty)
                || account["holderName"].as_str().is_none_or(str::is_empty)
            {
                return Reply::refused(
                    400,
                    "INVALID_REFUND_ACCOUNT_INFO",
                    "환불 계좌번호와 예금주명이 일치하지 않습니다.",
                );
            }
            if !digits {
                return Reply::refused(
                    400,
                    "INVALID_REFUND_ACCOUNT_NUMBER",
                    "잘못된 환불 계좌번호입니다.",
                );
            }
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
        let tax_free = body["taxFreeAmount"].as_i64().unwrap_or(0);
        if tax_free < 0 || tax_free > payment.tax_free || tax_free > amount {
            return Reply::refused(403, "NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        apply_cancel(
            payment,
            amount,
            tax_free,
            body["cancelReason"].as_str().unwrap_or_default(),
        );
        self.record(payment, mid, &payment.status.clone(), amount);
        Reply::new(200, to_json(payment))
    }

    fn billing(&self) -> MutexGuard<'_, Billing> {
        self.0.billing.lock().expect("fake Toss state")
    }

    fn issue(&self, body: &[u8]) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (Some(auth_key), Some(customer_key)) =
            (body["authKey"].as_str(), body["customerKey"].as_str())
        else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let mut billing = self.billing();
        billing.issues += 1;
        match billing.auth_keys.get(auth_key) {
            Some(owner) if owner == customer_key => {}
            Some(_) => {
                return Reply::refused(
                    400,
                    "NOT_MATCHES_CUSTOMER_KEY",
                    "인증 정보의 customerKey가 일치하지 않습니다.",
                );
            }
            // Unknown or already used (`authKey` is single-use): Toss's code for it (§17.1).
            None => {
                return Reply::refused(404, "NOT_FOUND_BILLING", "존재하지 않는 빌링 정보 입니다.");
            }
        }
        billing.auth_keys.remove(auth_key);
        let billing_key = format!(
            "bk_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        billing
            .keys
            .insert(billing_key.clone(), customer_key.to_owned());
        billing
            .by_customer
            .entry(customer_key.to_owned())
            .or_default()
            .push(billing_key.clone());
        Reply::new(
            200,
            json!({
                "mId": "tosspayments",
                "customerKey": customer_key,
                "authenticatedAt": "2026-12-01T09:30:00+09:00",
                "method": "카드",
                "billingKey": billing_key,
                "card": {"issuerCode": "71", "acquirerCode": "71", "number": "43301234****123*",
                         "cardType": "신용", "ownerType": "개인"},
                "cardCompany": "롯데",
                "cardNumber": "43301234****123*"
            }),
        )
    }

    fn charge(&self, billing_key: &str, body: &[u8], mid: Mid) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (Some(customer_key), Some(amount), Some(order_id), Some(_name)) = (
            body["customerKey"].as_str(),
            body["amount"].as_i64(),
            body["orderId"].as_str(),
            body["orderName"].as_str(),
        ) else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let mut billing = self.billing();
        // §17.2: an unknown, deleted or unfinished billing key, and a customerKey that is not
        // the key's, are refused with these codes (nothing is charged).
        match billing.keys.get(billing_key) {
            Some(owner) if owner == customer_key => {}
            Some(_) => {
                return Reply::refused(
                    400,
                    "NOT_MATCHES_CUSTOMER_KEY",
                    "빌링키와 고객키가 일치하지 않습니다.",
                );
            }
            None => {
                return Reply::refused(
                    400,
                    "INVALID_BILL_KEY_REQUEST",
                    "빌링키 요청이 유효하지 않습니다.",
                );
            }
        }
        if billing.approvals.get(order_id).is_some_and(|n| *n > 0) || self.order_approved(order_id)
        {
            return Reply::refused(
                400,
                "DUPLICATED_ORDER_ID",
                "이미 승인 및 취소가 진행된 중복된 주문번호 입니다.",
            );
        }
        let payment_key = format!("bpk_{}", uuid::Uuid::new_v4().simple());
        let mut payment = FakePayment::authenticated(&payment_key, order_id, amount);
        payment.tax_free = body["taxFreeAmount"].as_i64().unwrap_or_default();
        if let Some((status, code, message)) = billing.declines.pop_front() {
            // A declined charge is an attempt of the order Toss keeps, ended without approval:
            // the order stays chargeable, and a read-back by order id may show it.
            payment.status = "ABORTED".to_owned();
            payment.failure = Some((code.clone(), message.clone()));
            self.keep(payment, mid);
            return Reply::refused(status, &code, &message);
        }
        payment.approve_now();
        self.record(&payment, mid, "DONE", amount);
        let reply = to_json(&payment);
        self.keep(payment, mid);
        *billing.approvals.entry(order_id.to_owned()).or_default() += 1;
        if std::mem::take(&mut billing.fail_after_next_charge) {
            return Reply::refused(
                500,
                "FAILED_INTERNAL_SYSTEM_PROCESSING",
                "내부 시스템 처리 작업이 실패했습니다. 잠시 후 다시 시도해주세요.",
            );
        }
        Reply::new(200, reply)
    }

    /// The buyer registered a card in Toss's billing window for `customer_key`: the `authKey`
    /// Toss's success redirect carries (single-use).
    pub fn register_card(&self, customer_key: &str) -> String {
        let auth_key = format!("bln_{}", uuid::Uuid::new_v4().simple());
        self.billing()
            .auth_keys
            .insert(auth_key.clone(), customer_key.to_owned());
        auth_key
    }

    /// The billing keys Toss issued for `customer_key`, oldest first.
    pub fn billing_keys_of(&self, customer_key: &str) -> Vec<String> {
        self.billing()
            .by_customer
            .get(customer_key)
            .cloned()
            .unwrap_or_default()
    }

    /// How many issue requests Toss received (replays of an `Idempotency-Key` not counted).
    pub fn issues(&self) -> usize {
        self.billing().issues
    }

    /// How many charges Toss approved for `order_id`.
    pub fn approvals(&self, order_id: &str) -> usize {
        self.billing()
            .approvals
            .get(order_id)
            .copied()
            .unwrap_or_default()
    }

    /// The next charge is declined with `code` (403 for Toss's `REJECT_*` family, else 400).
    pub fn decline_next_charge(&self, code: &str, message: &str) {
        let status = if code.starts_with("REJECT_") || code.starts_with("EXCEED_MAX_ONE_DAY") {
            403
        } else {
            400
        };
        self.billing()
            .declines
            .push_back((status, code.to_owned(), message.to_owned()));
    }

    /// The next charge happens at Toss, but Toss answers 500.
    pub fn fail_after_next_charge(&self) {
        self.billing().fail_after_next_charge = true;
    }

    /// The buyer (or the merchant in Toss's dashboard) removed a billing key: Toss forgets it
    /// and sends `BILLING_DELETED`, whose body this returns.
    pub fn delete_billing_key(&self, billing_key: &str) -> Value {
        self.billing().keys.remove(billing_key);
        json!({
            "eventType": "BILLING_DELETED",
            "createdAt": "2026-12-01T10:00:00.000000",
            "data": {"billingKey": billing_key, "reason": "고객 요청"}
        })
    }

    /// The buyer authenticated in the payment window: Toss knows the payment as IN_PROGRESS.
    pub fn authenticate(&self, payment_key: &str, order_id: &str, amount: i64) {
        self.keep(
            FakePayment::authenticated(payment_key, order_id, amount),
            Mid::Payments,
        );
    }

    /// The buyer chose a virtual account in the payment window: the confirm issues it.
    pub fn authenticate_virtual_account(&self, payment_key: &str, order_id: &str, amount: i64) {
        self.authenticate(payment_key, order_id, amount);
        self.update(payment_key, |payment| {
            payment.virtual_account = true;
            payment.due_date = Some(due_date_of(chrono::Utc::now() + DUE_IN));
        });
    }

    /// The payment's tax-free part, as the merchant's checkout told Toss.
    pub fn set_tax_free(&self, payment_key: &str, tax_free: i64) {
        self.update(payment_key, |payment| payment.tax_free = tax_free);
    }

    /// The buyer deposits into the virtual account: `WAITING_FOR_DEPOSIT` → `DONE`, and `true`;
    /// `false` (nothing changes) when the account no longer takes deposits (cancelled,
    /// expired). The `DEPOSIT_CALLBACK` body Toss sends is [`FakeToss::deposit_callback`].
    pub fn deposit(&self, payment_key: &str) -> bool {
        let deposited = self.update(payment_key, |payment| {
            if payment.status != "WAITING_FOR_DEPOSIT" || payment.deposit_expired() {
                return None;
            }
            payment.approve_now();
            Some(payment.clone())
        });
        // The deposit is the approval: it enters Toss's transactions then.
        deposited.is_some_and(|payment| {
            self.record(&payment, Mid::Payments, "DONE", payment.total);
            true
        })
    }

    /// The `DEPOSIT_CALLBACK` body Toss sends about the payment as it is now.
    pub fn deposit_callback(&self, payment_key: &str) -> Value {
        self.update(payment_key, |payment| deposit_callback(payment))
    }

    /// Time ran out. A virtual account waiting for its deposit: its due date is now past, so
    /// it stays `WAITING_FOR_DEPOSIT` with `virtualAccount.expired: true`, takes no deposit, and
    /// Toss sends no webhook (§4). Anything else (a window payment never confirmed): `EXPIRED`.
    pub fn expire(&self, payment_key: &str) {
        self.update(payment_key, |payment| {
            if payment.virtual_account && payment.status == "WAITING_FOR_DEPOSIT" {
                let past = chrono::Utc::now() - chrono::Duration::seconds(1);
                payment.due_date = Some(due_date_of(past));
                return;
            }
            payment.status = "EXPIRED".to_owned();
            payment.failure = Some((
                "EXPIRED_PAYMENT".to_owned(),
                "결제가 만료되었습니다. 다시 시도해주세요.".to_owned(),
            ));
        });
    }

    /// The virtual account of `payment_key` is due at `due` (KST, `yyyy-MM-dd'T'HH:mm:ss`, as
    /// [`due_date_of`] writes it); past it, it expires (see [`FakeToss::expire`]).
    pub fn set_due_date(&self, payment_key: &str, due: &str) {
        self.update(payment_key, |payment| {
            payment.due_date = Some(due.to_owned())
        });
    }

    /// The bank reversed the deposit (API ≥ 2022-06-08: `DONE` → `WAITING_FOR_DEPOSIT`).
    /// Returns the `DEPOSIT_CALLBACK` body Toss sends then.
    pub fn deposit_error(&self, payment_key: &str) -> Value {
        self.update(payment_key, |payment| {
            assert_eq!(payment.status, "DONE", "no deposit to reverse");
            payment.status = "WAITING_FOR_DEPOSIT".to_owned();
            deposit_callback(payment)
        })
    }

    fn update<T>(&self, payment_key: &str, change: impl FnOnce(&mut FakePayment) -> T) -> T {
        let mut payments = self.lock(&self.0.payments, payment_key);
        let kept = payments.get_mut(payment_key).expect("known payment");
        change(&mut kept.payment)
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

    /// Whether the attempt a lookup of `order_id` finds was approved.
    fn order_approved(&self, order_id: &str) -> bool {
        let Some(key) = self.payment_key_of_order(order_id) else {
            return false;
        };
        self.payment(&key)
            .is_some_and(|payment| payment.approved_at.is_some())
    }

    /// From now on a lookup of `order_id` finds the attempt `payment_key`, whatever attempts
    /// come later (Toss does not say which of an order's attempts
    /// `GET /v1/payments/orders/{orderId}` returns).
    pub fn show_for_order(&self, order_id: &str, payment_key: &str) {
        self.0
            .shown_for_order
            .lock()
            .expect("fake Toss state")
            .insert(order_id.to_owned(), payment_key.to_owned());
    }

    /// Every `paymentKey` Toss holds for `order_id`, in no particular order.
    pub fn attempts_of_order(&self, order_id: &str) -> Vec<String> {
        self.0
            .payments
            .iter()
            .flat_map(|shard| {
                shard
                    .lock()
                    .expect("fake Toss state")
                    .values()
                    .filter(|kept| kept.payment.order_id == order_id)
                    .map(|kept| kept.payment.payment_key.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The `paymentKey` Toss holds for `order_id` (the latest attempt's; a billing charge's).
    pub fn payment_key_of_order(&self, order_id: &str) -> Option<String> {
        self.lock(&self.0.orders, order_id).get(order_id).cloned()
    }

    pub fn payment(&self, payment_key: &str) -> Option<FakePayment> {
        self.lock(&self.0.payments, payment_key)
            .get(payment_key)
            .map(|kept| kept.payment.clone())
    }

    /// A cancel made in Toss's dashboard, not through the service. A virtual account waiting
    /// for its deposit is cancelled whole, as through the API.
    pub fn cancel_in_dashboard(&self, payment_key: &str, amount: i64) {
        let mut payments = self.lock(&self.0.payments, payment_key);
        let kept = payments.get_mut(payment_key).expect("known payment");
        if kept.payment.status == "WAITING_FOR_DEPOSIT" {
            assert_eq!(
                amount, kept.payment.total,
                "an unpaid account is cancelled whole"
            );
            cancel_unpaid(&mut kept.payment, "dashboard");
            return;
        }
        apply_cancel(&mut kept.payment, amount, 0, "dashboard");
        let status = kept.payment.status.clone();
        self.record(&kept.payment, kept.mid, &status, amount);
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
        *self.0.shown_for_order.lock().expect("fake Toss state") = HashMap::new();
    }
}

/// `DEPOSIT_CALLBACK`: flat, no `eventType`, no `paymentKey`; verified by `secret` (§10).
fn deposit_callback(payment: &FakePayment) -> Value {
    json!({
        "createdAt": "2026-12-01T10:00:00.000000",
        "secret": secret_of(&payment.payment_key),
        "status": payment.status,
        "transactionKey": payment.last_transaction_key,
        "orderId": payment.order_id,
    })
}

/// A virtual account cancelled before its deposit: `CANCELED`, the cancel listed "like any
/// other cancel" (the whole amount, balance 0), `approvedAt` still null (§4). No money moved,
/// so Toss's books get no transaction.
fn cancel_unpaid(payment: &mut FakePayment, reason: &str) {
    let (total, tax_free) = (payment.total, payment.tax_free);
    apply_cancel(payment, total, tax_free, reason);
}

fn apply_cancel(payment: &mut FakePayment, amount: i64, tax_free: i64, reason: &str) {
    let transaction_key = format!("cx_{}", uuid::Uuid::new_v4().simple());
    payment.balance -= amount;
    payment.tax_free -= tax_free;
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
        "taxFreeAmount": tax_free,
        "refundableAmount": payment.balance,
        "cancelStatus": "DONE",
        "cancelRequestId": null
    }));
}

fn unauthorized() -> Reply {
    Reply::new(
        401,
        json!({"code": "UNAUTHORIZED_KEY", "message": "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.", "data": null}),
    )
}

fn not_found() -> Reply {
    Reply::refused(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다.")
}

/// A confirm of a key with no live session for this order: expired, aborted, never
/// authenticated, or another order's or merchant's (§17.6).
fn session_not_found() -> Reply {
    Reply::refused(
        404,
        "NOT_FOUND_PAYMENT_SESSION",
        "결제 시간이 만료되어 결제 진행 데이터가 존재하지 않습니다.",
    )
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
        toss.authenticate("pk_1", "o-1", 1000);
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
        toss.authenticate("pk_1", "o-1", 1000);
        assert_eq!(confirm(&toss, Some("k1"), "pk_1").status, 200);
        assert_eq!(confirm(&toss, Some("k1"), "pk_1").status, 400);
    }

    #[test]
    fn cancels_check_the_refundable_amount_and_the_spacing() {
        let toss = FakeToss::default();
        toss.authenticate("pk_1", "o-1", 1000);
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
    fn billing_keys_are_issued_once_per_auth_key_and_charge_an_order_once() {
        let toss = FakeToss::new(Settings {
            billing_secret_key: Some("test_sk_billing".to_owned()),
            ..Settings::default()
        });
        let billing_auth = basic_auth("test_sk_billing");
        let billing = |endpoint, path: &str, key: Option<&str>, body: Value| {
            let body = body.to_string();
            toss.handle(Call {
                endpoint,
                path,
                authorization: Some(&billing_auth),
                idempotency_key: key,
                body: body.as_bytes(),
            })
        };
        let auth_key = toss.register_card("cust-1");
        let issue = json!({"authKey": auth_key, "customerKey": "cust-1"});
        let path = "/v1/billing/authorizations/issue";
        let issued = billing(Endpoint::IssueBillingKey, path, None, issue.clone());
        assert_eq!(issued.status, 200);
        let again = billing(Endpoint::IssueBillingKey, path, None, issue.clone());
        assert_eq!(
            (again.status, again.body["code"].as_str()),
            (404, Some("NOT_FOUND_BILLING")),
            "single-use"
        );
        let key = issued.body["billingKey"].as_str().unwrap().to_owned();
        assert_eq!(toss.billing_keys_of("cust-1"), vec![key.clone()]);
        // The payment key's MID may not issue.
        let body = issue.to_string();
        let wrong = toss.handle(call(Endpoint::IssueBillingKey, path, None, body.as_bytes()));
        assert_eq!(wrong.status, 401);

        let charge = json!({"customerKey": "cust-1", "amount": 1000, "orderId": "o-bill-1", "orderName": "n"});
        let charge_path = format!("/v1/billing/{key}");
        let charged = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            Some("c1"),
            charge.clone(),
        );
        assert_eq!(charged.body["status"], "DONE");
        let replay = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            Some("c1"),
            charge.clone(),
        );
        assert_eq!(replay.body, charged.body, "same key: replayed");
        let second = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            Some("c2"),
            charge.clone(),
        );
        assert_eq!(second.body["code"], "DUPLICATED_ORDER_ID");
        assert_eq!(toss.approvals("o-bill-1"), 1);
        // Each MID sees only its own payments.
        let by_order = |authorization: &str| {
            toss.handle(Call {
                endpoint: Endpoint::ByOrder {
                    order_id: "o-bill-1",
                },
                path: "/v1/payments/orders/o-bill-1",
                authorization: Some(authorization),
                idempotency_key: None,
                body: b"",
            })
        };
        assert_eq!(by_order(&billing_auth).body["status"], "DONE");
        assert_eq!(by_order(BASIC_AUTH).status, 404);
        // Declines are consumed in order; the order stays chargeable after one.
        toss.decline_next_charge("REJECT_CARD_PAYMENT", "한도초과");
        let order_2 = json!({"customerKey": "cust-1", "amount": 1000, "orderId": "o-bill-2", "orderName": "n"});
        let declined = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            None,
            order_2.clone(),
        );
        assert_eq!(
            (declined.status, declined.body["code"].as_str()),
            (403, Some("REJECT_CARD_PAYMENT"))
        );
        toss.fail_after_next_charge();
        let failed = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            None,
            order_2,
        );
        assert_eq!(failed.status, 500);
        assert_eq!(
            toss.approvals("o-bill-2"),
            1,
            "charged, though Toss answered 500"
        );
        // BILLING_DELETED: the key is gone at Toss.
        let webhook = toss.delete_billing_key(&key);
        assert_eq!(webhook["data"]["billingKey"], key.as_str());
        let gone = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            None,
            json!({"customerKey": "cust-1", "amount": 1000, "orderId": "o-bill-3", "orderName": "n"}),
        );
        assert_eq!(
            (gone.status, gone.body["code"].as_str()),
            (400, Some("INVALID_BILL_KEY_REQUEST"))
        );
    }

    #[test]
    fn billing_refusals_use_tosss_codes_and_a_decline_is_an_aborted_attempt() {
        let toss = FakeToss::default();
        let charge = |billing_key: &str, key: Option<&str>, body: Value| {
            let path = format!("/v1/billing/{billing_key}");
            let body = body.to_string();
            toss.handle(call(
                Endpoint::Charge { billing_key },
                &path,
                key,
                body.as_bytes(),
            ))
        };
        let auth_key = toss.register_card("cust-1");
        let issue = |auth_key: &str, customer: &str| {
            let body = json!({"authKey": auth_key, "customerKey": customer}).to_string();
            toss.handle(call(
                Endpoint::IssueBillingKey,
                "/v1/billing/authorizations/issue",
                None,
                body.as_bytes(),
            ))
        };
        assert_eq!(
            issue(&auth_key, "cust-2").body["code"],
            "NOT_MATCHES_CUSTOMER_KEY"
        );
        assert_eq!(issue("bln_unknown", "cust-1").status, 404);
        let key = issue(&auth_key, "cust-1").body["billingKey"]
            .as_str()
            .unwrap()
            .to_owned();
        let order = |customer: &str| json!({"customerKey": customer, "amount": 1000, "orderId": "o-bill-9", "orderName": "n"});
        let foreign = charge(&key, None, order("cust-2"));
        assert_eq!(
            (foreign.status, foreign.body["code"].as_str()),
            (400, Some("NOT_MATCHES_CUSTOMER_KEY"))
        );
        let unknown = charge("bk_unknown", None, order("cust-1"));
        assert_eq!(
            (unknown.status, unknown.body["code"].as_str()),
            (400, Some("INVALID_BILL_KEY_REQUEST"))
        );
        for code in [
            "INVALID_AUTH_KEY",
            "NOT_FOUND_BILLING_KEY",
            "INVALID_BILLING_KEY",
        ] {
            assert_ne!(foreign.body["code"], code);
            assert_ne!(unknown.body["code"], code);
        }
        // A decline leaves an ABORTED attempt of the order; the next charge approves it.
        toss.decline_next_charge("REJECT_CARD_PAYMENT", "한도초과");
        assert_eq!(charge(&key, Some("a1"), order("cust-1")).status, 403);
        let aborted = toss.payment_key_of_order("o-bill-9").unwrap();
        let first = toss.payment(&aborted).unwrap();
        assert_eq!(first.status, "ABORTED");
        assert_eq!(first.approved_at, None);
        assert_eq!(to_json(&first)["failure"]["code"], "REJECT_CARD_PAYMENT");
        // Which attempt a lookup by order id shows is Toss's choice; a test may pick the
        // earlier one. A second approval of the order is refused all the same.
        toss.show_for_order("o-bill-9", &aborted);
        let approved = charge(&key, Some("a2"), order("cust-1"));
        assert_eq!(approved.body["status"], "DONE");
        assert_eq!(toss.approvals("o-bill-9"), 1);
        assert_eq!(toss.attempts_of_order("o-bill-9").len(), 2);
        let by_order = toss.handle(call(
            Endpoint::ByOrder {
                order_id: "o-bill-9",
            },
            "/v1/payments/orders/o-bill-9",
            None,
            b"",
        ));
        assert_eq!(by_order.body["status"], "ABORTED");
        assert_eq!(
            charge(&key, Some("a3"), order("cust-1")).body["code"],
            "DUPLICATED_ORDER_ID"
        );
        assert_eq!(
            charge(&key, Some("a2"), order("cust-1")).body,
            approved.body,
            "the same key replays the approval"
        );
        assert_eq!(toss.approvals("o-bill-9"), 1);
    }

    #[test]
    fn a_virtual_account_is_issued_deposited_and_refunded_to_an_account() {
        let toss = FakeToss::default();
        toss.authenticate_virtual_account("pk_va", "o-1", 1000);
        toss.set_tax_free("pk_va", 300);
        let issued = confirm(&toss, None, "pk_va");
        assert_eq!(issued.body["status"], "WAITING_FOR_DEPOSIT");
        assert_eq!(issued.body["method"], "가상계좌");
        assert_eq!(issued.body["virtualAccount"]["bankCode"], "20");
        assert_eq!(issued.body["approvedAt"], Value::Null);
        let cancel = |body: Value| {
            let body = body.to_string();
            toss.handle(call(
                Endpoint::Cancel {
                    payment_key: "pk_va",
                },
                "/v1/payments/pk_va/cancel",
                None,
                body.as_bytes(),
            ))
        };
        let partial = cancel(json!({"cancelReason": "r", "cancelAmount": 400}));
        assert_eq!(
            partial.body["code"],
            "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT"
        );
        assert!(toss.deposit("pk_va"));
        assert!(!toss.deposit("pk_va"), "deposited once");
        let callback = toss.deposit_callback("pk_va");
        assert_eq!(callback["secret"], secret_of("pk_va"));
        assert_eq!(callback["status"], "DONE");
        let without = cancel(json!({"cancelReason": "r", "cancelAmount": 400}));
        assert_eq!(without.body["code"], "INVALID_REFUND_ACCOUNT_INFO");
        let account =
            json!({"bank": "88", "accountNumber": "110123456789", "holderName": "홍길동"});
        let refunded = cancel(
            json!({"cancelReason": "r", "cancelAmount": 400, "taxFreeAmount": 120,
                                     "refundReceiveAccount": account}),
        );
        assert_eq!(refunded.status, 200, "{}", refunded.body);
        assert_eq!(refunded.body["taxFreeAmount"], 180);
        assert_eq!(refunded.body["cancels"][0]["taxFreeAmount"], 120);
        toss.authenticate_virtual_account("pk_va2", "o-1", 1000);
        confirm(&toss, None, "pk_va2");
        toss.deposit("pk_va2");
        assert_eq!(
            toss.deposit_error("pk_va2")["status"],
            "WAITING_FOR_DEPOSIT"
        );
        assert_eq!(
            toss.payment("pk_va2").unwrap().status,
            "WAITING_FOR_DEPOSIT"
        );
    }

    #[test]
    fn an_unpaid_virtual_account_is_cancelled_whole_or_expires() {
        let toss = FakeToss::default();
        toss.authenticate_virtual_account("pk_va", "o-1", 1000);
        confirm(&toss, None, "pk_va");
        let body = json!({"cancelReason": "r"}).to_string();
        let cancelled = toss.handle(call(
            Endpoint::Cancel {
                payment_key: "pk_va",
            },
            "/v1/payments/pk_va/cancel",
            None,
            body.as_bytes(),
        ));
        // The cancel is listed like any other, but nothing was ever approved (§4).
        assert_eq!(cancelled.body["status"], "CANCELED");
        assert_eq!(
            cancelled.body["approvedAt"],
            Value::Null,
            "nothing was paid"
        );
        assert_eq!(cancelled.body["balanceAmount"], 0);
        let cancels = cancelled.body["cancels"].as_array().unwrap();
        assert_eq!(cancels.len(), 1);
        assert_eq!(cancels[0]["cancelAmount"], 1000);
        assert_eq!(cancels[0]["cancelStatus"], "DONE");
        assert_eq!(
            cancelled.body["lastTransactionKey"],
            cancels[0]["transactionKey"]
        );
        assert!(
            !toss.deposit("pk_va"),
            "a cancelled account takes no deposit"
        );
        assert!(
            toss.transaction_log().is_empty(),
            "no money moved: nothing in Toss's books"
        );
        // A window payment never confirmed expires.
        toss.authenticate("pk_card", "o-3", 1000);
        toss.expire("pk_card");
        let expired = toss.payment("pk_card").unwrap();
        assert_eq!(expired.status, "EXPIRED");
        assert_eq!(to_json(&expired)["failure"]["code"], "EXPIRED_PAYMENT");
    }

    #[test]
    fn a_virtual_account_past_its_due_date_waits_expired_and_takes_no_deposit() {
        let toss = FakeToss::default();
        toss.authenticate_virtual_account("pk_va", "o-1", 1000);
        let issued = confirm(&toss, None, "pk_va");
        assert_eq!(issued.body["virtualAccount"]["expired"], false);
        let due = issued.body["virtualAccount"]["dueDate"].as_str().unwrap();
        assert_eq!(due.len(), 19, "KST without an offset: {due}");
        assert!(due > now_kst()[..19].to_owned().as_str(), "due later");
        // The due date passes: no EXPIRED, no failure, only `expired`.
        toss.expire("pk_va");
        let read = toss.handle(call(
            Endpoint::ByKey {
                payment_key: "pk_va",
            },
            "/v1/payments/pk_va",
            None,
            b"",
        ));
        assert_eq!(read.body["status"], "WAITING_FOR_DEPOSIT");
        assert_eq!(read.body["virtualAccount"]["expired"], true);
        assert_eq!(read.body["failure"], Value::Null);
        assert_eq!(read.body["approvedAt"], Value::Null);
        assert!(
            !toss.deposit("pk_va"),
            "an expired account takes no deposit"
        );
        // A due date set later than now: not expired until it passes.
        toss.authenticate_virtual_account("pk_va2", "o-1", 1000);
        confirm(&toss, None, "pk_va2");
        let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
        toss.set_due_date("pk_va2", &due_date_of(soon));
        assert!(!toss.payment("pk_va2").unwrap().deposit_expired());
        std::thread::sleep(Duration::from_millis(2100));
        assert!(toss.payment("pk_va2").unwrap().deposit_expired());
    }

    #[test]
    fn a_key_without_a_session_of_the_order_is_not_found_only_a_read_back_tells_why() {
        let toss = FakeToss::default();
        let lookup = |payment_key: &str| {
            let path = format!("/v1/payments/{payment_key}");
            toss.handle(call(Endpoint::ByKey { payment_key }, &path, None, b""))
        };
        // Never authenticated: nothing is created, and the read-back knows nothing either.
        let junk = confirm(&toss, None, "pk_junk");
        assert_eq!(
            (junk.status, junk.body["code"].as_str()),
            (404, Some("NOT_FOUND_PAYMENT_SESSION"))
        );
        assert_eq!(lookup("pk_junk").body["code"], "NOT_FOUND_PAYMENT");
        assert!(toss.payment("pk_junk").is_none());
        // Another order's key: the same answer, and that order's payment is not touched.
        toss.authenticate("pk_other", "o-2", 1000);
        let foreign = confirm(&toss, None, "pk_other");
        assert_eq!(foreign.body["code"], "NOT_FOUND_PAYMENT_SESSION");
        assert_eq!(toss.payment("pk_other").unwrap().status, "IN_PROGRESS");
        // This order's expired attempt: the same answer; its read-back shows it EXPIRED.
        toss.authenticate("pk_old", "o-1", 1000);
        toss.set_status("pk_old", "EXPIRED");
        let expired = confirm(&toss, None, "pk_old");
        assert_eq!(expired.body["code"], "NOT_FOUND_PAYMENT_SESSION");
        assert_eq!(lookup("pk_old").body["status"], "EXPIRED");
        // The benchmark's fake opens a session on the first confirm.
        let open = FakeToss::new(Settings {
            open_sessions: true,
            ..Settings::default()
        });
        assert_eq!(confirm(&open, None, "pk_any").body["status"], "DONE");
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
