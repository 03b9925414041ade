//! What an answer must look like: a complete problem document for every 4xx, and a refusal of
//! every request that carries a NUL where the service reads it.

use reqwest::StatusCode;
use serde_json::Value;

use super::property::Answer;
use super::request::{Hostile, Route};

/// A NUL (U+0000) can never be stored (PostgreSQL's text refuses it), so a request that
/// carries one where the service reads it is refused: `%00` in the path or query with 400 on
/// every route, a NUL in any string or key of a JSON body on a route that reads its body with
/// a 4xx (422, or whatever refuses the request first: 401, 413, 415, ...). `OPTIONS` is
/// answered by the CORS layer, which reads nothing of the request.
pub(super) fn nul_not_refused(
    request: &Hostile,
    route: Route,
    status: StatusCode,
) -> Option<String> {
    if request.method == "OPTIONS" {
        return None;
    }
    if request.target.contains("%00") && status != StatusCode::BAD_REQUEST {
        return Some(format!(
            "%00 in the path or query answered {status}, not 400"
        ));
    }
    let reads_body = matches!(
        route,
        Route::Create | Route::Confirm | Route::Refund | Route::Webhook
    );
    let body_has_nul = request
        .body
        .as_deref()
        .and_then(|body| serde_json::from_slice::<Value>(body).ok())
        .is_some_and(|json| has_nul(&json));
    (reads_body && body_has_nul && !status.is_client_error())
        .then(|| format!("a JSON body with a NUL answered {status}, not a 4xx"))
}

fn has_nul(json: &Value) -> bool {
    match json {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A 4xx is `application/problem+json` with `type`, `title`, `status` (the HTTP status),
/// `detail` and `code`. HEAD answers carry no body, only the content type.
pub(super) fn check_problem(request: &Hostile, answer: &Answer) -> Result<(), String> {
    let content_type = answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/problem+json") {
        return Err(format!(
            "a {} whose content type is {content_type:?}, not application/problem+json",
            answer.status
        ));
    }
    if request.method == "HEAD" {
        return Ok(());
    }
    let body: Value = serde_json::from_str(&answer.text)
        .map_err(|e| format!("a problem document that is not JSON: {e}"))?;
    for field in ["type", "title", "detail", "code"] {
        if body[field].as_str().is_none_or(str::is_empty) {
            return Err(format!("problem field {field:?} missing or empty"));
        }
    }
    if body["status"].as_u64() != Some(u64::from(answer.status.as_u16())) {
        return Err(format!(
            "problem status {} differs from the HTTP status {}",
            body["status"], answer.status
        ));
    }
    Ok(())
}
