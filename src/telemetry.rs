//! Tracing, started once. `RUST_LOG` overrides the configured filter.
//!
//! Traces over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set:
//! otherwise no OpenTelemetry layer is installed at all. The exporter reads the other standard
//! `OTEL_*` variables itself (protocol, headers, timeout); the SDK reads the sampler's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, LogSettings};

/// The W3C header that carries a trace across HTTP and NATS.
pub const TRACEPARENT: &str = "traceparent";

/// Whether this process exports traces: the spans then have OpenTelemetry contexts to continue
/// and pass on. Set once, by the first `init` that installs the exporter.
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// The exporter, while traces are on. Dropping it (or [`Telemetry::shutdown`]) sends the spans
/// still buffered.
#[must_use = "dropping it stops the trace exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether an exporter was installed.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("payment-service: flushing traces failed: {error}");
        }
    }
}

pub fn init(settings: &LogSettings) -> Telemetry {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let (provider, failure) = match tracer_provider(|name| std::env::var(name).ok()) {
        Ok(provider) => (provider, None),
        Err(error) => (None, Some(error)),
    };
    let output = match settings.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
    };
    let mut layers = vec![output];
    if let Some(provider) = &provider {
        let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
        layers.push(tracing_opentelemetry::layer().with_tracer(tracer).boxed());
    }
    let installed = tracing_subscriber::registry()
        .with(layers.with_filter(filter))
        .with(PoolWait.with_filter(Targets::new().with_target(ACQUIRE_TARGET, Level::TRACE)))
        .try_init()
        .is_ok();
    if let Some(error) = failure {
        tracing::warn!(%error, "OTEL_EXPORTER_OTLP_ENDPOINT is set but the exporter cannot start; no traces");
    }
    // A second init (tests) keeps the first subscriber, and its exporter.
    let provider = provider.filter(|_| installed);
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        TRACES_ON.store(true, Ordering::Relaxed);
    }
    Telemetry { provider }
}

/// The target of the event sqlx's pool emits at every checkout (its level is set by the
/// store's pool options), with the wait in `acquired_after_secs`.
pub const ACQUIRE_TARGET: &str = "sqlx::pool::acquire";

/// Records the pool's checkout events as `db_pool_acquire_seconds`: how long a task waited
/// for a database connection. Its own filter lets these events through whatever the log filter
/// says (they are not logged).
struct PoolWait;

impl<S: tracing::Subscriber> Layer<S> for PoolWait {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Waited(Option<f64>);
        impl tracing::field::Visit for Waited {
            fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
                if field.name() == "acquired_after_secs" {
                    self.0 = Some(value);
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut waited = Waited(None);
        event.record(&mut waited);
        if let Some(seconds) = waited.0 {
            metrics::histogram!("db_pool_acquire_seconds").record(seconds);
        }
    }
}

/// The OTLP tracer provider, or `None` when no endpoint is configured (`env` reads a variable).
fn tracer_provider(
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<SdkTracerProvider>, opentelemetry_otlp::ExporterBuildError> {
    let set = |name: &str| env(name).is_some_and(|value| !value.trim().is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    // reqwest is built with `rustls-no-provider`; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // http/protobuf unless OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL says grpc.
    let exporter = opentelemetry_otlp::SpanExporter::builder().build()?;
    let mut resource = Resource::builder();
    let named = set("OTEL_SERVICE_NAME")
        || env("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|attributes| attributes.contains("service.name="));
    if !named {
        resource = resource.with_service_name(env!("CARGO_PKG_NAME"));
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// Makes `span` continue the caller's trace when the request carries a valid `traceparent`
/// (and traces are on).
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !TRACES_ON.load(Ordering::Relaxed) {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The current span's trace context as a W3C `traceparent` value; `None` when traces are off
/// or no span is current.
pub fn current_traceparent() -> Option<String> {
    if !TRACES_ON.load(Ordering::Relaxed) {
        return None;
    }
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The process's Prometheus recorder. Installed once; every application in the process (tests
/// start many) shares it.
pub fn metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    use std::sync::OnceLock;

    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ];
            // A connection is usually free at once: the pool's wait needs finer buckets.
            let waits = [
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &seconds)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("db_pool_acquire_seconds".to_owned()),
                        &waits,
                    )
                })
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_endpoint_no_exporter_is_built() {
        let provider = tracer_provider(|name| match name {
            "OTEL_SERVICE_NAME" => Some("payment-service".to_owned()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("  ".to_owned()),
            _ => None,
        });
        assert!(provider.expect("no error").is_none());
    }

    #[test]
    fn with_an_endpoint_an_exporter_is_built() {
        let provider = tracer_provider(|name| {
            (name == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .then(|| "http://127.0.0.1:4318/v1/traces".to_owned())
        })
        .expect("exporter builds")
        .expect("an endpoint turns traces on");
        provider.shutdown().expect("shuts down");
    }

    #[test]
    fn with_traces_off_nothing_is_continued_or_passed_on() {
        // This unit-test process never installs an exporter.
        let span = tracing::info_span!("request");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            axum::http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        );
        continue_trace(&span, &headers);
        assert_eq!(span.in_scope(current_traceparent), None);
    }
}
