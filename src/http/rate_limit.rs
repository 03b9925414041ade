//! A per-client limit on every request that carries no valid API key (the confirm, Toss's
//! redirects, the billing redirects, the webhook, health, readiness, metrics, the docs, unknown
//! paths): anyone on the internet can send those. `tower_governor`'s layer (GCRA, which behaves
//! as a bucket of `public_burst` requests refilled at `public_requests_per_sec`), keyed by the
//! client's address: the peer's, or, when the peer is one of `trusted_proxies`, the rightmost
//! address of `X-Forwarded-For` that is not a trusted proxy. An IPv6 client is limited per /64
//! (one host usually holds a whole /64). Over the limit: 429 problem+json `RATE_LIMITED` with
//! `Retry-After`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::middleware::NoOpMiddleware;
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;
use tower::{Layer, ServiceExt};
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfigBuilder, SharedRateLimiter};
use tower_governor::key_extractor::KeyExtractor;

use super::AppState;
use super::problem::Problem;
use crate::domain::Caller;

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
    pub fn new(per_second: f64, burst: f64, trusted_proxies: Vec<IpNet>) -> Self {
        let (period, burst) = quota(per_second, burst);
        let client_ip = ClientIp {
            trusted_proxies: Arc::new(trusted_proxies),
        };
        let config = GovernorConfigBuilder::default()
            .period(period)
            .burst_size(burst)
            .key_extractor(client_ip.clone())
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

/// The client's bucket: its address, an IPv6 address cut to its /64 (see [`client_of`]).
#[derive(Debug, Clone)]
struct ClientIp {
    trusted_proxies: Arc<Vec<IpNet>>,
}

impl ClientIp {
    /// The client's own address (not cut to its /64), for the log line.
    fn address<T>(&self, request: &axum::http::Request<T>) -> Option<IpAddr> {
        let peer = request
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()?
            .0
            .ip();
        let forwarded_for = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .map(|value| value.to_str().unwrap_or(""))
            .collect::<Vec<_>>();
        Some(client_of(peer, &forwarded_for, &self.trusted_proxies))
    }
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, request: &axum::http::Request<T>) -> Result<IpAddr, GovernorError> {
        // `limit` lets a request without an address pass before the limiter is asked.
        self.address(request)
            .map(bucket)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// An IPv4 address as it is (an IPv4-mapped IPv6 address as the IPv4 one), an IPv6 address
/// cut to its /64: a host usually has a whole /64 to pick addresses from.
fn bucket(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The client of a request from `peer` carrying the `X-Forwarded-For` values `forwarded_for`
/// (every header of that name, in order): the peer itself unless it is a trusted proxy;
/// otherwise the header is read from the right, each trusted proxy passing the word on to the
/// address before it, and the first address that is not a trusted proxy is the client. An entry
/// that is not an address stops the reading at the last trusted hop (whoever wrote it is not to
/// be believed); so does the left end of the header.
fn client_of(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|network| network.contains(&ip));
    let mut client = canonical(peer);
    if !is_trusted(client) {
        return client;
    }
    let entries = forwarded_for
        .iter()
        .rev()
        .flat_map(|value| value.rsplit(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    for entry in entries {
        let Some(ip) = entry
            .parse::<IpAddr>()
            .ok()
            .or_else(|| entry.parse::<SocketAddr>().ok().map(|at| at.ip()))
        else {
            break;
        };
        client = canonical(ip);
        if !is_trusted(client) {
            break;
        }
    }
    client
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

/// The limit, on every request without a valid API key (whatever its path: a public route, a
/// privileged one answered 401, the docs, a path that does not exist); a request with a valid
/// key is the merchant's own and is not limited here. It wraps every route (a layer of the
/// whole router) rather than being a route layer of the public routes: so a request is counted
/// before the `%00` check and the routes' own layers look at it, and a wrong method or an
/// unknown path is counted too. The client's address is taken here as well, for the log line,
/// and so that a request without one (the router served without connect info) passes
/// unlimited instead of failing.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(state.api_keys.caller(request.headers()), Caller::Merchant) {
        return next.run(request).await;
    }
    let limit = &state.rate_limit;
    let Some(client_ip) = limit.client_ip.address(&request) else {
        return next.run(request).await;
    };
    let Ok(response) = limit.layer.layer(next).oneshot(request).await;
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
        for _ in 0..burst {
            assert!(limiter.check_key(&ip).is_ok());
        }
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
        PublicRateLimit::new(0.0, 0.0, Vec::new());
        PublicRateLimit::new(f64::INFINITY, f64::INFINITY, networks(&["0.0.0.0/0"]));
    }

    fn networks(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn trusting_proxies(list: &[&str]) -> ClientIp {
        ClientIp {
            trusted_proxies: Arc::new(networks(list)),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let request = from("10.0.0.1:4000", Some("203.0.113.7, 10.0.0.9"));
        let (untrusting, trusting) = (trusting_proxies(&[]), trusting_proxies(&["10.0.0.0/8"]));
        assert_eq!(untrusting.extract(&request).unwrap(), ip("10.0.0.1"));
        assert_eq!(trusting.extract(&request).unwrap(), ip("203.0.113.7"));
        // A peer outside the trusted networks: its header is ignored.
        let stranger = from("198.51.100.1:4000", Some("203.0.113.7"));
        assert_eq!(trusting.extract(&stranger).unwrap(), ip("198.51.100.1"));
        let unparsable = from("10.0.0.1:4000", Some("unknown"));
        assert_eq!(trusting.extract(&unparsable).unwrap(), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_for_is_read_from_the_right() {
        let trusted = networks(&["10.0.0.0/8", "fd00::/8"]);
        for (peer, values, client) in [
            // The client's own claim (leftmost) is spoofable; the rightmost untrusted address
            // is what our proxy saw.
            ("10.0.0.1", &["1.1.1.1, 203.0.113.7"][..], "203.0.113.7"),
            (
                "10.0.0.1",
                &["1.1.1.1, 203.0.113.7, 10.0.0.2"],
                "203.0.113.7",
            ),
            // Several headers are one list, in order.
            (
                "10.0.0.1",
                &["1.1.1.1", "203.0.113.8", "10.0.0.3"],
                "203.0.113.8",
            ),
            // Only trusted hops: the leftmost of them.
            ("10.0.0.1", &["10.0.0.2, 10.0.0.3"], "10.0.0.2"),
            // Junk stops the reading at the last trusted hop.
            ("10.0.0.1", &["203.0.113.7, junk, 10.0.0.2"], "10.0.0.2"),
            ("10.0.0.1", &[], "10.0.0.1"),
            // Addresses with ports, IPv6, IPv4-mapped peers.
            ("10.0.0.1", &["203.0.113.9:5555"], "203.0.113.9"),
            ("fd00::1", &["2001:db8::1, [fd00::2]:80"], "2001:db8::1"),
            ("::ffff:10.0.0.1", &["203.0.113.7"], "203.0.113.7"),
            // Untrusted peer: the header is not read at all.
            ("203.0.113.1", &["10.0.0.2"], "203.0.113.1"),
        ] {
            assert_eq!(
                client_of(ip(peer), values, &trusted),
                ip(client),
                "{values:?}"
            );
        }
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let key = |peer: &str| trusting_proxies(&[]).extract(&from(peer, None)).unwrap();
        assert_eq!(key("[2001:db8:1:2:aaaa::1]:1"), ip("2001:db8:1:2::"));
        assert_eq!(
            key("[2001:db8:1:2:aaaa::1]:1"),
            key("[2001:db8:1:2:ffff:ffff:ffff:ffff]:2")
        );
        assert_ne!(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:3::1]:1"));
        assert_eq!(key("[::ffff:192.0.2.1]:1"), ip("192.0.2.1"));
        assert_ne!(key("192.0.2.1:1"), key("192.0.2.2:1"));
    }
}
