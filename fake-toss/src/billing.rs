//! Billing (자동결제, `/v1/billing`): a registered card's `authKey` issued into a billing key
//! once, charges that approve an order id once, queued declines and a 500 after charging, and
//! `BILLING_DELETED`.

use std::collections::HashMap;
use std::sync::MutexGuard;

use serde_json::{Value, json};

use crate::{FakePayment, FakeToss, Mid, Reply, to_json};

/// Billing (자동결제): card registrations waiting to be issued, issued keys, and what the next
/// charges will meet.
#[derive(Default)]
pub(crate) struct Billing {
    /// Unused `authKey` -> the `customerKey` that registered the card (single-use).
    auth_keys: HashMap<String, String>,
    /// billingKey -> its customer key, while Toss keeps it.
    keys: HashMap<String, String>,
    /// customerKey -> its billing keys, newest last.
    by_customer: HashMap<String, Vec<String>>,
    /// Declines the next charges meet, in order: (HTTP status, code, message).
    declines: std::collections::VecDeque<(u16, String, String)>,
    /// The next charge happens, but Toss answers 500.
    fail_after_next_charge: bool,
    /// orderId -> how many charges Toss approved for it.
    approvals: HashMap<String, usize>,
    issues: usize,
}

impl FakeToss {
    pub(crate) fn billing(&self) -> MutexGuard<'_, Billing> {
        self.0.billing.lock().expect("fake Toss state")
    }

    pub(crate) fn issue(&self, body: &[u8]) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (Some(auth_key), Some(customer_key)) =
            (body["authKey"].as_str(), body["customerKey"].as_str())
        else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let mut billing = self.billing();
        billing.issues += 1;
        match billing.auth_keys.get(auth_key) {
            Some(owner) if owner == customer_key => {}
            Some(_) => {
                return Reply::refused(
                    400,
                    "NOT_MATCHES_CUSTOMER_KEY",
                    "인증 정보의 customerKey가 일치하지 않습니다.",
                );
            }
            // Unknown or already used (`authKey` is single-use): Toss's code for it (§17.1).
            None => {
                return Reply::refused(404, "NOT_FOUND_BILLING", "존재하지 않는 빌링 정보 입니다.");
            }
        }
        billing.auth_keys.remove(auth_key);
        let billing_key = format!(
            "bk_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        billing
            .keys
            .insert(billing_key.clone(), customer_key.to_owned());
        billing
            .by_customer
            .entry(customer_key.to_owned())
            .or_default()
            .push(billing_key.clone());
        Reply::new(
            200,
            json!({
                "mId": "tosspayments",
                "customerKey": customer_key,
                "authenticatedAt": "2026-12-01T09:30:00+09:00",
                "method": "카드",
                "billingKey": billing_key,
                "card": {"issuerCode": "71", "acquirerCode": "71", "number": "43301234****123*",
                         "cardType": "신용", "ownerType": "개인"},
                "cardCompany": "롯데",
                "cardNumber": "43301234****123*"
            }),
        )
    }

    pub(crate) fn charge(&self, billing_key: &str, body: &[u8], mid: Mid) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (Some(customer_key), Some(amount), Some(order_id), Some(_name)) = (
            body["customerKey"].as_str(),
            body["amount"].as_i64(),
            body["orderId"].as_str(),
            body["orderName"].as_str(),
        ) else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let mut billing = self.billing();
        // §17.2: an unknown, deleted or unfinished billing key, and a customerKey that is not
        // the key's, are refused with these codes (nothing is charged).
        match billing.keys.get(billing_key) {
            Some(owner) if owner == customer_key => {}
            Some(_) => {
                return Reply::refused(
                    400,
                    "NOT_MATCHES_CUSTOMER_KEY",
                    "빌링키와 고객키가 일치하지 않습니다.",
                );
            }
            None => {
                return Reply::refused(
                    400,
                    "INVALID_BILL_KEY_REQUEST",
                    "빌링키 요청이 유효하지 않습니다.",
                );
            }
        }
        if billing.approvals.get(order_id).is_some_and(|n| *n > 0) || self.order_approved(order_id)
        {
            return Reply::refused(
                400,
                "DUPLICATED_ORDER_ID",
                "이미 승인 및 취소가 진행된 중복된 주문번호 입니다.",
            );
        }
        let payment_key = format!("bpk_{}", uuid::Uuid::new_v4().simple());
        let mut payment = FakePayment::authenticated(&payment_key, order_id, amount);
        payment.tax_free = body["taxFreeAmount"].as_i64().unwrap_or_default();
        if let Some((status, code, message)) = billing.declines.pop_front() {
            // A declined charge is an attempt of the order Toss keeps, ended without approval:
            // the order stays chargeable, and a read-back by order id may show it.
            payment.status = "ABORTED".to_owned();
            payment.failure = Some((code.clone(), message.clone()));
            self.keep(payment, mid);
            return Reply::refused(status, &code, &message);
        }
        payment.approve_now();
        self.record(&payment, mid, "DONE", amount);
        let reply = to_json(&payment);
        self.keep(payment, mid);
        *billing.approvals.entry(order_id.to_owned()).or_default() += 1;
        if std::mem::take(&mut billing.fail_after_next_charge) {
            return Reply::refused(
                500,
                "FAILED_INTERNAL_SYSTEM_PROCESSING",
                "내부 시스템 처리 작업이 실패했습니다. 잠시 후 다시 시도해주세요.",
            );
        }
        Reply::new(200, reply)
    }

    /// The buyer registered a card in Toss's billing window for `customer_key`: the `authKey`
    /// Toss's success redirect carries (single-use).
    pub fn register_card(&self, customer_key: &str) -> String {
        let auth_key = format!("bln_{}", uuid::Uuid::new_v4().simple());
        self.billing()
            .auth_keys
            .insert(auth_key.clone(), customer_key.to_owned());
        auth_key
    }

    /// The billing keys Toss issued for `customer_key`, oldest first.
    pub fn billing_keys_of(&self, customer_key: &str) -> Vec<String> {
        self.billing()
            .by_customer
            .get(customer_key)
            .cloned()
            .unwrap_or_default()
    }

    /// How many issue requests Toss received (replays of an `Idempotency-Key` not counted).
    pub fn issues(&self) -> usize {
        self.billing().issues
    }

    /// How many charges Toss approved for `order_id`.
    pub fn approvals(&self, order_id: &str) -> usize {
        self.billing()
            .approvals
            .get(order_id)
            .copied()
            .unwrap_or_default()
    }

    /// The next charge is declined with `code` (403 for Toss's `REJECT_*` family, else 400).
    pub fn decline_next_charge(&self, code: &str, message: &str) {
        let status = if code.starts_with("REJECT_") || code.starts_with("EXCEED_MAX_ONE_DAY") {
            403
        } else {
            400
        };
        self.billing()
            .declines
            .push_back((status, code.to_owned(), message.to_owned()));
    }

    /// The next charge happens at Toss, but Toss answers 500.
    pub fn fail_after_next_charge(&self) {
        self.billing().fail_after_next_charge = true;
    }

    /// The buyer (or the merchant in Toss's dashboard) removed a billing key: Toss forgets it
    /// and sends `BILLING_DELETED`, whose body this returns.
    pub fn delete_billing_key(&self, billing_key: &str) -> Value {
        self.billing().keys.remove(billing_key);
        json!({
            "eventType": "BILLING_DELETED",
            "createdAt": "2026-12-01T10:00:00.000000",
            "data": {"billingKey": billing_key, "reason": "고객 요청"}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use crate::*;

    #[test]
    fn billing_keys_are_issued_once_per_auth_key_and_charge_an_order_once() {
        let toss = FakeToss::new(Settings {
            billing_secret_key: Some("test_sk_billing".to_owned()),
            ..Settings::default()
        });
        let billing_auth = basic_auth("test_sk_billing");
        let billing = |endpoint, path: &str, key: Option<&str>, body: Value| {
            let body = body.to_string();
            toss.handle(Call {
                endpoint,
                path,
                authorization: Some(&billing_auth),
                idempotency_key: key,
                body: body.as_bytes(),
            })
        };
        let auth_key = toss.register_card("cust-1");
        let issue = json!({"authKey": auth_key, "customerKey": "cust-1"});
        let path = "/v1/billing/authorizations/issue";
        let issued = billing(Endpoint::IssueBillingKey, path, None, issue.clone());
        assert_eq!(issued.status, 200);
        let again = billing(Endpoint::IssueBillingKey, path, None, issue.clone());
        assert_eq!(
            (again.status, again.body["code"].as_str()),
            (404, Some("NOT_FOUND_BILLING")),
            "single-use"
        );
        let key = issued.body["billingKey"].as_str().unwrap().to_owned();
        assert_eq!(toss.billing_keys_of("cust-1"), vec![key.clone()]);
        // The payment key's MID may not issue.
        let body = issue.to_string();
        let wrong = toss.handle(call(Endpoint::IssueBillingKey, path, None, body.as_bytes()));
        assert_eq!(wrong.status, 401);

        let charge = json!({"customerKey": "cust-1", "amount": 1000, "orderId": "o-bill-1", "orderName": "n"});
        let charge_path = format!("/v1/billing/{key}");
        let charged = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            Some("c1"),
            charge.clone(),
        );
        assert_eq!(charged.body["status"], "DONE");
        let replay = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            Some("c1"),
            charge.clone(),
        );
        assert_eq!(replay.body, charged.body, "same key: replayed");
        let second = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            Some("c2"),
            charge.clone(),
        );
        assert_eq!(second.body["code"], "DUPLICATED_ORDER_ID");
        assert_eq!(toss.approvals("o-bill-1"), 1);
        // Each MID sees only its own payments.
        let by_order = |authorization: &str| {
            toss.handle(Call {
                endpoint: Endpoint::ByOrder {
                    order_id: "o-bill-1",
                },
                path: "/v1/payments/orders/o-bill-1",
                authorization: Some(authorization),
                idempotency_key: None,
                body: b"",
            })
        };
        assert_eq!(by_order(&billing_auth).body["status"], "DONE");
        assert_eq!(by_order(BASIC_AUTH).status, 404);
        // Declines are consumed in order; the order stays chargeable after one.
        toss.decline_next_charge("REJECT_CARD_PAYMENT", "한도초과");
        let order_2 = json!({"customerKey": "cust-1", "amount": 1000, "orderId": "o-bill-2", "orderName": "n"});
        let declined = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            None,
            order_2.clone(),
        );
        assert_eq!(
            (declined.status, declined.body["code"].as_str()),
            (403, Some("REJECT_CARD_PAYMENT"))
        );
        toss.fail_after_next_charge();
        let failed = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            None,
            order_2,
        );
        assert_eq!(failed.status, 500);
        assert_eq!(
            toss.approvals("o-bill-2"),
            1,
            "charged, though Toss answered 500"
        );
        // BILLING_DELETED: the key is gone at Toss.
        let webhook = toss.delete_billing_key(&key);
        assert_eq!(webhook["data"]["billingKey"], key.as_str());
        let gone = billing(
            Endpoint::Charge { billing_key: &key },
            &charge_path,
            None,
            json!({"customerKey": "cust-1", "amount": 1000, "orderId": "o-bill-3", "orderName": "n"}),
        );
        assert_eq!(
            (gone.status, gone.body["code"].as_str()),
            (400, Some("INVALID_BILL_KEY_REQUEST"))
        );
    }

    #[test]
    fn billing_refusals_use_tosss_codes_and_a_decline_is_an_aborted_attempt() {
        let toss = FakeToss::default();
        let charge = |billing_key: &str, key: Option<&str>, body: Value| {
            let path = format!("/v1/billing/{billing_key}");
            let body = body.to_string();
            toss.handle(call(
                Endpoint::Charge { billing_key },
                &path,
                key,
                body.as_bytes(),
            ))
        };
        let auth_key = toss.register_card("cust-1");
        let issue = |auth_key: &str, customer: &str| {
            let body = json!({"authKey": auth_key, "customerKey": customer}).to_string();
            toss.handle(call(
                Endpoint::IssueBillingKey,
                "/v1/billing/authorizations/issue",
                None,
                body.as_bytes(),
            ))
        };
        assert_eq!(
            issue(&auth_key, "cust-2").body["code"],
            "NOT_MATCHES_CUSTOMER_KEY"
        );
        assert_eq!(issue("bln_unknown", "cust-1").status, 404);
        let key = issue(&auth_key, "cust-1").body["billingKey"]
            .as_str()
            .unwrap()
            .to_owned();
        let order = |customer: &str| json!({"customerKey": customer, "amount": 1000, "orderId": "o-bill-9", "orderName": "n"});
        let foreign = charge(&key, None, order("cust-2"));
        assert_eq!(
            (foreign.status, foreign.body["code"].as_str()),
            (400, Some("NOT_MATCHES_CUSTOMER_KEY"))
        );
        let unknown = charge("bk_unknown", None, order("cust-1"));
        assert_eq!(
            (unknown.status, unknown.body["code"].as_str()),
            (400, Some("INVALID_BILL_KEY_REQUEST"))
        );
        for code in [
            "INVALID_AUTH_KEY",
            "NOT_FOUND_BILLING_KEY",
            "INVALID_BILLING_KEY",
        ] {
            assert_ne!(foreign.body["code"], code);
            assert_ne!(unknown.body["code"], code);
        }
        // A decline leaves an ABORTED attempt of the order; the next charge approves it.
        toss.decline_next_charge("REJECT_CARD_PAYMENT", "한도초과");
        assert_eq!(charge(&key, Some("a1"), order("cust-1")).status, 403);
        let aborted = toss.payment_key_of_order("o-bill-9").unwrap();
        let first = toss.payment(&aborted).unwrap();
        assert_eq!(first.status, "ABORTED");
        assert_eq!(first.approved_at, None);
        assert_eq!(to_json(&first)["failure"]["code"], "REJECT_CARD_PAYMENT");
        // Which attempt a lookup by order id shows is Toss's choice; a test may pick the
        // earlier one. A second approval of the order is refused all the same.
        toss.show_for_order("o-bill-9", &aborted);
        let approved = charge(&key, Some("a2"), order("cust-1"));
        assert_eq!(approved.body["status"], "DONE");
        assert_eq!(toss.approvals("o-bill-9"), 1);
        assert_eq!(toss.attempts_of_order("o-bill-9").len(), 2);
        let by_order = toss.handle(call(
            Endpoint::ByOrder {
                order_id: "o-bill-9",
            },
            "/v1/payments/orders/o-bill-9",
            None,
            b"",
        ));
        assert_eq!(by_order.body["status"], "ABORTED");
        assert_eq!(
            charge(&key, Some("a3"), order("cust-1")).body["code"],
            "DUPLICATED_ORDER_ID"
        );
        assert_eq!(
            charge(&key, Some("a2"), order("cust-1")).body,
            approved.body,
            "the same key replays the approval"
        );
        assert_eq!(toss.approvals("o-bill-9"), 1);
    }
}
