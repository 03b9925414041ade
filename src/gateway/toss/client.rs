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
use url::Url;

use super::Operation;
use super::errors::{classify, local_misconfiguration, unknown};
use super::transformers::{
    CancelBody, ChargeBody, ConfirmBody, IssueBody, TossErrorBody, parse_billing, parse_payment,
};
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

    /// Sends one request and reads the whole reply as a Payment. `Ok(None)` only for a lookup
    /// that Toss answers with "no such payment".
    async fn exchange(
        &self,
        operation: Operation,
        request: reqwest::RequestBuilder,
        subject: Subject<'_>,
    ) -> Result<Option<PgPayment>, GatewayError> {
        self.exchange_as(operation, request, subject, parse_payment)
            .await
    }

    /// Sends one request and reads the whole reply, a 2xx body through `parse`.
    async fn exchange_as<T>(
        &self,
        operation: Operation,
        request: reqwest::RequestBuilder,
        subject: Subject<'_>,
        parse: fn(&[u8]) -> Result<T, GatewayError>,
    ) -> Result<Option<T>, GatewayError> {
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

        let mut toss_code = None;
        let result = match (received, http_status) {
            (Err(error), _) => Err(transport_failure(&error, timeout)),
            (Ok(Reply::TooLarge), status) => Err(too_large(status, MAX_REPLY_BYTES)),
            (Ok(Reply::Body(body)), status) => parse_reply(
                operation,
                &body,
                status.unwrap_or_default(),
                parse,
                &mut toss_code,
            ),
        };

        log_call(&CallLog {
            operation,
            subject,
            http_status,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            trace_id: trace_id.as_deref(),
            code: toss_code.as_deref(),
            result: result.as_ref().map(Option::is_some),
        });
        result
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
    match serde_json::from_slice::<TossErrorBody>(body) {
        Ok(error) => {
            let result = if operation == Operation::Lookup
                && status == 404
                && matches!(error.code.as_str(), "NOT_FOUND_PAYMENT" | "NOT_FOUND")
            {
                Ok(None)
            } else {
                let message = error.message.as_deref().unwrap_or_default();
                Err(classify(status, &error.code, message, operation))
            };
            *toss_code = Some(error.code);
            result
        }
        Err(_) => Err(unknown(format!(
            "HTTP {status} without a Toss error body ({} bytes)",
            body.len()
        ))),
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
        let idempotency_key = idempotency_header(&request.idempotency_key)?;
        let body = ConfirmBody::from(request);
        let call = self
            .http
            .post(self.endpoint(&["v1", "payments", "confirm"]))
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .json(&body);
        let subject = Subject::OrderId(request.order_id.as_str());
        expect_payment(self.exchange(Operation::Confirm, call, subject).await?)
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<PgPayment, GatewayError> {
        let payment_key = request.payment_key.as_str();
        let idempotency_key = idempotency_header(&request.idempotency_key)?;
        let body = CancelBody::from(request);
        let call = self
            .http
            .post(self.endpoint(&["v1", "payments", payment_key, "cancel"]))
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .json(&body);
        let subject = Subject::PaymentKey(payment_key);
        expect_payment(self.exchange(Operation::Cancel, call, subject).await?)
    }

    async fn payment_by_key(
        &self,
        payment_key: &PaymentKey,
    ) -> Result<Option<PgPayment>, GatewayError> {
        let payment_key = payment_key.as_str();
        let call = self
            .http
            .get(self.endpoint(&["v1", "payments", payment_key]));
        self.exchange(Operation::Lookup, call, Subject::PaymentKey(payment_key))
            .await
    }

    async fn payment_by_order(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<PgPayment>, GatewayError> {
        let order_id = order_id.as_str();
        let call = self
            .http
            .get(self.endpoint(&["v1", "payments", "orders", order_id]));
        self.exchange(Operation::Lookup, call, Subject::OrderId(order_id))
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
        let idempotency_key = idempotency_header(&request.idempotency_key)?;
        let call = self
            .http
            .post(self.endpoint(&["v1", "billing", "authorizations", "issue"]))
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .json(&IssueBody::from(request));
        // A customer key lets whoever knows it register cards for the buyer: not logged.
        let subject = Subject::Unnamed;
        self.exchange_as(Operation::Issue, call, subject, parse_billing)
            .await?
            .ok_or_else(|| unknown("Toss reply carried no billing key".to_owned()))
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<PgPayment, GatewayError> {
        let idempotency_key = idempotency_header(&request.idempotency_key)?;
        let call = self
            .http
            .post(self.endpoint(&["v1", "billing", request.billing_key.expose()]))
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .json(&ChargeBody::from(request));
        let subject = Subject::OrderId(request.order_id.as_str());
        expect_payment(self.exchange(Operation::Charge, call, subject).await?)
    }

    async fn read_back_charge(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<PgPayment>, GatewayError> {
        PaymentGateway::payment_by_order(self, order_id).await
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

fn expect_payment(answer: Option<PgPayment>) -> Result<PgPayment, GatewayError> {
    answer.ok_or_else(|| unknown("Toss reply carried no payment".to_owned()))
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

struct CallLog<'a> {
    operation: Operation,
    subject: Subject<'a>,
    http_status: Option<u16>,
    elapsed_ms: u64,
    trace_id: Option<&'a str>,
    code: Option<&'a str>,
    /// Whether a reply carried the thing asked for, or why not.
    result: Result<bool, &'a GatewayError>,
}

fn log_call(call: &CallLog<'_>) {
    let (payment_key, order_id) = match call.subject {
        Subject::PaymentKey(key) => (Some(key), None),
        Subject::OrderId(id) => (None, Some(id)),
        Subject::Unnamed => (None, None),
    };
    let operation = call.operation.as_str();
    match call.result {
        Ok(found) => tracing::info!(
            operation,
            payment_key,
            order_id,
            http_status = call.http_status,
            elapsed_ms = call.elapsed_ms,
            trace_id = call.trace_id,
            code = call.code,
            found,
            "toss call succeeded"
        ),
        Err(error) => tracing::warn!(
            operation,
            payment_key,
            order_id,
            http_status = call.http_status,
            elapsed_ms = call.elapsed_ms,
            trace_id = call.trace_id,
            code = call.code,
            outcome = ?error.outcome(),
            error = %error,
            "toss call failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone as _, Utc};
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use crate::gateway::PgStatus;
    use crate::gateway::toss::fixtures::{CANCELED, CONFIRMED};

    const SECRET: &str = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R";
    const EXPECTED_AUTH: &str = "Basic dGVzdF9za196WExrS0V5cE5BcldtbzUwblgzbG1lYXhZRzVSOg==";

    fn settings(api_url: &str, read: Duration) -> TossOptions {
        TossOptions {
            api_url: api_url.to_owned(),
            secret_key: SecretString::from(SECRET),
            timeouts: Timeouts {
                connect: Duration::from_secs(2),
                read,
                lookup: read,
            },
        }
    }

    fn client(api_url: &str) -> TossClient {
        TossClient::new(settings(api_url, Duration::from_secs(5))).expect("client builds")
    }

    fn key(value: &str) -> PaymentKey {
        PaymentKey::parse(value).unwrap()
    }

    fn order(value: &str) -> OrderId {
        OrderId::parse(value).unwrap()
    }

    fn confirm_request() -> ConfirmRequest {
        ConfirmRequest {
            payment_key: key("5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1"),
            order_id: order("MC4wODU4ODQwMzg4NDk0"),
            amount: 1000,
            idempotency_key: "confirm-attempt-1".to_owned(),
        }
    }

    fn toss_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!({
            "code": code,
            "message": message,
            "data": null,
        }))
    }

    /// Confirm against a server that answers every request with `response`.
    async fn confirm_answered_with(response: ResponseTemplate) -> Result<PgPayment, GatewayError> {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(&server)
            .await;
        client(&server.uri()).confirm(&confirm_request()).await
    }

    fn assert_unknown_without_code(result: Result<PgPayment, GatewayError>) -> String {
        match result {
            Err(GatewayError::Unknown {
                reason,
                code: None,
                message: None,
            }) => reason,
            other => panic!("expected Unknown without a code, got {other:?}"),
        }
    }

    #[test]
    fn authorization_is_basic_of_key_and_colon() {
        let value = basic_authorization(&SecretString::from(SECRET)).unwrap();
        assert_eq!(value.to_str().unwrap(), EXPECTED_AUTH);
        assert!(value.is_sensitive());
    }

    #[tokio::test]
    async fn sends_the_exact_authorization_header() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/payments/pk_1"))
            .and(header("Authorization", EXPECTED_AUTH))
            .respond_with(ResponseTemplate::new(200).set_body_string(CONFIRMED))
            .expect(1)
            .mount(&server)
            .await;

        // Trailing slash on the base URL must not double the slash.
        let found = client(&format!("{}/", server.uri()))
            .payment_by_key(&key("pk_1"))
            .await
            .unwrap();
        assert!(found.is_some());
    }

    #[tokio::test]
    async fn confirm_sends_exact_body_and_idempotency_key_and_parses_payment() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payments/confirm"))
            .and(header("Idempotency-Key", "confirm-attempt-1"))
            .and(header("Content-Type", "application/json"))
            .and(body_json(json!({
                "paymentKey": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
                "orderId": "MC4wODU4ODQwMzg4NDk0",
                "amount": 1000,
            })))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("X-TossPayments-Trace-Id", "trace-1")
                    .set_body_raw(CONFIRMED, "application/json"),
            )
            .expect(1)
            .mount(&server)
            .await;

        let payment = client(&server.uri())
            .confirm(&confirm_request())
            .await
            .unwrap();

        let sent = &server.received_requests().await.unwrap()[0];
        assert_eq!(
            String::from_utf8_lossy(&sent.body),
            r#"{"paymentKey":"5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1","orderId":"MC4wODU4ODQwMzg4NDk0","amount":1000}"#
        );
        assert_eq!(payment.status, PgStatus::Done);
        assert_eq!(payment.total_amount, Some(1000));
        assert_eq!(payment.balance_amount, Some(1000));
        assert_eq!(
            payment.payment_key.as_str(),
            "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1"
        );
        assert_eq!(payment.order_id, "MC4wODU4ODQwMzg4NDk0");
        assert_eq!(payment.currency.as_deref(), Some("KRW"));
        assert_eq!(payment.method.as_deref(), Some("카드"));
        assert_eq!(
            payment.last_transaction_key.as_deref(),
            Some("9C62B18EEF0DE3EB7F4422EB6D14BC6E")
        );
        assert_eq!(
            payment.approved_at,
            Some(Utc.with_ymd_and_hms(2024, 2, 13, 3, 18, 14).unwrap())
        );
        assert!(payment.cancels.is_empty());
        assert_eq!(payment.failure, None);
    }

    #[tokio::test]
    async fn cancel_escapes_the_key_and_parses_the_cancel() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payments/a%2Fb%3Fc%23d%25e/cancel"))
            .and(header("Idempotency-Key", "refund-1"))
            .and(body_json(json!({
                "cancelReason": "고객 변심",
                "cancelAmount": 1000,
                "refundableAmount": 1000,
            })))
            .respond_with(ResponseTemplate::new(200).set_body_raw(CANCELED, "application/json"))
            .expect(1)
            .mount(&server)
            .await;

        let payment = client(&server.uri())
            .cancel(&CancelRequest {
                payment_key: key("a/b?c#d%e"),
                reason: "고객 변심".to_owned(),
                amount: Some(1000),
                refundable_amount: Some(1000),
                tax_free_amount: None,
                refund_account: None,
                idempotency_key: "refund-1".to_owned(),
            })
            .await
            .unwrap();

        let sent = &server.received_requests().await.unwrap()[0];
        assert_eq!(sent.url.query(), None);
        assert_eq!(sent.url.fragment(), None);
        assert_eq!(payment.status, PgStatus::Canceled);
        assert_eq!(payment.balance_amount, Some(0));
        assert_eq!(payment.cancels.len(), 1);
        let cancel = &payment.cancels[0];
        assert_eq!(cancel.transaction_key, "090A796806E726BBB929F4A2CA7DB9A7");
        assert_eq!(cancel.amount, 1000);
        assert_eq!(cancel.status.as_deref(), Some("DONE"));
        assert_eq!(cancel.reason.as_deref(), Some("테스트 결제 취소"));
        assert_eq!(
            cancel.canceled_at,
            Some(Utc.with_ymd_and_hms(2024, 2, 13, 3, 20, 23).unwrap())
        );
    }

    #[tokio::test]
    async fn lookup_by_order_hits_orders_path_and_maps_404_to_none() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/payments/orders/order-404"))
            .respond_with(toss_error(
                404,
                "NOT_FOUND_PAYMENT",
                "존재하지 않는 결제 입니다.",
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/payments/orders/MC4wODU4ODQwMzg4NDk0"))
            .respond_with(ResponseTemplate::new(200).set_body_string(CONFIRMED))
            .expect(1)
            .mount(&server)
            .await;
        let client = client(&server.uri());

        assert_eq!(client.payment_by_order(&order("order-404")).await, Ok(None));
        let found = client
            .payment_by_order(&order("MC4wODU4ODQwMzg4NDk0"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.order_id, "MC4wODU4ODQwMzg4NDk0");
    }

    #[tokio::test]
    async fn lookup_404_without_toss_body_is_unknown_not_absent() {
        // A wrong base path or a proxy also says 404; that must not read as "no payment".
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(404).set_body_string("<h1>Not Found</h1>"))
            .mount(&server)
            .await;
        let result = client(&server.uri()).payment_by_key(&key("pk")).await;
        assert!(matches!(
            result,
            Err(GatewayError::Unknown { code: None, .. })
        ));
    }

    #[tokio::test]
    async fn lookup_error_codes_are_unknown_or_misconfigured() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/payments/busy"))
            .respond_with(toss_error(
                403,
                "FORBIDDEN_CONSECUTIVE_REQUEST",
                "반복적인 요청",
            ))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/payments/badkey"))
            .respond_with(toss_error(401, "UNAUTHORIZED_KEY", "인증되지 않은 키"))
            .mount(&server)
            .await;
        let client = client(&server.uri());
        assert!(matches!(
            client.payment_by_key(&key("busy")).await,
            Err(GatewayError::Unknown { code: Some(code), .. }) if code == "FORBIDDEN_CONSECUTIVE_REQUEST"
        ));
        assert!(matches!(
            client.payment_by_key(&key("badkey")).await,
            Err(GatewayError::Misconfigured { .. })
        ));
    }

    #[tokio::test]
    async fn reject_card_payment_is_declined_verbatim() {
        let result = confirm_answered_with(toss_error(
            403,
            "REJECT_CARD_PAYMENT",
            "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
        ))
        .await;
        assert_eq!(
            result,
            Err(GatewayError::Declined {
                code: "REJECT_CARD_PAYMENT".to_owned(),
                message: "한도초과 혹은 잔액부족으로 결제에 실패했습니다.".to_owned(),
            })
        );
    }

    #[tokio::test]
    async fn unauthorized_key_is_misconfigured() {
        let result = confirm_answered_with(toss_error(
            401,
            "UNAUTHORIZED_KEY",
            "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
        ))
        .await;
        assert_eq!(
            result,
            Err(GatewayError::Misconfigured {
                code: "UNAUTHORIZED_KEY".to_owned(),
                message: "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.".to_owned(),
            })
        );
    }

    #[tokio::test]
    async fn already_processed_and_unseen_codes_are_unknown_with_code() {
        for code in ["ALREADY_PROCESSED_PAYMENT", "BRAND_NEW_CODE"] {
            let result = confirm_answered_with(toss_error(400, code, "메시지")).await;
            match result {
                Err(GatewayError::Unknown {
                    code: Some(got),
                    message: Some(message),
                    ..
                }) => {
                    assert_eq!(got, code);
                    assert_eq!(message, "메시지");
                }
                other => panic!("{code}: expected Unknown, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn html_500_is_unknown() {
        let result = confirm_answered_with(
            ResponseTemplate::new(500).set_body_raw("<html>Bad Gateway</html>", "text/html"),
        )
        .await;
        assert!(assert_unknown_without_code(result).contains("500"));
    }

    #[tokio::test]
    async fn unparseable_2xx_is_unknown() {
        let result =
            confirm_answered_with(ResponseTemplate::new(200).set_body_string("{\"paymentKey\":"))
                .await;
        assert_unknown_without_code(result);
    }

    #[tokio::test]
    async fn a_reply_over_the_cap_is_unknown_like_a_malformed_reply() {
        // A valid Payment padded past the cap (the fields Toss may add are ignored).
        let mut padded: serde_json::Value = serde_json::from_str(CONFIRMED).unwrap();
        padded["padding"] = json!("x".repeat(MAX_REPLY_BYTES));
        let result = confirm_answered_with(ResponseTemplate::new(200).set_body_json(&padded)).await;
        assert!(assert_unknown_without_code(result).contains("longer than"));
        // Just under the cap it is read.
        let mut fits: serde_json::Value = serde_json::from_str(CONFIRMED).unwrap();
        fits["padding"] = json!("x".repeat(MAX_REPLY_BYTES - CONFIRMED.len() - 100));
        let result = confirm_answered_with(ResponseTemplate::new(200).set_body_json(&fits)).await;
        assert!(result.is_ok(), "{result:?}");
        // An error reply over the cap, and a lookup's.
        let result = confirm_answered_with(
            ResponseTemplate::new(500).set_body_string("e".repeat(MAX_REPLY_BYTES + 1)),
        )
        .await;
        assert!(assert_unknown_without_code(result).contains("longer than"));
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200).set_body_string("{".repeat(MAX_REPLY_BYTES + 1)),
            )
            .mount(&server)
            .await;
        let looked_up = client(&server.uri()).payment_by_key(&key("pk_big")).await;
        assert!(
            matches!(looked_up, Err(GatewayError::Unknown { .. })),
            "{looked_up:?}"
        );
    }

    /// A reply with no `Content-Length` that never ends is cut off at the cap, well before the
    /// read timeout, and is not held in memory beyond it.
    #[tokio::test]
    async fn an_endless_chunked_reply_is_cut_off_at_the_cap() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 8192];
            let _ = socket.read(&mut request).await;
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
            let mut sent = 0usize;
            while socket.write_all(chunk.as_bytes()).await.is_ok() {
                sent += 64 * 1024;
                if sent > 64 * MAX_REPLY_BYTES {
                    break;
                }
            }
            sent
        });
        let started = Instant::now();
        let result = client(&format!("http://{address}"))
            .confirm(&confirm_request())
            .await;
        assert!(assert_unknown_without_code(result).contains("longer than"));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "cut off, not timed out"
        );
        let sent = server.await.unwrap();
        assert!(
            sent < 64 * MAX_REPLY_BYTES,
            "the reply was not read to its end"
        );
    }

    #[tokio::test]
    async fn redirect_is_not_followed() {
        let result = confirm_answered_with(
            ResponseTemplate::new(307).insert_header("Location", "http://127.0.0.1:9/elsewhere"),
        )
        .await;
        assert_unknown_without_code(result);
    }

    #[tokio::test]
    async fn slow_reply_is_unknown() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_string(CONFIRMED)
                    .set_delay(Duration::from_secs(3)),
            )
            .mount(&server)
            .await;
        let client = TossClient::new(settings(&server.uri(), Duration::from_millis(200))).unwrap();

        let started = Instant::now();
        let result = client.confirm(&confirm_request()).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(assert_unknown_without_code(result).contains("200 ms"));
    }

    #[tokio::test]
    async fn connection_refused_is_unknown() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);

        let result = client(&format!("http://127.0.0.1:{port}"))
            .confirm(&confirm_request())
            .await;
        assert_unknown_without_code(result);
    }

    #[tokio::test]
    async fn base_url_path_prefix_is_kept() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/toss/v1/payments/pk"))
            .respond_with(ResponseTemplate::new(200).set_body_string(CONFIRMED))
            .expect(1)
            .mount(&server)
            .await;
        let found = client(&format!("{}/toss/", server.uri()))
            .payment_by_key(&key("pk"))
            .await;
        assert!(matches!(found, Ok(Some(_))));
    }

    #[test]
    fn bad_settings_are_refused() {
        for url in ["not a url", "ftp://example.com", "mailto:a@b.c"] {
            assert!(matches!(
                TossClient::new(settings(url, Duration::from_secs(1))),
                Err(GatewayError::Misconfigured { .. })
            ));
        }
        for key in ["", " test_sk_x", "test_sk_x\n", "\u{feff}test_sk_x"] {
            let mut bad = settings("https://api.tosspayments.com", Duration::from_secs(1));
            bad.secret_key = SecretString::from(key);
            assert!(matches!(
                TossClient::new(bad),
                Err(GatewayError::Misconfigured { .. })
            ));
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let settings = settings("https://api.tosspayments.com", Duration::from_secs(60));
        let client = TossClient::new(settings.clone()).unwrap();
        let encoded = EXPECTED_AUTH.trim_start_matches("Basic ");
        for text in [format!("{client:?}"), format!("{settings:?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains(encoded), "{text}");
        }
    }
}
