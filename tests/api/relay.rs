//! The outbox relay against the real NATS JetStream on loopback (`TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`). Every test has its own subject prefix and its own stream, deleted
//! at the end. Relays are driven by hand (`relay_once`) so nothing depends on timing, except the
//! one test of the background relay that startup wires.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use payment_service::relay::{Relay, RelayError, RelayOptions};
use payment_service::startup::Application;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::helpers::{
    API_KEY, Backend, Options, TestApp, TestDatabase, init_process, settings_for, spawn_app,
    store_on,
};
use crate::on_both_databases;

on_both_databases!(
    events_written_without_a_relay_are_all_published_later_in_order,
    crash_after_publish_before_mark_resends_and_jetstream_keeps_one,
    two_relays_at_once_publish_each_event_once,
    nats_down_or_no_stream_leaves_events_in_the_outbox,
    service_without_nats_keeps_the_outbox_and_events,
    configured_service_relays_in_the_background,
    racing_relays_keep_each_payments_events_in_order,
    a_failed_publish_holds_back_the_payments_later_events,
);

fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn nats() -> async_nats::Client {
    let url = nats_url();
    async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("NATS with JetStream at {url} is required for the relay tests: {e}")
    })
}

/// A stream of one test: subjects `{prefix}payment.>`, a 2-minute duplicate window. Deleted on
/// drop, also when the test fails.
struct TestStream {
    prefix: String,
    name: String,
    jetstream: jetstream::Context,
}

impl TestStream {
    /// The prefix and name, without creating the stream.
    fn names() -> (String, String) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        (format!("t{id}."), format!("T{id}"))
    }

    async fn create() -> Self {
        let (prefix, name) = Self::names();
        Self::create_as(prefix, name).await
    }

    async fn create_as(prefix: String, name: String) -> Self {
        let subjects = vec![format!("{prefix}payment.>")];
        Self::create_for(prefix, name, subjects).await
    }

    /// A stream that takes only `subjects`: the relay's publishes to others are refused.
    async fn create_for(prefix: String, name: String, subjects: Vec<String>) -> Self {
        let jetstream = jetstream::new(nats().await);
        jetstream
            .create_stream(Self::config(&name, subjects))
            .await
            .expect("create stream");
        Self {
            prefix,
            name,
            jetstream,
        }
    }

    fn config(name: &str, subjects: Vec<String>) -> stream::Config {
        stream::Config {
            name: name.to_owned(),
            subjects,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        }
    }

    /// From now on the stream takes every subject of the prefix.
    async fn take_everything(&self) {
        let subjects = vec![format!("{}payment.>", self.prefix)];
        self.jetstream
            .update_stream(Self::config(&self.name, subjects))
            .await
            .expect("update stream");
    }

    async fn message_count(&self) -> u64 {
        let mut stream = self.jetstream.get_stream(&self.name).await.expect("stream");
        stream.info().await.expect("stream info").state.messages
    }

    /// Every message, in stream order: (subject, Nats-Msg-Id, body).
    async fn messages(&self) -> Vec<(String, String, Value)> {
        let stream = self.jetstream.get_stream(&self.name).await.expect("stream");
        let count = self.message_count().await;
        let mut messages = Vec::new();
        for sequence in 1..=count {
            let message = stream
                .get_raw_message(sequence)
                .await
                .expect("stored message");
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let body = serde_json::from_slice(&message.payload).expect("JSON body");
            messages.push((message.subject.to_string(), id, body));
        }
        messages
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let name = self.name.clone();
        crate::helpers::cleanup(async move {
            if let Ok(client) = async_nats::connect(nats_url()).await {
                let _ = jetstream::new(client).delete_stream(&name).await;
            }
        });
    }
}

fn settings(prefix: &str, batch_size: u64) -> RelayOptions {
    RelayOptions {
        subject_prefix: prefix.to_owned(),
        stream: None,
        interval: Duration::from_millis(50),
        batch_size,
        publish_timeout: Duration::from_secs(5),
    }
}

/// A relay as another process would run it: its own pool on the test's database.
async fn relay_on(database_url: &str, client: async_nats::Client, settings: RelayOptions) -> Relay {
    let store = store_on(database_url, 4).await;
    Relay::new(store, client, settings)
}

async fn relay_for(app: &TestApp, prefix: &str, batch_size: u64) -> Relay {
    relay_on(
        &app.database_url,
        nats().await,
        settings(prefix, batch_size),
    )
    .await
}

async fn unpublished(database_url: &str) -> u64 {
    let store = store_on(database_url, 1).await;
    let (count, _) = store.unpublished_stats().await.expect("stats");
    store.close().await;
    count
}

/// Passes until one publishes nothing; returns the total.
async fn drain(relay: &Relay) -> usize {
    let mut total = 0;
    loop {
        let published = relay.relay_once().await.expect("relay pass");
        if published == 0 {
            return total;
        }
        total += published;
    }
}

/// completed, failed, refunded (partial and full) events through the API: six events.
async fn produce_mixed_events(app: &TestApp, tag: &str) {
    let paid = app
        .completed_payment(&format!("order_{tag}_paid"), 15000, &format!("pk_{tag}_1"))
        .await;
    let id = paid["payment_id"].as_str().unwrap();
    for body in [
        json!({"reason": "one item returned", "refund_amount_krw": 5000}),
        json!({"reason": "the rest"}),
    ] {
        let reply = app.post(&format!("/payments/{id}/refund"), body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let order = format!("order_{tag}_fail");
    app.create_payment(&order, 4000).await;
    let failed = app
        .get_public(&format!(
            "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=cancelled&orderId={order}"
        ))
        .await;
    assert_eq!(failed.status, StatusCode::OK, "{}", failed.text);
    app.completed_payment(&format!("order_{tag}_two"), 3000, &format!("pk_{tag}_2"))
        .await;
    app.completed_payment(&format!("order_{tag}_three"), 2000, &format!("pk_{tag}_3"))
        .await;
}

/// `count` events: completed + full refund of `count / 2` payments.
async fn produce_events(app: &TestApp, count: usize) {
    for i in 0..count / 2 {
        let paid = app
            .completed_payment(&format!("order_many_{i:04}"), 1000, &format!("pk_many_{i}"))
            .await;
        let id = paid["payment_id"].as_str().unwrap();
        let reply = app
            .post(&format!("/payments/{id}/refund"), json!({"reason": "r"}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

/// Completed events of `payments` payments, then `refunds` partial refunds of each, round robin:
/// a batch holds several payments, and each payment has a chain of events.
async fn produce_chains(app: &TestApp, payments: usize, refunds: usize) {
    let mut ids = Vec::new();
    for i in 0..payments {
        let paid = app
            .completed_payment(
                &format!("order_chain_{i:04}"),
                1000 * (refunds as i64 + 1),
                &format!("pk_chain_{i}"),
            )
            .await;
        ids.push(paid["payment_id"].as_str().unwrap().to_owned());
    }
    for round in 0..refunds {
        for id in &ids {
            let reply = app
                .post(
                    &format!("/payments/{id}/refund"),
                    json!({"reason": format!("item {round}"), "refund_amount_krw": 1000}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        }
    }
}

/// Every event of the log is in the stream once, and each payment's events are there in
/// cursor order.
async fn assert_in_cursor_order_per_payment(app: &TestApp, stream: &TestStream) {
    let events = app.events().await;
    let cursor_of: std::collections::HashMap<String, i64> = events
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap().to_owned(),
                e["cursor"].as_i64().unwrap(),
            )
        })
        .collect();
    let messages = stream.messages().await;
    assert_eq!(messages.len(), events.len(), "every event, once");
    let mut last: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for (subject, id, body) in &messages {
        let cursor = cursor_of[id];
        let payment = body["payload"]["payment_id"].as_str().unwrap().to_owned();
        if let Some(before) = last.insert(payment.clone(), cursor) {
            assert!(
                before < cursor,
                "payment {payment}: event {cursor} ({subject}) reached the stream after event {before}"
            );
        }
    }
}

/// The envelope a consumer receives: a `GET /events` item without its cursor.
fn envelope(event: &Value) -> Value {
    let mut event = event.clone();
    event.as_object_mut().unwrap().remove("cursor");
    event
}

/// The service commits events with no relay anywhere (as if it crashed before any relay ran);
/// a relay started later publishes every one, oldest first, each once.
async fn events_written_without_a_relay_are_all_published_later_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    produce_mixed_events(&app, "later").await;
    let events = app.events().await;
    assert_eq!(events.len(), 6);
    assert_eq!(unpublished(&app.database_url).await, 6);

    let stream = TestStream::create().await;
    // Small batches, so that order has to hold across passes.
    let relay = relay_for(&app, &stream.prefix, 4).await;
    assert_eq!(relay.relay_once().await.expect("first pass"), 4);
    assert_eq!(unpublished(&app.database_url).await, 2);
    assert_eq!(drain(&relay).await, 2);
    assert_eq!(relay.duplicates_seen(), 0);
    assert_eq!(unpublished(&app.database_url).await, 0);

    assert_eq!(stream.message_count().await, 6);
    let messages = stream.messages().await;
    for ((subject, id, body), event) in messages.iter().zip(&events) {
        let kind = event["event_type"].as_str().unwrap();
        assert_eq!(subject, &format!("{}{kind}", stream.prefix));
        assert_eq!(id, event["event_id"].as_str().unwrap());
        assert_eq!(body, &envelope(event));
    }
    let kinds: Vec<_> = messages
        .iter()
        .map(|(subject, _, _)| subject.trim_start_matches(&stream.prefix))
        .collect();
    assert_eq!(
        kinds,
        [
            "payment.completed",
            "payment.refunded",
            "payment.refunded",
            "payment.failed",
            "payment.completed",
            "payment.completed"
        ]
    );
    // Each message names who made the change: the buyer's confirms and fail redirect, the
    // API key's refunds (by name, never the key).
    let actors: Vec<_> = messages.iter().map(|(_, _, body)| &body["actor"]).collect();
    let buyer = json!({"type": "buyer", "name": null});
    let key = json!({"type": "api_key", "name": "key-1"});
    assert_eq!(actors, [&buyer, &key, &key, &buyer, &buyer, &buyer]);
    let timestamp = messages[0].2["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok() && timestamp.ends_with('Z'),
        "RFC 3339 UTC: {timestamp}"
    );

    // Nothing is left, and `/events` still serves the whole log.
    assert_eq!(relay.relay_once().await.expect("idle pass"), 0);
    assert_eq!(app.events().await, events);
    app.stop().await;
}

/// A relay publishes, then dies before its mark commits (the mark is undone by hand). The next
/// relay sends the same events again with the same `Nats-Msg-Id`; JetStream acks them as
/// duplicates and keeps one copy of each; the rows end up marked.
async fn crash_after_publish_before_mark_resends_and_jetstream_keeps_one(backend: Backend) {
    let app = spawn_app(backend).await;
    produce_mixed_events(&app, "crash").await;
    let stream = TestStream::create().await;
    let first = relay_for(&app, &stream.prefix, 100).await;
    assert_eq!(drain(&first).await, 6);
    assert_eq!(stream.message_count().await, 6);
    let before = stream.messages().await;
    drop(first);

    app.execute_sql("UPDATE events SET published_at = NULL", vec![])
        .await;
    assert_eq!(unpublished(&app.database_url).await, 6);
    // One more event after the crash: new, so stored, while the old ones are not stored twice.
    app.completed_payment("order_crash_after", 500, "pk_crash_after")
        .await;

    let second = relay_for(&app, &stream.prefix, 100).await;
    assert_eq!(drain(&second).await, 7, "everything unmarked is sent again");
    assert_eq!(
        second.duplicates_seen(),
        6,
        "JetStream recognised each re-send"
    );
    assert_eq!(unpublished(&app.database_url).await, 0);

    assert_eq!(stream.message_count().await, 7);
    let after = stream.messages().await;
    assert_eq!(after[..6], before[..], "the first copies are untouched");
    let ids: HashSet<_> = after.iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(ids.len(), 7, "each event once");
    let events = app.events().await;
    assert_eq!(after[6].1, events[6]["event_id"].as_str().unwrap());
    app.stop().await;
}

/// Two relays with their own pools run at the same time over the same outbox: every event is
/// published exactly once (no JetStream duplicate, which would mean both sent it).
async fn two_relays_at_once_publish_each_event_once(backend: Backend) {
    const EVENTS: usize = 50;
    let app = spawn_app(backend).await;
    produce_events(&app, EVENTS).await;
    assert_eq!(app.events().await.len(), EVENTS);
    let stream = TestStream::create().await;

    let relays = [
        Arc::new(relay_for(&app, &stream.prefix, 3).await),
        Arc::new(relay_for(&app, &stream.prefix, 3).await),
    ];
    let mut tasks = Vec::new();
    for relay in &relays {
        let relay = relay.clone();
        let database_url = app.database_url.clone();
        tasks.push(tokio::spawn(async move {
            let mut published = 0;
            let mut passes = 0;
            loop {
                let n = relay.relay_once().await.expect("relay pass");
                published += n;
                passes += 1;
                // A pass may find nothing because the other relay holds the rest.
                if n == 0 {
                    if unpublished(&database_url).await == 0 {
                        return (published, passes);
                    }
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let mut total = 0;
    for task in tasks {
        let (published, passes) = task.await.expect("relay task");
        eprintln!("relay published {published} events in {passes} passes");
        total += published;
    }
    let duplicates: u64 = relays.iter().map(|r| r.duplicates_seen()).sum();

    assert_eq!(total, EVENTS, "the relays' counts add up to the events");
    assert_eq!(duplicates, 0, "no event was sent by both relays");
    assert_eq!(stream.message_count().await, EVENTS as u64);
    let ids: HashSet<_> = stream
        .messages()
        .await
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    let expected: HashSet<_> = app
        .events()
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(unpublished(&app.database_url).await, 0);
    app.stop().await;
}

/// No stream for the subjects, or no NATS at all: the pass fails, nothing is marked, and the
/// events go out once the stream exists.
async fn nats_down_or_no_stream_leaves_events_in_the_outbox(backend: Backend) {
    let app = spawn_app(backend).await;
    app.completed_payment("order_nostream_1", 1000, "pk_nostream_1")
        .await;
    app.completed_payment("order_nostream_2", 1000, "pk_nostream_2")
        .await;

    // NATS unreachable: a port nobody listens on; the client keeps trying in the background.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let offline = payment_service::relay::connect(&format!("nats://127.0.0.1:{closed}"))
        .await
        .expect("connecting does not wait for the server");
    let (prefix, name) = TestStream::names();
    let mut down_settings = settings(&prefix, 100);
    down_settings.publish_timeout = Duration::from_millis(300);
    let down = relay_on(&app.database_url, offline, down_settings).await;
    let error = down.relay_once().await.expect_err("NATS is down");
    assert!(
        matches!(error, RelayError::Publish { published: 0, .. }),
        "{error}"
    );
    assert_eq!(unpublished(&app.database_url).await, 2);

    // NATS up, but no stream takes the subjects.
    let relay = relay_for(&app, &prefix, 100).await;
    let error = relay.relay_once().await.expect_err("no stream");
    assert!(
        matches!(
            error,
            RelayError::Publish {
                published: 0,
                attempted: 2,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(unpublished(&app.database_url).await, 2);

    let stream = TestStream::create_as(prefix, name).await;
    assert_eq!(drain(&relay).await, 2);
    assert_eq!(stream.message_count().await, 2);
    assert_eq!(unpublished(&app.database_url).await, 0);
    app.stop().await;
}

/// Settings without NATS: the service starts, records events and serves them.
async fn service_without_nats_keeps_the_outbox_and_events(backend: Backend) {
    assert!(
        payment_service::config::Settings::defaults()
            .nats
            .url()
            .is_none()
    );
    let app = spawn_app(backend).await;
    app.completed_payment("order_nonats_001", 1000, "pk_nonats")
        .await;
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "payment.completed");
    assert_eq!(unpublished(&app.database_url).await, 1);
    app.stop().await;
}

/// NATS configured as an operator would: the relay startup spawns creates the stream and
/// publishes what the service commits.
async fn configured_service_relays_in_the_background(backend: Backend) {
    init_process();
    let database = TestDatabase::create(backend).await;
    let (prefix, name) = TestStream::names();
    let options = Options {
        toss: false,
        ..Options::default()
    };
    let mut settings = settings_for(&database.url, "http://127.0.0.1:9", &options);
    settings.nats.url = Some(nats_url().into());
    settings.nats.subject_prefix = prefix.clone();
    settings.nats.stream = Some(name.clone());
    settings.nats.interval_ms = 50;
    let app = Application::build(settings)
        .await
        .expect("application starts");
    let address = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = stopped.await;
        })
        .await
        .expect("server runs");
    });
    // Deletes the stream the relay creates.
    let stream = TestStream {
        prefix,
        name,
        jetstream: jetstream::new(nats().await),
    };

    let client = reqwest::Client::new();
    let created = client
        .post(format!("{address}/payments"))
        .bearer_auth(API_KEY)
        .json(&json!({"user_id": "u-1", "order_id": "order_bg_relay_1", "amount_krw": 1000, "payment_method": "card"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);
    let confirmed = client
        .post(format!("{address}/payments/confirm"))
        .bearer_auth(API_KEY)
        .json(&json!({"order_id": "order_bg_relay_1", "pg_transaction_id": "tx-bg", "pg_provider": "kcp", "amount_krw": 1000}))
        .send()
        .await
        .expect("confirm");
    assert_eq!(confirmed.status(), StatusCode::OK);

    let mut published = false;
    for _ in 0..100 {
        if unpublished(&database.url).await == 0 {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "the background relay published the event");
    let messages = stream.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, format!("{}payment.completed", stream.prefix));
    assert_eq!(messages[0].2["payload"]["order_id"], "order_bg_relay_1");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("stops on shutdown")
        .expect("server task");
}

/// Relays publish a payment's events in cursor order, however many run and whatever batches
/// they hold: an event waits while an earlier one of its payment is unpublished (held by
/// another relay, or failed).
async fn racing_relays_keep_each_payments_events_in_order(backend: Backend) {
    const PAYMENTS: usize = 4;
    const REFUNDS: usize = 5;
    let app = spawn_app(backend).await;
    produce_chains(&app, PAYMENTS, REFUNDS).await;
    let events = app.events().await;
    assert_eq!(events.len(), PAYMENTS * (REFUNDS + 1));
    let stream = TestStream::create().await;

    if backend == Backend::Postgres {
        // One relay holds the completed events of the first two payments (the oldest rows);
        // another passes meanwhile: it may publish the other two payments' chains only.
        let holder = store_on(&app.database_url, 1).await;
        let held = holder.claim_unpublished(2).await.expect("claim");
        let held_payments: HashSet<String> =
            held.events().iter().map(|e| e.payment_id.clone()).collect();
        assert_eq!(held_payments.len(), 2);
        let other = relay_for(&app, &stream.prefix, 100).await;
        let published = other.relay_once().await.expect("pass");
        assert_eq!(
            published,
            2 * (REFUNDS + 1),
            "the chains of the two free payments"
        );
        for (subject, _, body) in stream.messages().await {
            let payment = body["payload"]["payment_id"].as_str().unwrap();
            assert!(
                !held_payments.contains(payment),
                "{subject} of payment {payment} went out while its first event was held"
            );
        }
        held.release().await.expect("release");
        holder.close().await;
    }

    let relays = [
        Arc::new(relay_for(&app, &stream.prefix, 3).await),
        Arc::new(relay_for(&app, &stream.prefix, 3).await),
    ];
    let tasks: Vec<_> = relays
        .iter()
        .map(|relay| {
            let relay = relay.clone();
            let database_url = app.database_url.clone();
            tokio::spawn(async move {
                loop {
                    if relay.relay_once().await.expect("relay pass") == 0 {
                        if unpublished(&database_url).await == 0 {
                            return;
                        }
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("relay task");
    }
    assert_eq!(relays.iter().map(|r| r.duplicates_seen()).sum::<u64>(), 0);
    assert_in_cursor_order_per_payment(&app, &stream).await;
    app.stop().await;
}

/// JetStream refuses one kind of event (no stream takes its subject). A payment whose event was
/// refused keeps its later events in the outbox, while other payments' events go out; once the
/// subject is taken, everything follows in order.
async fn a_failed_publish_holds_back_the_payments_later_events(backend: Backend) {
    let app = spawn_app(backend).await;
    // completed, refunded, refunded (one payment), failed, completed, completed.
    produce_mixed_events(&app, "refused").await;
    let (prefix, name) = TestStream::names();
    let stream = TestStream::create_for(
        prefix.clone(),
        name,
        vec![
            format!("{prefix}payment.failed"),
            format!("{prefix}payment.refunded"),
        ],
    )
    .await;
    let relay = relay_for(&app, &prefix, 100).await;
    let error = relay
        .relay_once()
        .await
        .expect_err("completed events are refused");
    assert!(
        matches!(error, RelayError::Publish { published: 1, .. }),
        "only the failed event goes out: {error}"
    );
    let kinds: Vec<String> = stream
        .messages()
        .await
        .into_iter()
        .map(|(subject, _, _)| subject.trim_start_matches(&prefix).to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["payment.failed"],
        "no refund before its payment's completion"
    );
    assert_eq!(unpublished(&app.database_url).await, 5);

    stream.take_everything().await;
    assert_eq!(drain(&relay).await, 5);
    assert_eq!(unpublished(&app.database_url).await, 0);
    assert_in_cursor_order_per_payment(&app, &stream).await;
    app.stop().await;
}
