//! A per-client-IP limit on the public routes (confirm, Toss redirects, webhook), which anyone
//! on the internet can call: `tower_governor`'s layer (GCRA, which behaves as a bucket of
//! `public_burst` requests refilled at `public_requests_per_sec`), keyed by the peer's address,
//! or by the first address of `X-Forwarded-For` behind a trusted proxy. Over the limit: 429
//! problem+json `RATE_LIMITED` with `Retry-After`.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::middleware::NoOpMiddleware;
use tokio_util::sync::CancellationToken;
use tower::{Layer, ServiceExt};
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfigBuilder, SharedRateLimiter};
use tower_governor::key_extractor::{KeyExtractor, PeerIpKeyExtractor};

use super::AppState;
use super::problem::Problem;

/// The limiter of the public routes, shared by every request.
#[derive(Clone)]
pub struct PublicRateLimit {
    layer: GovernorLayer<ClientIp, NoOpMiddleware, Body>,
    client_ip: ClientIp,
    limiter: SharedRateLimiter<IpAddr, NoOpMiddleware>,
}

impl PublicRateLimit {
    /// `per_second` may be fractional (one request every `1 / per_second` seconds); `burst`
    /// counts whole requests, at least one.
    pub fn new(per_second: f64, burst: f64, trust_forwarded_for: bool) -> Self {
        let (period, burst) = quota(per_second, burst);
        let client_ip = ClientIp {
            trust_forwarded_for,
        };
        let config = GovernorConfigBuilder::default()
            .period(period)
            .burst_size(burst)
            .key_extractor(client_ip)
            .finish()
            .expect("a period and a burst that are not zero");
        let limiter = config.limiter().clone();
        Self {
            layer: GovernorLayer::new(config).error_handler(too_many_requests),
            client_ip,
            limiter,
        }
    }

    /// Every minute, forgets the addresses whose allowance is whole again (they are as if never
    /// seen), so that memory follows the recent clients, not every client ever; until `stop`.
    pub async fn forget_idle_clients(self, stop: CancellationToken) {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        every_minute.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        stop.run_until_cancelled(async move {
            loop {
                every_minute.tick().await;
                self.limiter.retain_recent();
                self.limiter.shrink_to_fit();
            }
        })
        .await;
    }
}

/// The time it takes to earn one more request, and how many requests a client may send at once.
fn quota(per_second: f64, burst: f64) -> (Duration, u32) {
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
    // `as` saturates: a burst too large for a u32 is as good as no limit.
    (period.max(Duration::from_nanos(1)), burst.max(1.0) as u32)
}

/// The client's address: the first of `X-Forwarded-For` when the proxy in front is trusted to
/// set it (and it holds one), otherwise the peer's.
#[derive(Debug, Clone, Copy)]
struct ClientIp {
    trust_forwarded_for: bool,
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, request: &axum::http::Request<T>) -> Result<IpAddr, GovernorError> {
        if self.trust_forwarded_for
            && let Some(ip) = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return Ok(ip);
        }
        PeerIpKeyExtractor.extract(request)
    }
}

/// Marks the answer of the limiter itself, for the log line and the metric.
#[derive(Debug, Clone, Copy)]
struct RateLimited;

fn too_many_requests(error: GovernorError) -> Response {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            let mut response = Problem::new(
                429,
                "RATE_LIMITED",
                "too many requests from this address; retry later",
            )
            .into_response();
            // `wait_time` is the wait rounded down to whole seconds; one more is never too
            // early, and is at least 1.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait_time + 1));
            response.extensions_mut().insert(RateLimited);
            response
        }
        // `ClientIp` is taken before the limiter is asked (see `limit`), so this cannot happen.
        other => crate::error::AppError::Internal(format!("rate limit: {other}")).into_response(),
    }
}

fn is_public(path: &str) -> bool {
    path == "/payments/confirm" || path.starts_with("/payments/toss/") || path == "/webhooks/toss"
}

/// The limit, on the public paths only. It wraps every route (a layer of the whole router), and
/// puts the governor in front of the public ones, rather than being a route layer of the public
/// routes: so a request is counted before the `%00` check and the routes' own layers look at it,
/// and a wrong method or an unknown path under `/payments/toss/` is counted too. The client's
/// address is taken here as well, for the log line, and so that a request without one (the
/// router served without connect info) passes unlimited instead of failing.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let limit = &state.rate_limit;
    let Ok(client_ip) = limit.client_ip.extract(&request) else {
        return next.run(request).await;
    };
    let response = match limit.layer.layer(next).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if response.extensions().get::<RateLimited>().is_some() {
        tracing::warn!(client_ip = %client_ip, "rate limited");
        metrics::counter!("http_rate_limited_total").increment(1);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use std::num::NonZeroU32;

    use axum::extract::ConnectInfo;
    use governor::clock::FakeRelativeClock;
    use governor::{Quota, RateLimiter};

    use super::*;

    fn from(peer: &str, forwarded_for: Option<&str>) -> axum::http::Request<()> {
        let mut request = axum::http::Request::builder();
        if let Some(value) = forwarded_for {
            request = request.header("x-forwarded-for", value);
        }
        let mut request = request.body(()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    #[test]
    fn quota_allows_burst_then_refills() {
        let (period, burst) = quota(2.0, 3.0);
        assert_eq!((period, burst), (Duration::from_millis(500), 3));
        // The limiter the layer builds from these numbers, on a clock the test moves.
        let clock = FakeRelativeClock::default();
        let quota = Quota::with_period(period)
            .unwrap()
            .allow_burst(NonZeroU32::new(burst).unwrap());
        let limiter = RateLimiter::dashmap_with_clock(quota, clock.clone());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(limiter.check_key(&ip).is_ok());
        assert!(limiter.check_key(&ip).is_ok());
        assert!(limiter.check_key(&ip).is_ok());
        assert!(limiter.check_key(&ip).is_err());
        assert!(limiter.check_key(&other).is_ok(), "buckets are per address");
        clock.advance(Duration::from_millis(600));
        assert!(limiter.check_key(&ip).is_ok());
        assert!(limiter.check_key(&ip).is_err());
    }

    #[test]
    fn quota_of_odd_settings() {
        assert_eq!(quota(0.5, 2.0), (Duration::from_secs(2), 2));
        assert_eq!(quota(0.0, 0.0), (Duration::from_secs(1000), 1));
        assert_eq!(quota(1e12, 1e12), (Duration::from_nanos(1), u32::MAX));
        // The layer accepts whatever the settings say.
        PublicRateLimit::new(0.0, 0.0, false);
        PublicRateLimit::new(f64::INFINITY, f64::INFINITY, true);
    }

    #[test]
    fn the_client_is_the_peer_unless_the_proxy_is_trusted() {
        let request = from("10.0.0.1:4000", Some("203.0.113.7, 10.0.0.9"));
        let untrusting = ClientIp {
            trust_forwarded_for: false,
        };
        let trusting = ClientIp {
            trust_forwarded_for: true,
        };
        assert_eq!(
            untrusting.extract(&request).unwrap(),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            trusting.extract(&request).unwrap(),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let unparsable = from("10.0.0.1:4000", Some("unknown"));
        assert_eq!(
            trusting.extract(&unparsable).unwrap(),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn public_routes() {
        assert!(is_public("/payments/confirm"));
        assert!(is_public("/payments/toss/success"));
        assert!(is_public("/webhooks/toss"));
        assert!(!is_public("/payments"));
        assert!(!is_public("/payments/123/refund"));
    }
}
