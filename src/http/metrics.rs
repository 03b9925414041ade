//! `GET /metrics` (Prometheus text format) and the per-request measurements behind it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::AppState;

/// `http_requests_total{method, route, status}` and `http_request_duration_seconds{method,
/// route}`. Every label takes one of a known set of values, whatever a client sends, so that no
/// request adds a series: the route is the template (`/payments/{payment_id}`), never the raw
/// path, or `unmatched`; the method is a standard one or `OTHER`; the status is a number.
/// Taken when the request comes in ([`Measurement::start`]), recorded with its answer.
pub(super) struct Measurement {
    method: &'static str,
    route: String,
    started: Instant,
}

impl Measurement {
    pub(super) fn start(request: &Request) -> Self {
        Self {
            method: method_label(request.method()),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", |path| path.as_str())
                .to_owned(),
            started: Instant::now(),
        }
    }

    pub(super) fn record(self, response: &Response) {
        let Self {
            method,
            route,
            started,
        } = self;
        let status = response.status().as_u16().to_string();
        metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
            .increment(1);
        metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
            .record(started.elapsed().as_secs_f64());
    }
}

/// The method as a metric label: one of the standard methods, anything else `OTHER`.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|standard| *standard == method.as_str())
        .unwrap_or("OTHER")
}

fn age_seconds(since: Option<DateTime<Utc>>) -> f64 {
    since.map_or(0.0, |at| {
        (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
    })
}

/// Prometheus metrics of this process.
#[utoipa::path(
    get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Read at scrape time, so they are right whichever instance settled what. A count the
    // database did not give leaves its gauge as it was.
    let unsettled = state.service.unsettled_stats().await;
    for (kind, backlog) in [
        ("payment", unsettled.payments),
        ("refund", unsettled.refunds),
    ] {
        if let Some(backlog) = backlog {
            metrics::gauge!("payments_unsettled", "kind" => kind).set(backlog.count as f64);
            metrics::gauge!("payments_unsettled_oldest_age_seconds", "kind" => kind)
                .set(age_seconds(backlog.oldest));
        }
    }
    if state.outbox_relayed
        && let Some(backlog) = state.service.outbox_backlog().await
    {
        metrics::gauge!("outbox_unpublished_events").set(backlog.count as f64);
        metrics::gauge!("outbox_oldest_unpublished_age_seconds").set(age_seconds(backlog.oldest));
    }
    let (open, idle) = state.service.pool_connections();
    metrics::gauge!("db_pool_connections").set(f64::from(open));
    metrics::gauge!("db_pool_idle_connections").set(idle as f64);
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_label_is_a_standard_method_or_other() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }
}
