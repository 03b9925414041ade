//! Extractors whose rejections are our problem documents.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::domain::{Caller, ScopedKey};
use crate::error::AppError;

/// A JSON object body. Unlike `axum::Json` it refuses a top-level array (serde would fill a
/// struct from it by position) and keeps serde's duplicate-key and unknown-field errors.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|mime| {
                mime.type_() == mime::APPLICATION
                    && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
            });
        if !is_json {
            return Err(AppError::UnsupportedMediaType(
                "expected a request body with Content-Type: application/json".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    AppError::validation(rejection.body_text())
                }
            })?;
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            Some(_) if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() => {
                return Err(AppError::unprocessable(
                    "the request body must be a JSON object",
                ));
            }
            _ => {}
        }
        serde_json::from_slice(&bytes)
            .map(AppJson)
            .map_err(|error| {
                use serde_json::error::Category;
                match error.classify() {
                    Category::Data => {
                        AppError::unprocessable(format!("invalid request body: {error}"))
                    }
                    Category::Syntax | Category::Eof | Category::Io => {
                        AppError::validation(format!("malformed JSON: {error}"))
                    }
                }
            })
    }
}

/// `axum::extract::Query`, rejecting with problem+json.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct AppQuery<T>(pub T);

/// Proof that the request carries a configured API key. The privileged routes' layer checked
/// it already (`auth::require_api_key`); a handler that takes this checks it anyway, wherever
/// its route is registered. As an extractor it runs before the body is read, so an
/// unauthenticated request learns nothing about its body's validity.
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if parts.extensions.get::<Caller>() != Some(&Caller::Merchant) {
            state.api_keys.check(&parts.headers)?;
        }
        Ok(ApiKey)
    }
}

/// The request's `Idempotency-Key` in its caller's namespace, when it has one: the
/// idempotency layer puts it in the request's extensions, and a handler passes it on so that
/// the operation can recognise its own retries.
impl<S: Send + Sync> OptionalFromRequestParts<S> for ScopedKey {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<ScopedKey>().cloned())
    }
}
