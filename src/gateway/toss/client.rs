//! The HTTP client of Toss's core API: one `reqwest` client with its timeouts, the Basic
//! `Authorization` header, an `Idempotency-Key` per confirm and cancel, and one exchange per call
//! (send, read the whole reply, classify, log one line).

use std::error::Error as _;
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument as _;
use url::Url;

use super::errors::{classify, local_misconfiguration, unknown};
use super::transformers::{CancelBody, IssueBody, TossErrorBody, parse_billing, parse_payment};
use super::{Operation, call_span};
use crate::domain::{OrderId, PaymentKey};
use crate::gateway::{
    BillingGateway, CancelRequest, ChargeRequest, ConfirmRequest, GatewayError, IssueRequest,
    PaymentGateway, PgBillingKey, PgPayment, Timeouts,
};

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The most of one reply read from Toss's payment and billing API: a Payment, even with many
/// cancels, is a few kilobytes. A longer reply is not read further and counts as malformed.
pub(super) const MAX_REPLY_BYTES: usize = 1 << 20;
const TRACE_ID: &str = "X-TossPayments-Trace-Id";

/// What a call is, and its route (method and path template) for its span.
type Call = (Operation, &'static str);
const CONFIRM: Call = (Operation::Confirm, "POST /v1/payments/confirm");
const CANCEL: Call = (Operation::Cancel, "POST /v1/payments/{paymentKey}/cancel");
const BY_KEY: Call = (Operation::Lookup, "GET /v1/payments/{paymentKey}");
const BY_ORDER: Call = (Operation::Lookup, "GET /v1/payments/orders/{orderId}");
const ISSUE: Call = (Operation::Issue, "POST /v1/billing/authorizations/issue");
const CHARGE: Call = (Operation::Charge, "POST /v1/billing/{billingKey}");

#[derive(Debug, Clone)]
pub struct TossOptions {
    /// `https://api.tosspayments.com`; a path prefix and a trailing slash are allowed.
    pub api_url: String,
    /// Must belong to the same key set as the client key that opened the payment (`sk` with
    /// `ck`, `gsk` with `gck`), or Toss answers `UNAUTHORIZED_KEY`/`INVALID_API_KEY`.
    pub secret_key: SecretString,
    pub timeouts: Timeouts,
}

/// The Toss client. Cheap to share: hold it in an `Arc<dyn PaymentGateway>`.
pub struct TossClient {
    pub(super) http: reqwest::Client,
    base: Url,
    /// Marked sensitive, so `http` and reqwest print it as `Sensitive` should they ever try.
    pub(super) authorization: HeaderValue,
    pub(super) timeouts: Timeouts,
}

impl fmt::Debug for TossClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TossClient")
            .field("base", &self.base.as_str())
            .field("authorization", &"[REDACTED]")
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl TossClient {
    /// Fails with [`GatewayError::Misconfigured`] on a bad URL or key: better at start-up than on
    /// the first payment.
    pub fn new(settings: TossOptions) -> Result<Self, GatewayError> {
        let base = parse_base_url(&settings.api_url)?;
        let authorization = basic_authorization(&settings.secret_key)?;

        // reqwest is built with `rustls-no-provider`; a second install (tests, SeaORM) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeouts.connect)
            // A followed redirect would replay a confirm elsewhere or turn it into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|error| local_misconfiguration("HTTP_CLIENT", error_chain(&error)))?;

        Ok(Self {
            http,
            base,
            authorization,
            timeouts: settings.timeouts,
        })
    }

    pub(super) fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked by parse_base_url")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// A `POST /v1/…` with its JSON body and Toss `Idempotency-Key`, answered by a Payment.
    async fn post(
        &self,
        call: Call,
        segments: &[&str],
        idempotency_key: &str,
        body: &impl serde::Serialize,
        subject: Subject<'_>,
    ) -> Result<PgPayment, GatewayError> {
        let request = self.post_request(segments, idempotency_key, body)?;
        self.exchange(call, request, subject, parse_payment)
            .await?
            .ok_or_else(|| unknown("Toss reply carried no payment"))
    }

    fn post_request(
        &self,
        segments: &[&str],
        idempotency_key: &str,
        body: &impl serde::Serialize,
    ) -> Result<reqwest::RequestBuilder, GatewayError> {
        let url = self.endpoint(&[&["v1"], segments].concat());
        let key = idempotency_header(idempotency_key)?;
        Ok(self.http.post(url).header(IDEMPOTENCY_KEY, key).json(body))
    }

    /// A `GET /v1/payments/…`: `Ok(None)` when Toss has no such payment.
    async fn lookup(
        &self,
        call: Call,
        segments: &[&str],
        subject: Subject<'_>,
    ) -> Result<Option<PgPayment>, GatewayError> {
        let request = self
            .http
            .get(self.endpoint(&[&["v1", "payments"], segments].concat()));
        self.exchange(call, request, subject, parse_payment).await
    }

    /// Sends one request and reads the whole reply, a 2xx body through `parse`, in a span of
    /// its own, and logs one line. `Ok(None)` only for a lookup that Toss answers with "no such
    /// payment".
    async fn exchange<T>(
        &self,
        (operation, route): Call,
        request: reqwest::RequestBuilder,
        subject: Subject<'_>,
        parse: fn(&[u8]) -> Result<T, GatewayError>,
    ) -> Result<Option<T>, GatewayError> {
        let span = call_span(route, operation.as_str());
        let exchange = async {
            let started = Instant::now();
            let timeout = operation.timeout(&self.timeouts);
            let sent = request
                .header(AUTHORIZATION, self.authorization.clone())
                .timeout(timeout)
                .send()
                .await;

            let mut http_status = None;
            let mut trace_id = None;
            let received = match sent {
                Ok(response) => {
                    http_status = Some(response.status().as_u16());
                    trace_id = response
                        .headers()
                        .get(TRACE_ID)
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned);
                    read_capped(response, MAX_REPLY_BYTES).await
                }
                Err(error) => Err(error),
            };

            let mut code = None;
            let result = match (received, http_status) {
                (Err(error), _) => Err(transport_failure(&error, timeout)),
                (Ok(Reply::TooLarge), status) => Err(too_large(status, MAX_REPLY_BYTES)),
                (Ok(Reply::Body(body)), status) => parse_reply(
                    operation,
                    &body,
                    status.unwrap_or_default(),
                    parse,
                    &mut code,
                ),
            };

            if let Some(status) = http_status {
                span.record("http.response.status_code", i64::from(status));
            }
            if let Some(code) = &code {
                span.record("toss.error_code", code.as_str());
            }
            let (payment_key, order_id) = match subject {
                Subject::PaymentKey(key) => (Some(key), None),
                Subject::OrderId(id) => (None, Some(id)),
                Subject::Unnamed => (None, None),
            };
            // One line per call, at `info` when it succeeded and `warn` when not.
            macro_rules! log_line {
                ($level:ident, $($rest:tt)*) => {
                    tracing::$level!(
                        operation = operation.as_str(),
                        payment_key,
                        order_id,
                        http_status,
                        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        trace_id = trace_id.as_deref(),
                        code = code.as_deref(),
                        $($rest)*
                    )
                };
            }
            match &result {
                Ok(found) => log_line!(info, found = found.is_some(), "toss call succeeded"),
                Err(error) => {
                    log_line!(warn, outcome = ?error.outcome(), error = %error, "toss call failed")
                }
            }
            result
        };
        exchange.instrument(span.clone()).await
    }
}

/// A whole reply: a 2xx body through `parse`, anything else as Toss's error (its code, if it
/// has one, goes to `toss_code`).
fn parse_reply<T>(
    operation: Operation,
    body: &[u8],
    status: u16,
    parse: fn(&[u8]) -> Result<T, GatewayError>,
    toss_code: &mut Option<String>,
) -> Result<Option<T>, GatewayError> {
    if (200..300).contains(&status) {
        return parse(body).map(Some);
    }
    let error = serde_json::from_slice::<TossErrorBody>(body).ok();
    *toss_code = error.as_ref().map(|error| error.code.clone());
    let code = toss_code.as_deref();
    if operation == Operation::Lookup
        && status == 404
        && matches!(code, Some("NOT_FOUND_PAYMENT" | "NOT_FOUND"))
    {
        return Ok(None);
    }
    Err(toss_error(operation, status, error, body.len()))
}

/// A non-2xx reply of `len` bytes: Toss's error by its code, or unknown without a Toss error
/// body.
pub(super) fn toss_error(
    operation: Operation,
    status: u16,
    error: Option<TossErrorBody>,
    len: usize,
) -> GatewayError {
    match error {
        Some(error) => {
            let message = error.message.as_deref().unwrap_or_default();
            classify(status, &error.code, message, operation)
        }
        None => unknown(format!(
            "HTTP {status} without a Toss error body ({len} bytes)"
        )),
    }
}

/// A reply from Toss, read up to a cap.
pub(super) enum Reply {
    Body(Vec<u8>),
    /// Longer than the cap (by its `Content-Length`, or once that much was read): not read
    /// further, so a misbehaving peer cannot make us hold an unbounded body.
    TooLarge,
}

/// Reads `response`'s body, at most `cap` bytes of it.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Reply, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > cap as u64)
    {
        return Ok(Reply::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(Reply::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply::Body(body))
}

/// A reply over the cap, classified like a malformed reply: the outcome is unknown.
pub(super) fn too_large(http_status: Option<u16>, cap: usize) -> GatewayError {
    unknown(format!(
        "HTTP {} reply longer than {cap} bytes; not read",
        http_status.unwrap_or_default()
    ))
}

#[async_trait]
impl PaymentGateway for TossClient {
    fn provider(&self) -> Option<&'static str> {
        Some("toss")
    }

    async fn confirm(&self, request: &ConfirmRequest) -> Result<PgPayment, GatewayError> {
        let segments = ["payments", "confirm"];
        let subject = Subject::OrderId(request.order_id.as_str());
        self.post(
            CONFIRM,
            &segments,
            &request.idempotency_key,
            request,
            subject,
        )
        .await
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<PgPayment, GatewayError> {
        let payment_key = request.payment_key.as_str();
        let segments = ["payments", payment_key, "cancel"];
        let body = CancelBody::from(request);
        let subject = Subject::PaymentKey(payment_key);
        self.post(CANCEL, &segments, &request.idempotency_key, &body, subject)
            .await
    }

    async fn payment_by_key(
        &self,
        payment_key: &PaymentKey,
    ) -> Result<Option<PgPayment>, GatewayError> {
        let key = payment_key.as_str();
        self.lookup(BY_KEY, &[key], Subject::PaymentKey(key)).await
    }

    async fn payment_by_order(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<PgPayment>, GatewayError> {
        let id = order_id.as_str();
        self.lookup(BY_ORDER, &["orders", id], Subject::OrderId(id))
            .await
    }
}

/// Billing under the billing contract's key: a second client whose `secret_key` is
/// `TOSS_BILLING_SECRET_KEY` (or `TOSS_SECRET_KEY`). The billing key travels in the URL of a
/// charge, so no log line of these calls names the URL: they name the order (or the customer).
#[async_trait]
impl BillingGateway for TossClient {
    async fn issue_billing_key(
        &self,
        request: &IssueRequest,
    ) -> Result<PgBillingKey, GatewayError> {
        let segments = ["billing", "authorizations", "issue"];
        let call = self.post_request(
            &segments,
            &request.idempotency_key,
            &IssueBody::from(request),
        )?;
        // A customer key lets whoever knows it register cards for the buyer: not logged.
        self.exchange(ISSUE, call, Subject::Unnamed, parse_billing)
            .await?
            .ok_or_else(|| unknown("Toss reply carried no billing key"))
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<PgPayment, GatewayError> {
        let segments = ["billing", request.billing_key.expose()];
        let subject = Subject::OrderId(request.order_id.as_str());
        self.post(
            CHARGE,
            &segments,
            &request.idempotency_key,
            request,
            subject,
        )
        .await
    }

    fn decline_is_retryable(&self, code: &str) -> bool {
        super::errors::decline_is_retryable(code)
    }
}

pub(super) fn transport_failure(error: &reqwest::Error, timeout: Duration) -> GatewayError {
    if error.is_builder() {
        return local_misconfiguration("INVALID_REQUEST", error_chain(error));
    }
    let what = if error.is_timeout() {
        format!("no complete reply within {} ms", timeout.as_millis())
    } else if error.is_connect() {
        "could not connect to Toss".to_owned()
    } else {
        "transport error".to_owned()
    };
    unknown(format!("{what}: {}", error_chain(error)))
}

/// The error and its causes, without the URL that reqwest's own `Display` adds.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = String::from("request failed");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn parse_base_url(api_url: &str) -> Result<Url, GatewayError> {
    let url = Url::parse(api_url.trim())
        .map_err(|error| local_misconfiguration("INVALID_API_URL", error))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.cannot_be_a_base()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(local_misconfiguration(
            "INVALID_API_URL",
            format!("{url} is not an http(s) base URL"),
        ));
    }
    Ok(url)
}

fn basic_authorization(secret_key: &SecretString) -> Result<HeaderValue, GatewayError> {
    let key = secret_key.expose_secret();
    // A key pasted with a newline or a BOM encodes "fine" and then fails every call (§2.1).
    if key.is_empty() || key.trim() != key || key.contains('\u{feff}') {
        return Err(local_misconfiguration(
            "INVALID_SECRET_KEY",
            "the Toss secret key is empty or has surrounding whitespace or a BOM",
        ));
    }
    let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(format!("{key}:"))))
        .map_err(|_| local_misconfiguration("INVALID_SECRET_KEY", "unusable secret key"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn idempotency_header(key: &str) -> Result<HeaderValue, GatewayError> {
    // Toss checks the length (≤ 300) itself; an empty or non-ASCII key would not reach it intact.
    if key.is_empty() {
        return Err(local_misconfiguration(
            "INVALID_IDEMPOTENCY_KEY",
            "empty idempotency key",
        ));
    }
    HeaderValue::from_str(key).map_err(|_| {
        local_misconfiguration(
            "INVALID_IDEMPOTENCY_KEY",
            "idempotency key is not a valid header value",
        )
    })
}

/// What a call was about, for the log line. Payment keys and order ids are not secrets.
#[derive(Debug, Clone, Copy)]
enum Subject<'a> {
    PaymentKey(&'a str),
    OrderId(&'a str),
    Unnamed,
}

#[cfg(test)]
mod tests;
