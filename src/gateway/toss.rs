//! Toss Payments core API v1: confirm, cancel and the two payment lookups.
//!
//! Request building and response parsing only; the service decides what a payment means. Errors
//! are classified by Toss's `code`, not by HTTP status, because Toss uses 400 and 403 both for
//! final declines and for answers that mean "maybe it happened" (`reference/toss-api.md` §8).

use std::error::Error as _;
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    CancelRequest, ConfirmRequest, GatewayError, PaymentGateway, PgCancel, PgFailure, PgPayment,
    PgStatus, Timeouts,
};

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const TRACE_ID: &str = "X-TossPayments-Trace-Id";

#[derive(Debug, Clone)]
pub struct TossSettings {
    /// `https://api.tosspayments.com`; a path prefix and a trailing slash are allowed.
    pub api_url: String,
    /// Must belong to the same key set as the client key that opened the payment (`sk` with
    /// `ck`, `gsk` with `gck`), or Toss answers `UNAUTHORIZED_KEY`/`INVALID_API_KEY`.
    pub secret_key: SecretString,
    pub timeouts: Timeouts,
}

/// The Toss client. Cheap to share: hold it in an `Arc<dyn PaymentGateway>`.
pub struct TossClient {
    http: reqwest::Client,
    base: Url,
    /// Marked sensitive, so `http` and reqwest print it as `Sensitive` should they ever try.
    authorization: HeaderValue,
    timeouts: Timeouts,
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
    pub fn new(settings: TossSettings) -> Result<Self, GatewayError> {
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

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked by parse_base_url")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// Sends one request and reads the whole reply. `Ok(None)` only for a lookup that Toss
    /// answers with "no such payment".
    async fn exchange(
        &self,
        operation: Operation,
        request: reqwest::RequestBuilder,
        subject: Subject<'_>,
    ) -> Result<Option<PgPayment>, GatewayError> {
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
                response.bytes().await
            }
            Err(error) => Err(error),
        };

        let mut toss_code = None;
        let result = match (received, http_status) {
            (Err(error), _) => Err(transport_failure(&error, timeout)),
            (Ok(body), Some(status)) if (200..300).contains(&status) => {
                parse_payment(&body).map(Some)
            }
            (Ok(body), status) => {
                let status = status.unwrap_or_default();
                match serde_json::from_slice::<TossErrorBody>(&body) {
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
                        toss_code = Some(error.code);
                        result
                    }
                    Err(_) => Err(unknown(format!(
                        "HTTP {status} without a Toss error body ({} bytes)",
                        body.len()
                    ))),
                }
            }
        };

        log_call(&CallLog {
            operation,
            subject,
            http_status,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            trace_id: trace_id.as_deref(),
            code: toss_code.as_deref(),
            result: &result,
        });
        result
    }
}

#[async_trait]
impl PaymentGateway for TossClient {
    fn provider(&self) -> Option<&'static str> {
        Some("toss")
    }

    async fn confirm(&self, request: &ConfirmRequest) -> Result<PgPayment, GatewayError> {
        let idempotency_key = idempotency_header(&request.idempotency_key)?;
        let body = ConfirmBody {
            payment_key: &request.payment_key,
            order_id: &request.order_id,
            amount: request.amount,
        };
        let call = self
            .http
            .post(self.endpoint(&["v1", "payments", "confirm"]))
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .json(&body);
        let subject = Subject::OrderId(&request.order_id);
        expect_payment(self.exchange(Operation::Confirm, call, subject).await?)
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<PgPayment, GatewayError> {
        let payment_key = path_segment("paymentKey", &request.payment_key)?;
        let idempotency_key = idempotency_header(&request.idempotency_key)?;
        let body = CancelBody {
            cancel_reason: &request.reason,
            cancel_amount: request.amount,
            refundable_amount: request.refundable_amount,
        };
        let call = self
            .http
            .post(self.endpoint(&["v1", "payments", payment_key, "cancel"]))
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .json(&body);
        let subject = Subject::PaymentKey(payment_key);
        expect_payment(self.exchange(Operation::Cancel, call, subject).await?)
    }

    async fn payment_by_key(&self, payment_key: &str) -> Result<Option<PgPayment>, GatewayError> {
        let payment_key = path_segment("paymentKey", payment_key)?;
        let call = self
            .http
            .get(self.endpoint(&["v1", "payments", payment_key]));
        self.exchange(Operation::Lookup, call, Subject::PaymentKey(payment_key))
            .await
    }

    async fn payment_by_order(&self, order_id: &str) -> Result<Option<PgPayment>, GatewayError> {
        let order_id = path_segment("orderId", order_id)?;
        let call = self
            .http
            .get(self.endpoint(&["v1", "payments", "orders", order_id]));
        self.exchange(Operation::Lookup, call, Subject::OrderId(order_id))
            .await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Confirm,
    Cancel,
    Lookup,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Cancel => "cancel",
            Self::Lookup => "lookup",
        }
    }

    /// Confirm and cancel wait on card companies and banks; lookups only read Toss's records.
    fn timeout(self, timeouts: &Timeouts) -> Duration {
        match self {
            Self::Confirm | Self::Cancel => timeouts.read,
            Self::Lookup => timeouts.lookup,
        }
    }
}

/// Declines that leave nothing behind on Toss's side, per endpoint (§8.2, §8.3). A code is only
/// final for the endpoint whose table lists it: `Declined` promises that nothing happened.
const CONFIRM_DECLINES: &[&str] = &[
    // 403 declines by the card company, bank or Toss's fraud checks.
    "REJECT_ACCOUNT_PAYMENT",
    "REJECT_CARD_PAYMENT",
    "REJECT_CARD_COMPANY",
    "REJECT_TOSSPAY_INVALID_ACCOUNT",
    "EXCEED_MAX_AUTH_COUNT",
    "EXCEED_MAX_ONE_DAY_AMOUNT",
    "INVALID_PASSWORD",
    "FDS_ERROR",
    // 400 card and account validation.
    "EXCEED_MAX_CARD_INSTALLMENT_PLAN",
    "NOT_ALLOWED_POINT_USE",
    "INVALID_REJECT_CARD",
    "BELOW_MINIMUM_AMOUNT",
    "INVALID_CARD_EXPIRATION",
    "INVALID_STOPPED_CARD",
    "EXCEED_MAX_DAILY_PAYMENT_COUNT",
    "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT",
    "INVALID_CARD_INSTALLMENT_PLAN",
    "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN",
    "EXCEED_MAX_PAYMENT_AMOUNT",
    "INVALID_CARD_LOST_OR_STOLEN",
    "RESTRICTED_TRANSFER_ACCOUNT",
    "INVALID_CARD_NUMBER",
    "EXCEED_MAX_ONE_DAY_WITHDRAW_AMOUNT",
    "EXCEED_MAX_ONE_TIME_WITHDRAW_AMOUNT",
    "EXCEED_MAX_AMOUNT",
    "INVALID_ACCOUNT_INFO_RE_REGISTER",
    // The 10-minute confirm window passed, or the buyer never finished.
    "NOT_FOUND_PAYMENT_SESSION",
    "NOT_FOUND_PAYMENT",
    "PAY_PROCESS_ABORTED",
    "PAY_PROCESS_CANCELED",
    // Merchant setup: final until someone talks to Toss.
    "NOT_FOUND_TERMINAL_ID",
    "INVALID_AUTHORIZE_AUTH",
    "INVALID_UNREGISTERED_SUBMALL",
    "NOT_REGISTERED_BUSINESS",
];

const CANCEL_DECLINES: &[&str] = &[
    "INVALID_REFUND_ACCOUNT_INFO",
    "EXCEED_CANCEL_AMOUNT_DISCOUNT_AMOUNT",
    "INVALID_REFUND_ACCOUNT_NUMBER",
    "INVALID_BANK",
    "REFUND_REJECTED",
    "FORBIDDEN_BANK_REFUND_REQUEST",
    "NOT_CANCELABLE_AMOUNT",
    "NOT_CANCELABLE_PAYMENT",
    "EXCEED_MAX_REFUND_DUE",
    "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT",
    "NOT_ALLOWED_PARTIAL_REFUND",
    "NOT_CANCELABLE_PAYMENT_FOR_DORMANT_USER",
    "EXCEED_CANCEL_LIMIT",
    "EXCEED_MAX_REFUND_AMOUNT",
    "NOT_FOUND_PAYMENT",
    "NOT_FOUND_TERMINAL_ID",
    "INVALID_AUTHORIZE_AUTH",
    "INVALID_UNREGISTERED_SUBMALL",
    "NOT_REGISTERED_BUSINESS",
];

/// Our key or our request is wrong; retrying cannot help, a person must.
const MISCONFIGURATIONS: &[&str] = &[
    "UNAUTHORIZED_KEY",
    "INVALID_API_KEY",
    "INCORRECT_BASIC_AUTH_FORMAT",
    "FORBIDDEN_REQUEST",
    "INVALID_REQUEST",
    "INVALID_IDEMPOTENCY_KEY",
];

/// Classifies a non-2xx Toss error. Everything not known to be final or a configuration error is
/// `Unknown`, including codes Toss adds later: only a read-back can tell what happened.
fn classify(http_status: u16, code: &str, message: &str, operation: Operation) -> GatewayError {
    // A 5xx or 429 says nothing reliable about the payment, whatever the code.
    let in_doubt = http_status == 429 || http_status >= 500;
    let declines: &[&str] = match operation {
        Operation::Confirm => CONFIRM_DECLINES,
        Operation::Cancel => CANCEL_DECLINES,
        // A lookup changes nothing, so nothing about it can be "declined".
        Operation::Lookup => &[],
    };
    // On a confirm the paymentKey is the buyer's browser's, not ours: Toss refusing the request
    // is Toss refusing this attempt, which the buyer can retry, not a reason to page anyone.
    let refused_attempt = operation == Operation::Confirm && code == "INVALID_REQUEST";
    if !in_doubt && refused_attempt {
        GatewayError::Declined {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    } else if !in_doubt && MISCONFIGURATIONS.contains(&code) {
        GatewayError::Misconfigured {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    } else if !in_doubt && declines.contains(&code) {
        GatewayError::Declined {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    } else {
        GatewayError::Unknown {
            reason: format!("Toss answered HTTP {http_status} {code}"),
            code: Some(code.to_owned()),
            message: Some(message.to_owned()),
        }
    }
}

fn unknown(reason: String) -> GatewayError {
    GatewayError::Unknown {
        reason,
        code: None,
        message: None,
    }
}

/// A configuration or request problem found before anything was sent. The codes are ours, not
/// Toss's; the message says so.
fn local_misconfiguration(code: &str, detail: impl fmt::Display) -> GatewayError {
    GatewayError::Misconfigured {
        code: code.to_owned(),
        message: format!("{detail} (checked locally; nothing was sent to Toss)"),
    }
}

fn transport_failure(error: &reqwest::Error, timeout: Duration) -> GatewayError {
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

/// `url` silently drops `.` and `..` segments and an empty one addresses another resource; no
/// Toss key or order id looks like that, so such a value is a bug on our side.
fn path_segment<'a>(name: &str, value: &'a str) -> Result<&'a str, GatewayError> {
    if matches!(value, "" | "." | "..") {
        return Err(local_misconfiguration(
            "INVALID_REQUEST",
            format!("{name} {value:?} cannot be used in a URL path"),
        ));
    }
    Ok(value)
}

fn parse_payment(body: &[u8]) -> Result<PgPayment, GatewayError> {
    let payment: TossPayment = serde_json::from_slice(body)
        .map_err(|error| unknown(format!("2xx reply is not a Toss Payment: {error}")))?;
    payment.into_pg().map_err(unknown)
}

/// What a call was about, for the log line. Payment keys and order ids are not secrets.
#[derive(Debug, Clone, Copy)]
enum Subject<'a> {
    PaymentKey(&'a str),
    OrderId(&'a str),
}

struct CallLog<'a> {
    operation: Operation,
    subject: Subject<'a>,
    http_status: Option<u16>,
    elapsed_ms: u64,
    trace_id: Option<&'a str>,
    code: Option<&'a str>,
    result: &'a Result<Option<PgPayment>, GatewayError>,
}

fn log_call(call: &CallLog<'_>) {
    let (payment_key, order_id) = match call.subject {
        Subject::PaymentKey(key) => (Some(key), None),
        Subject::OrderId(id) => (None, Some(id)),
    };
    let operation = call.operation.as_str();
    match call.result {
        Ok(answer) => tracing::info!(
            operation,
            payment_key,
            order_id,
            http_status = call.http_status,
            elapsed_ms = call.elapsed_ms,
            trace_id = call.trace_id,
            code = call.code,
            found = answer.is_some(),
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfirmBody<'a> {
    payment_key: &'a str,
    order_id: &'a str,
    amount: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CancelBody<'a> {
    cancel_reason: &'a str,
    cancel_amount: i64,
    refundable_amount: i64,
}

/// `{"code","message"}`, sometimes with `"data": null` and whatever Toss adds next.
#[derive(Deserialize)]
struct TossErrorBody {
    code: String,
    message: Option<String>,
}

/// Toss's Payment object, only the fields we keep. Toss adds fields and nulls others without a
/// version bump (§1, §4), hence no `deny_unknown_fields` and `Option` nearly everywhere.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossPayment {
    payment_key: String,
    order_id: String,
    status: String,
    total_amount: Option<i64>,
    balance_amount: Option<i64>,
    currency: Option<String>,
    method: Option<String>,
    secret: Option<String>,
    last_transaction_key: Option<String>,
    approved_at: Option<String>,
    cancels: Option<Vec<TossCancel>>,
    failure: Option<TossFailure>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossCancel {
    transaction_key: Option<String>,
    cancel_amount: Option<i64>,
    cancel_reason: Option<String>,
    cancel_status: Option<String>,
    canceled_at: Option<String>,
}

#[derive(Deserialize)]
struct TossFailure {
    code: Option<String>,
    message: Option<String>,
}

impl TossPayment {
    fn into_pg(self) -> Result<PgPayment, String> {
        let cancels = self
            .cancels
            .unwrap_or_default()
            .into_iter()
            .map(TossCancel::into_pg)
            .collect::<Result<Vec<_>, _>>()?;
        let failure = self
            .failure
            .filter(|failure| failure.code.is_some() || failure.message.is_some())
            .map(|failure| PgFailure {
                code: failure.code.unwrap_or_default(),
                message: failure.message.unwrap_or_default(),
            });
        Ok(PgPayment {
            payment_key: self.payment_key,
            order_id: self.order_id,
            status: parse_status(self.status),
            total_amount: self.total_amount,
            balance_amount: self.balance_amount,
            currency: self.currency,
            method: self.method,
            secret: self.secret,
            last_transaction_key: self.last_transaction_key,
            approved_at: parse_timestamp(self.approved_at.as_deref()),
            cancels,
            failure,
        })
    }
}

impl TossCancel {
    /// A cancel without its key or amount cannot be matched to a refund: the whole reply is
    /// then in doubt rather than quietly shorter.
    fn into_pg(self) -> Result<PgCancel, String> {
        let (Some(transaction_key), Some(amount)) = (self.transaction_key, self.cancel_amount)
        else {
            return Err("a cancel in the Toss reply lacks transactionKey or cancelAmount".into());
        };
        Ok(PgCancel {
            transaction_key,
            amount,
            reason: self.cancel_reason,
            status: self.cancel_status,
            canceled_at: parse_timestamp(self.canceled_at.as_deref()),
        })
    }
}

fn parse_status(status: String) -> PgStatus {
    match status.as_str() {
        "READY" => PgStatus::Ready,
        "IN_PROGRESS" => PgStatus::InProgress,
        "WAITING_FOR_DEPOSIT" => PgStatus::WaitingForDeposit,
        "DONE" => PgStatus::Done,
        "CANCELED" => PgStatus::Canceled,
        "PARTIAL_CANCELED" => PgStatus::PartialCanceled,
        "ABORTED" => PgStatus::Aborted,
        "EXPIRED" => PgStatus::Expired,
        _ => PgStatus::Other(status),
    }
}

/// Toss writes `2024-02-13T12:18:14+09:00`, but older payloads drop the offset; those are KST.
/// A timestamp is informative only, so an unreadable one becomes `None` instead of an error.
fn parse_timestamp(raw: Option<&str>) -> Option<DateTime<Utc>> {
    let raw = raw?.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(time) = DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(time.with_timezone(&Utc));
    }
    let kst = FixedOffset::east_opt(9 * 3600)?;
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()?
        .and_local_timezone(kst)
        .single()
        .map(|time| time.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const SECRET: &str = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R";
    const EXPECTED_AUTH: &str = "Basic dGVzdF9za196WExrS0V5cE5BcldtbzUwblgzbG1lYXhZRzVSOg==";

    /// §4.1 of reference/toss-api.md.
    const CONFIRMED: &str = r#"{
      "mId": "tosspayments",
      "lastTransactionKey": "9C62B18EEF0DE3EB7F4422EB6D14BC6E",
      "paymentKey": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
      "orderId": "MC4wODU4ODQwMzg4NDk0",
      "orderName": "토스 티셔츠 외 2건",
      "taxExemptionAmount": 0,
      "status": "DONE",
      "requestedAt": "2024-02-13T12:17:57+09:00",
      "approvedAt": "2024-02-13T12:18:14+09:00",
      "useEscrow": false,
      "cultureExpense": false,
      "card": {
        "issuerCode": "71", "acquirerCode": "71", "number": "12345678****000*",
        "installmentPlanMonths": 0, "isInterestFree": false, "interestPayer": null,
        "approveNo": "00000000", "useCardPoint": false, "cardType": "신용",
        "ownerType": "개인", "acquireStatus": "READY", "amount": 1000
      },
      "virtualAccount": null, "transfer": null, "mobilePhone": null, "giftCertificate": null,
      "cashReceipt": null, "cashReceipts": null, "discount": null, "cancels": null,
      "secret": null, "type": "NORMAL", "easyPay": null, "country": "KR", "failure": null,
      "isPartialCancelable": true,
      "receipt": { "url": "https://dashboard.tosspayments.com/receipt/redirection?transactionId=tviva20240213121757MvuS8&ref=PX" },
      "checkout": { "url": "https://api.tosspayments.com/v1/payments/5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1/checkout" },
      "currency": "KRW", "totalAmount": 1000, "balanceAmount": 1000, "suppliedAmount": 909,
      "vat": 91, "taxFreeAmount": 0, "method": "카드", "version": "2022-11-16", "metadata": null
    }"#;

    /// §5.3 of reference/toss-api.md.
    const CANCELED: &str = r#"{
      "mId": "tosspayments",
      "lastTransactionKey": "090A796806E726BBB929F4A2CA7DB9A7",
      "paymentKey": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
      "orderId": "MC4wODU4ODQwMzg4NDk0",
      "orderName": "토스 티셔츠 외 2건",
      "taxExemptionAmount": 0,
      "status": "CANCELED",
      "requestedAt": "2024-02-13T12:17:57+09:00",
      "approvedAt": "2024-02-13T12:18:14+09:00",
      "useEscrow": false,
      "cultureExpense": false,
      "card": { "issuerCode": "71", "acquirerCode": "71", "number": "12345678****000*",
                "installmentPlanMonths": 0, "isInterestFree": false, "interestPayer": null,
                "approveNo": "00000000", "useCardPoint": false, "cardType": "신용",
                "ownerType": "개인", "acquireStatus": "READY", "amount": 1000 },
      "virtualAccount": null, "transfer": null, "mobilePhone": null, "giftCertificate": null,
      "cashReceipt": null, "cashReceipts": null, "discount": null,
      "cancels": [
        {
          "transactionKey": "090A796806E726BBB929F4A2CA7DB9A7",
          "cancelReason": "테스트 결제 취소",
          "taxExemptionAmount": 0,
          "canceledAt": "2024-02-13T12:20:23+09:00",
          "transferDiscountAmount": 0,
          "easyPayDiscountAmount": 0,
          "receiptKey": null,
          "cancelAmount": 1000,
          "taxFreeAmount": 0,
          "refundableAmount": 0,
          "cancelStatus": "DONE",
          "cancelRequestId": null
        }
      ],
      "secret": null, "type": "NORMAL",
      "easyPay": { "provider": "토스페이", "amount": 0, "discountAmount": 0 },
      "country": "KR", "failure": null, "isPartialCancelable": true,
      "receipt": { "url": "https://dashboard.tosspayments.com/receipt/redirection?transactionId=tviva20240213121757MvuS8&ref=PX" },
      "checkout": { "url": "https://api.tosspayments.com/v1/payments/5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1/checkout" },
      "currency": "KRW", "totalAmount": 1000, "balanceAmount": 0, "suppliedAmount": 0, "vat": 0,
      "taxFreeAmount": 0, "method": "카드", "version": "2022-11-16", "metadata": null
    }"#;

    fn settings(api_url: &str, read: Duration) -> TossSettings {
        TossSettings {
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

    fn confirm_request() -> ConfirmRequest {
        ConfirmRequest {
            payment_key: "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1".to_owned(),
            order_id: "MC4wODU4ODQwMzg4NDk0".to_owned(),
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
            .payment_by_key("pk_1")
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
            payment.payment_key,
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
            .and(path("/v1/payments/a%2Fb%3Fc%23d%20e%25/cancel"))
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
                payment_key: "a/b?c#d e%".to_owned(),
                reason: "고객 변심".to_owned(),
                amount: 1000,
                refundable_amount: 1000,
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

        assert_eq!(client.payment_by_order("order-404").await, Ok(None));
        let found = client
            .payment_by_order("MC4wODU4ODQwMzg4NDk0")
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
        let result = client(&server.uri()).payment_by_key("pk").await;
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
            client.payment_by_key("busy").await,
            Err(GatewayError::Unknown { code: Some(code), .. }) if code == "FORBIDDEN_CONSECUTIVE_REQUEST"
        ));
        assert!(matches!(
            client.payment_by_key("badkey").await,
            Err(GatewayError::Misconfigured { .. })
        ));
    }

    #[tokio::test]
    async fn unaddressable_keys_are_refused_before_sending() {
        let server = MockServer::start().await;
        let client = client(&server.uri());
        for key in ["", ".", ".."] {
            assert!(matches!(
                client.payment_by_key(key).await,
                Err(GatewayError::Misconfigured { .. })
            ));
        }
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[test]
    fn tolerant_payment_parses() {
        let body = json!({
            "paymentKey": "pk_new",
            "orderId": "order-new",
            "status": "SOMETHING_NEW",
            "brandNewField": {"nested": [1, 2, 3]},
            "method": "",
            "totalAmount": 50_000_000_000_i64,
            "balanceAmount": null,
            "currency": null,
            "secret": null,
            "lastTransactionKey": null,
            "approvedAt": "not a time",
            "cancels": null,
            "failure": null,
            "card": null,
            "version": null
        });
        let payment = parse_payment(body.to_string().as_bytes()).unwrap();
        assert_eq!(payment.status, PgStatus::Other("SOMETHING_NEW".to_owned()));
        assert_eq!(payment.method.as_deref(), Some(""));
        assert_eq!(payment.total_amount, Some(50_000_000_000));
        assert_eq!(payment.balance_amount, None);
        assert_eq!(payment.approved_at, None);
        assert!(payment.cancels.is_empty());

        let minimal = parse_payment(br#"{"paymentKey":"pk","orderId":"o","status":"EXPIRED","failure":{"code":"EXPIRED_PAYMENT","message":"m"}}"#).unwrap();
        assert_eq!(minimal.status, PgStatus::Expired);
        assert_eq!(
            minimal.failure,
            Some(PgFailure {
                code: "EXPIRED_PAYMENT".to_owned(),
                message: "m".to_owned()
            })
        );
    }

    #[test]
    fn payment_without_required_fields_is_unknown() {
        for body in [
            r#"{"orderId":"o","status":"DONE"}"#,
            r#"{"paymentKey":"pk","status":"DONE"}"#,
            r#"{"paymentKey":"pk","orderId":"o"}"#,
            r#"{"paymentKey":"pk","orderId":"o","status":null}"#,
            r#"{"paymentKey":"pk","orderId":"o","status":"CANCELED","cancels":[{"cancelAmount":1}]}"#,
        ] {
            assert!(
                matches!(
                    parse_payment(body.as_bytes()),
                    Err(GatewayError::Unknown { .. })
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn timestamps_parse_leniently() {
        let expected = Utc.with_ymd_and_hms(2024, 2, 13, 3, 18, 14).unwrap();
        assert_eq!(
            parse_timestamp(Some("2024-02-13T12:18:14+09:00")),
            Some(expected)
        );
        assert_eq!(
            parse_timestamp(Some("2024-02-13T12:18:14+0900")),
            Some(expected)
        );
        assert_eq!(
            parse_timestamp(Some("2024-02-13T12:18:14.000")),
            Some(expected)
        );
        assert_eq!(parse_timestamp(Some("yesterday")), None);
        assert_eq!(parse_timestamp(None), None);
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
            .payment_by_key("pk")
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

    fn declined(code: &str) -> GatewayError {
        GatewayError::Declined {
            code: code.to_owned(),
            message: "m".to_owned(),
        }
    }

    fn misconfigured(code: &str) -> GatewayError {
        GatewayError::Misconfigured {
            code: code.to_owned(),
            message: "m".to_owned(),
        }
    }

    fn is_unknown(error: &GatewayError) -> bool {
        matches!(error, GatewayError::Unknown { .. })
    }

    #[test]
    fn classify_confirm() {
        let confirm = |status, code| classify(status, code, "m", Operation::Confirm);
        for (status, code) in [
            (403, "REJECT_CARD_PAYMENT"),
            (403, "REJECT_CARD_COMPANY"),
            (403, "FDS_ERROR"),
            (400, "INVALID_CARD_EXPIRATION"),
            (400, "BELOW_MINIMUM_AMOUNT"),
            (404, "NOT_FOUND_PAYMENT_SESSION"),
            (404, "NOT_FOUND_PAYMENT"),
            (400, "PAY_PROCESS_ABORTED"),
            (400, "NOT_FOUND_TERMINAL_ID"),
            // The buyer's paymentKey does not fit the order: Toss refused this attempt.
            (400, "INVALID_REQUEST"),
        ] {
            assert_eq!(confirm(status, code), declined(code));
        }
        for (status, code) in [
            (401, "UNAUTHORIZED_KEY"),
            (400, "INVALID_API_KEY"),
            (403, "INCORRECT_BASIC_AUTH_FORMAT"),
            (403, "FORBIDDEN_REQUEST"),
            (400, "INVALID_IDEMPOTENCY_KEY"),
        ] {
            assert_eq!(confirm(status, code), misconfigured(code));
        }
        for (status, code) in [
            (400, "ALREADY_PROCESSED_PAYMENT"),
            (400, "ALREADY_PROCESSING_REQUEST"),
            (400, "PROVIDER_ERROR"),
            (400, "CARD_PROCESSING_ERROR"),
            (400, "UNAPPROVED_ORDER_ID"),
            (400, "NOT_AVAILABLE_PAYMENT"),
            (403, "NOT_AVAILABLE_BANK"),
            (409, "IDEMPOTENT_REQUEST_PROCESSING"),
            (500, "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING"),
            (500, "UNKNOWN_PAYMENT_ERROR"),
            (400, "BRAND_NEW_CODE"),
            (429, "TOO_MANY_REQUESTS"),
            // Cancel-only codes mean nothing final for a confirm.
            (403, "NOT_CANCELABLE_PAYMENT"),
            // A 5xx or 429 wins over an otherwise final code.
            (500, "REJECT_CARD_PAYMENT"),
            (429, "UNAUTHORIZED_KEY"),
        ] {
            let error = confirm(status, code);
            assert!(is_unknown(&error), "{status} {code}: {error:?}");
            assert!(
                matches!(&error, GatewayError::Unknown { code: Some(c), message: Some(m), .. } if c == code && m == "m")
            );
        }
    }

    #[test]
    fn classify_cancel() {
        let cancel = |status, code| classify(status, code, "m", Operation::Cancel);
        for (status, code) in [
            (403, "NOT_CANCELABLE_PAYMENT"),
            (403, "NOT_CANCELABLE_AMOUNT"),
            (403, "EXCEED_MAX_REFUND_DUE"),
            (400, "INVALID_REFUND_ACCOUNT_INFO"),
            (400, "REFUND_REJECTED"),
            (403, "NOT_ALLOWED_PARTIAL_REFUND"),
            (404, "NOT_FOUND_PAYMENT"),
        ] {
            assert_eq!(cancel(status, code), declined(code));
        }
        for (status, code) in [(401, "UNAUTHORIZED_KEY"), (403, "FORBIDDEN_REQUEST")] {
            assert_eq!(cancel(status, code), misconfigured(code));
        }
        for (status, code) in [
            (400, "ALREADY_CANCELED_PAYMENT"),
            (400, "ALREADY_REFUND_PAYMENT"),
            (400, "NOT_MATCHES_REFUNDABLE_AMOUNT"),
            (400, "PROVIDER_ERROR"),
            (403, "FORBIDDEN_CONSECUTIVE_REQUEST"),
            (500, "FAILED_REFUND_PROCESS"),
            (500, "FAILED_PARTIAL_REFUND"),
            (500, "COMMON_ERROR"),
            (400, "BRAND_NEW_CODE"),
            // Confirm-only declines do not prove a refund did not happen.
            (403, "REJECT_CARD_PAYMENT"),
        ] {
            let error = cancel(status, code);
            assert!(is_unknown(&error), "{status} {code}: {error:?}");
        }
    }

    #[test]
    fn classify_lookup_never_declines() {
        assert!(is_unknown(&classify(
            403,
            "REJECT_CARD_PAYMENT",
            "m",
            Operation::Lookup
        )));
        assert_eq!(
            classify(403, "INCORRECT_BASIC_AUTH_FORMAT", "m", Operation::Lookup),
            misconfigured("INCORRECT_BASIC_AUTH_FORMAT")
        );
    }
}
