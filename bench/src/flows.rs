//! Load: a fixed number of worker tasks, each running one flow after another, for a time or a
//! count; and the confirm burst (many confirms released at once).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::args::Amount;
use crate::stats::{Phase, Recorder};

/// What a worker does once per iteration. Returns whether the flow completed without an error;
/// steps and errors go to `recorder`.
pub trait Flow: Send + Sync + 'static {
    fn run(
        &self,
        worker: usize,
        seq: u64,
        recorder: &mut Recorder,
    ) -> impl Future<Output = bool> + Send;
}

/// Runs `flow` on `concurrency` workers. With a duration, flows started during `warmup` are not
/// counted; the phase ends when the duration is over and every worker finished its last flow.
///
/// Without `rate`, each worker starts its next flow as soon as the last one ends (a closed
/// loop: the latency is whatever the throughput makes it). With `rate` (flows per second in
/// all), flow `k` is due at `k / rate` and its latency counts from then, so time spent waiting
/// for a free worker is counted too (no coordinated omission).
pub async fn drive<F: Flow>(
    name: &str,
    flow: Arc<F>,
    concurrency: usize,
    amount: Amount,
    warmup: Duration,
    rate: Option<f64>,
    on_measure_start: impl FnOnce(),
) -> Phase {
    let warm = matches!(amount, Amount::Duration(_)) && !warmup.is_zero();
    let recording = Arc::new(AtomicBool::new(!warm));
    let stop = Arc::new(AtomicBool::new(false));
    let tickets = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    let origin = tokio::time::Instant::now();
    let mut start = Instant::now();
    for worker in 0..concurrency {
        let (flow, recording, stop, tickets) = (
            flow.clone(),
            recording.clone(),
            stop.clone(),
            tickets.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut measured = Recorder::default();
            let mut warmup = Recorder::default();
            let mut seq = 0u64;
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let ticket = tickets.fetch_add(1, Ordering::Relaxed);
                if let Amount::Flows(n) = amount
                    && ticket >= n
                {
                    break;
                }
                let due = match rate {
                    Some(rate) => {
                        let due = origin + Duration::from_secs_f64(ticket as f64 / rate);
                        tokio::time::sleep_until(due).await;
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        due.into_std()
                    }
                    None => Instant::now(),
                };
                let recorder = if recording.load(Ordering::Relaxed) {
                    &mut measured
                } else {
                    &mut warmup
                };
                if flow.run(worker, seq, recorder).await {
                    recorder.flow.push(due.elapsed());
                    recorder.flows_ok += 1;
                } else {
                    recorder.flows_failed += 1;
                }
                seq += 1;
            }
            let attempted =
                measured.flows_ok + measured.flows_failed + warmup.flows_ok + warmup.flows_failed;
            (measured, attempted)
        }));
    }
    if warm {
        tokio::time::sleep(warmup).await;
        recording.store(true, Ordering::Relaxed);
        start = Instant::now();
    }
    on_measure_start();
    if let Amount::Duration(duration) = amount {
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut recorder = Recorder::default();
    let mut attempted = 0;
    for worker in workers {
        match worker.await {
            Ok((r, n)) => {
                recorder.merge(r);
                attempted += n;
            }
            Err(error) => recorder.error(format!("worker panicked: {error}")),
        }
    }
    Phase {
        name: name.to_owned(),
        recorder,
        elapsed: start.elapsed(),
        attempted,
    }
}

/// A client that keeps enough idle connections for every worker.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("a plain HTTP client builds")
}

/// Sends and reads the whole reply; `Err` names the step, status and problem code.
async fn call(
    step: &'static str,
    request: reqwest::RequestBuilder,
    expect: StatusCode,
) -> Result<Value, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("{step} transport {}", transport_kind(&e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("{step} body {}", transport_kind(&e)))?;
    if status != expect {
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        return Err(format!("{step} {} {code}", status.as_u16()));
    }
    serde_json::from_slice(&body).map_err(|_| format!("{step} {} unparsable body", status.as_u16()))
}

fn transport_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "io"
    }
}

pub const AMOUNT_KRW: i64 = 15_000;

/// The payment flow through the service: create -> confirm (-> refund, for a share of flows).
pub struct ServiceFlow {
    pub client: reqwest::Client,
    pub base: String,
    pub bearer: String,
    pub run_id: String,
    pub refund_share: f64,
}

impl ServiceFlow {
    fn order_id(&self, worker: usize, seq: u64) -> String {
        format!("o{}-{worker}-{seq}", self.run_id)
    }

    async fn create(&self, order_id: &str, recorder: &mut Recorder) -> Option<String> {
        let t = Instant::now();
        let request = self
            .client
            .post(format!("{}/payments", self.base))
            .header(AUTHORIZATION, &self.bearer)
            .json(&json!({
                "user_id": "bench-user",
                "order_id": order_id,
                "order_name": "bench order",
                "amount_krw": AMOUNT_KRW,
                "payment_method": "card",
            }));
        match call("create", request, StatusCode::CREATED).await {
            Ok(body) => {
                recorder.step("create", t.elapsed());
                body["payment_id"].as_str().map(str::to_owned)
            }
            Err(error) => {
                recorder.error(error);
                None
            }
        }
    }

    pub async fn confirm(&self, order_id: &str, recorder: &mut Recorder) -> bool {
        let t = Instant::now();
        let request = self
            .client
            .post(format!("{}/payments/confirm", self.base))
            .json(&json!({
                "order_id": order_id,
                "payment_key": format!("pk_{order_id}"),
                "amount_krw": AMOUNT_KRW,
            }));
        match call("confirm", request, StatusCode::OK).await {
            Ok(body) if body["status"] == "COMPLETED" => {
                recorder.step("confirm", t.elapsed());
                true
            }
            Ok(body) => {
                recorder.error(format!("confirm 200 status {}", body["status"]));
                false
            }
            Err(error) => {
                recorder.error(error);
                false
            }
        }
    }

    async fn refund(&self, payment_id: &str, recorder: &mut Recorder) -> bool {
        let t = Instant::now();
        let request = self
            .client
            .post(format!("{}/payments/{payment_id}/refund", self.base))
            .header(AUTHORIZATION, &self.bearer)
            .json(&json!({"reason": "bench refund", "refund_amount_krw": AMOUNT_KRW}));
        match call("refund", request, StatusCode::OK).await {
            Ok(_) => {
                recorder.step("refund", t.elapsed());
                true
            }
            Err(error) => {
                recorder.error(error);
                false
            }
        }
    }
}

impl Flow for ServiceFlow {
    async fn run(&self, worker: usize, seq: u64, recorder: &mut Recorder) -> bool {
        let order_id = self.order_id(worker, seq);
        let Some(payment_id) = self.create(&order_id, recorder).await else {
            return false;
        };
        if !self.confirm(&order_id, recorder).await {
            return false;
        }
        if rand::random::<f64>() < self.refund_share {
            return self.refund(&payment_id, recorder).await;
        }
        true
    }
}

/// Baseline (a): the Toss calls of a flow, made directly to the fake Toss.
pub struct TossFlow {
    pub client: reqwest::Client,
    pub base: String,
    pub authorization: String,
    pub run_id: String,
    pub refund_share: f64,
}

impl Flow for TossFlow {
    async fn run(&self, worker: usize, seq: u64, recorder: &mut Recorder) -> bool {
        let order_id = format!("a{}-{worker}-{seq}", self.run_id);
        let payment_key = format!("pk_{order_id}");
        let t = Instant::now();
        let request = self
            .client
            .post(format!("{}/v1/payments/confirm", self.base))
            .header(AUTHORIZATION, &self.authorization)
            .header("Idempotency-Key", format!("confirm-{order_id}"))
            .json(&json!({"paymentKey": payment_key, "orderId": order_id, "amount": AMOUNT_KRW}));
        match call("toss confirm", request, StatusCode::OK).await {
            Ok(_) => recorder.step("toss confirm", t.elapsed()),
            Err(error) => {
                recorder.error(error);
                return false;
            }
        }
        if rand::random::<f64>() < self.refund_share {
            let t = Instant::now();
            let request = self
                .client
                .post(format!("{}/v1/payments/{payment_key}/cancel", self.base))
                .header(AUTHORIZATION, &self.authorization)
                .header("Idempotency-Key", format!("refund-{order_id}"))
                .json(&json!({
                    "cancelReason": "bench refund",
                    "cancelAmount": AMOUNT_KRW,
                    "refundableAmount": AMOUNT_KRW,
                }));
            match call("toss cancel", request, StatusCode::OK).await {
                Ok(_) => recorder.step("toss cancel", t.elapsed()),
                Err(error) => {
                    recorder.error(error);
                    return false;
                }
            }
        }
        true
    }
}

/// Creates `count` payments (on `concurrency` workers, not timed as the result), then releases
/// `count` confirms at once and times them until the last one has answered.
pub async fn confirm_burst(flow: Arc<ServiceFlow>, concurrency: usize, count: u64) -> Phase {
    let creator = Arc::new(CreateOnly {
        flow: flow.clone(),
        created: Mutex::new(Vec::with_capacity(count as usize)),
    });
    let created = drive(
        "burst: create",
        creator.clone(),
        concurrency,
        Amount::Flows(count),
        Duration::ZERO,
        None,
        || {},
    )
    .await;
    created.print();
    let ids = std::mem::take(&mut *creator.created.lock().expect("not poisoned"));
    let barrier = Arc::new(Barrier::new(ids.len() + 1));
    let mut tasks = Vec::with_capacity(ids.len());
    for order_id in ids {
        let (flow, barrier) = (flow.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut recorder = Recorder::default();
            barrier.wait().await;
            let t = Instant::now();
            if flow.confirm(&order_id, &mut recorder).await {
                recorder.flow.push(t.elapsed());
                recorder.flows_ok += 1;
            } else {
                recorder.flows_failed += 1;
            }
            (recorder, Instant::now())
        }));
    }
    // The barrier opens once every task waits at it; the clock starts when it opens.
    barrier.wait().await;
    let start = Instant::now();
    let mut recorder = Recorder::default();
    let mut last = start;
    for task in tasks {
        match task.await {
            Ok((r, done)) => {
                recorder.merge(r);
                last = last.max(done);
            }
            Err(error) => recorder.error(format!("task panicked: {error}")),
        }
    }
    let attempted = recorder.flows_ok + recorder.flows_failed;
    Phase {
        name: "burst: confirm".to_owned(),
        recorder,
        elapsed: last - start,
        attempted,
    }
}

/// The create step alone, remembering the order ids it created.
pub struct CreateOnly {
    pub flow: Arc<ServiceFlow>,
    pub created: Mutex<Vec<String>>,
}

impl Flow for CreateOnly {
    async fn run(&self, worker: usize, seq: u64, recorder: &mut Recorder) -> bool {
        let order_id = self.flow.order_id(worker, seq);
        let created = self.flow.create(&order_id, recorder).await.is_some();
        if created {
            self.created.lock().expect("not poisoned").push(order_id);
        }
        created
    }
}
