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
//!
//! One module per Toss area: `payments` (authenticate, confirm, lookups), `cancels`, `billing`,
//! `virtual_accounts`, `books` (transactions and settlements); `payment` is Toss's Payment object
//! as the fake keeps it and answers it. This file holds the state and the dispatch of a call.

use std::collections::HashMap;
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

mod billing;
mod books;
mod cancels;
mod payment;
mod payments;
mod virtual_accounts;

pub use books::{FakeTransaction, fee_of};
pub use payment::{FakePayment, due_date_of, secret_of, to_json};

use billing::Billing;
use payment::now_kst;

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
            Endpoint::ByOrder { order_id } => self.by_order(order_id, mid),
            Endpoint::Transactions { query } => self
                .throttled()
                .unwrap_or_else(|| self.transactions(query, mid)),
            Endpoint::Settlements { query } => self
                .throttled()
                .unwrap_or_else(|| self.settlements(query, mid)),
        }
    }

    fn update<T>(&self, payment_key: &str, change: impl FnOnce(&mut FakePayment) -> T) -> T {
        let mut payments = self.lock(&self.0.payments, payment_key);
        let kept = payments.get_mut(payment_key).expect("known payment");
        change(&mut kept.payment)
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

fn unauthorized() -> Reply {
    Reply::new(
        401,
        json!({"code": "UNAUTHORIZED_KEY", "message": "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.", "data": null}),
    )
}

fn not_found() -> Reply {
    Reply::refused(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다.")
}

#[cfg(test)]
mod test_support {
    use super::*;

    pub(crate) fn call<'a>(
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

    pub(crate) fn confirm(toss: &FakeToss, key: Option<&str>, payment_key: &str) -> Reply {
        let body = json!({"paymentKey": payment_key, "orderId": "o-1", "amount": 1000}).to_string();
        toss.handle(call(
            Endpoint::Confirm,
            "/v1/payments/confirm",
            key,
            body.as_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn the_default_key_is_the_published_one() {
        assert_eq!(basic_auth(SECRET_KEY), BASIC_AUTH);
        assert_eq!(FakeToss::default().authorization(), BASIC_AUTH);
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
