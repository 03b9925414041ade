//! A fake Toss Payments on loopback, as `tests/api/fake_toss.rs` behaves, answering after a set
//! delay. Its state is sharded so that it is never what the benchmark measures.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const SECRET_KEY: &str = "test_sk_bench";

const SHARDS: usize = 64;

#[derive(Debug, Clone)]
struct FakePayment {
    payment_key: String,
    order_id: String,
    total: i64,
    balance: i64,
    status: &'static str,
    cancels: Vec<Value>,
    last_transaction_key: Option<String>,
}

#[derive(Default)]
struct Shard {
    by_key: HashMap<String, FakePayment>,
    /// order id -> payment key, for `GET /v1/payments/orders/{orderId}`.
    by_order: HashMap<String, String>,
}

struct Inner {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    delay: Duration,
    authorization: String,
}

#[derive(Clone)]
pub struct FakeToss(Arc<Inner>);

impl FakeToss {
    /// Binds `bind` and serves in the background; returns the base URL.
    pub async fn start(bind: &str, delay: Duration) -> anyhow::Result<(Self, String)> {
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{SECRET_KEY}:"))
        );
        let toss = Self(Arc::new(Inner {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            delay,
            authorization,
        }));
        let router = Router::new()
            .route("/v1/payments/confirm", post(confirm))
            .route("/v1/payments/{key}/cancel", post(cancel))
            .route("/v1/payments/orders/{order_id}", get(by_order))
            .route("/v1/payments/{key}", get(by_key))
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
        for shard in &self.0.shards {
            *shard.lock().expect("shard lock") = Shard::default();
        }
    }

    pub fn authorization(&self) -> &str {
        &self.0.authorization
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let index = self.0.hasher.hash_one(key) as usize % SHARDS;
        &self.0.shards[index]
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(self.0.authorization.as_str())
    }

    async fn pause(&self) {
        if !self.0.delay.is_zero() {
            tokio::time::sleep(self.0.delay).await;
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfirmBody {
    payment_key: String,
    order_id: String,
    amount: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelBody {
    cancel_reason: Option<String>,
    cancel_amount: Option<i64>,
}

async fn confirm(State(toss): State<FakeToss>, headers: HeaderMap, body: Bytes) -> Response {
    if !toss.authorized(&headers) {
        return unauthorized();
    }
    let Ok(body) = serde_json::from_slice::<ConfirmBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "잘못된 요청입니다.",
        );
    };
    // The charge happens at once; only the reply is slow, as when Toss is slow to answer.
    let reply = {
        let mut shard = toss.shard(&body.payment_key).lock().expect("not poisoned");
        let payment = shard
            .by_key
            .entry(body.payment_key.clone())
            .or_insert_with(|| FakePayment {
                payment_key: body.payment_key.clone(),
                order_id: body.order_id.clone(),
                total: body.amount,
                balance: body.amount,
                status: "IN_PROGRESS",
                cancels: Vec::new(),
                last_transaction_key: None,
            });
        if payment.order_id != body.order_id || payment.total != body.amount {
            Err((
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "결제 금액 또는 주문번호가 일치하지 않습니다.",
            ))
        } else if payment.status == "IN_PROGRESS" {
            payment.status = "DONE";
            payment.last_transaction_key = Some(format!("tx_{}", uuid::Uuid::new_v4().simple()));
            let reply = to_json(payment);
            // The order index lives in the order id's shard; only lookups by order read it.
            drop(shard);
            toss.shard(&body.order_id)
                .lock()
                .expect("not poisoned")
                .by_order
                .insert(body.order_id.clone(), body.payment_key.clone());
            Ok(reply)
        } else {
            Err((
                StatusCode::BAD_REQUEST,
                "ALREADY_PROCESSED_PAYMENT",
                "이미 처리된 결제 입니다.",
            ))
        }
    };
    toss.pause().await;
    match reply {
        Ok(reply) => (StatusCode::OK, axum::Json(reply)).into_response(),
        Err((status, code, message)) => error(status, code, message),
    }
}

async fn cancel(
    State(toss): State<FakeToss>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !toss.authorized(&headers) {
        return unauthorized();
    }
    let Ok(body) = serde_json::from_slice::<CancelBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "잘못된 요청입니다.",
        );
    };
    let reply = {
        let mut shard = toss.shard(&key).lock().expect("not poisoned");
        match shard.by_key.get_mut(&key) {
            None => Err((
                StatusCode::NOT_FOUND,
                "NOT_FOUND_PAYMENT",
                "존재하지 않는 결제 정보 입니다.",
            )),
            Some(payment) if !matches!(payment.status, "DONE" | "PARTIAL_CANCELED") => Err((
                StatusCode::FORBIDDEN,
                "NOT_CANCELABLE_PAYMENT",
                "취소 할 수 없는 결제 입니다.",
            )),
            Some(payment) => {
                let amount = body.cancel_amount.unwrap_or(payment.balance);
                if amount <= 0 || amount > payment.balance {
                    Err((
                        StatusCode::FORBIDDEN,
                        "NOT_CANCELABLE_AMOUNT",
                        "취소 할 수 없는 금액 입니다.",
                    ))
                } else {
                    apply_cancel(payment, amount, body.cancel_reason.as_deref());
                    Ok(to_json(payment))
                }
            }
        }
    };
    toss.pause().await;
    match reply {
        Ok(reply) => (StatusCode::OK, axum::Json(reply)).into_response(),
        Err((status, code, message)) => error(status, code, message),
    }
}

async fn by_key(
    State(toss): State<FakeToss>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !toss.authorized(&headers) {
        return unauthorized();
    }
    let reply = toss
        .shard(&key)
        .lock()
        .expect("not poisoned")
        .by_key
        .get(&key)
        .map(to_json);
    toss.pause().await;
    match reply {
        Some(reply) => (StatusCode::OK, axum::Json(reply)).into_response(),
        None => not_found(),
    }
}

async fn by_order(
    State(toss): State<FakeToss>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !toss.authorized(&headers) {
        return unauthorized();
    }
    let key = toss
        .shard(&order_id)
        .lock()
        .expect("not poisoned")
        .by_order
        .get(&order_id)
        .cloned();
    let reply = key.and_then(|key| {
        toss.shard(&key)
            .lock()
            .expect("not poisoned")
            .by_key
            .get(&key)
            .map(to_json)
    });
    toss.pause().await;
    match reply {
        Some(reply) => (StatusCode::OK, axum::Json(reply)).into_response(),
        None => not_found(),
    }
}

fn apply_cancel(payment: &mut FakePayment, amount: i64, reason: Option<&str>) {
    let transaction_key = format!("cx_{}", uuid::Uuid::new_v4().simple());
    payment.balance -= amount;
    payment.status = if payment.balance == 0 {
        "CANCELED"
    } else {
        "PARTIAL_CANCELED"
    };
    payment.last_transaction_key = Some(transaction_key.clone());
    payment.cancels.push(json!({
        "transactionKey": transaction_key,
        "cancelReason": reason.unwrap_or_default(),
        "taxExemptionAmount": 0,
        "canceledAt": chrono::Utc::now().to_rfc3339(),
        "cancelAmount": amount,
        "taxFreeAmount": 0,
        "refundableAmount": payment.balance,
        "cancelStatus": "DONE",
        "cancelRequestId": null
    }));
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED_KEY",
        "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
    )
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAYMENT",
        "존재하지 않는 결제 정보 입니다.",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "message": message, "data": null})),
    )
        .into_response()
}

/// Toss's Payment object, with the fields a card payment carries (the size of a real reply).
fn to_json(p: &FakePayment) -> Value {
    json!({
        "mId": "tosspayments",
        "version": "2022-11-16",
        "lastTransactionKey": p.last_transaction_key,
        "paymentKey": p.payment_key,
        "orderId": p.order_id,
        "orderName": "bench order",
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
        "secret": "ps_fakesecret0001",
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
        "metadata": null
    })
}
