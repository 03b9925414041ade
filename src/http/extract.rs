//! Extractors whose rejections are our problem documents.

use axum::body::Bytes;
use std::convert::Infallible;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::AppState;
use super::auth::KeyHolder;
use crate::domain::{Actor, Caller};
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
        let parsed = serde_json::from_slice(&bytes);
        // Checked once the body is known to be JSON, and before serde's own data errors, which
        // would quote the offending text back.
        let syntax_error = parsed.as_ref().err().is_some_and(|error| !error.is_data());
        if !syntax_error && json_has_nul(&bytes) {
            return Err(nul_in_body());
        }
        parsed.map(AppJson).map_err(|error| {
            use serde_json::error::Category;
            match error.classify() {
                Category::Data => AppError::unprocessable(format!("invalid request body: {error}")),
                Category::Syntax | Category::Eof | Category::Io => {
                    AppError::validation(format!("malformed JSON: {error}"))
                }
            }
        })
    }
}

/// Whether a JSON text has a NUL (U+0000) in a string or a key. PostgreSQL's `text` cannot
/// hold one, so such a value would fail in the database (a 500) instead of at the edge. JSON
/// can carry it only as the escape `\u0000` (a raw control byte is a syntax error), and a
/// backslash appears only inside strings, so skipping each escape's character is exact.
pub fn json_has_nul(json: &[u8]) -> bool {
    let mut rest = json;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        if rest[at + 1..].starts_with(b"u0000") {
            return true;
        }
        rest = rest.get(at + 2..).unwrap_or_default();
    }
    false
}

pub fn nul_in_body() -> AppError {
    AppError::unprocessable("the request body must not contain U+0000 (NUL) in any string")
}

/// Refuses, on every route, a path or query that percent-encodes a NUL (`%00`, the only way a
/// URL can carry one): 400 before any handler, so no extractor or query can meet it.
pub async fn refuse_nul_in_target(request: Request) -> Result<Request, Response> {
    let target = request
        .uri()
        .path_and_query()
        .map_or("", |target| target.as_str());
    if target.contains("%00") {
        return Err(
            AppError::validation("the path and query must not contain %00 (NUL)").into_response(),
        );
    }
    Ok(request)
}

/// `axum::extract::Query`, rejecting with problem+json.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct AppQuery<T>(pub T);

/// Who calls: the merchant (any configured API key) may be shown more than an anonymous caller
/// (a wrong key counts as none), and keeps its `Idempotency-Key`s in a namespace of its own (the
/// idempotency layer takes this extractor). On the privileged routes the API-key layer has
/// recorded it already.
impl FromRequestParts<AppState> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(match parts.extensions.get::<Caller>() {
            Some(caller) => *caller,
            None => state.api_keys.caller(&parts.headers),
        })
    }
}

/// Who makes the change a request asks for: the API key it carries (by name; the API-key layer
/// recorded it on the privileged routes), else the buyer (a public route without a key). The
/// webhook route names Toss itself.
impl FromRequestParts<AppState> for Actor {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(match parts.extensions.get::<KeyHolder>() {
            Some(holder) => holder.actor(),
            None => (state.api_keys.holder(&parts.headers))
                .map_or_else(Actor::buyer, |holder| holder.actor()),
        })
    }
}

/// Proof that the request carries a configured API key. The privileged routes' layer checked
/// it already (`auth::require_scope`, with the route's scope); a handler that takes this checks it anyway, wherever
/// its route is registered. As an extractor it runs before the body is read, so an
/// unauthenticated request learns nothing about its body's validity.
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match Caller::from_request_parts(parts, state).await {
            Ok(Caller::Merchant) => Ok(ApiKey),
            _ => Err(AppError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json_has_nul;

    #[test]
    fn finds_nul_escapes_in_strings_and_keys_only() {
        for (json, has_nul) in [
            (&br#"{"a":"\u0000"}"#[..], true),
            (br#"{"a":"x\u0000y"}"#, true),
            (br#"{"a\u0000":1}"#, true),
            (br#"{"a":{"b":["\u0000"]}}"#, true),
            // An escaped backslash, then NUL.
            (br#"{"a":"\\\u0000"}"#, true),
            // A backslash, then the text u0000.
            (br#"{"a":"\\u0000"}"#, false),
            (br#"{"a":"u0000","b":"\u0001"}"#, false),
            (br#"{"a":"\""}"#, false),
            (b"{}", false),
            (b"\\", false),
            (br#""\u000"#, false),
        ] {
            assert_eq!(json_has_nul(json), has_nul, "{}", json.escape_ascii());
        }
    }
}
