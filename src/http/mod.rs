//! The HTTP interface: routes, their OpenAPI description, and the layers around them.

mod auth;
mod billing;
mod concurrency;
mod consents;
mod dto;
mod extract;
mod headers;
mod metrics;
mod openapi;
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

use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, OnResponse as _, TraceLayer};
use utoipa::OpenApi;
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

/// What every route and layer is handed. Axum clones it for every layer of every request, so it
/// is one `Arc` (cloning the parts one by one was about 15 % of a confirm's instructions).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
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

/// Every route, with the one scope an API key needs for it (`None`: anyone may call it: the
/// confirm, which asks for the key itself when Toss does not verify it, Toss's redirects and
/// webhook, health and metrics). This is the only place a route's scope is declared.
fn all_routes() -> Vec<(Option<ApiScope>, UtoipaMethodRouter<AppState>)> {
    use ApiScope::{
        BillingWrite, EventsRead, PaymentsRead, PaymentsWrite, Reconciliation, RefundsWrite, Review,
    };
    vec![
        (Some(PaymentsWrite), routes!(payments::create_payment)),
        (Some(PaymentsRead), routes!(payments::list_payments)),
        (Some(PaymentsRead), routes!(payments::get_payment)),
        (Some(RefundsWrite), routes!(payments::refund_payment)),
        (Some(PaymentsWrite), routes!(payments::cancel_payment)),
        (Some(PaymentsRead), routes!(payments::list_refunds)),
        (Some(PaymentsRead), routes!(payments::list_attempts)),
        (Some(EventsRead), routes!(payments::list_payment_events)),
        (Some(Review), routes!(reviews::review_payment)),
        (Some(PaymentsRead), routes!(reviews::list_reviews)),
        (Some(BillingWrite), routes!(billing::create_customer)),
        (Some(BillingWrite), routes!(billing::issue_billing_key)),
        (Some(BillingWrite), routes!(billing::list_billing_keys)),
        (Some(BillingWrite), routes!(billing::get_billing_key)),
        (Some(BillingWrite), routes!(billing::delete_billing_key)),
        (Some(BillingWrite), routes!(billing::charge_payment)),
        (
            Some(BillingWrite),
            routes!(schedules::schedule_payment, schedules::cancel_schedule),
        ),
        (
            Some(BillingWrite),
            routes!(consents::create_consent, consents::list_consents),
        ),
        (Some(EventsRead), routes!(system::list_events)),
        (Some(Reconciliation), routes!(reconciliation::start_run)),
        (Some(Reconciliation), routes!(reconciliation::list_runs)),
        (Some(Reconciliation), routes!(reconciliation::get_run)),
        (None, routes!(payments::confirm_payment)),
        (None, routes!(redirects::toss_success)),
        (None, routes!(redirects::toss_fail)),
        (None, routes!(billing::billing_success)),
        (None, routes!(billing::billing_fail)),
        (None, routes!(webhooks::toss_webhook)),
        (None, routes!(system::health)),
        (None, routes!(system::ready)),
        (None, routes!(metrics::metrics)),
    ]
}

/// Every schema as each route registers it, by name, before the document keeps one per name.
/// Two types registered under one name would leave one of them undocumented; a test checks
/// that each name stands for one schema.
pub fn schema_registrations() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)> {
    all_routes()
        .into_iter()
        .flat_map(|(_, (schemas, _, _))| schemas)
        .collect()
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
    openapi::document_scope(router.get_openapi_mut(), scope);
    match guard {
        None => router,
        // One route layer of both: each layer of a router wraps every route in a boxed
        // service of its own, cloned for every request.
        Some(state) => router.route_layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(
                    (state.api_keys.clone(), scope),
                    auth::require_scope,
                ))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    idempotency::honour_key,
                )),
        ),
    }
}

/// The routes and their OpenAPI document. `guard`: the state whose API keys and idempotency
/// records the routes use when serving; `None` for the document alone.
fn api_parts(guard: Option<&AppState>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut privileged = OpenApiRouter::new();
    let mut public = OpenApiRouter::new();
    for (scope, routes) in all_routes() {
        match scope {
            Some(scope) => privileged = privileged.merge(scoped(guard, scope, routes)),
            None => public = public.routes(routes),
        }
    }
    if let Some(state) = guard {
        // Route layers run after routing, on matched routes only. The privileged routes carry
        // their own (`scoped`): the API key and its scope are checked before the Idempotency-Key.
        public = public.route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::honour_key,
        ));
    }
    let (routes, mut openapi) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(privileged)
        .merge(public)
        .split_for_parts();
    openapi::document_shared_answers(&mut openapi);
    (routes, openapi)
}

/// The OpenAPI document, as served at `/openapi.json` and committed as `openapi/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_parts(None).1
}

pub struct RouterSettings {
    pub request_timeout: Duration,
    /// Browser origins allowed by CORS; empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// Pages served beside the API, behind the same layers but neither in the OpenAPI
    /// document nor under its API keys (the operator console).
    pub pages: Router<AppState>,
}

pub fn router(state: AppState, settings: RouterSettings) -> Router {
    let (routes, openapi) = api_parts(Some(&state));
    let request_id = HeaderName::from_static("x-request-id");
    // The layers of every route, outermost first, applied as one: `Router::layer` wraps every
    // route in a boxed service per layer, and a request clones each of them (and, each layer
    // cloning what it wraps, the ones inside it again): one layer of ten was about 15 % of a
    // confirm's instructions.
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    let span = tracing::info_span!(
                        "request",
                        otel.kind = "server",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %request_id,
                        // Filled in by the service once it knows which payment this is.
                        payment_id = tracing::field::Empty,
                        order_id = tracing::field::Empty,
                        http.response.status_code = tracing::field::Empty,
                    );
                    crate::telemetry::continue_trace(&span, request.headers());
                    span
                })
                .on_response(
                    |response: &axum::response::Response,
                     latency: Duration,
                     span: &tracing::Span| {
                        span.record(
                            "http.response.status_code",
                            i64::from(response.status().as_u16()),
                        );
                        DefaultOnResponse::new().on_response(response, latency, span);
                    },
                ),
        )
        .layer(cors(&settings.cors_allowed_origins))
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        // Outside the panic and timeout layers, so their answers carry the headers too.
        .layer(CatchPanicLayer::new())
        .layer(middleware::map_response(problem::ensure_problem_json))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ))
        // Before the routes' own layers, so before the Idempotency-Key: a NUL never reaches the
        // database.
        .layer(middleware::map_request(extract::refuse_nul_in_target));
    routes
        .merge(SwaggerUi::new(headers::SWAGGER_UI).url("/openapi.json", openapi))
        .merge(settings.pages)
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(layers)
        .with_state(state)
}

/// The measurements, the concurrency limit and the headers every answer carries, in this
/// order, as one layer (each layer costs a request a boxed future and a clone of what it
/// wraps). The measurements see every answer, the limit's own 503 included; the limit is
/// outside everything that does work; the headers go on every answer the limit lets through.
async fn edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let measurement = metrics::Measurement::start(&request);
    let response = match concurrency::admit(&state, &request) {
        Err(busy) => busy.into_response(),
        // The permit is held until the answer is ready.
        Ok(_permit) => headers::secure(request, next).await,
    };
    measurement.record(&response);
    response
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
