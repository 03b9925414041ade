//! The operator console: HTML pages served by the service itself under `/console/` (templates
//! compiled into the binary from `templates/console/`, one embedded stylesheet, no script, nothing
//! from another host). Operators sign in with a name and password from `OPERATORS_FILE`; their
//! sessions and lockouts live in the database (`sessions`), so every instance honours them. The
//! pages read and act through the same service use cases as the API, acting for the operator.
//!
//! Like `http`, this is an edge: it may import service, store (its own tables), domain and
//! error. It takes no API key, and the API takes no console cookie.

mod actions;
mod auth;
mod chart;
mod operators;
mod pages;
mod sessions;
mod views;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

pub use operators::{Operators, hash_password};
pub use sessions::{IDLE_EXPIRY, LOCKOUT, MAX_FAILURES};

use crate::error::AppError;
use crate::service::{PaymentService, Reconciliation};
use crate::store::Store;

/// Where the console is served.
pub const BASE: &str = "/console";
const STYLESHEET: &str = include_str!("../../templates/console/console.css");
const ICON: &str = include_str!("../../templates/console/favicon.svg");

/// What the console's pages run with.
#[derive(Clone)]
pub struct Console {
    operators: Arc<Operators>,
    sessions: sessions::Sessions,
    service: PaymentService,
    reconciliation: Reconciliation,
    /// `Secure` on the session cookie: everywhere but on a loopback address (plain HTTP).
    secure_cookie: bool,
}

impl Console {
    pub fn new(
        operators: Operators,
        store: Store,
        service: PaymentService,
        reconciliation: Reconciliation,
        secure_cookie: bool,
    ) -> Self {
        Self {
            operators: Arc::new(operators),
            sessions: sessions::Sessions::new(store),
            service,
            reconciliation,
            secure_cookie,
        }
    }

    /// The console's routes, for any router state: none at all without operators, so every
    /// `/console` path then answers the API's 404.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        if self.operators.is_empty() {
            return Router::new();
        }
        Router::new()
            .route("/console", get(|| async { to(&format!("{BASE}/")) }))
            .route("/console/", get(pages::queue))
            .route(
                "/console/sign-in",
                get(auth::sign_in_form).post(auth::sign_in),
            )
            .route("/console/sign-out", post(auth::sign_out))
            .route("/console/payments", get(pages::payment_by_order))
            .route("/console/payments/{payment_id}", get(pages::payment))
            .route(
                "/console/payments/{payment_id}/review",
                post(actions::review),
            )
            .route("/console/reconciliation", get(pages::reconciliation))
            .route("/console/reconciliation/runs", post(actions::start_run))
            .route("/console/schedules", get(pages::schedules))
            .route("/console/assets/console.css", get(stylesheet))
            .route("/console/assets/favicon.svg", get(icon))
            .layer(middleware::from_fn(page_headers))
            .with_state(self)
    }
}

/// 303 See Other to `location` (after a form, or to the sign-in page).
fn to(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

async fn icon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], ICON).into_response()
}

/// Pages load nothing but this origin's stylesheet, run no script and are never framed.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A page rendered, or a plain error page if the template failed (it should not).
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "console template failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "an unexpected error occurred",
            )
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        status: status.as_u16(),
        message,
    };
    let html = page
        .render()
        .unwrap_or_else(|_| "<!doctype html><title>Error</title>".to_owned());
    (status, Html(html)).into_response()
}

/// What a page or an action answers when a use case refuses: the refusal as the API words it
/// (4xx), or a generic line for a 5xx, whose cause is logged and never shown.
pub(crate) struct Failure(AppError);

impl From<AppError> for Failure {
    fn from(error: AppError) -> Self {
        Self(error)
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(error: crate::store::StoreError) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            match &self.0 {
                AppError::Internal(cause) => tracing::error!(%cause, "console: internal error"),
                other => tracing::warn!(error = %other, "console: unavailable"),
            }
            let message = if status == StatusCode::SERVICE_UNAVAILABLE {
                "Toss or the database is unavailable or not configured; try again later"
            } else {
                "an unexpected error occurred"
            };
            return error_page(status, message);
        }
        error_page(status, &self.0.to_string())
    }
}
