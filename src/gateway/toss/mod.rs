//! Toss Payments core API v1: confirm, cancel, the two payment lookups, and webhook bodies.
//!
//! Request building and response parsing only; the service decides what a payment means.
//!
//! - `client`: the HTTP client (timeouts, the `Authorization` and `Idempotency-Key` headers,
//!   one exchange per call and its log line).
//! - `errors`: Toss's error codes and what each lets the caller conclude.
//! - `transformers`: Toss's JSON and ours: request bodies, the Payment object as a
//!   [`PgPayment`](super::PgPayment).
//! - [`webhook`]: Toss's webhook bodies, reduced to a hint of which payment changed.
//! - `books`: the transactions and settlements lists (paging parameters, 429 backoff).

mod books;
mod client;
mod errors;
mod transformers;
pub mod webhook;

#[cfg(test)]
mod fixtures;

use std::time::Duration;

use super::Timeouts;

pub use client::{TossClient, TossOptions};
pub use errors::decline_is_retryable;

/// Which kind of Toss call: the error codes that are final, and the timeout, depend on it. Its
/// name (snake case) is the `operation` of logs and spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum Operation {
    Confirm,
    Cancel,
    Lookup,
    /// Billing: issue a billing key from an `authKey`.
    #[strum(serialize = "billing_issue")]
    Issue,
    /// Billing: charge a billing key.
    #[strum(serialize = "billing_charge")]
    Charge,
}

/// The span of one call to Toss, a child of the caller's span. `route` is the method and the
/// path template (`GET /v1/payments/{paymentKey}`): the span never names a key, an order id or
/// a billing key. The status and Toss's error code are recorded once the reply is read.
fn call_span(route: &'static str, operation: &'static str) -> tracing::Span {
    let (method, template) = route.split_once(' ').unwrap_or(("", route));
    tracing::info_span!(
        "toss",
        otel.name = route,
        otel.kind = "client",
        http.request.method = method,
        url.template = template,
        toss.operation = operation,
        http.response.status_code = tracing::field::Empty,
        toss.error_code = tracing::field::Empty,
    )
}

impl Operation {
    fn as_str(self) -> &'static str {
        self.into()
    }

    /// Confirm and cancel wait on card companies and banks; lookups only read Toss's records.
    fn timeout(self, timeouts: &Timeouts) -> Duration {
        match self {
            // A billing approval may take up to 60 s (§11); the read timeout covers it.
            Self::Confirm | Self::Cancel | Self::Charge | Self::Issue => timeouts.read,
            Self::Lookup => timeouts.lookup,
        }
    }
}
