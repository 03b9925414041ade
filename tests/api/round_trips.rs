//! Round trips to PostgreSQL per confirm, refund and charge, counted on the wire: the service
//! reaches its database through a proxy that reads PostgreSQL's frontend protocol. A round trip
//! is a simple query (`BEGIN`, `COMMIT` included) or an extended-protocol `Sync` that ends at
//! least one `Execute` (a `Sync` that only prepares a statement is a cold statement cache, not
//! counted); a transaction is a `COMMIT` or a statement outside `BEGIN … COMMIT`. A change that
//! adds a round trip to one of these fails here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::billing::{charge, issued_key, payment_of};
use crate::helpers::{Backend, Options, TestApp, TestDatabase, into_reply, spawn_on};

/// What the service sent to PostgreSQL since the last `take`.
#[derive(Debug, Default, Clone)]
struct Traffic {
    round_trips: usize,
    transactions: usize,
    statements: Vec<String>,
}

#[derive(Clone, Default)]
struct Wire(Arc<Mutex<Traffic>>);

impl Wire {
    fn take(&self) -> Traffic {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// A proxy on loopback to the test server; returns its port.
    async fn start(&self) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = crate::helpers::postgres_admin_url();
        let host = upstream
            .split('@')
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("127.0.0.1:5432")
            .to_owned();
        let wire = self.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&host).await.unwrap();
                let (client_read, mut client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let mut server_read = server_read;
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                tokio::spawn(wire.clone().relay(client_read, server_write));
            }
        });
        port
    }

    /// Copies the client's messages to the server, counting them.
    async fn relay(
        self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
    ) -> std::io::Result<()> {
        // The start-up message has no type byte.
        let len = from.read_u32().await?;
        let mut body = vec![0; len as usize - 4];
        from.read_exact(&mut body).await?;
        to.write_u32(len).await?;
        to.write_all(&body).await?;
        let (mut prepared, mut bound, mut executed) = (HashMap::new(), String::new(), false);
        let mut in_transaction = false;
        loop {
            let kind = from.read_u8().await?;
            let len = from.read_u32().await?;
            let mut body = vec![0; len as usize - 4];
            from.read_exact(&mut body).await?;
            to.write_u8(kind).await?;
            to.write_u32(len).await?;
            to.write_all(&body).await?;
            let text = |at: usize| {
                let end = body[at..].iter().position(|b| *b == 0).unwrap_or(0);
                String::from_utf8_lossy(&body[at..at + end]).into_owned()
            };
            let mut traffic = self.0.lock().unwrap();
            match kind {
                b'Q' => {
                    let sql = text(0);
                    let word = sql.split_whitespace().next().unwrap_or("").to_uppercase();
                    match word.as_str() {
                        "BEGIN" | "START" => in_transaction = true,
                        "COMMIT" | "ROLLBACK" | "END" => {
                            in_transaction = false;
                            traffic.transactions += usize::from(word != "ROLLBACK");
                        }
                        _ if !in_transaction => traffic.transactions += 1,
                        _ => {}
                    }
                    traffic.round_trips += 1;
                    traffic.statements.push(sql);
                }
                b'P' => {
                    let name = text(0);
                    prepared.insert(name.clone(), text(name.len() + 1));
                }
                b'B' => {
                    let portal = text(0);
                    bound = prepared
                        .get(&text(portal.len() + 1))
                        .cloned()
                        .unwrap_or_default();
                }
                b'E' => {
                    executed = true;
                    traffic.transactions += usize::from(!in_transaction);
                    traffic.statements.push(bound.clone());
                }
                b'S' => {
                    traffic.round_trips += usize::from(std::mem::take(&mut executed));
                }
                b'X' => return Ok(()),
                _ => {}
            }
        }
    }
}

/// The application on a fresh PostgreSQL database reached through the counting proxy, with
/// nothing in the background (no scheduler) that would talk to the database meanwhile.
async fn counted_app() -> (TestApp, Wire) {
    let wire = Wire::default();
    let port = wire.start().await;
    let mut database = TestDatabase::create(Backend::Postgres).await;
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    database.url = format!("postgres://postgres@127.0.0.1:{port}/{name}?sslmode=disable");
    let options = Options {
        scheduler: false,
        ..Options::default()
    };
    (spawn_on(database, options).await, wire)
}

/// What `operation` sent to the database (after a moment for anything it left running).
async fn measured<T>(wire: &Wire, operation: impl std::future::Future<Output = T>) -> (T, Traffic) {
    wire.take();
    let out = operation.await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    (out, wire.take())
}

fn report(what: &str, traffic: &Traffic) {
    eprintln!(
        "{what}: {} round trips, {} transactions, {} statements:",
        traffic.round_trips,
        traffic.transactions,
        traffic.statements.len()
    );
    for statement in &traffic.statements {
        let short: String = statement.chars().take(100).collect();
        eprintln!("    {short}");
    }
}

/// A confirm of a new payment of `order_id` (by the buyer, with the `Idempotency-Key` when
/// given): what it sent, and the payment's id.
async fn confirm(
    app: &TestApp,
    wire: &Wire,
    order_id: &str,
    key: Option<&str>,
) -> (String, Traffic) {
    app.create_payment(order_id, 15_000).await;
    let payment_key = format!("pk_{order_id}");
    app.toss.authenticate(&payment_key, order_id, 15_000);
    let mut request = app
        .client
        .post(format!("{}/payments/confirm", app.address))
        .json(&json!({"order_id": order_id, "payment_key": payment_key, "amount_krw": 15_000}));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let (reply, traffic) = measured(wire, async {
        into_reply(request.send().await.unwrap()).await
    })
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    (
        reply.body["payment_id"].as_str().unwrap().to_owned(),
        traffic,
    )
}

async fn refund(app: &TestApp, wire: &Wire, payment_id: &str) -> Traffic {
    let path = format!("/payments/{payment_id}/refund");
    let body = json!({"refund_amount_krw": 5_000, "reason": "changed mind"});
    let (reply, traffic) = measured(wire, app.post(&path, body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    traffic
}

async fn charged(app: &TestApp, wire: &Wire, order_id: &str, key_id: &str) -> Traffic {
    let id = payment_of(app, "u-rt", order_id, 9_900).await;
    let (reply, traffic) = measured(wire, charge(app, &id, key_id)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    traffic
}

/// The bounds (PostgreSQL, warm connections). Before issue 23's write-path work a refund took
/// 15 round trips in 9 transactions (then 11: the adoption transaction alone was 7) and a charge
/// 7; a confirm 2 (4 with an `Idempotency-Key`). A refund is now the read, the reservation
/// (with the cancel slot and the send recorded) and the adoption of Toss's answer, one
/// statement each.
const CONFIRM: usize = 2;
const CONFIRM_WITH_KEY: usize = 4;
const REFUND: usize = 3;
const CHARGE: usize = 6;

#[tokio::test]
async fn a_confirm_a_refund_and_a_charge_take_few_round_trips_on_postgresql() {
    let (app, wire) = counted_app().await;
    let (key_id, _) = issued_key(&app, "u-rt").await;
    // Each operation twice: the first warms the connections' statement caches.
    let mut counts = Vec::new();
    for run in ["warm", "measured"] {
        let (id, plain) = confirm(&app, &wire, &format!("order_rt_{run}"), None).await;
        let key = format!("rt-key-{run}");
        let (_, keyed) = confirm(&app, &wire, &format!("order_rt_key_{run}"), Some(&key)).await;
        let refunded = refund(&app, &wire, &id).await;
        let charge = charged(&app, &wire, &format!("order_rt_charge_{run}"), &key_id).await;
        counts = vec![
            ("confirm", plain, CONFIRM),
            ("confirm with Idempotency-Key", keyed, CONFIRM_WITH_KEY),
            ("refund", refunded, REFUND),
            ("charge", charge, CHARGE),
        ];
    }
    for (what, traffic, _) in &counts {
        report(what, traffic);
    }
    for (what, traffic, most) in &counts {
        assert!(
            traffic.round_trips <= *most,
            "a {what} took {} round trips to PostgreSQL, at most {most} expected",
            traffic.round_trips
        );
    }
    app.stop().await;
}
