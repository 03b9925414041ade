//! The fake Toss on a wiremock server: Toss's behaviour comes from the `fake-toss` crate (the
//! benchmark's fake Toss uses the same), this module only carries wiremock requests to it.
//! Confirm moves an authenticated payment to DONE once (a second confirm is
//! ALREADY_PROCESSED_PAYMENT), cancels append to `cancels[]` and shrink `balanceAmount`, lookups
//! return the current record, and a repeated `Idempotency-Key` replays the first response.
//! Billing: issue (single-use `authKey`), charge (declines, 500 after charging), read-back by
//! order id, `BILLING_DELETED`. Tests mount error or delay mocks in front of it.

use std::ops::Deref;

use ::fake_toss::{Call, Endpoint};
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub use ::fake_toss::{BASIC_AUTH, FakePayment, SECRET_KEY, secret_of, to_json};

/// Toss in memory (`authenticate`, `set_status`, `payment`, `cancel_in_dashboard`,
/// `space_cancels`, `throttle_lists`, `transaction_log`, ...), mountable on a wiremock server.
/// Its transactions and settlements lists are served too.
#[derive(Clone, Default)]
pub struct FakeToss(::fake_toss::FakeToss);

impl Deref for FakeToss {
    type Target = ::fake_toss::FakeToss;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FakeToss {
    pub fn new(settings: ::fake_toss::Settings) -> Self {
        Self(::fake_toss::FakeToss::new(settings))
    }

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
        Mock::given(method("POST"))
            .and(path("/v1/billing/authorizations/issue"))
            .respond_with(Handler(self.clone(), Kind::Issue))
            .with_priority(100)
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1/billing/[^/]+$"))
            .respond_with(Handler(self.clone(), Kind::Charge))
            .with_priority(101)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/transactions"))
            .respond_with(Handler(self.clone(), Kind::Transactions))
            .with_priority(100)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/settlements"))
            .respond_with(Handler(self.clone(), Kind::Settlements))
            .with_priority(100)
            .mount(server)
            .await;
    }

    /// The next billing charge happens at Toss at once, but its answer comes only after
    /// `delay`: past the client's read timeout, a reply lost.
    pub async fn slow_next_charge(&self, server: &MockServer, delay: std::time::Duration) {
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1/billing/[^/]+$"))
            .respond_with(Delayed(Handler(self.clone(), Kind::Charge), delay))
            .up_to_n_times(1)
            .with_priority(40)
            .mount(server)
            .await;
    }

    /// Every billing charge answers only after `delay`; the charge happens at once.
    pub async fn slow_charges(&self, server: &MockServer, delay: std::time::Duration) {
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1/billing/[^/]+$"))
            .respond_with(Delayed(Handler(self.clone(), Kind::Charge), delay))
            .with_priority(50)
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

    /// Toss's cancel endpoint answering only after `delay`; the cancel happens at once.
    pub async fn slow_cancel(&self, server: &MockServer, delay: std::time::Duration) {
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1/payments/[^/]+/cancel$"))
            .respond_with(Delayed(Handler(self.clone(), Kind::Cancel), delay))
            .with_priority(50)
            .mount(server)
            .await;
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Confirm,
    Cancel,
    ByKey,
    ByOrder,
    Issue,
    Charge,
    Transactions,
    Settlements,
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
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let segments: Vec<String> = request
            .url
            .path_segments()
            .map(|s| s.map(percent_decode).collect())
            .unwrap_or_default();
        // /v1/payments/{key}/cancel, /v1/payments/{key}, /v1/payments/orders/{order}
        let parameter = match self.1 {
            Kind::Cancel => segments.get(2),
            Kind::Confirm
            | Kind::ByKey
            | Kind::ByOrder
            | Kind::Issue
            | Kind::Charge
            | Kind::Transactions
            | Kind::Settlements => segments.last(),
        }
        .map(String::as_str)
        .unwrap_or_default();
        let endpoint = match self.1 {
            Kind::Confirm => Endpoint::Confirm,
            Kind::Cancel => Endpoint::Cancel {
                payment_key: parameter,
            },
            Kind::ByKey => Endpoint::ByKey {
                payment_key: parameter,
            },
            Kind::ByOrder => Endpoint::ByOrder {
                order_id: parameter,
            },
            Kind::Issue => Endpoint::IssueBillingKey,
            Kind::Charge => Endpoint::Charge {
                billing_key: parameter,
            },
            Kind::Transactions => Endpoint::Transactions {
                query: request.url.query().unwrap_or_default(),
            },
            Kind::Settlements => Endpoint::Settlements {
                query: request.url.query().unwrap_or_default(),
            },
        };
        let reply = self.0.handle(Call {
            endpoint,
            path: request.url.path(),
            authorization: header("authorization"),
            idempotency_key: header("idempotency-key"),
            body: &request.body,
        });
        let response = ResponseTemplate::new(reply.status).set_body_json(reply.body);
        match self.0.delay() {
            delay if delay.is_zero() => response,
            delay => response.set_delay(delay),
        }
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"code": code, "message": message, "data": null}))
}
