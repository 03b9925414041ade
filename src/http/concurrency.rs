//! A global limit on the requests served at once: past it, a request is answered at once with
//! 503 problem+json `SERVICE_UNAVAILABLE` (and `Retry-After: 1`) rather than queued, so that a
//! flood cannot pile up work, memory and database connections behind the ones being served.
//! `/health` (liveness: the process answers) is not counted: it holds nothing, and a liveness
//! probe failing under load would have the service restarted when it is busiest. Nor are
//! requests with a valid API key: the limit bounds what callers without one (the public edge,
//! where a flood comes from) can hold at once, so that they can never crowd out the merchant's
//! own services.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::problem::Problem;

/// The liveness route, never refused for being busy.
pub(super) const LIVENESS: &str = "/health";

/// The permits of the requests in progress, shared by every request.
#[derive(Clone)]
pub struct ConcurrencyLimit {
    permits: Arc<Semaphore>,
}

impl ConcurrencyLimit {
    /// At most `max` requests at once (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }
}

/// Whether the request may be served now: `Ok` with the permit to hold until its answer is
/// ready (`None` when it is not counted), or [`Busy`], to answer at once.
pub(super) fn admit(
    state: &AppState,
    request: &Request,
) -> Result<Option<OwnedSemaphorePermit>, Busy> {
    if request.uri().path() == LIVENESS
        || matches!(
            state.api_keys.caller(request.headers()),
            crate::domain::Caller::Merchant
        )
    {
        return Ok(None);
    }
    let Ok(permit) = state.concurrency.permits.clone().try_acquire_owned() else {
        metrics::counter!("http_overloaded_total").increment(1);
        tracing::warn!("too many requests in progress; answered 503");
        return Err(Busy);
    };
    Ok(Some(permit))
}

/// The answer of a request refused for being one too many.
pub(super) struct Busy;

impl IntoResponse for Busy {
    fn into_response(self) -> Response {
        let mut response = Problem::new(
            503,
            "SERVICE_UNAVAILABLE",
            "the service is serving as many requests as it may; retry shortly",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }
}
