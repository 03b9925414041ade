//! The money invariant as a randomized run: many payments against the fake Toss, with client
//! retries with and without `Idempotency-Key`, duplicate redirects, Toss errors of every class,
//! lost replies, timeouts, dashboard cancels, webhooks in any order and restarts of the service.
//! Some orders are paid by virtual account: deposits (announced or not), expiries and cancels of
//! unpaid orders race the rest; others are subscription renewals charged with a billing key,
//! by hand or by a schedule (retried after soft declines, cancelled at random), under the same
//! faults. Strangers post junk `paymentKey`s for real orders (with guessable
//! `Idempotency-Key`s the buyers use too), and reconciliation runs of the day start in the middle.
//! Once everything has settled (nothing may stay in flight):
//! - every payment's status and refunded amount are Toss's (`CANCELLED` only when we cancelled
//!   it and nobody paid; `WAITING_FOR_DEPOSIT` while Toss still waits for the deposit);
//! - Toss approved at most one attempt of each order (each `paymentKey` at most once);
//! - Toss's cancels and our completed refunds match one to one and add up to the same amount;
//! - every money state change has exactly one event;
//! - every schedule ended (`DONE` only for a paid payment, `EXHAUSTED` with one
//!   `payment.retries_exhausted`) and retried no more often than it made attempts;
//! - no junk key left a trace (no failure, no event) and no buyer's request was answered 422
//!   `IDEMPOTENCY_KEY_REUSED`;
//! - every refund answered 200 or 202 is listed, and none is still `PENDING`;
//! - a reconciliation run of the day, once everything settled, finds no discrepancy.
//!
//! Reproducible: `INVARIANT_SEED` picks the history (printed on failure), `INVARIANT_PAYMENTS`
//! how many payments (CI runs a few; run more on demand, e.g.
//! `INVARIANT_PAYMENTS=200 cargo test --test api invariant`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::fake_toss::secret_of;
use crate::helpers::{API_KEY, Backend, Options, TestApp, into_reply, spawn_with};
use crate::on_both_databases;

on_both_databases!(money_invariant_holds_after_random_histories);

struct Order {
    payment_id: String,
    order_id: String,
    amount: i64,
    /// Every `paymentKey` the buyer ever authenticated for this order.
    keys: Vec<String>,
    /// The buyer pays by virtual account (가상계좌): a confirm issues the account.
    virtual_account: bool,
    /// A renewal charged with the buyer's billing key (`POST /payments/{id}/charge`), not
    /// confirmed by the buyer.
    billing: bool,
}

/// A request as sent, for a retry with the same `Idempotency-Key`.
#[derive(Clone)]
struct Sent {
    path: String,
    body: Value,
    key: String,
    auth: bool,
}

/// The refunds each payment was answered (200 or 202) with: all of them must stay listed.
type Answered = BTreeMap<String, BTreeSet<String>>;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn money_invariant_holds_after_random_histories(backend: Backend) {
    let seed = env_number("INVARIANT_SEED", 20_261_130);
    let payments = env_number("INVARIANT_PAYMENTS", 10) as usize;
    eprintln!("money invariant: INVARIANT_SEED={seed} INVARIANT_PAYMENTS={payments} ({backend:?})");
    let options = Options {
        read_timeout_secs: 1,
        ..Options::default()
    };
    let mut app = spawn_with(backend, options).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let billing_key = issue_billing_key(&app).await;
    let mut orders = Vec::new();
    for i in 0..payments {
        let amount = rng.random_range(10..=500) * 100;
        let order_id = format!("order_inv_{seed}_{i:04}");
        let created = app.create_payment(&order_id, amount).await;
        orders.push(Order {
            payment_id: created["payment_id"].as_str().unwrap().to_owned(),
            order_id,
            amount,
            keys: Vec::new(),
            virtual_account: false,
            billing: false,
        });
        let order = orders.last_mut().unwrap();
        match rng.random_range(0..10) {
            0..=2 => order.virtual_account = true,
            3..=4 => order.billing = true,
            _ => {}
        }
    }
    let mut sent: Vec<Sent> = Vec::new();
    let mut answered = Answered::new();
    for step in 0..payments * 14 {
        let order = &mut orders[rng.random_range(0..payments)];
        match rng.random_range(0..100) {
            0..=7 if order.billing => schedule(&app, &mut rng, order, &billing_key).await,
            0..=24 if order.billing => {
                charge(&app, &mut rng, order, &billing_key, &mut sent, step).await
            }
            0..=24 => confirm(&app, &mut rng, order, &mut sent, step).await,
            25..=31 => success_redirect(&app, &mut rng, order).await,
            32..=35 => {
                let code = ["PAY_PROCESS_CANCELED", "REJECT_CARD_COMPANY", "USER_CANCEL"]
                    [rng.random_range(0..3)];
                app.get_public(&format!(
                    "/payments/toss/fail?code={code}&message=m&orderId={}",
                    order.order_id
                ))
                .await;
            }
            36..=53 => refund(&app, &mut rng, order, &mut sent, &mut answered, step).await,
            54..=55 => junk_confirm(&app, &mut rng, order, step).await,
            56..=62 => dashboard_cancel(&app, &mut rng, order),
            63..=70 => webhook(&app, &mut rng, order).await,
            71..=74 => account_event(&app, &mut rng, order).await,
            75..=76 => cancel(&app, &mut rng, order, &mut sent, step).await,
            77..=84 => {
                app.service.settle_due().await.unwrap();
            }
            85..=86 => {
                // A run of the day in the middle of everything: what it flags must never
                // keep anything in flight from settling.
                let reply = app
                    .post("/reconciliation/runs", json!({"date": kst_today()}))
                    .await;
                assert!(reply.status.as_u16() < 500, "{}", reply.text);
            }
            87..=90 => app.restart().await,
            _ => {
                if !sent.is_empty() {
                    let again = sent[rng.random_range(0..sent.len())].clone();
                    let reply = post(&app, &again).await;
                    note_refund(&mut answered, &again, &reply);
                }
            }
        }
    }
    settle(&app, &orders, seed).await;
    // Flags that runs in the middle set about what was still moving go once a run of the day
    // finds Toss's books and ours agreeing.
    final_run_finds_nothing(&app, seed).await;
    let mut scheduled = 0;
    for order in &orders {
        check(&app, order, &answered, seed).await;
        scheduled += usize::from(!app.payment(&order.payment_id).await["schedule"].is_null());
    }
    eprintln!("money invariant: {scheduled} of {payments} payments had a schedule");
    app.stop().await;
}

async fn post(app: &TestApp, request: &Sent) -> crate::helpers::Reply {
    let mut builder = app
        .client
        .request(Method::POST, format!("{}{}", app.address, request.path))
        .header("idempotency-key", &request.key)
        .json(&request.body);
    if request.auth {
        builder = builder.bearer_auth(API_KEY);
    }
    let reply = into_reply(builder.send().await.unwrap()).await;
    assert!(
        reply.status.as_u16() < 500 || reply.status == StatusCode::SERVICE_UNAVAILABLE,
        "{} {}: {}",
        request.path,
        reply.status,
        reply.text
    );
    // Every key is used with one body only: a 422 for reuse means someone else's request
    // (a stranger's) took the key.
    assert_ne!(
        reply.body["code"], "IDEMPOTENCY_KEY_REUSED",
        "{} under {}: {}",
        request.path, request.key, reply.text
    );
    reply
}

/// Notes the refund a refund request was answered with (200 or 202).
fn note_refund(answered: &mut Answered, request: &Sent, reply: &crate::helpers::Reply) {
    if !request.path.ends_with("/refund")
        || !matches!(reply.status, StatusCode::OK | StatusCode::ACCEPTED)
    {
        return;
    }
    let payment_id = request.path.split('/').nth(2).unwrap().to_owned();
    let refund_id = reply.body["refund_id"].as_str().unwrap().to_owned();
    answered.entry(payment_id).or_default().insert(refund_id);
}

/// A stranger who knows the order id posts a key Toss never issued, under a key the buyers
/// use too (the buyer's requests are keyed by step; the stranger guesses the next ones).
async fn junk_confirm(app: &TestApp, rng: &mut StdRng, order: &Order, step: usize) {
    let guess = step + rng.random_range(1..=3);
    let idempotency_key = if rng.random_bool(0.5) {
        format!("idem-confirm-{guess}")
    } else {
        format!("idem-refund-{guess}")
    };
    let junk = format!("junk_{}", rng.random::<u64>());
    let reply = into_reply(
        app.client
            .post(format!("{}/payments/confirm", app.address))
            .header("idempotency-key", idempotency_key)
            .json(&json!({"order_id": order.order_id, "payment_key": junk}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        reply.status.is_client_error() || reply.status == StatusCode::SERVICE_UNAVAILABLE,
        "a junk key: {} {}",
        reply.status,
        reply.text
    );
}

/// Which of Toss's calls a fault stands in front of.
#[derive(Clone, Copy, PartialEq)]
enum Call {
    Confirm,
    Cancel,
    Charge,
}

/// One fault in front of Toss's next call of `call`, of a random class.
async fn fault(app: &TestApp, rng: &mut StdRng, call: Call) {
    let cancel = call == Call::Cancel;
    let path = match call {
        Call::Confirm => "^/v1/payments/confirm$",
        Call::Cancel => "/cancel$",
        Call::Charge => "^/v1/billing/[^/]+$",
    };
    match rng.random_range(0..100) {
        0..=59 => {}
        60..=67 => {
            let (status, code) = if cancel {
                (400, "REFUND_REJECTED")
            } else {
                (403, "REJECT_CARD_PAYMENT")
            };
            app.toss_fails("POST", path, status, code, Some(1)).await;
        }
        68..=75 => {
            let code = if cancel {
                "FORBIDDEN_CONSECUTIVE_REQUEST"
            } else {
                "PROVIDER_ERROR"
            };
            let status = if cancel { 403 } else { 400 };
            app.toss_fails("POST", path, status, code, Some(1)).await;
        }
        76..=83 => {
            app.toss_fails(
                "POST",
                path,
                500,
                "FAILED_INTERNAL_SYSTEM_PROCESSING",
                Some(1),
            )
            .await;
        }
        84..=87 => {
            app.toss_fails("POST", path, 429, "TOO_MANY_REQUESTS", Some(1))
                .await
        }
        88..=93 => app.toss_hangs("POST", path, Some(1)).await,
        _ => {
            // Toss does it, the reply is lost.
            let lost = Duration::from_millis(1500);
            if call == Call::Charge {
                app.toss.slow_next_charge(&app.toss_server, lost).await;
            } else {
                app.toss.slow_next(&app.toss_server, cancel, lost).await;
            }
        }
    }
}

async fn confirm(
    app: &TestApp,
    rng: &mut StdRng,
    order: &mut Order,
    sent: &mut Vec<Sent>,
    step: usize,
) {
    if order.keys.is_empty() || rng.random_bool(0.3) {
        let key = format!("pk_{}_{}", order.order_id, order.keys.len());
        if order.virtual_account {
            app.toss
                .authenticate_virtual_account(&key, &order.order_id, order.amount);
        } else {
            app.toss.authenticate(&key, &order.order_id, order.amount);
        }
        order.keys.push(key);
    }
    let key = order.keys.last().unwrap().clone();
    fault(app, rng, Call::Confirm).await;
    let mut body = json!({"order_id": order.order_id, "payment_key": key});
    if rng.random_bool(0.5) {
        body["amount_krw"] = json!(order.amount);
    }
    let request = Sent {
        path: "/payments/confirm".to_owned(),
        body,
        key: format!("idem-confirm-{step}"),
        auth: rng.random_bool(0.5),
    };
    if rng.random_bool(0.5) {
        post(app, &request).await;
        sent.push(request);
    } else {
        let reply = app
            .request(
                Method::POST,
                &request.path,
                Some(request.body.clone()),
                request.auth,
            )
            .await;
        assert!(reply.status.as_u16() < 500, "{}", reply.text);
    }
}

async fn success_redirect(app: &TestApp, rng: &mut StdRng, order: &mut Order) {
    let Some(key) = order.keys.last() else {
        return;
    };
    // Now and then a redirect with a forged amount: refused before Toss is called.
    let amount = if rng.random_bool(0.2) {
        order.amount - 100
    } else {
        order.amount
    };
    let reply = app
        .get_public(&format!(
            "/payments/toss/success?paymentKey={key}&orderId={}&amount={amount}",
            order.order_id
        ))
        .await;
    assert!(reply.status.as_u16() < 500, "{}", reply.text);
}

async fn refund(
    app: &TestApp,
    rng: &mut StdRng,
    order: &Order,
    sent: &mut Vec<Sent>,
    answered: &mut Answered,
    step: usize,
) {
    fault(app, rng, Call::Cancel).await;
    let mut body = json!({"reason": format!("refund at step {step}")});
    if order.virtual_account {
        body["refund_receive_account"] =
            json!({"bank": "88", "account_number": "110123456789", "holder_name": "홍길동"});
    }
    if rng.random_bool(0.7) {
        body["refund_amount_krw"] = json!(rng.random_range(1..=order.amount / 100) * 50);
    }
    let request = Sent {
        path: format!("/payments/{}/refund", order.payment_id),
        body,
        key: format!("idem-refund-{step}"),
        auth: true,
    };
    let reply = if rng.random_bool(0.6) {
        let reply = post(app, &request).await;
        sent.push(request.clone());
        reply
    } else {
        let reply = app.post(&request.path, request.body.clone()).await;
        assert!(reply.status.as_u16() < 500, "{}", reply.text);
        reply
    };
    note_refund(answered, &request, &reply);
}

/// The buyer's card, registered for subscriptions: a billing key of `u-1` (every order's user).
async fn issue_billing_key(app: &TestApp) -> String {
    let customer = app
        .post("/billing/customers", json!({"user_id": "u-1"}))
        .await
        .body["customer_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth_key = app.toss.register_card(&customer);
    let issued = app
        .post(
            "/billing-keys",
            json!({"customer_key": customer, "auth_key": auth_key}),
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.text);
    issued.body["billing_key_id"].as_str().unwrap().to_owned()
}

/// A renewal charged with the billing key, with or without `Idempotency-Key`.
async fn charge(
    app: &TestApp,
    rng: &mut StdRng,
    order: &Order,
    billing_key: &str,
    sent: &mut Vec<Sent>,
    step: usize,
) {
    fault(app, rng, Call::Charge).await;
    let request = Sent {
        path: format!("/payments/{}/charge", order.payment_id),
        body: json!({"billing_key_id": billing_key}),
        key: format!("idem-charge-{step}"),
        auth: true,
    };
    if rng.random_bool(0.5) {
        post(app, &request).await;
        sent.push(request);
    } else {
        let reply = app.post(&request.path, request.body.clone()).await;
        assert!(reply.status.as_u16() < 500, "{}", reply.text);
    }
}

/// A renewal scheduled now or in a moment (retried a second after a soft decline), or its
/// schedule cancelled.
async fn schedule(app: &TestApp, rng: &mut StdRng, order: &Order, billing_key: &str) {
    let path = format!("/payments/{}/schedule", order.payment_id);
    let reply = if rng.random_bool(0.2) {
        app.request(Method::DELETE, &path, None, true).await
    } else {
        fault(app, rng, Call::Charge).await;
        let charge_at =
            chrono::Utc::now() + chrono::Duration::milliseconds(rng.random_range(0..1500));
        app.post(
            &path,
            json!({"billing_key_id": billing_key, "charge_at": charge_at.to_rfc3339(),
                   "retry_after_seconds": [1, 1]}),
        )
        .await
    };
    assert!(reply.status.as_u16() < 500, "{}", reply.text);
}

/// Every payment Toss holds for the order: the buyer's attempts, or the billing charge.
fn toss_payments(app: &TestApp, order: &Order) -> Vec<::fake_toss::FakePayment> {
    let mut keys = order.keys.clone();
    if order.billing {
        keys.extend(app.toss.payment_key_of_order(&order.order_id));
    }
    keys.iter()
        .filter_map(|key| app.toss.payment(key))
        .collect()
}

/// `POST /payments/{id}/cancel`: refused (409) once anyone paid, else the order is cancelled
/// (at Toss too when its account waits for the deposit).
async fn cancel(app: &TestApp, rng: &mut StdRng, order: &Order, sent: &mut Vec<Sent>, step: usize) {
    fault(app, rng, Call::Cancel).await;
    let request = Sent {
        path: format!("/payments/{}/cancel", order.payment_id),
        body: json!({"reason": format!("cancel at step {step}")}),
        key: format!("idem-cancel-{step}"),
        auth: true,
    };
    post(app, &request).await;
    sent.push(request);
}

/// The buyer deposits into an issued account (Toss's `DEPOSIT_CALLBACK` arriving now, or
/// never), or the account expires.
async fn account_event(app: &TestApp, rng: &mut StdRng, order: &Order) {
    let Some(key) = order.keys.iter().find(|key| {
        app.toss
            .payment(key)
            .is_some_and(|p| p.status == "WAITING_FOR_DEPOSIT")
    }) else {
        return;
    };
    if rng.random_bool(0.8) {
        app.toss.deposit(key);
        if rng.random_bool(0.6) {
            let callback = app.toss.deposit_callback(key);
            let reply = app
                .client
                .post(format!("{}/webhooks/toss", app.address))
                .json(&callback)
                .send()
                .await
                .unwrap();
            assert!(
                reply.status() == StatusCode::OK
                    || reply.status() == StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                reply.status()
            );
        }
    } else {
        // Its due date passes: Toss keeps it waiting (expired) and sends nothing; the time the
        // service set to read it back at its due date has come.
        app.toss.expire(key);
        app.execute_sql(
            "UPDATE payments SET next_reconcile_at = $1 WHERE id = $2 AND status = 'WAITING_FOR_DEPOSIT'",
            vec![chrono::Utc::now().into(), order.payment_id.clone().into()],
        )
        .await;
    }
}

/// Someone cancels part (or all) of an approved payment in Toss's dashboard.
fn dashboard_cancel(app: &TestApp, rng: &mut StdRng, order: &Order) {
    for payment in toss_payments(app, order) {
        let key = &payment.payment_key;
        if matches!(payment.status.as_str(), "DONE" | "PARTIAL_CANCELED") && payment.balance > 0 {
            let amount = if rng.random_bool(0.3) {
                payment.balance
            } else {
                rng.random_range(1..=payment.balance)
            };
            app.toss.cancel_in_dashboard(key, amount);
            return;
        }
    }
}

/// Toss tells us (late, early, or again) what it has for one of the order's attempts.
async fn webhook(app: &TestApp, rng: &mut StdRng, order: &Order) {
    if order.keys.is_empty() {
        return;
    }
    let key = &order.keys[rng.random_range(0..order.keys.len())];
    let transmission = format!("whtrans_{}", rng.random::<u32>());
    deliver_status(app, order, key, &transmission).await;
}

async fn deliver_status(app: &TestApp, order: &Order, key: &str, transmission: &str) {
    let status = app
        .toss
        .payment(key)
        .map_or("DONE".to_owned(), |p| p.status);
    let body = json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-11-23T12:18:15.000000",
        "data": {"paymentKey": key, "orderId": order.order_id, "status": status, "secret": secret_of(key)}
    });
    let reply = app
        .client
        .post(format!("{}/webhooks/toss", app.address))
        .header("tosspayments-webhook-transmission-id", transmission)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        reply.status() == StatusCode::OK || reply.status() == StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.status()
    );
}

/// Lets the reconciler finish everything unsettled, once Toss's webhooks (which Toss retries
/// for days) have all got through: a dashboard cancel reaches us only that way.
async fn settle(app: &TestApp, orders: &[Order], seed: u64) {
    // Toss's troubles end: faults armed for calls that never came (a request refused before
    // Toss) would otherwise meet the resends of other orders for as long as they last.
    app.toss_server.reset().await;
    app.toss.mount(&app.toss_server).await;
    for order in orders {
        // Toss sends none for a billing approval, but does for a cancel of it.
        for payment in toss_payments(app, order) {
            let key = &payment.payment_key;
            deliver_status(app, order, key, &format!("whtrans_final_{key}")).await;
        }
    }
    let mut in_flight = Vec::new();
    for _ in 0..60 {
        app.service.settle_due().await.unwrap();
        in_flight.clear();
        for order in orders {
            let payment = app.payment(&order.payment_id).await;
            let refunds = app
                .get(&format!("/payments/{}/refunds", order.payment_id))
                .await;
            let toss_waits = order.keys.iter().any(|key| {
                app.toss
                    .payment(key)
                    .is_some_and(|p| p.status == "WAITING_FOR_DEPOSIT" && !p.deposit_expired())
            });
            // A cancel of an account asked for and not yet carried out is re-sent.
            let unsettled = (payment["status"] == "WAITING_FOR_DEPOSIT") != toss_waits
                || payment["status"] == "IN_PROGRESS"
                || payment["schedule"]["status"] == "SCHEDULED"
                || payment["schedule"]["status"] == "CHARGING"
                || refunds.body["refunds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["status"] == "PENDING");
            if unsettled {
                let attempts = app
                    .get(&format!("/payments/{}/attempts", order.payment_id))
                    .await
                    .body;
                let toss: Vec<String> = toss_payments(app, order)
                    .iter()
                    .map(|p| format!("{} {}", p.payment_key, p.status))
                    .collect();
                in_flight.push(format!(
                    "{}: {payment}\n  attempts: {attempts}\n  refunds: {}\n  at Toss: {toss:?}",
                    order.order_id, refunds.body
                ));
            }
        }
        if in_flight.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("still in flight after settling (INVARIANT_SEED={seed}): {in_flight:#?}");
}

/// Once everything settled, a run of the day matches every Toss transaction to our books.
async fn final_run_finds_nothing(app: &TestApp, seed: u64) {
    // Runs started in the middle may still be going: the day's run is one row.
    let mut run = Value::Null;
    for _ in 0..400 {
        let started = app
            .post("/reconciliation/runs", json!({"date": kst_today()}))
            .await;
        if started.status == StatusCode::ACCEPTED {
            run = started.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = run["run_id"]
        .as_str()
        .expect("a run of the day starts")
        .to_owned();
    for _ in 0..400 {
        run = app.get(&format!("/reconciliation/runs/{id}")).await.body;
        if run["status"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(run["status"], "COMPLETED", "INVARIANT_SEED={seed}: {run}");
    assert_eq!(
        run["summary"]["discrepancies"], 0,
        "INVARIANT_SEED={seed}: {run:#}"
    );
}

fn kst_today() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
        .date_naive()
        .to_string()
}

async fn check(app: &TestApp, order: &Order, answered: &Answered, seed: u64) {
    let at = format!("order {} (INVARIANT_SEED={seed})", order.order_id);
    let paid: Vec<_> = toss_payments(app, order)
        .into_iter()
        .filter(|p| matches!(p.status.as_str(), "DONE" | "PARTIAL_CANCELED" | "CANCELED"))
        // An account cancelled before its deposit was never paid (approvedAt null, §4).
        .filter(|p| !(p.virtual_account && p.approved_at.is_none() && p.status == "CANCELED"))
        .collect();
    assert!(
        paid.len() <= 1,
        "{at}: Toss approved {} attempts",
        paid.len()
    );
    let payment = app.payment(&order.payment_id).await;
    assert_eq!(payment["needs_review"], false, "{at}: {payment}");
    let refunds = app
        .get(&format!("/payments/{}/refunds", order.payment_id))
        .await
        .body["refunds"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        refunds.iter().all(|r| r["status"] != "PENDING"),
        "{at}: settled: {refunds:?}"
    );
    let completed: Vec<_> = refunds
        .iter()
        .filter(|r| r["status"] == "COMPLETED")
        .collect();
    let ours: i64 = completed
        .iter()
        .map(|r| r["refund_amount_krw"].as_i64().unwrap())
        .sum();
    let events = app.events_of(&order.payment_id).await;
    let count = |kind: &str| events.iter().filter(|e| e["event_type"] == kind).count();
    match paid.first() {
        Some(toss) => {
            let cancelled = toss.total - toss.balance;
            let status = if toss.balance == toss.total {
                "COMPLETED"
            } else if toss.balance == 0 {
                "REFUNDED"
            } else {
                "PARTIAL_REFUND"
            };
            assert_eq!(payment["status"], status, "{at}: {payment}");
            assert_eq!(
                payment["pg_transaction_id"],
                toss.payment_key.as_str(),
                "{at}"
            );
            assert_eq!(payment["refunded_amount_krw"], cancelled, "{at}");
            assert_eq!(
                ours, cancelled,
                "{at}: our refunds add up to Toss's cancels"
            );
            assert_eq!(
                completed.len(),
                toss.cancels.len(),
                "{at}: one refund per Toss cancel: {refunds:?} vs {:?}",
                toss.cancels
            );
            assert_eq!(count("payment.completed"), 1, "{at}");
        }
        None => {
            // An account past its due date stays WAITING_FOR_DEPOSIT at Toss, expired.
            let waiting = order.keys.iter().any(|key| {
                app.toss
                    .payment(key)
                    .is_some_and(|p| p.status == "WAITING_FOR_DEPOSIT" && !p.deposit_expired())
            });
            let expected = if waiting {
                "WAITING_FOR_DEPOSIT"
            } else if count("payment.cancelled") == 1 {
                "CANCELLED"
            } else {
                "PENDING"
            };
            assert_eq!(payment["status"], expected, "{at}: {payment}");
            assert_eq!(payment["refunded_amount_krw"], 0, "{at}");
            assert!(completed.is_empty(), "{at}");
            assert_eq!(count("payment.completed"), 0, "{at}");
        }
    }
    assert_eq!(count("payment.refunded"), completed.len(), "{at}");
    assert!(count("payment.cancelled") <= 1, "{at}: cancelled once");
    if count("payment.cancelled") == 1 {
        assert!(paid.is_empty(), "{at}: a cancelled order was paid");
        assert_eq!(payment["status"], "CANCELLED", "{at}: {payment}");
    }
    let failed = refunds.iter().filter(|r| r["status"] == "FAILED").count();
    assert_eq!(count("refund.failed"), failed, "{at}");
    let schedule = &payment["schedule"];
    if schedule.is_null() {
        assert_eq!(
            count("payment.retry_scheduled") + count("payment.retries_exhausted"),
            0,
            "{at}"
        );
    } else {
        let status = schedule["status"].as_str().unwrap();
        assert!(
            matches!(status, "DONE" | "EXHAUSTED" | "CANCELLED"),
            "{at}: {schedule}"
        );
        if status == "DONE" {
            assert_eq!(
                paid.len(),
                1,
                "{at}: a DONE schedule's payment is paid: {payment}"
            );
        }
        assert_eq!(
            count("payment.retries_exhausted"),
            usize::from(status == "EXHAUSTED"),
            "{at}: {schedule}"
        );
        let attempts = schedule["attempts_made"].as_u64().unwrap() as usize;
        assert!(
            count("payment.retry_scheduled") <= attempts,
            "{at}: {schedule}"
        );
        assert!(
            count("payment.retry_scheduled") <= 2,
            "{at}: two delays at most"
        );
    }
    let listed: BTreeSet<&str> = refunds
        .iter()
        .filter_map(|r| r["refund_id"].as_str())
        .collect();
    for refund_id in answered.get(&order.payment_id).into_iter().flatten() {
        assert!(
            listed.contains(refund_id.as_str()),
            "{at}: refund {refund_id} was answered and is not listed: {refunds:?}"
        );
    }
    // A key Toss never issued leaves nothing behind.
    for event in events
        .iter()
        .filter(|e| e["event_type"] == "payment.failed")
    {
        let code = event["payload"]["error_code"].as_str().unwrap_or_default();
        assert!(
            !code.starts_with("NOT_FOUND_PAYMENT"),
            "{at}: a junk key failed the order: {event}"
        );
    }
}
