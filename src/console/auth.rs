//! Signing in and out, the session cookie, and the CSRF check of every form.
//!
//! The session cookie carries a random token (its SHA-256 is the row in the database):
//! `HttpOnly; SameSite=Strict; Path=/console`, `Secure` unless the service listens on loopback.
//! Every form posts its page's `csrf_token`: the session's own once signed in; on the sign-in
//! form, the value of a short cookie set with the form (no session exists yet). A missing or
//! wrong token is refused 403 before anything else is looked at.

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::operators::{MAX_PASSWORD, valid_name};
use super::sessions::{Session, random_token};
use super::{BASE, Console, Failure, error_page, render, to};
use crate::domain::Actor;
use crate::service::PaymentService;

const SESSION_COOKIE: &str = "console_session";
const SIGN_IN_CSRF_COOKIE: &str = "console_sign_in_csrf";
const SIGN_IN: &str = "/console/sign-in";

/// A request of a signed-in operator (else the answer is 303 to the sign-in page).
pub struct SignedIn {
    pub session: Session,
    token: String,
}

impl SignedIn {
    /// The service acting for this operator: what it changes records `{"type":"operator"}`.
    pub fn service(&self, console: &Console) -> PaymentService {
        console
            .service
            .acting_for(Actor::operator(self.session.operator.clone()))
    }

    /// Whether a form's `csrf_token` is this session's (else: [`csrf_refused`], 403).
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        same_token(Some(&self.session.csrf_token), submitted)
    }
}

impl FromRequestParts<Console> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        // An API key opens nothing here: only the session cookie counts.
        let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else {
            return Err(to(SIGN_IN));
        };
        match console.sessions.find(&token).await {
            // An operator removed from OPERATORS_FILE is signed out with the next request.
            Ok(Some(session)) if console.operators.contains(&session.operator) => {
                Ok(Self { session, token })
            }
            Ok(_) => Err(to(SIGN_IN)),
            Err(error) => Err(Failure::from(error).into_response()),
        }
    }
}

/// The value of cookie `name` in the request, if it looks like one of our tokens.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn same_token(expected: Option<&str>, submitted: Option<&str>) -> bool {
    match (expected, submitted) {
        (Some(expected), Some(submitted)) => {
            expected.len() == submitted.len()
                && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
        }
        _ => false,
    }
}

pub fn csrf_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "이 양식은 만료되었거나 이 콘솔에서 보낸 것이 아닙니다 / This form is stale or was not sent from this console (CSRF token): reload the page and try again",
    )
}

impl Console {
    /// Adds a `Set-Cookie` of the console to `response`; no value: the cookie's removal.
    fn set_cookie(&self, response: &mut Response, name: &str, value: Option<&str>, path: &str) {
        let mut cookie = Cookie::build((name, value.unwrap_or_default()))
            .path(path)
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure_cookie)
            .build();
        if value.is_none() {
            cookie.make_removal();
        }
        let cookie = HeaderValue::from_str(&cookie.to_string())
            .expect("a cookie of hex tokens is a header value");
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
}

#[derive(askama::Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage<'a> {
    csrf_token: &'a str,
    name: &'a str,
    error: Option<&'a str>,
}

fn sign_in_page(
    console: &Console,
    status: StatusCode,
    name: &str,
    error: Option<&str>,
) -> Response {
    let token = random_token();
    let mut response = render(
        status,
        &SignInPage {
            csrf_token: &token,
            name,
            error,
        },
    );
    console.set_cookie(&mut response, SIGN_IN_CSRF_COOKIE, Some(&token), SIGN_IN);
    response
}

/// The form again, 401, saying why the sign-in was refused.
fn refused(console: &Console, name: &str, why: &str) -> Response {
    sign_in_page(console, StatusCode::UNAUTHORIZED, name, Some(why))
}

/// `GET /console/sign-in`: the form.
pub async fn sign_in_form(State(console): State<Console>) -> Response {
    sign_in_page(&console, StatusCode::OK, "", None)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default = "no_password")]
    password: SecretString,
    csrf_token: Option<String>,
}

fn no_password() -> SecretString {
    SecretString::from("")
}

const WRONG: &str = "이름 또는 비밀번호가 맞지 않습니다 / Wrong name or password (5 wrong passwords lock a name for 15 minutes)";
const LOCKED: &str = "잘못된 비밀번호가 너무 많아 잠겼습니다 / Locked after too many wrong passwords: try again in 15 minutes";

/// `POST /console/sign-in`: 303 to the review queue with the session cookie, or 401 with the
/// form again. A name with 5 wrong passwords in a row is locked for 15 minutes, its right
/// password refused too; every name counts, known or not, so the answers tell no names apart.
pub async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, Failure> {
    let expected = cookie_value(&headers, SIGN_IN_CSRF_COOKIE);
    if !same_token(expected.as_deref(), form.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let name = form.name.trim().to_owned();
    let password_len = form.password.expose_secret().len();
    if !valid_name(&name) || password_len == 0 || password_len > MAX_PASSWORD {
        return Ok(refused(&console, "", WRONG));
    }
    if console.sessions.locked_until(&name).await?.is_some() {
        tracing::warn!(operator = %name, "console sign-in refused: locked");
        return Ok(refused(&console, &name, LOCKED));
    }
    let operators = console.operators.clone();
    let (who, password) = (name.clone(), form.password);
    let right = tokio::task::spawn_blocking(move || operators.verify(&who, &password))
        .await
        .unwrap_or(false);
    if !right {
        tracing::warn!(operator = %name, "console sign-in refused: wrong name or password");
        console.sessions.record_failure(&name).await?;
        return Ok(refused(&console, &name, WRONG));
    }
    console.sessions.clear_failures(&name).await?;
    let token = console.sessions.create(&name).await?;
    tracing::info!(operator = %name, "console: signed in");
    let mut response = to(&format!("{BASE}/"));
    console.set_cookie(&mut response, SESSION_COOKIE, Some(&token), BASE);
    console.set_cookie(&mut response, SIGN_IN_CSRF_COOKIE, None, SIGN_IN);
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf_token: Option<String>,
}

/// `POST /console/sign-out`: the session ends on every instance; 303 to the sign-in page.
pub async fn sign_out(
    State(console): State<Console>,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Failure> {
    if !signed_in.csrf_ok(form.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    console.sessions.revoke(&signed_in.token).await?;
    tracing::info!(operator = %signed_in.session.operator, "console: signed out");
    let mut response = to(SIGN_IN);
    console.set_cookie(&mut response, SESSION_COOKIE, None, BASE);
    Ok(response)
}
