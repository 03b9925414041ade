//! The fake Toss on loopback: Toss's behaviour is the `fake-toss` crate's (the tests' fake Toss
//! uses the same), served over HTTP and answering after a set delay.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use fake_toss::{Call, Endpoint, Settings};
use tokio::net::TcpListener;

/// The key the service started here presents (`--target`'s service must use it too).
pub const SECRET_KEY: &str = "test_sk_bench";

#[derive(Clone)]
pub struct TossServer(fake_toss::FakeToss, Arc<ChargeLog>);

/// Billing charges as they reached the fake Toss, by order id: when the first arrived, and how
/// many arrived (a second one for an order is answered `DUPLICATED_ORDER_ID` by the fake).
#[derive(Default)]
struct ChargeLog(Mutex<HashMap<String, ChargeArrival>>);

#[derive(Debug, Clone, Copy)]
pub struct ChargeArrival {
    pub first: DateTime<Utc>,
    pub calls: u32,
}

impl TossServer {
    /// Binds `bind` and serves in the background; returns the base URL. A confirm of a key
    /// nobody authenticated opens its session (the load test has no payment window).
    pub async fn start(bind: &str, delay: Duration) -> anyhow::Result<(Self, String)> {
        Self::start_with(bind, delay, true).await
    }

    /// As [`Self::start`]; with `open_sessions` false, only keys authenticated first
    /// ([`Self::authenticate`]) can be confirmed, as at Toss.
    pub async fn start_with(
        bind: &str,
        delay: Duration,
        open_sessions: bool,
    ) -> anyhow::Result<(Self, String)> {
        let toss = Self(
            fake_toss::FakeToss::new(Settings {
                secret_key: SECRET_KEY.to_owned(),
                billing_secret_key: None,
                delay,
                // No key is ever sent twice here; remembering every reply would make the fake grow
                // by kilobytes per flow.
                replays: false,
                open_sessions,
            }),
            Arc::default(),
        );
        let router = Router::new()
            .route("/v1/payments/confirm", post(confirm))
            .route("/v1/payments/{key}/cancel", post(cancel))
            .route("/v1/payments/orders/{order_id}", get(by_order))
            .route("/v1/payments/{key}", get(by_key))
            .route("/v1/transactions", get(transactions))
            .route("/v1/settlements", get(settlements))
            .route("/v1/billing/authorizations/issue", post(issue))
            .route("/v1/billing/{billing_key}", post(charge))
            .with_state(toss.clone());
        let listener = TcpListener::bind(bind).await?;
        let addr: SocketAddr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("fake Toss stopped: {error}");
            }
        });
        Ok((toss, format!("http://{addr}")))
    }

    /// Forgets every payment, so that a phase does not pay for the maps an earlier phase
    /// filled (baseline (a) leaves hundreds of thousands behind).
    pub fn forget_all(&self) {
        self.0.forget_all();
        *self.1.0.lock().expect("charge log") = HashMap::new();
    }

    /// A payment approved at Toss now, with its transaction; returns the approval's key.
    pub fn approve(&self, payment_key: &str, order_id: &str, amount: i64) -> String {
        self.0.approve(payment_key, order_id, amount)
    }

    /// The buyer authenticated in the payment window: Toss will confirm this key for this
    /// order and amount.
    pub fn authenticate(&self, payment_key: &str, order_id: &str, amount: i64) {
        self.0.authenticate(payment_key, order_id, amount);
    }

    /// The buyer registered a card in Toss's billing window: the `authKey` to issue a billing
    /// key with.
    pub fn register_card(&self, customer_key: &str) -> String {
        self.0.register_card(customer_key)
    }

    /// How many charges the fake Toss approved for `order_id`.
    pub fn approvals(&self, order_id: &str) -> usize {
        self.0.approvals(order_id)
    }

    /// Every billing charge that arrived, by order id.
    pub fn charge_arrivals(&self) -> HashMap<String, ChargeArrival> {
        self.1.0.lock().expect("charge log").clone()
    }

    pub fn authorization(&self) -> &str {
        self.0.authorization()
    }

    /// Answers `endpoint` as Toss does, after the delay (the change itself happens at once).
    async fn answer(
        &self,
        endpoint: Endpoint<'_>,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let reply = self.0.handle(Call {
            endpoint,
            path: uri.path(),
            authorization: header(header::AUTHORIZATION),
            idempotency_key: header(header::HeaderName::from_static("idempotency-key")),
            body,
        });
        let delay = self.0.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let status =
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(reply.body)).into_response()
    }
}

async fn confirm(
    State(toss): State<TossServer>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    toss.answer(Endpoint::Confirm, &uri, &headers, &body).await
}

async fn cancel(
    State(toss): State<TossServer>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = Endpoint::Cancel { payment_key: &key };
    toss.answer(endpoint, &uri, &headers, &body).await
}

async fn by_key(
    State(toss): State<TossServer>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let endpoint = Endpoint::ByKey { payment_key: &key };
    toss.answer(endpoint, &uri, &headers, &[]).await
}

async fn transactions(State(toss): State<TossServer>, uri: Uri, headers: HeaderMap) -> Response {
    let endpoint = Endpoint::Transactions {
        query: uri.query().unwrap_or_default(),
    };
    toss.answer(endpoint, &uri, &headers, &[]).await
}

async fn settlements(State(toss): State<TossServer>, uri: Uri, headers: HeaderMap) -> Response {
    let endpoint = Endpoint::Settlements {
        query: uri.query().unwrap_or_default(),
    };
    toss.answer(endpoint, &uri, &headers, &[]).await
}

async fn by_order(
    State(toss): State<TossServer>,
    Path(order_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let endpoint = Endpoint::ByOrder {
        order_id: &order_id,
    };
    toss.answer(endpoint, &uri, &headers, &[]).await
}

async fn issue(
    State(toss): State<TossServer>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    toss.answer(Endpoint::IssueBillingKey, &uri, &headers, &body)
        .await
}

/// `POST /v1/billing/{billingKey}`: noted (when, which order) before the fake answers it.
async fn charge(
    State(toss): State<TossServer>,
    Path(billing_key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Utc::now();
    if let Some(order_id) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["orderId"].as_str().map(str::to_owned))
    {
        toss.1
            .0
            .lock()
            .expect("charge log")
            .entry(order_id)
            .and_modify(|seen| seen.calls += 1)
            .or_insert(ChargeArrival {
                first: arrived,
                calls: 1,
            });
    }
    let endpoint = Endpoint::Charge {
        billing_key: &billing_key,
    };
    toss.answer(endpoint, &uri, &headers, &body).await
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[tokio::test]
    async fn serves_billing_and_notes_each_charge_of_an_order() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (toss, url) = TossServer::start("127.0.0.1:0", Duration::ZERO)
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let post = |path: String, body: Value| {
            client
                .post(format!("{url}{path}"))
                .header(header::AUTHORIZATION, toss.authorization())
                .json(&body)
                .send()
        };
        let auth_key = toss.register_card("cust-1");
        let issued = post(
            "/v1/billing/authorizations/issue".to_owned(),
            json!({"authKey": auth_key, "customerKey": "cust-1"}),
        )
        .await
        .unwrap();
        assert_eq!(issued.status(), 200);
        let issued: Value = issued.json().await.unwrap();
        let key = issued["billingKey"].as_str().unwrap();
        let charge = json!({"customerKey": "cust-1", "amount": 29_900, "orderId": "rn_1",
                            "orderName": "monthly"});
        let first = post(format!("/v1/billing/{key}"), charge.clone())
            .await
            .unwrap();
        assert_eq!(first.status(), 200);
        let again = post(format!("/v1/billing/{key}"), charge).await.unwrap();
        assert_eq!(again.status(), 400);
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["code"], "DUPLICATED_ORDER_ID");

        assert_eq!(toss.approvals("rn_1"), 1);
        let arrivals = toss.charge_arrivals();
        assert_eq!(arrivals.len(), 1);
        assert_eq!(arrivals["rn_1"].calls, 2);
        toss.forget_all();
        assert!(toss.charge_arrivals().is_empty());
    }
}
