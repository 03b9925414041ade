//! Traces over OTLP, end to end: a confirm that carries a W3C `traceparent` is exported as part
//! of the caller's trace, with a child span for each Toss call, and the event it commits reaches
//! NATS with that trace in its `traceparent` header. On SQLite and PostgreSQL.
//!
//! The tracing subscriber (and so the exporter) is installed once per process, from the
//! standard `OTEL_*` variables. So each scenario runs in a child process of this test binary
//! (the test `scenario_in_a_child_process`, which does nothing unless `TRACES_TEST_BACKEND` is
//! set) with the variables of the case; the parent runs the OTLP receiver and reads what the
//! child exported.

#[path = "api/fake_toss.rs"]
#[allow(dead_code, unused_imports)]
mod fake_toss;
#[path = "api/helpers.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod helpers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use futures::StreamExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as Any, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use payment_service::config::Settings;
use payment_service::relay::{Relay, RelayOptions};
use payment_service::store::{DatabaseOptions, Store};
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::json;
use tokio_stream::wrappers::TcpListenerStream;

use helpers::{Backend, spawn_app};

const BACKEND: &str = "TRACES_TEST_BACKEND";
const CALLER: &str = "TRACES_TEST_TRACEPARENT";
const REFUSED_CALLER: &str = "TRACES_TEST_REFUSED_TRACEPARENT";
const SERVICE_NAME: &str = "payment-service-under-test";

/// A span as the receiver got it, with the `service.name` of its resource.
#[derive(Clone)]
struct Received {
    service: String,
    span: Span,
}

type Spans = Arc<Mutex<Vec<Received>>>;

/// An OTLP receiver on loopback.
struct Receiver {
    endpoint: String,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` for it.
    protocol: &'static str,
    spans: Spans,
}

impl Receiver {
    /// OTLP/HTTP: `POST /v1/traces` with protobuf bodies.
    async fn http_protobuf() -> Self {
        let spans = Spans::default();
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
        Self {
            endpoint,
            protocol: "http/protobuf",
            spans,
        }
    }

    /// OTLP/gRPC: the collector's `TraceService`.
    async fn grpc() -> Self {
        let spans = Spans::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let service = TraceServiceServer::new(Collector(spans.clone()));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .expect("receiver");
        });
        Self {
            endpoint,
            protocol: "grpc",
            spans,
        }
    }

    /// The spans of the trace `trace_id` (hex).
    fn trace(&self, trace_id: &str) -> Vec<Received> {
        self.spans
            .lock()
            .expect("spans")
            .iter()
            .filter(|received| hex(&received.span.trace_id) == trace_id)
            .cloned()
            .collect()
    }
}

async fn receive(
    State(spans): State<Spans>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    keep(&spans, request);
    let reply = ExportTraceServiceResponse::default().encode_to_vec();
    ([("content-type", "application/x-protobuf")], reply)
}

struct Collector(Spans);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn keep(spans: &Spans, request: ExportTraceServiceRequest) {
    let mut spans = spans.lock().expect("spans");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|resource| text(&resource.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|value: &Any| value.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        AnyValue::StringValue(value) => Some(value.clone()),
        _ => None,
    }
}

fn number(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key)? {
        AnyValue::IntValue(value) => Some(*value),
        _ => None,
    }
}

/// A fresh W3C trace context (sampled): (traceparent, trace id, parent span id).
fn caller() -> (String, String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    (format!("00-{trace_id}-{span_id}-01"), trace_id, span_id)
}

/// Runs the scenario on `backend` in a child process with `env`; panics with its output when
/// it fails.
async fn run_child(backend: &str, env: Vec<(&'static str, String)>) {
    let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "scenario_in_a_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(BACKEND, backend)
        // The spans are at `info`; whatever the caller's RUST_LOG says.
        .env("RUST_LOG", "info")
        .env_remove("TEST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env_remove("OTEL_TRACES_SAMPLER")
        .env_remove("OTEL_SDK_DISABLED")
        .envs(env);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("child joined")
        .expect("child runs");
    assert!(
        output.status.success(),
        "the {backend} scenario failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_confirm_continues_the_callers_trace_into_toss_and_nats() {
    confirm_is_traced(Receiver::http_protobuf().await).await;
}

#[tokio::test]
async fn traces_go_out_over_grpc_too() {
    confirm_is_traced(Receiver::grpc().await).await;
}

/// The scenario on both databases, exporting to `receiver`, and the spans it received.
async fn confirm_is_traced(receiver: Receiver) {
    for backend in ["sqlite", "postgres"] {
        let (traceparent, trace_id, caller_span) = caller();
        let (refused_traceparent, refused_trace_id, _) = caller();
        run_child(
            backend,
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol.to_owned()),
                ("OTEL_SERVICE_NAME", SERVICE_NAME.to_owned()),
                (CALLER, traceparent),
                (REFUSED_CALLER, refused_traceparent),
            ],
        )
        .await;

        // The request span continues the caller's span; the confirm at Toss is its child.
        let trace = receiver.trace(&trace_id);
        assert!(
            trace
                .iter()
                .all(|received| received.service == SERVICE_NAME),
            "{backend}: OTEL_SERVICE_NAME names the service"
        );
        let request = trace
            .iter()
            .map(|received| &received.span)
            .find(|span| hex(&span.parent_span_id) == caller_span)
            .unwrap_or_else(|| panic!("{backend}: no span continues the caller's"));
        assert_eq!(request.kind, SpanKind::Server as i32, "{backend}");
        assert_eq!(
            number(&request.attributes, "http.response.status_code"),
            Some(200),
            "{backend}"
        );
        let confirm = trace
            .iter()
            .map(|received| &received.span)
            .find(|span| span.name == "POST /v1/payments/confirm")
            .unwrap_or_else(|| panic!("{backend}: no span of the confirm at Toss"));
        assert_eq!(confirm.kind, SpanKind::Client as i32, "{backend}");
        let ids: Vec<String> = trace.iter().map(|r| hex(&r.span.span_id)).collect();
        assert!(
            ids.contains(&hex(&confirm.parent_span_id))
                && confirm.parent_span_id != request.parent_span_id,
            "{backend}: the Toss call is a child within the request's trace"
        );
        let attributes = &confirm.attributes;
        assert_eq!(
            text(attributes, "http.request.method").as_deref(),
            Some("POST")
        );
        assert_eq!(
            text(attributes, "url.template").as_deref(),
            Some("/v1/payments/confirm")
        );
        assert_eq!(
            number(attributes, "http.response.status_code"),
            Some(200),
            "{attributes:?}"
        );
        assert_eq!(text(attributes, "toss.error_code"), None, "{backend}");

        // A confirm Toss refuses: its span says Toss's code; no key or order id in any name.
        let refused = receiver.trace(&refused_trace_id);
        let call = refused
            .iter()
            .map(|received| &received.span)
            .find(|span| span.name == "POST /v1/payments/confirm")
            .unwrap_or_else(|| panic!("{backend}: no span of the refused confirm"));
        assert_eq!(
            text(&call.attributes, "toss.error_code").as_deref(),
            Some("NOT_FOUND_PAYMENT_SESSION"),
            "{backend}"
        );
        assert_eq!(
            number(&call.attributes, "http.response.status_code"),
            Some(404)
        );
        assert!(
            refused.iter().all(|r| !r.span.name.contains("pk_")),
            "{backend}: a payment key in a span name"
        );
    }
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported_or_passed_on() {
    for backend in ["sqlite", "postgres"] {
        let (traceparent, _, _) = caller();
        let (refused_traceparent, _, _) = caller();
        run_child(
            backend,
            vec![
                ("OTEL_SERVICE_NAME", SERVICE_NAME.to_owned()),
                (CALLER, traceparent),
                (REFUSED_CALLER, refused_traceparent),
            ],
        )
        .await;
    }
}

/// The scenario, in a child process started by the tests above (a no-op otherwise): telemetry
/// from the environment as `main` starts it, a confirm with the caller's `traceparent`, a
/// confirm Toss refuses, and the relay's NATS message of the completed payment.
#[tokio::test]
async fn scenario_in_a_child_process() {
    let Ok(backend) = std::env::var(BACKEND) else {
        return;
    };
    let backend = match backend.as_str() {
        "sqlite" => Backend::Sqlite,
        _ => Backend::Postgres,
    };
    let traceparent = std::env::var(CALLER).expect("the caller's traceparent");
    let refused_traceparent = std::env::var(REFUSED_CALLER).expect("the second traceparent");
    let exporting = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok();

    let telemetry = payment_service::telemetry::init(&Settings::defaults().log);
    assert_eq!(telemetry.exports_traces(), exporting);
    let app = spawn_app(backend).await;

    let nats_url =
        std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let nats = async_nats::connect(&nats_url).await.expect("NATS");
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (prefix, stream_name) = (format!("t{id}."), format!("T{id}"));
    let jetstream = jetstream::new(nats.clone());
    jetstream
        .create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{prefix}payment.>")],
            ..Default::default()
        })
        .await
        .expect("stream");
    let mut completed = nats
        .subscribe(format!("{prefix}payment.completed"))
        .await
        .expect("subscribe");

    app.create_payment("order_traced_0001", 15000).await;
    app.toss
        .authenticate("pk_traced_1", "order_traced_0001", 15000);
    let reply = app
        .client
        .post(format!("{}/payments/confirm", app.address))
        .header("traceparent", &traceparent)
        .json(&json!({"order_id": "order_traced_0001", "payment_key": "pk_traced_1", "amount_krw": 15000}))
        .send()
        .await
        .expect("confirm");
    assert_eq!(reply.status(), StatusCode::OK);

    app.create_payment("order_traced_0002", 2000).await;
    let reply = app
        .client
        .post(format!("{}/payments/confirm", app.address))
        .header("traceparent", &refused_traceparent)
        .json(&json!({"order_id": "order_traced_0002", "payment_key": "pk_nobody_knows", "amount_krw": 2000}))
        .send()
        .await
        .expect("refused confirm");
    assert!(reply.status().is_client_error(), "{}", reply.status());

    let store = Store::connect(&DatabaseOptions {
        url: app.database_url.clone(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
    })
    .await
    .expect("store");
    let relay = Relay::new(
        store,
        nats.clone(),
        RelayOptions {
            subject_prefix: prefix,
            stream: None,
            interval: Duration::from_millis(50),
            batch_size: 100,
            publish_timeout: Duration::from_secs(5),
        },
    );
    assert!(relay.relay_once().await.expect("relay pass") >= 1);
    let message = tokio::time::timeout(Duration::from_secs(5), completed.next())
        .await
        .expect("payment.completed within 5 s")
        .expect("a message");
    let header = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get("traceparent"))
        .map(|value| value.as_str().to_owned());
    let _ = jetstream.delete_stream(&stream_name).await;

    if exporting {
        let header = header.expect("the event's traceparent header");
        let trace_id = &traceparent[3..35];
        assert_eq!(&header[3..35], trace_id, "{header} continues {traceparent}");
        assert_ne!(header, traceparent, "the service's span, not the caller's");
    } else {
        assert_eq!(header, None, "no trace context with traces off");
    }
    drop(app);
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .expect("telemetry flushed");
}
