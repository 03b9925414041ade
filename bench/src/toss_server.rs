//! The fake Toss on loopback: Toss's behaviour is the `fake-toss` crate's (the tests' fake Toss
//! uses the same), served over HTTP and answering after a set delay.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fake_toss::{Call, Endpoint, Settings};
use tokio::net::TcpListener;

/// The key the service started here presents (`--target`'s service must use it too).
pub const SECRET_KEY: &str = "test_sk_bench";

#[derive(Clone)]
pub struct TossServer(fake_toss::FakeToss);

impl TossServer {
    /// Binds `bind` and serves in the background; returns the base URL.
    pub async fn start(bind: &str, delay: Duration) -> anyhow::Result<(Self, String)> {
        let toss = Self(fake_toss::FakeToss::new(Settings {
            secret_key: SECRET_KEY.to_owned(),
            billing_secret_key: None,
            delay,
            // No key is ever sent twice here; remembering every reply would make the fake grow
            // by kilobytes per flow.
            replays: false,
            // The load test has no payment window: its confirms open their own sessions.
            open_sessions: true,
        }));
        let router = Router::new()
            .route("/v1/payments/confirm", post(confirm))
            .route("/v1/payments/{key}/cancel", post(cancel))
            .route("/v1/payments/orders/{order_id}", get(by_order))
            .route("/v1/payments/{key}", get(by_key))
            .route("/v1/transactions", get(transactions))
            .route("/v1/settlements", get(settlements))
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
    }

    /// A payment approved at Toss now, with its transaction; returns the approval's key.
    pub fn approve(&self, payment_key: &str, order_id: &str, amount: i64) -> String {
        self.0.approve(payment_key, order_id, amount)
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
