//! A per-client-IP token bucket on the public routes (confirm, Toss redirects, webhook), which
//! anyone on the internet can call. Over the limit: 429 problem+json with `Retry-After`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::Problem;

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    trust_forwarded_for: bool,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Buckets idle this long are full again and can be forgotten.
const FORGET_AFTER_SECS: f64 = 300.0;

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64, trust_forwarded_for: bool) -> Self {
        Self {
            per_second: per_second.max(0.001),
            burst: burst.max(1.0),
            trust_forwarded_for,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` to go ahead, or how many seconds until a token is free.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| now.duration_since(b.refilled).as_secs_f64() < FORGET_AFTER_SECS);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            refilled: now,
        });
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }

    fn client_ip(&self, request: &Request) -> Option<IpAddr> {
        if self.trust_forwarded_for
            && let Some(ip) = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
    }
}

fn is_public(path: &str) -> bool {
    path == "/payments/confirm" || path.starts_with("/payments/toss/") || path == "/webhooks/toss"
}

pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let limiter = &state.rate_limiter;
    let Some(ip) = limiter.client_ip(&request) else {
        return next.run(request).await;
    };
    match limiter.take(ip, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            tracing::warn!(client_ip = %ip, "rate limited");
            metrics::counter!("http_rate_limited_total").increment(1);
            let mut response = Problem::new(
                429,
                "RATE_LIMITED",
                "too many requests from this address; retry later",
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let limiter = RateLimiter::new(2.0, 3.0, false);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let start = Instant::now();
        assert!(limiter.take(ip, start).is_ok());
        assert!(limiter.take(ip, start).is_ok());
        assert!(limiter.take(ip, start).is_ok());
        assert_eq!(limiter.take(ip, start), Err(1));
        assert!(
            limiter.take(other, start).is_ok(),
            "buckets are per address"
        );
        assert!(limiter.take(ip, start + Duration::from_millis(600)).is_ok());
        assert!(
            limiter
                .take(ip, start + Duration::from_millis(600))
                .is_err()
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
