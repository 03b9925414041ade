//! A permissive fake Toss: any `Authorization` is accepted (it is recorded), and the payment key
//! chooses the behaviour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::fake_toss::{FakePayment, error, to_json};

const SLOW: Duration = Duration::from_secs(3);

#[derive(Clone, Default)]
pub(super) struct PermissiveToss {
    payments: Arc<Mutex<HashMap<String, FakePayment>>>,
    pub(super) authorizations: Arc<Mutex<Vec<String>>>,
    /// Paths of the billing charges received (they carry the billing key).
    pub(super) billing_charges: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Copy)]
enum Endpoint {
    Confirm,
    Cancel,
    ByKey,
    ByOrder,
    Issue,
    Charge,
}

struct Answer(PermissiveToss, Endpoint);

impl Respond for Answer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let toss = &self.0;
        if let Some(value) = request.headers.get("authorization") {
            toss.authorizations
                .lock()
                .unwrap()
                .push(value.to_str().unwrap_or_default().to_owned());
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let segment = |n: usize| {
            request
                .url
                .path_segments()
                .and_then(|mut s| s.nth(n))
                .unwrap_or_default()
                .to_owned()
        };
        let mut payments = toss.payments.lock().unwrap();
        match self.1 {
            Endpoint::Confirm => {
                let key = body["paymentKey"].as_str().unwrap_or_default().to_owned();
                let order = body["orderId"].as_str().unwrap_or_default().to_owned();
                let amount = body["amount"].as_i64().unwrap_or_default();
                if key.starts_with("pk_decline") {
                    return error(
                        403,
                        "REJECT_CARD_PAYMENT",
                        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
                    );
                }
                if key.starts_with("pk_badkey") {
                    return error(
                        401,
                        "UNAUTHORIZED_KEY",
                        "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
                    );
                }
                if key.starts_with("pk_5xx") {
                    // Toss knows the buyer's attempt (authenticated, not approved): the outcome
                    // stays unknown, rather than a key Toss has no record of.
                    payments.entry(key.clone()).or_insert_with(|| FakePayment {
                        payment_key: key.clone(),
                        order_id: order.clone(),
                        total: amount,
                        balance: amount,
                        status: "IN_PROGRESS".to_owned(),
                        ..Default::default()
                    });
                    return error(
                        500,
                        "FAILED_INTERNAL_SYSTEM_PROCESSING",
                        "내부 시스템 처리 작업이 실패했습니다. 잠시 후 다시 시도해주세요.",
                    );
                }
                let payment = payments.entry(key.clone()).or_insert_with(|| FakePayment {
                    payment_key: key.clone(),
                    order_id: order,
                    total: amount,
                    balance: amount,
                    status: "DONE".to_owned(),
                    cancels: Vec::new(),
                    // Approved (for a virtual account: deposited), so Toss's record keeps its
                    // `approvedAt` once wholly cancelled, as Toss's does.
                    approved_at: Some("2026-11-23T12:18:14+09:00".to_owned()),
                    last_transaction_key: format!("tx_{key}"),
                    // Paid by virtual account, deposited: its refunds name a refund account.
                    virtual_account: key.starts_with("pk_va"),
                    ..Default::default()
                });
                let reply = ResponseTemplate::new(200).set_body_json(to_json(payment));
                if key.starts_with("pk_slow") {
                    reply.set_delay(SLOW)
                } else {
                    reply
                }
            }
            Endpoint::Cancel => {
                let key = segment(2);
                let Some(payment) = payments.get_mut(&key) else {
                    return error(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다.");
                };
                if key.starts_with("pk_norefund") {
                    return error(
                        403,
                        "NOT_CANCELABLE_PAYMENT",
                        "취소 할 수 없는 결제 입니다.",
                    );
                }
                if payment.virtual_account && !body["refundReceiveAccount"].is_object() {
                    return error(
                        400,
                        "INVALID_REFUND_ACCOUNT_INFO",
                        "환불 계좌번호와 예금주명이 일치하지 않습니다.",
                    );
                }
                let amount = body["cancelAmount"].as_i64().unwrap_or(payment.balance);
                if amount > payment.balance {
                    return error(403, "NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
                }
                payment.balance -= amount;
                payment.status = if payment.balance == 0 {
                    "CANCELED"
                } else {
                    "PARTIAL_CANCELED"
                }
                .to_owned();
                let transaction_key = format!("cx_{key}_{}", payment.cancels.len());
                payment.last_transaction_key = transaction_key.clone();
                payment.cancels.push(json!({
                    "transactionKey": transaction_key,
                    "cancelReason": body["cancelReason"],
                    "taxExemptionAmount": 0,
                    "canceledAt": "2026-11-23T12:20:23+09:00",
                    "cancelAmount": amount,
                    "taxFreeAmount": 0,
                    "refundableAmount": payment.balance,
                    "cancelStatus": "DONE",
                    "cancelRequestId": null
                }));
                ResponseTemplate::new(200).set_body_json(to_json(payment))
            }
            Endpoint::ByKey => match payments.get(&segment(2)) {
                Some(payment) => ResponseTemplate::new(200).set_body_json(to_json(payment)),
                None => error(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다."),
            },
            Endpoint::Issue => ResponseTemplate::new(200).set_body_json(json!({
                "mId": "tosspayments", "customerKey": body["customerKey"],
                "authenticatedAt": "2026-12-01T09:30:00+09:00", "method": "카드",
                "billingKey": super::BILLING_KEY,
                "card": {"issuerCode": "71", "acquirerCode": "71", "number": "43301234****123*",
                         "cardType": "신용", "ownerType": "개인"}
            })),
            Endpoint::Charge => {
                toss.billing_charges
                    .lock()
                    .unwrap()
                    .push(request.url.path().to_owned());
                let order = body["orderId"].as_str().unwrap_or_default().to_owned();
                if order.contains("decline") {
                    return error(
                        403,
                        "REJECT_CARD_PAYMENT",
                        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
                    );
                }
                let key = format!("bpk_{order}");
                let amount = body["amount"].as_i64().unwrap_or_default();
                let payment = payments.entry(key.clone()).or_insert_with(|| FakePayment {
                    payment_key: key.clone(),
                    order_id: order,
                    total: amount,
                    balance: amount,
                    status: "DONE".to_owned(),
                    cancels: Vec::new(),
                    last_transaction_key: format!("tx_{key}"),
                    ..Default::default()
                });
                ResponseTemplate::new(200).set_body_json(to_json(payment))
            }
            Endpoint::ByOrder => {
                let order = segment(3);
                match payments.values().find(|p| p.order_id == order) {
                    Some(payment) => ResponseTemplate::new(200).set_body_json(to_json(payment)),
                    None => error(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다."),
                }
            }
        }
    }
}

impl PermissiveToss {
    pub(super) async fn mount(&self, server: &MockServer) {
        let routes = [
            ("POST", "^/v1/payments/confirm$", Endpoint::Confirm, 1),
            ("POST", "^/v1/payments/[^/]+/cancel$", Endpoint::Cancel, 1),
            ("GET", "^/v1/payments/orders/[^/]+$", Endpoint::ByOrder, 1),
            ("GET", "^/v1/payments/[^/]+$", Endpoint::ByKey, 2),
            (
                "POST",
                "^/v1/billing/authorizations/issue$",
                Endpoint::Issue,
                1,
            ),
            ("POST", "^/v1/billing/[^/]+$", Endpoint::Charge, 2),
        ];
        for (http_method, pattern, endpoint, priority) in routes {
            Mock::given(method(http_method))
                .and(path_regex(pattern))
                .respond_with(Answer(self.clone(), endpoint))
                .with_priority(priority)
                .mount(server)
                .await;
        }
        // Anything else the client might try.
        Mock::given(path("/"))
            .respond_with(error(404, "NOT_FOUND", "not found"))
            .with_priority(10)
            .mount(server)
            .await;
    }
}
