//! The HTTP interface: routes, their OpenAPI description, and the layers around them.

mod auth;
mod billing;
mod concurrency;
mod consents;
mod dto;
mod extract;
mod headers;
mod metrics;
mod payments;
mod problem;
mod rate_limit;
mod reconciliation;
mod redirects;
mod reviews;
mod schedules;
mod system;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::{Router, middleware};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use auth::{ApiKeys, ApiScope, KeyHolder};
pub use concurrency::ConcurrencyLimit;
pub use problem::{PROBLEM_JSON, Problem};
pub use rate_limit::PublicRateLimit;

use crate::config::RedirectSettings;
use crate::idempotency::{self, Idempotency};
use crate::service::{PaymentService, Reconciliation};

#[derive(Clone)]
pub struct AppState {
    pub service: PaymentService,
    pub reconciliation: Reconciliation,
    pub idempotency: Idempotency,
    pub api_keys: Arc<ApiKeys>,
    pub redirect: Arc<RedirectSettings>,
    pub body_limit: usize,
    pub rate_limit: PublicRateLimit,
    pub concurrency: ConcurrencyLimit,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Whether a relay publishes the outbox (then its lag is worth a metric).
    pub outbox_relayed: bool,
}

impl FromRef<AppState> for Idempotency {
    fn from_ref(state: &AppState) -> Self {
        state.idempotency.clone()
    }
}

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
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
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

/// The routes that need an API key (internal services, back office), each with the one scope
/// it needs: this is the only place a route's scope is declared. `guard`: the state whose API
/// keys and idempotency records the routes use when serving; `None` for the document alone.
fn privileged_routes(guard: Option<&AppState>) -> OpenApiRouter<AppState> {
    use ApiScope::{
        BillingWrite, EventsRead, PaymentsRead, PaymentsWrite, Reconciliation, RefundsWrite, Review,
    };
    let scoped = |scope, routes| scoped(guard, scope, routes);
    OpenApiRouter::new()
        .merge(scoped(PaymentsWrite, routes!(payments::create_payment)))
        .merge(scoped(PaymentsRead, routes!(payments::list_payments)))
        .merge(scoped(PaymentsRead, routes!(payments::get_payment)))
        .merge(scoped(RefundsWrite, routes!(payments::refund_payment)))
        .merge(scoped(PaymentsWrite, routes!(payments::cancel_payment)))
        .merge(scoped(PaymentsRead, routes!(payments::list_refunds)))
        .merge(scoped(PaymentsRead, routes!(payments::list_attempts)))
        .merge(scoped(EventsRead, routes!(payments::list_payment_events)))
        .merge(scoped(Review, routes!(reviews::review_payment)))
        .merge(scoped(PaymentsRead, routes!(reviews::list_reviews)))
        .merge(scoped(BillingWrite, routes!(billing::create_customer)))
        .merge(scoped(BillingWrite, routes!(billing::issue_billing_key)))
        .merge(scoped(BillingWrite, routes!(billing::list_billing_keys)))
        .merge(scoped(BillingWrite, routes!(billing::get_billing_key)))
        .merge(scoped(BillingWrite, routes!(billing::delete_billing_key)))
        .merge(scoped(BillingWrite, routes!(billing::charge_payment)))
        .merge(scoped(
            BillingWrite,
            routes!(schedules::schedule_payment, schedules::cancel_schedule),
        ))
        .merge(scoped(
            BillingWrite,
            routes!(consents::create_consent, consents::list_consents),
        ))
        .merge(scoped(EventsRead, routes!(system::list_events)))
        .merge(scoped(Reconciliation, routes!(reconciliation::start_run)))
        .merge(scoped(Reconciliation, routes!(reconciliation::list_runs)))
        .merge(scoped(Reconciliation, routes!(reconciliation::get_run)))
}

/// `routes` behind an API key with `scope`: documented as the security requirement `api_key`
/// with that scope (and a 403), and, when serving, guarded by the API-key layer (401, 403) in
/// front of the `Idempotency-Key` layer, so a refused request is never stored as an answer.
fn scoped(
    guard: Option<&AppState>,
    scope: ApiScope,
    routes: UtoipaMethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new().routes(routes);
    document_scope(router.get_openapi_mut(), scope);
    match guard {
        None => router,
        Some(state) => router
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                idempotency::honour_key,
            ))
            .route_layer(middleware::from_fn_with_state(
                (state.api_keys.clone(), scope),
                auth::require_scope,
            )),
    }
}

/// Each operation of `openapi` needs an API key with `scope`: its security requirement lists
/// the scope, its description says so, and it documents the 403.
fn document_scope(openapi: &mut utoipa::openapi::OpenApi, scope: ApiScope) {
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    for item in openapi.paths.paths.values_mut() {
        for operation in operations(item) {
            operation.security = Some(vec![SecurityRequirement::new("api_key", [scope.as_str()])]);
            let line = format!("Needs an API key with the scope `{}`.", scope.as_str());
            operation.description = Some(match operation.description.take() {
                Some(text) if !text.is_empty() => format!("{text}\n\n{line}"),
                _ => line,
            });
            let problem = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(format!(
                    "`FORBIDDEN`: the API key lacks the scope `{}`",
                    scope.as_str()
                ))
                .content(PROBLEM_JSON, problem)
                .build();
            operation
                .responses
                .responses
                .insert("403".to_owned(), RefOr::T(response));
        }
    }
}

/// The operations of a path.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
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

/// The routes anyone may call: the confirm (which asks for the API key itself when Toss does
/// not verify it), Toss's redirects and webhook, health and metrics.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(payments::confirm_payment))
        .routes(routes!(redirects::toss_success))
        .routes(routes!(redirects::toss_fail))
        .routes(routes!(billing::billing_success))
        .routes(routes!(billing::billing_fail))
        .routes(routes!(webhooks::toss_webhook))
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(metrics::metrics))
}

fn api(
    privileged: OpenApiRouter<AppState>,
    public: OpenApiRouter<AppState>,
) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(privileged)
        .merge(public)
}

/// The routes and their OpenAPI document.
fn api_parts(
    privileged: OpenApiRouter<AppState>,
    public: OpenApiRouter<AppState>,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut openapi) = api(privileged, public).split_for_parts();
    document_nul_refusal(&mut openapi);
    document_edge_answers(&mut openapi);
    dto::document_one_payment_ref(&mut openapi);
    (routes, openapi)
}

/// The OpenAPI document, as served at `/openapi.json` and committed as `openapi/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_parts(privileged_routes(None), public_routes()).1
}

/// Every route refuses `%00` in its path or query (`extract::refuse_nul_in_target`), so every
/// operation documents that 400, in this one place.
fn document_nul_refusal(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    const WHY: &str = "`%00` (NUL) in the path or query";
    for item in openapi.paths.paths.values_mut() {
        for operation in operations(item) {
            match operation.responses.responses.get_mut("400") {
                Some(RefOr::T(response)) => {
                    response.description = format!("{}; or {WHY}", response.description);
                }
                _ => {
                    let problem = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build();
                    let response = ResponseBuilder::new()
                        .description(format!("`VALIDATION_ERROR`: {WHY}"))
                        .content(PROBLEM_JSON, problem)
                        .build();
                    operation
                        .responses
                        .responses
                        .insert("400".to_owned(), RefOr::T(response));
                }
            }
        }
    }
}

/// Every operation may be answered by the edge's own limits (`rate_limit`, `concurrency`), so
/// every operation documents them, in this one place: 429 `RATE_LIMITED` for a request without
/// a valid API key from an address over its limit, 503 `SERVICE_UNAVAILABLE` when the service
/// is serving as many requests as it may.
fn document_edge_answers(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    const BUSY: &str = "`SERVICE_UNAVAILABLE`: the service is serving as many requests at once as \
        it may (`limits.max_concurrent_requests`); retry after `Retry-After` seconds";
    const LIMITED: &str = "`RATE_LIMITED`: a request without a valid API key, from an address \
        over its limit (`limits.public_requests_per_sec`, `limits.public_burst`)";
    let problem = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build()
    };
    let retry_after = |what: &str| {
        HeaderBuilder::new()
            .schema(Some(
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(0)),
            ))
            .description(Some(what.to_owned()))
            .build()
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        let busy_refused = path != concurrency::LIVENESS;
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            match responses.get_mut("503") {
                _ if !busy_refused => {}
                Some(RefOr::T(response)) => {
                    response.description = format!("{}; or {BUSY}", response.description);
                }
                _ => {
                    let response = ResponseBuilder::new()
                        .description(BUSY)
                        .content(PROBLEM_JSON, problem())
                        .header("Retry-After", retry_after("Seconds to wait"))
                        .build();
                    responses.insert("503".to_owned(), RefOr::T(response));
                }
            }
            if !responses.contains_key("429") {
                let response = ResponseBuilder::new()
                    .description(LIMITED)
                    .content(PROBLEM_JSON, problem())
                    .header(
                        "Retry-After",
                        retry_after(
                            "Seconds until a request from this address is let through again",
                        ),
                    )
                    .build();
                responses.insert("429".to_owned(), RefOr::T(response));
            }
        }
    }
}

pub struct RouterSettings {
    pub request_timeout: Duration,
    /// Browser origins allowed by CORS; empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
}

pub fn router(state: AppState, settings: RouterSettings) -> Router {
    // Route layers run after routing, on matched routes only. The privileged routes carry their
    // own (`scoped`): the API key and its scope are checked before the Idempotency-Key.
    let privileged = privileged_routes(Some(&state));
    let public = public_routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        idempotency::honour_key,
    ));
    let (routes, openapi) = api_parts(privileged, public);
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .merge(SwaggerUi::new(headers::SWAGGER_UI).url("/openapi.json", openapi))
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        // Before routing, so before the Idempotency-Key: a NUL never reaches the database.
        .layer(middleware::from_fn(extract::refuse_nul_in_target))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout,
        ))
        .layer(middleware::from_fn(problem::ensure_problem_json))
        .layer(CatchPanicLayer::new())
        // Outside the panic and timeout layers, so their answers carry them too.
        .layer(middleware::from_fn(headers::secure))
        // Outside everything that does work, inside the measurements: a 503 of its own counts.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            concurrency::limit,
        ))
        .layer(middleware::from_fn(metrics::track))
        .layer(cors(&settings.cors_allowed_origins))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                    // Filled in by the service once it knows which payment this is.
                    payment_id = tracing::field::Empty,
                    order_id = tracing::field::Empty,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| match HeaderValue::from_str(origin) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(%origin, "ignoring a CORS origin that is not a header value");
                None
            }
        })
        .collect();
    if origins.is_empty() {
        // No origin is allowed: without CORS headers browsers refuse cross-origin calls.
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static(idempotency::HEADER),
        ])
        .expose_headers([HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600))
}
