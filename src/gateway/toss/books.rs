//! `GET /v1/transactions` and `GET /v1/settlements` (`docs/toss-api.md` §17.3, §17.4): one page
//! per call, with the long read timeout Toss asks for (up to 60 s per call) and `429 Too Many
//! Requests` retried with backoff (Toss's lookups answer it under bursts, §11).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::NaiveDate;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use serde::Deserialize;
use tracing::Instrument as _;

use super::client::{Reply, TossClient, read_capped, too_large, toss_error, transport_failure};
use super::errors::unknown;
use super::transformers::TossErrorBody;
use super::{Operation, call_span};
use crate::gateway::{Books, GatewayError, PgSettlement, PgTransaction};

/// Toss: "up to 60 s; set the timeout to at least 60 s" for both lists.
const MIN_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// 429s are retried this many times, waiting 1, 2, 4, 8, 16 s (or Toss's `Retry-After`, at
/// most 16 s): a minute of patience at most, as the contract's timeliness asks.
const RETRIES_ON_429: u32 = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// The most of one page read: 5000 rows of a few hundred bytes each, with room to spare.
const MAX_PAGE_BYTES: usize = 32 << 20;

impl TossClient {
    /// One GET of a list (`/v1/{operation}`), 429s retried, in a span of its own; the body of
    /// the 2xx reply.
    async fn list(
        &self,
        operation: &'static str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, GatewayError> {
        let route = match operation {
            "transactions" => "GET /v1/transactions",
            _ => "GET /v1/settlements",
        };
        let span = call_span(route, operation);
        self.list_in(operation, query, &span)
            .instrument(span.clone())
            .await
    }

    async fn list_in(
        &self,
        operation: &'static str,
        query: &[(&str, String)],
        span: &tracing::Span,
    ) -> Result<Vec<u8>, GatewayError> {
        let timeout = self
            .timeouts
            .read
            .max(self.timeouts.lookup)
            .max(MIN_READ_TIMEOUT);
        let mut url = self.endpoint(&["v1", operation]);
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        let mut retries = 0;
        loop {
            let started = Instant::now();
            let sent = self
                .http
                .get(url.clone())
                .header(AUTHORIZATION, self.authorization.clone())
                .timeout(timeout)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(error) => {
                    let error = transport_failure(&error, timeout);
                    tracing::warn!(operation, elapsed_ms = elapsed_ms(started), error = %error, "toss call failed");
                    return Err(error);
                }
            };
            let status = response.status().as_u16();
            span.record("http.response.status_code", i64::from(status));
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = match read_capped(response, MAX_PAGE_BYTES).await {
                Ok(Reply::Body(body)) => body,
                Ok(Reply::TooLarge) => {
                    let error = too_large(Some(status), MAX_PAGE_BYTES);
                    tracing::warn!(operation, http_status = status, elapsed_ms = elapsed_ms(started), error = %error, "toss call failed");
                    return Err(error);
                }
                Err(error) => return Err(transport_failure(&error, timeout)),
            };
            if (200..300).contains(&status) {
                tracing::info!(
                    operation,
                    http_status = status,
                    elapsed_ms = elapsed_ms(started),
                    bytes = body.len(),
                    "toss call succeeded"
                );
                return Ok(body);
            }
            let code = serde_json::from_slice::<TossErrorBody>(&body).ok();
            if let Some(error) = &code {
                span.record("toss.error_code", error.code.as_str());
            }
            if status == 429 && retries < RETRIES_ON_429 {
                let wait = retry_after
                    .unwrap_or(Duration::from_secs(1 << retries))
                    .min(MAX_BACKOFF);
                tracing::warn!(
                    operation,
                    http_status = status,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "toss is rate limiting; retrying after a pause"
                );
                retries += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            let error = toss_error(Operation::Lookup, status, code, body.len());
            tracing::warn!(operation, http_status = status, elapsed_ms = elapsed_ms(started), error = %error, "toss call failed");
            return Err(error);
        }
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Books for TossClient {
    async fn transactions(
        &self,
        date: NaiveDate,
        starting_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PgTransaction>, GatewayError> {
        let mut query = vec![
            ("startDate", format!("{date}T00:00:00")),
            ("endDate", format!("{date}T23:59:59")),
            ("limit", limit.to_string()),
        ];
        if let Some(key) = starting_after {
            query.push(("startingAfter", key.to_owned()));
        }
        let body = self.list("transactions", &query).await?;
        parse_transactions(&body)
    }

    async fn settlements(
        &self,
        date: NaiveDate,
        page: u32,
        size: u32,
    ) -> Result<Vec<PgSettlement>, GatewayError> {
        let query = [
            ("startDate", date.to_string()),
            ("endDate", date.to_string()),
            ("dateType", "soldDate".to_owned()),
            ("page", page.to_string()),
            ("size", size.to_string()),
        ];
        let body = self.list("settlements", &query).await?;
        parse_settlements(&body)
    }
}

/// A row of `GET /v1/transactions`; fields not listed are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossTransaction {
    transaction_key: String,
    payment_key: String,
    order_id: String,
    status: String,
    amount: i64,
    transaction_at: Option<String>,
}

/// A row of `GET /v1/settlements`; fields not listed are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossSettlement {
    payment_key: String,
    transaction_key: Option<String>,
    order_id: String,
    amount: i64,
    pay_out_amount: i64,
    sold_date: Option<String>,
    paid_out_date: Option<String>,
    cancel: Option<serde_json::Value>,
}

fn parse_transactions(body: &[u8]) -> Result<Vec<PgTransaction>, GatewayError> {
    let rows: Vec<TossTransaction> = serde_json::from_slice(body)
        .map_err(|error| unknown(format!("unreadable transactions list: {error}")))?;
    Ok(rows
        .into_iter()
        .map(|row| PgTransaction {
            transaction_key: row.transaction_key,
            payment_key: row.payment_key,
            order_id: row.order_id,
            status: crate::domain::PgStatus::parse(row.status),
            amount: row.amount.abs(),
            transaction_at: row.transaction_at,
        })
        .collect())
}

fn parse_settlements(body: &[u8]) -> Result<Vec<PgSettlement>, GatewayError> {
    let rows: Vec<TossSettlement> = serde_json::from_slice(body)
        .map_err(|error| unknown(format!("unreadable settlements list: {error}")))?;
    Ok(rows
        .into_iter()
        .map(|row| PgSettlement {
            is_cancel: row.cancel.as_ref().is_some_and(|c| !c.is_null()) || row.amount < 0,
            fee: row.amount - row.pay_out_amount,
            payout: row.pay_out_amount,
            payment_key: row.payment_key,
            transaction_key: row.transaction_key,
            order_id: row.order_id,
            amount: row.amount,
            sold_date: row.sold_date.as_deref().and_then(date),
            paid_out_date: row.paid_out_date.as_deref().and_then(date),
        })
        .collect())
}

/// `2026-11-29` (or the date part of a timestamp).
fn date(raw: &str) -> Option<NaiveDate> {
    raw.get(..10).and_then(|day| day.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{Timeouts, TossOptions};
    use serde_json::json;
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn client(uri: &str) -> TossClient {
        TossClient::new(TossOptions {
            api_url: uri.to_owned(),
            secret_key: "test_sk_x".into(),
            timeouts: Timeouts {
                connect: Duration::from_secs(2),
                read: Duration::from_secs(5),
                lookup: Duration::from_secs(5),
            },
        })
        .unwrap()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    #[tokio::test]
    async fn transactions_ask_for_the_kst_day_and_page_after_a_key() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/transactions"))
            .and(query_param("startDate", "2026-11-29T00:00:00"))
            .and(query_param("endDate", "2026-11-29T23:59:59"))
            .and(query_param("startingAfter", "tx_1"))
            .and(query_param("limit", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"mId": "tosspayments", "transactionKey": "tx_2", "paymentKey": "pk_1", "orderId": "order-1",
                 "method": "카드", "status": "PARTIAL_CANCELED", "transactionAt": "2026-11-29T10:00:00+09:00",
                 "currency": "KRW", "amount": -500, "somethingNew": 1}
            ])))
            .expect(1)
            .mount(&server)
            .await;
        let rows = client(&server.uri())
            .transactions(day(), Some("tx_1"), 2)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].amount, 500);
        assert_eq!(rows[0].kind(), crate::gateway::TransactionKind::Cancel);
    }

    #[tokio::test]
    async fn settlements_read_fees_and_cancels() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/settlements"))
            .and(query_param("dateType", "soldDate"))
            .and(query_param("startDate", "2026-11-29"))
            .and(query_param("page", "3"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"paymentKey": "pk_1", "transactionKey": "tx_1", "orderId": "order-1", "amount": 10000,
                 "payOutAmount": 9670, "fees": [{"type": "BASE", "fee": 300}], "vat": 30,
                 "soldDate": "2026-11-29", "paidOutDate": "2026-12-02", "cancel": null},
                {"paymentKey": "pk_1", "transactionKey": "cx_1", "orderId": "order-1", "amount": -1000,
                 "payOutAmount": -967, "soldDate": "2026-11-29", "paidOutDate": "2026-12-02",
                 "cancel": {"cancelAmount": 1000, "transactionKey": "cx_1"}}
            ])))
            .mount(&server)
            .await;
        let rows = client(&server.uri())
            .settlements(day(), 3, 100)
            .await
            .unwrap();
        assert_eq!(
            (rows[0].fee, rows[0].payout, rows[0].is_cancel),
            (330, 9670, false)
        );
        assert_eq!(rows[0].paid_out_date, NaiveDate::from_ymd_opt(2026, 12, 2));
        assert_eq!((rows[1].fee, rows[1].is_cancel), (-33, true));
    }

    #[tokio::test]
    async fn a_429_is_retried_and_other_errors_are_classified() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/transactions"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "0")
                    .set_body_json(json!({"code": "TOO_MANY_REQUESTS", "message": "잠시 후"})),
            )
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/transactions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/settlements"))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(
                    json!({"code": "UNAUTHORIZED_KEY", "message": "인증되지 않은 키"}),
                ),
            )
            .mount(&server)
            .await;
        let client = client(&server.uri());
        assert_eq!(client.transactions(day(), None, 100).await, Ok(Vec::new()));
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
        assert!(matches!(
            client.settlements(day(), 1, 100).await,
            Err(GatewayError::Misconfigured { .. })
        ));
    }
}
