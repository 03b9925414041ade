//! Payments (`/v1/payments`): the buyer's authentication in the payment window, the confirm
//! that approves it once, lookups by key and by order, and the test's levers on Toss's record.

use std::collections::hash_map::Entry;

use serde_json::Value;

use crate::{FakePayment, FakeToss, Kept, Mid, Reply, not_found, to_json};

impl FakeToss {
    pub(crate) fn lookup(&self, payment_key: &str, mid: Mid) -> Reply {
        match self.lock(&self.0.payments, payment_key).get(payment_key) {
            Some(kept) if kept.mid == mid => Reply::new(200, to_json(&kept.payment)),
            Some(_) | None => not_found(),
        }
    }

    /// `GET /v1/payments/orders/{orderId}`: the attempt a test chose to show, else the latest.
    pub(crate) fn by_order(&self, order_id: &str, mid: Mid) -> Reply {
        let shown = self
            .0
            .shown_for_order
            .lock()
            .expect("fake Toss state")
            .get(order_id)
            .cloned();
        let key = shown.or_else(|| self.lock(&self.0.orders, order_id).get(order_id).cloned());
        match key {
            Some(key) => self.lookup(&key, mid),
            None => not_found(),
        }
    }

    pub(crate) fn confirm(&self, body: &[u8], mid: Mid) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (Some(key), Some(order), Some(amount)) = (
            body["paymentKey"].as_str(),
            body["orderId"].as_str(),
            body["amount"].as_i64(),
        ) else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let open_sessions = self.0.settings.open_sessions;
        let mut payments = self.lock(&self.0.payments, key);
        let kept = match payments.entry(key.to_owned()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) if open_sessions => {
                self.index_order(order, key);
                entry.insert(Kept {
                    payment: FakePayment::authenticated(key, order, amount),
                    mid,
                    last_cancel: None,
                })
            }
            // A key nobody authenticated: the same answer as an expired session (§17.6).
            Entry::Vacant(_) => return session_not_found(),
        };
        // Another MID's key, or another order's: Toss has no session of it for this order.
        if kept.mid != mid || kept.payment.order_id != order {
            return session_not_found();
        }
        let payment = &mut kept.payment;
        if payment.total != amount {
            return Reply::refused(
                400,
                "INVALID_REQUEST",
                "결제 금액 또는 주문번호가 일치하지 않습니다.",
            );
        }
        match payment.status.as_str() {
            "IN_PROGRESS" if payment.virtual_account => {
                // The account is issued; the buyer has not paid yet.
                payment.status = "WAITING_FOR_DEPOSIT".to_owned();
                payment.last_transaction_key = format!("tx_{}", uuid::Uuid::new_v4().simple());
                Reply::new(200, to_json(payment))
            }
            "IN_PROGRESS" => {
                payment.approve_now();
                self.record(payment, mid, "DONE", amount);
                Reply::new(200, to_json(payment))
            }
            "ABORTED" | "EXPIRED" => session_not_found(),
            _ => Reply::refused(400, "ALREADY_PROCESSED_PAYMENT", "이미 처리된 결제 입니다."),
        }
    }

    /// The buyer authenticated in the payment window: Toss knows the payment as IN_PROGRESS.
    pub fn authenticate(&self, payment_key: &str, order_id: &str, amount: i64) {
        self.keep(
            FakePayment::authenticated(payment_key, order_id, amount),
            Mid::Payments,
        );
    }

    /// The payment's tax-free part, as the merchant's checkout told Toss.
    pub fn set_tax_free(&self, payment_key: &str, tax_free: i64) {
        self.update(payment_key, |payment| payment.tax_free = tax_free);
    }

    /// Sets Toss's status of a payment, as if something happened on Toss's side.
    pub fn set_status(&self, payment_key: &str, status: &str) {
        if let Some(kept) = self
            .lock(&self.0.payments, payment_key)
            .get_mut(payment_key)
        {
            kept.payment.status = status.to_owned();
        }
    }

    /// Whether the attempt a lookup of `order_id` finds was approved.
    pub(crate) fn order_approved(&self, order_id: &str) -> bool {
        let Some(key) = self.payment_key_of_order(order_id) else {
            return false;
        };
        self.payment(&key)
            .is_some_and(|payment| payment.approved_at.is_some())
    }

    /// From now on a lookup of `order_id` finds the attempt `payment_key`, whatever attempts
    /// come later (Toss does not say which of an order's attempts
    /// `GET /v1/payments/orders/{orderId}` returns).
    pub fn show_for_order(&self, order_id: &str, payment_key: &str) {
        self.0
            .shown_for_order
            .lock()
            .expect("fake Toss state")
            .insert(order_id.to_owned(), payment_key.to_owned());
    }

    /// Every `paymentKey` Toss holds for `order_id`, in no particular order.
    pub fn attempts_of_order(&self, order_id: &str) -> Vec<String> {
        self.0
            .payments
            .iter()
            .flat_map(|shard| {
                shard
                    .lock()
                    .expect("fake Toss state")
                    .values()
                    .filter(|kept| kept.payment.order_id == order_id)
                    .map(|kept| kept.payment.payment_key.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The `paymentKey` Toss holds for `order_id` (the latest attempt's; a billing charge's).
    pub fn payment_key_of_order(&self, order_id: &str) -> Option<String> {
        self.lock(&self.0.orders, order_id).get(order_id).cloned()
    }

    pub fn payment(&self, payment_key: &str) -> Option<FakePayment> {
        self.lock(&self.0.payments, payment_key)
            .get(payment_key)
            .map(|kept| kept.payment.clone())
    }
}

/// A confirm of a key with no live session for this order: expired, aborted, never
/// authenticated, or another order's or merchant's (§17.6).
fn session_not_found() -> Reply {
    Reply::refused(
        404,
        "NOT_FOUND_PAYMENT_SESSION",
        "결제 시간이 만료되어 결제 진행 데이터가 존재하지 않습니다.",
    )
}

#[cfg(test)]
mod tests {
    use crate::test_support::*;
    use crate::*;

    #[test]
    fn confirms_once_and_replays_a_repeated_key() {
        let toss = FakeToss::default();
        toss.authenticate("pk_1", "o-1", 1000);
        let first = confirm(&toss, Some("k1"), "pk_1");
        assert_eq!(first.status, 200);
        assert_eq!(first.body["secret"], secret_of("pk_1"));
        assert_eq!(confirm(&toss, Some("k1"), "pk_1").body, first.body);
        assert_eq!(
            confirm(&toss, Some("k2"), "pk_1").body["code"],
            "ALREADY_PROCESSED_PAYMENT"
        );
        let by_order = toss.handle(call(
            Endpoint::ByOrder { order_id: "o-1" },
            "/v1/payments/orders/o-1",
            None,
            b"",
        ));
        assert_eq!(by_order.body["status"], "DONE");
    }

    #[test]
    fn without_replays_a_repeated_key_is_a_new_call() {
        let toss = FakeToss::new(Settings {
            replays: false,
            ..Settings::default()
        });
        toss.authenticate("pk_1", "o-1", 1000);
        assert_eq!(confirm(&toss, Some("k1"), "pk_1").status, 200);
        assert_eq!(confirm(&toss, Some("k1"), "pk_1").status, 400);
    }

    #[test]
    fn a_key_without_a_session_of_the_order_is_not_found_only_a_read_back_tells_why() {
        let toss = FakeToss::default();
        let lookup = |payment_key: &str| {
            let path = format!("/v1/payments/{payment_key}");
            toss.handle(call(Endpoint::ByKey { payment_key }, &path, None, b""))
        };
        // Never authenticated: nothing is created, and the read-back knows nothing either.
        let junk = confirm(&toss, None, "pk_junk");
        assert_eq!(
            (junk.status, junk.body["code"].as_str()),
            (404, Some("NOT_FOUND_PAYMENT_SESSION"))
        );
        assert_eq!(lookup("pk_junk").body["code"], "NOT_FOUND_PAYMENT");
        assert!(toss.payment("pk_junk").is_none());
        // Another order's key: the same answer, and that order's payment is not touched.
        toss.authenticate("pk_other", "o-2", 1000);
        let foreign = confirm(&toss, None, "pk_other");
        assert_eq!(foreign.body["code"], "NOT_FOUND_PAYMENT_SESSION");
        assert_eq!(toss.payment("pk_other").unwrap().status, "IN_PROGRESS");
        // This order's expired attempt: the same answer; its read-back shows it EXPIRED.
        toss.authenticate("pk_old", "o-1", 1000);
        toss.set_status("pk_old", "EXPIRED");
        let expired = confirm(&toss, None, "pk_old");
        assert_eq!(expired.body["code"], "NOT_FOUND_PAYMENT_SESSION");
        assert_eq!(lookup("pk_old").body["status"], "EXPIRED");
        // The benchmark's fake opens a session on the first confirm.
        let open = FakeToss::new(Settings {
            open_sessions: true,
            ..Settings::default()
        });
        assert_eq!(confirm(&open, None, "pk_any").body["status"], "DONE");
    }
}
