//! The OpenAPI document's own parts: its description and security scheme, and the answers
//! every operation of a kind shares, documented here once rather than on each route.

use axum::http::Method;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, KnownFormat, OpenApi as Document, PathItem, Ref, RefOr, Required, Response,
    ResponseBuilder, SchemaFormat,
};
use utoipa::{IntoParams, Modify, OpenApi};

use super::auth::ApiScope;
use super::{PROBLEM_JSON, concurrency, dto};
use crate::idempotency;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "payment-service",
        description = "Payments through Toss Payments: create, confirm (from the web frontend or \
Toss's success redirect), refund (fully or partly, repeatedly), and the durable event log.\n\n\
Privileged routes need `Authorization: Bearer <api key>` (click **Authorize**) of a key with \
the scope each operation names (`payments:read`, `payments:write`, `refunds:write`, \
`billing:write`, `events:read`, `reconciliation`, `review`, `metrics:read`); a key without it is \
answered 403 `FORBIDDEN`. Errors are \
RFC 9457 problem documents (`application/problem+json`) with a machine-readable `code`: \
`VALIDATION_ERROR`, `UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND`, `DUPLICATE_ORDER_ID`, `INVALID_STATE`, \
`AMOUNT_MISMATCH`, `REFUND_EXCEEDS_BALANCE`, `REFUND_ACCOUNT_REQUIRED`, `PG_DECLINED` (with \
`retryable` for charges), `BILLING_KEY_INACTIVE`, `BILLING_KEY_MISMATCH`, `CONSENT_REQUIRED`, `PG_MISCONFIGURED`, \
`PG_RESPONSE_MISMATCH`, `PG_NOT_CONFIGURED`, `IDEMPOTENCY_KEY_REUSED`, `REQUEST_IN_PROGRESS`, \
`METHOD_NOT_ALLOWED`, `PAYLOAD_TOO_LARGE`, `UNSUPPORTED_MEDIA_TYPE`, `RATE_LIMITED`, \
`SERVICE_UNAVAILABLE`, `INTERNAL_ERROR`. PG errors add Toss's `pg_code` and `pg_message` verbatim.\n\n\
Amounts are integers in KRW, written as JSON integers (`15000`; `15000.0` and `1.5e4` are refused). \
Timestamps are RFC 3339 UTC.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "payments", description = "Create, read, confirm and refund payments"),
        (name = "toss redirects", description = "Where Toss sends the buyer's browser, and its webhooks"),
        (name = "billing", description = "Subscriptions through Toss billing (자동결제): customer keys, billing keys, charges"),
        (name = "events", description = "The durable event log"),
        (name = "reconciliation", description = "Our books checked against Toss's transactions and settlements, per KST day"),
        (name = "system", description = "Health and readiness"),
    )
)]
pub(super) struct ApiDoc;

/// The 502 of every route that calls Toss: Toss refused our key, or its reply contradicts ours.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 502,
    description = "`PG_MISCONFIGURED` or `PG_RESPONSE_MISMATCH`"
)]
pub(super) struct PgFailed;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(
            "An API key: one of `API_KEYS` (every scope) or of `API_KEYS_FILE` (the scopes its \
             entry lists). Each operation's requirement names the scope it needs."
                .to_owned(),
        );
        components.add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// The answers of the edge and of its layers, in `openapi` as `super::api_parts` built it.
pub(super) fn document_shared_answers(openapi: &mut Document) {
    dto::document_text_rules(openapi);
    document_ids_in_paths(openapi);
    document_json_bodies(openapi);
    document_nul_refusal(openapi);
    document_edge_answers(openapi);
    dto::document_one_payment_ref(openapi);
    document_problem_bodies(openapi);
}

/// Every 4xx and 5xx is a problem document (`problem::ensure_problem_json`): an answer a route
/// declares without a body gets the `Problem` one, in this one place.
fn document_problem_bodies(openapi: &mut Document) {
    for operation in openapi.paths.paths.values_mut().flat_map(operations) {
        for (status, response) in &mut operation.responses.responses {
            if let RefOr::T(response) = response
                && (status.starts_with('4') || status.starts_with('5'))
                && response.content.is_empty()
            {
                response.content = problem(&response.description).content;
            }
        }
    }
}

/// Each operation of `openapi` needs an API key with `scope`: its security requirement lists
/// the scope, its description says so, and it documents the 401 and the 403.
pub(super) fn document_scope(openapi: &mut Document, scope: ApiScope) {
    let scope = scope.as_str();
    for operation in openapi.paths.paths.values_mut().flat_map(operations) {
        operation.security = Some(vec![SecurityRequirement::new("api_key", [scope])]);
        let line = format!("Needs an API key with the scope `{scope}`.");
        operation.description = Some(match operation.description.take() {
            Some(text) if !text.is_empty() => format!("{text}\n\n{line}"),
            _ => line,
        });
        let responses = &mut operation.responses.responses;
        responses.insert("401".to_owned(), problem("Missing or wrong API key").into());
        let forbidden = format!("`FORBIDDEN`: the API key lacks the scope `{scope}`");
        responses.insert("403".to_owned(), problem(&forbidden).into());
    }
}

pub(super) fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

fn problem(description: &str) -> Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content)
        .build()
}

/// A problem answer with a `Retry-After` header of seconds, described as `what`.
fn problem_to_retry(description: &str, what: &str) -> Response {
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0));
    let mut response = problem(description);
    let header = HeaderBuilder::new()
        .schema(Some(seconds))
        .description(Some(what.to_owned()))
        .build();
    response
        .headers
        .insert("Retry-After".to_owned(), RefOr::T(header));
    response
}

/// Documents `text` as an answer of `operation` with `status`: one more case of the answer it
/// declares already, or a problem of its own.
fn answer(operation: &mut Operation, status: &str, text: &str) {
    match operation.responses.responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            response.description = format!("{}; or {text}", response.description);
        }
        _ => {
            let response = problem(text).into();
            operation
                .responses
                .responses
                .insert(status.to_owned(), response);
        }
    }
}

/// Every path that names a payment, a billing key or a run by its id documents that parameter,
/// and (unless the operation says more) the 404 of an id that names none, in this one place.
fn document_ids_in_paths(openapi: &mut Document) {
    const IDS: [(&str, &str); 3] = [
        ("payment_id", "payment"),
        ("billing_key_id", "billing key"),
        ("run_id", "run"),
    ];
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (name, what) in IDS
            .into_iter()
            .filter(|(name, _)| path.contains(&format!("{{{name}}}")))
        {
            let uuid = ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
            let parameter = ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(format!("The {what}'s id")))
                .schema(Some(uuid))
                .build();
            for operation in operations(item) {
                // In place of the bare one utoipa derives from the path.
                let parameters = operation.parameters.get_or_insert_with(Vec::new);
                parameters.retain(|known| !matches!(known, RefOr::T(known) if known.name == name));
                parameters.insert(0, RefOr::T(parameter.clone()));
                if !operation.responses.responses.contains_key("404") {
                    answer(operation, "404", &format!("`NOT_FOUND`: no such {what}"));
                }
            }
        }
    }
}

/// Every POST but Toss's webhook reads a JSON object (`extract::AppJson`) behind the
/// `Idempotency-Key` layer (`idempotency::guards`), so each documents the header and their
/// refusals, in this one place.
fn document_json_bodies(openapi: &mut Document) {
    let header = dto::IdempotencyKeyHeader::into_params(|| Some(ParameterIn::Header));
    for (path, item) in openapi.paths.paths.iter_mut() {
        let Some(operation) = item.post.as_mut() else {
            continue;
        };
        if !idempotency::guards(&Method::POST, path) {
            continue;
        }
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        parameters.extend(header.iter().cloned().map(RefOr::T));
        for (status, text) in [
            (
                "400",
                "`VALIDATION_ERROR`: malformed JSON, or an `Idempotency-Key` that is not 1..255 \
                 printable ASCII",
            ),
            (
                "409",
                "`REQUEST_IN_PROGRESS`: a request under the same `Idempotency-Key` is still running",
            ),
            (
                "413",
                "`PAYLOAD_TOO_LARGE`: the body is over `server.body_limit_bytes`",
            ),
            ("415", "`UNSUPPORTED_MEDIA_TYPE`: the body is not JSON"),
            (
                "422",
                "`IDEMPOTENCY_KEY_REUSED`: the `Idempotency-Key` was used with another body",
            ),
        ] {
            answer(operation, status, text);
        }
    }
}

/// Every route refuses `%00` in its path or query (`extract::refuse_nul_in_target`), so every
/// operation documents that 400, in this one place.
fn document_nul_refusal(openapi: &mut Document) {
    for operation in openapi.paths.paths.values_mut().flat_map(operations) {
        answer(
            operation,
            "400",
            "`VALIDATION_ERROR`: `%00` (NUL) in the path or query",
        );
    }
}

/// Every operation may be answered by the edge's own limits (`rate_limit`, `concurrency`), so
/// every operation documents them, in this one place: 429 `RATE_LIMITED` for a request without
/// a valid API key from an address over its limit, 503 `SERVICE_UNAVAILABLE` when the service
/// is serving as many requests as it may (but `/health`).
fn document_edge_answers(openapi: &mut Document) {
    const BUSY: &str = "`SERVICE_UNAVAILABLE`: the service is serving as many requests at once as \
        it may (`limits.max_concurrent_requests`); retry after `Retry-After` seconds";
    const LIMITED: &str = "`RATE_LIMITED`: a request without a valid API key, from an address \
        over its limit (`limits.public_requests_per_sec`, `limits.public_burst`)";
    for (path, item) in openapi.paths.paths.iter_mut() {
        let busy_refused = path != concurrency::LIVENESS;
        for operation in operations(item) {
            let responses = &mut operation.responses.responses;
            match responses.get_mut("503") {
                _ if !busy_refused => {}
                Some(RefOr::T(response)) => {
                    response.description = format!("{}; or {BUSY}", response.description);
                }
                _ => {
                    let response = problem_to_retry(BUSY, "Seconds to wait");
                    responses.insert("503".to_owned(), response.into());
                }
            }
            let wait = "Seconds until a request from this address is let through again";
            responses.insert("429".to_owned(), problem_to_retry(LIMITED, wait).into());
        }
    }
}
