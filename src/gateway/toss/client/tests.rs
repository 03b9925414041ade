use super::*;
use chrono::{TimeZone as _, Utc};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::gateway::toss::fixtures::{CANCELED, CONFIRMED};
use crate::gateway::{Outcome, PgStatus};

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

/// A trailing slash on the base URL does not double the slash; a path prefix is kept.
#[tokio::test]
async fn sends_the_exact_authorization_header_under_the_base_path() {
    for (base, expected) in [("/", "/v1/payments/pk"), ("/toss/", "/toss/v1/payments/pk")] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(expected))
            .and(header("Authorization", EXPECTED_AUTH))
            .respond_with(ResponseTemplate::new(200).set_body_string(CONFIRMED))
            .expect(1)
            .mount(&server)
            .await;
        let found = client(&format!("{}{base}", server.uri()))
            .payment_by_key(&key("pk"))
            .await;
        assert!(matches!(found, Ok(Some(_))), "{base}");
    }
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
        .cancel(&CancelRequest::refund("a/b?c#d%e", "고객 변심", 1000))
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

/// Toss's code and message reach the classification verbatim (`errors` tests the classes).
#[tokio::test]
async fn tosss_codes_are_classified_with_its_code_and_message_verbatim() {
    for (status, code, message, outcome) in [
        (
            403,
            "REJECT_CARD_PAYMENT",
            "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
            Outcome::Declined,
        ),
        (
            401,
            "UNAUTHORIZED_KEY",
            "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
            Outcome::Misconfigured,
        ),
        (400, "ALREADY_PROCESSED_PAYMENT", "메시지", Outcome::Unknown),
        (400, "BRAND_NEW_CODE", "메시지", Outcome::Unknown),
    ] {
        let error = confirm_answered_with(toss_error(status, code, message))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            classify(status, code, message, Operation::Confirm),
            "{code}"
        );
        assert_eq!(error.outcome(), outcome, "{code}");
    }
}

/// An HTML 500, an unreadable 2xx, a redirect (never followed): the outcome is unknown.
#[tokio::test]
async fn replies_that_are_not_tosss_are_unknown() {
    for (response, says) in [
        (
            ResponseTemplate::new(500).set_body_raw("<html>Bad Gateway</html>", "text/html"),
            "500",
        ),
        (
            ResponseTemplate::new(200).set_body_string("{\"paymentKey\":"),
            "",
        ),
        (
            ResponseTemplate::new(307).insert_header("Location", "http://127.0.0.1:9/elsewhere"),
            "",
        ),
    ] {
        let reason = assert_unknown_without_code(confirm_answered_with(response).await);
        assert!(reason.contains(says), "{reason}");
    }
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
        .respond_with(ResponseTemplate::new(200).set_body_string("{".repeat(MAX_REPLY_BYTES + 1)))
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
