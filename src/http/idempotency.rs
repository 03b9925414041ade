//! `Idempotency-Key` on our POST routes (all but the webhook): the first request runs, a retry
//! with the same key and body replays its response, a different body is 422, a duplicate that
//! arrives while the first still runs is 409.
//!
//! Keys live in one of two namespaces: the merchant's (any valid API key) and the anonymous
//! callers'. On the privileged routes this layer runs behind the API-key layer, so a request
//! without a valid key is answered 401 before its key is looked at.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::AppState;
use super::auth::caller_of;
use crate::domain::IdempotencyKey;
use crate::error::AppError;
use crate::service::{IdempotencyStart, request_fingerprint};
use crate::store::StoredResponse;

pub const HEADER: &str = "idempotency-key";

pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || request.uri().path().starts_with("/webhooks/") {
        return next.run(request).await;
    }
    let key = match request.headers().get(HEADER) {
        None => return run_to_completion(next, request).await,
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
    let key = key.scoped_to(caller_of(&request, &state.api_keys));
    let (mut parts, body) = request.into_parts();
    let body = match to_bytes(body, state.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => return AppError::PayloadTooLarge.into_response(),
    };
    let fingerprint = request_fingerprint(parts.method.as_str(), parts.uri.path(), &body);
    match state.service.idempotency_begin(&key, &fingerprint).await {
        Err(error) => error.into_response(),
        Ok(IdempotencyStart::Replay(stored)) => replay(stored),
        Ok(IdempotencyStart::Proceed) => {
            // The handler may hand the key to its operation, which then knows its own retries.
            parts.extensions.insert(key.clone());
            let request = Request::from_parts(parts, Body::from(body));
            let service = state.service.clone();
            // The request runs to its end even if the client goes away, so that its answer is
            // stored for the retry that will follow.
            let task = tokio::spawn(
                async move {
                    let response = next.run(request).await;
                    let (parts, body) = response.into_parts();
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
                    if let Err(error) = service.idempotency_finish(&key, stored).await {
                        tracing::warn!(%error, "could not store the idempotent response");
                    }
                    Response::from_parts(parts, Body::from(bytes))
                }
                .instrument(tracing::Span::current()),
            );
            task.await.unwrap_or_else(|_| {
                AppError::Internal("request task failed".to_owned()).into_response()
            })
        }
    }
}

/// A POST without a key also runs to its end if the client disconnects: a confirm that reached
/// Toss should settle now, not wait for the reconciler.
async fn run_to_completion(next: Next, request: Request) -> Response {
    tokio::spawn(next.run(request).instrument(tracing::Span::current()))
        .await
        .unwrap_or_else(|_| AppError::Internal("request task failed".to_owned()).into_response())
}

fn replay(stored: StoredResponse) -> Response {
    let status = axum::http::StatusCode::from_u16(stored.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
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
