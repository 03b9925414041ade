//! What goes over the wire, per resource: request bodies and queries (parsed into domain types
//! at the edge) and responses (built from domain records). Field names are fixed by the API
//! contract. Here: what several resources share.

mod attempts;
mod billing;
mod events;
mod payments;
mod reconciliation;
mod refunds;
mod reviews;

pub use attempts::*;
pub use billing::*;
pub use events::*;
pub use payments::*;
pub use reconciliation::*;
pub use refunds::*;
pub use reviews::*;

use serde::Serialize;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{DomainError, Failure};
use crate::error::AppError;

pub use crate::domain::timestamps::text as timestamp;

/// The id a request body gives in `field`: a UUID, else 422.
pub fn body_id<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, AppError> {
    raw.parse()
        .map_err(|_| AppError::unprocessable(format!("{field}: must be a UUID")))
}

/// Text a person typed (names, reasons, notes): 1..`max` characters, no control character
/// (Unicode `Cc`; with `lines`, line feeds are allowed), and at least one character that is
/// neither a control character nor white space (what `str::trim` removes).
///
/// The OpenAPI document says the same with `minLength`/`maxLength` and a pattern: a field
/// checked here carries `pattern = "visible text"` (or `"visible lines"`) in its schema, which
/// [`document_text_rules`] writes out as [`VISIBLE_TEXT`] (or [`VISIBLE_LINES`]).
pub fn text(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    checked_text(field, value, max, false)
}

/// [`text`] that may hold line feeds.
pub fn lines(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    checked_text(field, value, max, true)
}

fn checked_text(
    field: &'static str,
    value: &str,
    max: usize,
    lines: bool,
) -> Result<String, DomainError> {
    if !(1..=max).contains(&value.chars().count()) {
        return Err(DomainError::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(lines && c == '\n'))
    {
        return Err(DomainError::new(
            field,
            "must not contain control characters",
        ));
    }
    if value.trim().is_empty() {
        return Err(DomainError::new(field, "must not be blank"));
    }
    Ok(value.to_owned())
}

pub fn optional_text(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    value.map(|v| text(field, &v, max)).transpose()
}

/// The pattern of [`text`].
const VISIBLE_TEXT: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$";
/// The pattern of [`lines`].
const VISIBLE_LINES: &str = r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$";

/// The rules of the ids and keys a request names, as the document writes them (the domain's
/// `parse` checks the same): a field or parameter of one names it as its `pattern`, and
/// [`document_text_rules`] writes out its `minLength`, `maxLength` and pattern, here once.
const NAMED_RULES: [(&str, usize, usize, &str); 6] = [
    ("user id", 1, 64, VISIBLE_TEXT),
    ("subscription id", 1, 128, VISIBLE_TEXT),
    ("order id", 6, 64, r"^[A-Za-z0-9_-]{6,64}$"),
    ("payment key", 1, 200, r"^(?!\.\.?$)[!-~]{1,200}$"),
    ("customer key", 2, 300, r"^[A-Za-z0-9=.,@_-]{2,300}$"),
    ("auth key", 1, 300, r"^[!-~]{1,300}$"),
];

/// Writes out the rules of the fields and parameters whose schema names them as its pattern:
/// `"visible text"` or `"visible lines"` (see [`text`]), or one of [`NAMED_RULES`].
pub fn document_text_rules(openapi: &mut utoipa::openapi::OpenApi) {
    fn fill(schema: &mut RefOr<Schema>) {
        if let RefOr::T(Schema::Object(object)) = schema {
            object.properties.values_mut().for_each(fill);
            match object.pattern.as_deref() {
                Some("visible text") => object.pattern = Some(VISIBLE_TEXT.to_owned()),
                Some("visible lines") => object.pattern = Some(VISIBLE_LINES.to_owned()),
                Some(name) => {
                    if let Some((_, min, max, pattern)) =
                        NAMED_RULES.iter().find(|(known, ..)| *known == name)
                    {
                        object.min_length = Some(*min);
                        object.max_length = Some(*max);
                        object.pattern = Some((*pattern).to_owned());
                    }
                }
                None => {}
            }
        }
    }
    if let Some(components) = openapi.components.as_mut() {
        components.schemas.values_mut().for_each(fill);
    }
    for item in openapi.paths.paths.values_mut() {
        for operation in super::openapi::operations(item) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter {
                    parameter.schema.as_mut().map(fill);
                }
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailureDto {
    pub code: String,
    pub message: String,
    /// Charges of a billing key only: whether charging the same card again later may pass
    /// (limit, balance, card company error) or never will (lost, stopped, expired card).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

impl From<&Failure> for FailureDto {
    fn from(f: &Failure) -> Self {
        Self {
            code: f.code.clone(),
            message: f.message.clone(),
            retryable: f.retryable,
        }
    }
}

/// The `Idempotency-Key` header of the POST routes (all but the webhook), as the idempotency
/// layer checks it: 1..255 printable ASCII characters (spaces inside the key are kept; HTTP drops
/// them at its ends), else 400 before anything else runs.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// 1..255 printable ASCII characters (else 400). A retry with the same key and body replays
    /// the first response; another body is 422 `IDEMPOTENCY_KEY_REUSED`; a duplicate still
    /// running is 409 `REQUEST_IN_PROGRESS`. Keys of callers with an API key are one namespace;
    /// a caller without one shares keys only with requests naming the same `payment_key`, and
    /// its key is ignored when the request names none.
    #[expect(
        dead_code,
        reason = "documentation only: the idempotency layer reads the header"
    )]
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[ -~]*[!-~][ -~]*$"
    )]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthDto {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "database": "ok", "pg_gateway": "toss"}))]
pub struct ReadyDto {
    pub status: String,
    pub database: String,
    /// `toss` or `noop`.
    pub pg_gateway: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_is_one_to_max_characters_not_blank_without_controls() {
        for (value, ok) in [
            ("a", true),
            (" 가 ", true),
            ("abcd", true),
            ("abcde", false),
            ("", false),
            ("  ", false),
            ("\u{3000}", false),
            ("a\nb", false),
            ("a\u{85}b", false),
        ] {
            assert_eq!(text("f", value, 4).is_ok(), ok, "{value:?}");
        }
        assert!(lines("f", "a\nb", 4).is_ok());
        assert!(lines("f", "\n", 4).is_err());
        assert!(lines("f", "a\tb", 4).is_err());
    }

    /// Every field and parameter checked by `text` or `lines`, or naming one of `NAMED_RULES`,
    /// documents its pattern.
    #[test]
    fn the_document_writes_out_every_named_pattern() {
        let doc = serde_json::to_string(&crate::http::openapi()).unwrap();
        assert!(!doc.contains("\"visible text\"") && !doc.contains("\"visible lines\""));
        for (name, ..) in NAMED_RULES {
            assert!(!doc.contains(&format!("\"{name}\"")), "{name}");
        }
        let count = |pattern: &str| {
            doc.matches(&serde_json::to_string(pattern).unwrap())
                .count()
        };
        assert_eq!((count(VISIBLE_TEXT), count(VISIBLE_LINES)), (16, 1));
    }
}
