//! The outbox relay: publishes the events the service committed (`events` rows with no
//! `published_at`) to NATS JetStream, oldest first, and marks them published once JetStream has
//! acknowledged them. Every message carries `Nats-Msg-Id: <event_id>`, so a re-send after a
//! crash between the ack and the mark is dropped by the stream's duplicate window, and, when the
//! event was written with traces on, `traceparent`: the trace of the change it records. Rows are
//! claimed (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so relays in several instances never publish
//! the same event at once. Per payment, events reach the stream in `seq` order whatever the
//! number of relays and failures: an event waits while an earlier one of its payment is
//! unpublished.
//!
//! The database stays the source of truth: when NATS is down or the stream is missing, rows stay
//! unpublished and the next pass tries again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use chrono::SecondsFormat;
use serde::Serialize;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::domain::{Actor, StoredEvent};
use crate::store::{Store, StoreError};
use crate::telemetry::TRACEPARENT;

/// Shortest pause after a failed pass, whatever the interval.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between passes while publishing keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Duplicate window of a stream the relay creates: longer than a restart takes, so a re-send
/// after a crash is recognised.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Put before the event type: `{subject_prefix}payment.completed`.
    pub subject_prefix: String,
    /// Created (subjects `{subject_prefix}payment.>`) if missing.
    pub stream: Option<String>,
    /// Pause between passes when there is nothing (more) to publish.
    pub interval: Duration,
    pub batch_size: u64,
    /// How long one pass waits for JetStream to take and acknowledge its batch.
    pub publish_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The acknowledged events of the batch are marked; the rest stay for the next pass.
    #[error("published {published} of {attempted} events; JetStream: {reason}")]
    Publish {
        published: usize,
        attempted: usize,
        reason: String,
    },
}

/// The message body: the envelope of `GET /events` without the cursor.
#[derive(Debug, Serialize)]
struct Envelope<'a> {
    event_id: &'a str,
    event_type: &'a str,
    version: &'a str,
    timestamp: String,
    source: &'a str,
    user_id: &'a str,
    actor: &'a Actor,
    payload: &'a serde_json::Value,
}

impl<'a> From<&'a StoredEvent> for Envelope<'a> {
    fn from(e: &'a StoredEvent) -> Self {
        Self {
            event_id: &e.event_id,
            event_type: &e.event_type,
            version: &e.version,
            timestamp: e.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            source: &e.source,
            user_id: &e.user_id,
            actor: &e.actor,
            payload: &e.payload,
        }
    }
}

/// Connects in the background: returns at once and keeps (re)connecting for as long as the
/// process runs, so a NATS outage at start-up only delays publishing. Fails only on an address
/// that cannot be parsed.
pub async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name("payment-service")
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
}

pub struct Relay {
    store: Store,
    jetstream: jetstream::Context,
    settings: RelayOptions,
    stream_ready: AtomicBool,
    duplicates: AtomicU64,
}

impl Relay {
    pub fn new(store: Store, client: async_nats::Client, settings: RelayOptions) -> Self {
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(settings.publish_timeout)
            .ack_timeout(settings.publish_timeout)
            .build(client);
        Self {
            store,
            jetstream,
            settings,
            stream_ready: AtomicBool::new(false),
            duplicates: AtomicU64::new(0),
        }
    }

    /// Acks in which JetStream reported a message id it already had (a re-send after a crash).
    pub fn duplicates_seen(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    fn subject(&self, event: &StoredEvent) -> String {
        format!("{}{}", self.settings.subject_prefix, event.event_type)
    }

    /// Creates the configured stream if it is missing. A failure is logged; publishing then
    /// fails too and the rows wait.
    async fn ensure_stream(&self) {
        let Some(name) = &self.settings.stream else {
            return;
        };
        if self.stream_ready.load(Ordering::Relaxed) {
            return;
        }
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}payment.>", self.settings.subject_prefix)],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        match self.jetstream.get_or_create_stream(config).await {
            Ok(_) => {
                tracing::info!(stream = %name, "JetStream stream ready");
                self.stream_ready.store(true, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(stream = %name, %error, "cannot create or find the JetStream stream; will retry");
            }
        }
    }

    /// Publishes one batch of unpublished events, oldest first, and marks what JetStream
    /// acknowledged. Returns how many events it published.
    ///
    /// Per payment, events reach the stream in `seq` order: the claim holds back events whose
    /// payment has an earlier one outside the batch, an event is sent only once the previous one
    /// of its payment in the batch was acknowledged, and a payment whose event failed sends
    /// nothing more in this pass.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        self.ensure_stream().await;
        let batch = self
            .store
            .claim_unpublished(self.settings.batch_size)
            .await?;
        let attempted = batch.events().len();
        if attempted == 0 {
            batch.release().await?;
            return Ok(0);
        }

        // Events are sent without waiting for acks until one's payment already has an event
        // in flight; then the acks are collected first. The whole batch shares one deadline, so
        // a NATS outage costs one timeout per pass, not one per event.
        let deadline = Instant::now() + self.settings.publish_timeout;
        let mut failure: Option<String> = None;
        let mut acked = Vec::with_capacity(attempted);
        let mut stopped: HashSet<&str> = HashSet::new();
        let mut in_flight = Vec::new();
        let mut in_flight_payments: HashSet<&str> = HashSet::new();
        for event in batch.events() {
            let payment = event.payment_id.as_str();
            if in_flight_payments.contains(payment) {
                self.collect_acks(
                    std::mem::take(&mut in_flight),
                    deadline,
                    &mut acked,
                    &mut stopped,
                    &mut failure,
                )
                .await;
                in_flight_payments.clear();
            }
            if stopped.contains(payment) {
                continue;
            }
            let body = match serde_json::to_vec(&Envelope::from(event)) {
                Ok(body) => body,
                Err(error) => {
                    failure.get_or_insert_with(|| {
                        format!("event {} does not serialise: {error}", event.seq)
                    });
                    stopped.insert(payment);
                    continue;
                }
            };
            let mut message = PublishMessage::build()
                .payload(body.into())
                .message_id(&event.event_id);
            // The change's trace, so a consumer continues it (`traceparent` as over HTTP).
            if let Some(traceparent) = &event.trace_context {
                message = message.header(TRACEPARENT, traceparent.as_str());
            }
            match timeout_at(
                deadline,
                self.jetstream.send_publish(self.subject(event), message),
            )
            .await
            {
                Ok(Ok(ack)) => {
                    in_flight.push((event, ack));
                    in_flight_payments.insert(payment);
                }
                // The connection failed: nothing more goes out in this pass.
                Ok(Err(error)) => {
                    failure.get_or_insert_with(|| error.to_string());
                    break;
                }
                Err(_) => {
                    failure.get_or_insert_with(|| "timed out sending".to_owned());
                    break;
                }
            }
        }
        self.collect_acks(in_flight, deadline, &mut acked, &mut stopped, &mut failure)
            .await;

        // Acknowledged events are marked even when others in the batch failed: they are in the
        // stream. The failed ones, and the later events of their payments, are sent again on a
        // later pass.
        let published = batch.mark_published(&acked).await? as usize;
        match failure {
            None => Ok(published),
            Some(reason) => Err(RelayError::Publish {
                published,
                attempted,
                reason,
            }),
        }
    }

    /// Waits for the acks of the events in flight: the acknowledged ones go to `acked`; the
    /// payment of one that failed goes to `stopped`, with the first reason in `failure`.
    async fn collect_acks<'a>(
        &self,
        in_flight: Vec<(&'a StoredEvent, PublishAckFuture)>,
        deadline: Instant,
        acked: &mut Vec<i64>,
        stopped: &mut HashSet<&'a str>,
        failure: &mut Option<String>,
    ) {
        for (event, ack) in in_flight {
            match timeout_at(deadline, ack.into_future()).await {
                Ok(Ok(ack)) => {
                    if ack.duplicate {
                        self.duplicates.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            event_id = %event.event_id,
                            seq = event.seq,
                            stream = %ack.stream,
                            "JetStream already had this event (re-sent after an unmarked publish); kept once"
                        );
                    }
                    acked.push(event.seq);
                }
                Ok(Err(error)) => {
                    failure.get_or_insert_with(|| error.to_string());
                    stopped.insert(event.payment_id.as_str());
                }
                Err(_) => {
                    failure.get_or_insert_with(|| "timed out waiting for the ack".to_owned());
                    stopped.insert(event.payment_id.as_str());
                }
            }
        }
    }

    /// Runs until `shutdown` is cancelled; a pass under way is finished first. A full batch is
    /// followed at once by the next; failures are logged and retried with a growing pause.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            interval_ms = self.settings.interval.as_millis() as u64,
            batch_size = self.settings.batch_size,
            subject_prefix = %self.settings.subject_prefix,
            "event relay started"
        );
        let mut pause = self.settings.interval;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = match self.relay_once().await {
                Ok(published) if published > 0 && published as u64 >= self.settings.batch_size => {
                    Duration::ZERO
                }
                Ok(_) => self.settings.interval,
                Err(error) => {
                    let floor = self.settings.interval.max(MIN_BACKOFF);
                    let next = pause
                        .saturating_mul(2)
                        .max(floor)
                        .min(MAX_BACKOFF.max(floor));
                    tracing::warn!(
                        %error,
                        retry_in_ms = next.as_millis() as u64,
                        "event relay pass failed; events stay in the outbox"
                    );
                    next
                }
            };
        }
        tracing::info!("event relay stopped");
    }
}
