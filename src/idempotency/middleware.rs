//! The layer on our POST routes, and the extractor that hands the scoped key to handlers.
//!
//! Keys live in the merchant's namespace (any valid API key) or, for a caller without an API
//! key, in the namespace of the `payment_key` its request names (ignored when it names none).
//! The caller comes from the router's `Caller` extractor; on the privileged routes
//! this layer runs behind the API-key layer, so a request without a valid key is answered 401
//! before its key is looked at.

use std::convert::Infallible;

use axum::body::{Body, to_bytes};
use axum::extract::{OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::key::{HEADER, IdempotencyKey, Scope, request_fingerprint};
use super::{Idempotency, InFlight, Start, StoredResponse};
use crate::domain::{Caller, ScopedKey};
use crate::error::AppError;

/// Whether the layer looks at the `Idempotency-Key` of a request to `path` with `method`: every
/// POST but Toss's webhook.
pub fn guards(method: &Method, path: &str) -> bool {
    method == Method::POST && !path.starts_with("/webhooks/")
}

/// Honours the request's `Idempotency-Key`, if it has one. Install with
/// `axum::middleware::from_fn_with_state` and a state from which `Idempotency` and `Caller`
/// can be extracted.
pub async fn honour_key(
    State(idempotency): State<Idempotency>,
    caller: Caller,
    request: Request,
    next: Next,
) -> Response {
    if !guards(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let key = match request.headers().get(HEADER) {
        None => return to_completion(next.run(request)).await,
        Some(value) => match value.to_str().ok().map(IdempotencyKey::parse) {
            Some(Ok(key)) => key,
            _ => {
                return AppError::validation(
                    "Idempotency-Key: must be 1 to 255 printable ASCII characters",
                )
                .into_response();
            }
        },
    };
    let (mut parts, body) = request.into_parts();
    let body = match to_bytes(body, idempotency.settings.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => return AppError::PayloadTooLarge.into_response(),
    };
    let Some(scope) = Scope::of(caller, &body) else {
        // A caller without an API key whose request names no payment_key has no namespace
        // its key could be kept in without a stranger sharing it: the key is ignored.
        let request = Request::from_parts(parts, Body::from(body));
        return to_completion(next.run(request)).await;
    };
    let key = key.scoped_to(&scope);
    let fingerprint = request_fingerprint(parts.method.as_str(), parts.uri.path(), &body);
    match idempotency.begin(&key, &fingerprint).await {
        Err(error) => error.into_response(),
        Ok(Start::Replay(stored)) => replay(stored),
        Ok(Start::Proceed) => {
            // The handler may hand the key to its operation, which then knows its own retries.
            parts.extensions.insert(key.clone());
            let request = Request::from_parts(parts, Body::from(body));
            // Its answer is stored for the retry that will follow a client gone away.
            to_completion(async move {
                let response = next.run(request).await;
                let (parts, body) = response.into_parts();
                let in_flight = parts.extensions.get::<InFlight>().is_some();
                let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
                let stored = StoredResponse {
                    status: parts.status.as_u16(),
                    content_type: parts
                        .headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                };
                if let Err(error) = idempotency.finish(&key, stored, in_flight).await {
                    tracing::warn!(%error, "could not store the idempotent response");
                }
                Response::from_parts(parts, Body::from(bytes))
            })
            .await
        }
    }
}

/// Runs a request to its end even if the client goes away: a confirm that reached Toss should
/// settle now, not wait for the reconciler.
async fn to_completion(request: impl Future<Output = Response> + Send + 'static) -> Response {
    tokio::spawn(request.instrument(tracing::Span::current()))
        .await
        .unwrap_or_else(|_| AppError::Internal("request task failed".to_owned()).into_response())
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, stored.body).into_response();
    if let Some(value) = stored
        .content_type
        .and_then(|ct| HeaderValue::from_str(&ct).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// The request's `Idempotency-Key` in its caller's namespace, when it has one: [`honour_key`]
/// puts it in the request's extensions, and a handler passes it on so that the operation can
/// recognise its own retries.
impl<S: Send + Sync> OptionalFromRequestParts<S> for ScopedKey {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<ScopedKey>().cloned())
    }
}
