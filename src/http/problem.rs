//! Every 4xx/5xx leaves as an RFC 9457 problem document with a `code`, whatever produced it:
//! our handlers, axum's extractors, the router's fallbacks, or a tower layer.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "/problems/invalid-state",
    "title": "Invalid state",
    "status": 409,
    "detail": "a payment in status COMPLETED cannot be confirmed",
    "code": "INVALID_STATE"
}))]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// Machine-readable error code (see the API description for the list).
    pub code: String,
    /// The payment gateway's own error code, verbatim (PG errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_code: Option<String>,
    /// The payment gateway's own message, verbatim (PG errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_message: Option<String>,
    /// `PG_DECLINED` of a charge: whether charging the same card again later may pass
    /// (limit, balance, card company error) or never will (lost, stopped, expired card).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

impl Problem {
    pub fn new(status: u16, code: &str, detail: impl Into<String>) -> Self {
        let title = title_of(code);
        Self {
            kind: format!("/problems/{}", code.to_ascii_lowercase().replace('_', "-")),
            title,
            status,
            detail: detail.into(),
            code: code.to_owned(),
            pg_code: None,
            pg_message: None,
            retryable: None,
        }
    }
}

fn title_of(code: &str) -> String {
    let words = code.to_ascii_lowercase().replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl From<&AppError> for Problem {
    fn from(error: &AppError) -> Self {
        let detail = match error {
            // The cause of a 5xx is logged, never sent.
            AppError::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            AppError::Unavailable(_) => {
                "the service cannot reach its database; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let mut problem = Problem::new(error.status(), error.code(), detail);
        if let Some((code, message)) = error.pg_error() {
            problem.pg_code = Some(code.to_owned());
            problem.pg_message = Some(message.to_owned());
        }
        if let AppError::PgDeclined { retryable, .. } = error {
            problem.retryable = *retryable;
        }
        problem
    }
}

/// Logs the cause of a 5xx, once, inside the request's span; the client never sees it.
pub fn log_cause(error: &AppError) {
    match error {
        AppError::Internal(cause) => tracing::error!(%cause, "internal error"),
        AppError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
        _ => {}
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        log_cause(&self);
        let mut response = Problem::from(&self).into_response();
        if matches!(self, AppError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::validation(rejection.body_text())
    }
}

pub async fn not_found() -> AppError {
    AppError::NotFound("no such route".to_owned())
}

pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed("this method is not allowed on this route".to_owned())
}

/// The last line of defence: an error response that is not problem+json (a tower layer's 408,
/// a panic's 500, anything we did not foresee) is rewritten into one.
pub async fn ensure_problem_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response.headers().get(header::CONTENT_TYPE);
    let is_problem =
        content_type.is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    // The console's own error pages (a browser reads them) are HTML on purpose.
    let is_page = content_type.is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
    if is_problem || is_page {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("NOT_FOUND", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("METHOD_NOT_ALLOWED", "method not allowed"),
        StatusCode::REQUEST_TIMEOUT => ("REQUEST_TIMEOUT", "the request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("UNSUPPORTED_MEDIA_TYPE", "unsupported media type"),
        StatusCode::TOO_MANY_REQUESTS => ("TOO_MANY_REQUESTS", "too many requests"),
        StatusCode::SERVICE_UNAVAILABLE => ("SERVICE_UNAVAILABLE", "temporarily unavailable"),
        s if s.is_server_error() => ("INTERNAL_ERROR", "an unexpected error occurred"),
        _ => ("VALIDATION_ERROR", "the request could not be processed"),
    };
    let (mut parts, _) = response.into_parts();
    let problem = Problem::new(status.as_u16(), code, detail);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
