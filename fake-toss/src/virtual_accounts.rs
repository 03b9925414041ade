//! Virtual accounts (가상계좌): a confirm issues the account, the deposit approves it (with its
//! `DEPOSIT_CALLBACK`), a bank can reverse it, and past its due date it waits expired (§4).

use serde_json::{Value, json};

use crate::{FakePayment, FakeToss, Mid, due_date_of, secret_of};

/// How long a virtual account takes deposits: seven days.
pub(crate) const DUE_IN: chrono::Duration = chrono::Duration::days(7);

impl FakeToss {
    /// The buyer chose a virtual account in the payment window: the confirm issues it.
    pub fn authenticate_virtual_account(&self, payment_key: &str, order_id: &str, amount: i64) {
        self.authenticate(payment_key, order_id, amount);
        self.update(payment_key, |payment| {
            payment.virtual_account = true;
            payment.due_date = Some(due_date_of(chrono::Utc::now() + DUE_IN));
        });
    }

    /// The buyer deposits into the virtual account: `WAITING_FOR_DEPOSIT` → `DONE`, and `true`;
    /// `false` (nothing changes) when the account no longer takes deposits (cancelled,
    /// expired). The `DEPOSIT_CALLBACK` body Toss sends is [`FakeToss::deposit_callback`].
    pub fn deposit(&self, payment_key: &str) -> bool {
        let deposited = self.update(payment_key, |payment| {
            if payment.status != "WAITING_FOR_DEPOSIT" || payment.deposit_expired() {
                return None;
            }
            payment.approve_now();
            Some(payment.clone())
        });
        // The deposit is the approval: it enters Toss's transactions then.
        deposited.is_some_and(|payment| {
            self.record(&payment, Mid::Payments, "DONE", payment.total);
            true
        })
    }

    /// The `DEPOSIT_CALLBACK` body Toss sends about the payment as it is now.
    pub fn deposit_callback(&self, payment_key: &str) -> Value {
        self.update(payment_key, |payment| deposit_callback(payment))
    }

    /// Time ran out. A virtual account waiting for its deposit: its due date is now past, so
    /// it stays `WAITING_FOR_DEPOSIT` with `virtualAccount.expired: true`, takes no deposit, and
    /// Toss sends no webhook (§4). Anything else (a window payment never confirmed): `EXPIRED`.
    pub fn expire(&self, payment_key: &str) {
        self.update(payment_key, |payment| {
            if payment.virtual_account && payment.status == "WAITING_FOR_DEPOSIT" {
                let past = chrono::Utc::now() - chrono::Duration::seconds(1);
                payment.due_date = Some(due_date_of(past));
                return;
            }
            payment.status = "EXPIRED".to_owned();
            payment.failure = Some((
                "EXPIRED_PAYMENT".to_owned(),
                "결제가 만료되었습니다. 다시 시도해주세요.".to_owned(),
            ));
        });
    }

    /// The virtual account of `payment_key` is due at `due` (KST, `yyyy-MM-dd'T'HH:mm:ss`, as
    /// [`due_date_of`] writes it); past it, it expires (see [`FakeToss::expire`]).
    pub fn set_due_date(&self, payment_key: &str, due: &str) {
        self.update(payment_key, |payment| {
            payment.due_date = Some(due.to_owned())
        });
    }

    /// The bank reversed the deposit (API ≥ 2022-06-08: `DONE` → `WAITING_FOR_DEPOSIT`).
    /// Returns the `DEPOSIT_CALLBACK` body Toss sends then.
    pub fn deposit_error(&self, payment_key: &str) -> Value {
        self.update(payment_key, |payment| {
            assert_eq!(payment.status, "DONE", "no deposit to reverse");
            payment.status = "WAITING_FOR_DEPOSIT".to_owned();
            deposit_callback(payment)
        })
    }
}

/// `DEPOSIT_CALLBACK`: flat, no `eventType`, no `paymentKey`; verified by `secret` (§10).
fn deposit_callback(payment: &FakePayment) -> Value {
    json!({
        "createdAt": "2026-12-01T10:00:00.000000",
        "secret": secret_of(&payment.payment_key),
        "status": payment.status,
        "transactionKey": payment.last_transaction_key,
        "orderId": payment.order_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use crate::*;

    #[test]
    fn a_virtual_account_is_issued_deposited_and_refunded_to_an_account() {
        let toss = FakeToss::default();
        toss.authenticate_virtual_account("pk_va", "o-1", 1000);
        toss.set_tax_free("pk_va", 300);
        let issued = confirm(&toss, None, "pk_va");
        assert_eq!(issued.body["status"], "WAITING_FOR_DEPOSIT");
        assert_eq!(issued.body["method"], "가상계좌");
        assert_eq!(issued.body["virtualAccount"]["bankCode"], "20");
        assert_eq!(issued.body["approvedAt"], Value::Null);
        let cancel = |body: Value| {
            let body = body.to_string();
            toss.handle(call(
                Endpoint::Cancel {
                    payment_key: "pk_va",
                },
                "/v1/payments/pk_va/cancel",
                None,
                body.as_bytes(),
            ))
        };
        let partial = cancel(json!({"cancelReason": "r", "cancelAmount": 400}));
        assert_eq!(
            partial.body["code"],
            "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT"
        );
        assert!(toss.deposit("pk_va"));
        assert!(!toss.deposit("pk_va"), "deposited once");
        let callback = toss.deposit_callback("pk_va");
        assert_eq!(callback["secret"], secret_of("pk_va"));
        assert_eq!(callback["status"], "DONE");
        let without = cancel(json!({"cancelReason": "r", "cancelAmount": 400}));
        assert_eq!(without.body["code"], "INVALID_REFUND_ACCOUNT_INFO");
        let account =
            json!({"bank": "88", "accountNumber": "110123456789", "holderName": "홍길동"});
        let refunded = cancel(
            json!({"cancelReason": "r", "cancelAmount": 400, "taxFreeAmount": 120,
                                     "refundReceiveAccount": account}),
        );
        assert_eq!(refunded.status, 200, "{}", refunded.body);
        assert_eq!(refunded.body["taxFreeAmount"], 180);
        assert_eq!(refunded.body["cancels"][0]["taxFreeAmount"], 120);
        toss.authenticate_virtual_account("pk_va2", "o-1", 1000);
        confirm(&toss, None, "pk_va2");
        toss.deposit("pk_va2");
        assert_eq!(
            toss.deposit_error("pk_va2")["status"],
            "WAITING_FOR_DEPOSIT"
        );
        assert_eq!(
            toss.payment("pk_va2").unwrap().status,
            "WAITING_FOR_DEPOSIT"
        );
    }

    #[test]
    fn an_unpaid_virtual_account_is_cancelled_whole_or_expires() {
        let toss = FakeToss::default();
        toss.authenticate_virtual_account("pk_va", "o-1", 1000);
        confirm(&toss, None, "pk_va");
        let body = json!({"cancelReason": "r"}).to_string();
        let cancelled = toss.handle(call(
            Endpoint::Cancel {
                payment_key: "pk_va",
            },
            "/v1/payments/pk_va/cancel",
            None,
            body.as_bytes(),
        ));
        // The cancel is listed like any other, but nothing was ever approved (§4).
        assert_eq!(cancelled.body["status"], "CANCELED");
        assert_eq!(
            cancelled.body["approvedAt"],
            Value::Null,
            "nothing was paid"
        );
        assert_eq!(cancelled.body["balanceAmount"], 0);
        let cancels = cancelled.body["cancels"].as_array().unwrap();
        assert_eq!(cancels.len(), 1);
        assert_eq!(cancels[0]["cancelAmount"], 1000);
        assert_eq!(cancels[0]["cancelStatus"], "DONE");
        assert_eq!(
            cancelled.body["lastTransactionKey"],
            cancels[0]["transactionKey"]
        );
        assert!(
            !toss.deposit("pk_va"),
            "a cancelled account takes no deposit"
        );
        assert!(
            toss.transaction_log().is_empty(),
            "no money moved: nothing in Toss's books"
        );
        // A window payment never confirmed expires.
        toss.authenticate("pk_card", "o-3", 1000);
        toss.expire("pk_card");
        let expired = toss.payment("pk_card").unwrap();
        assert_eq!(expired.status, "EXPIRED");
        assert_eq!(to_json(&expired)["failure"]["code"], "EXPIRED_PAYMENT");
    }

    #[test]
    fn a_virtual_account_past_its_due_date_waits_expired_and_takes_no_deposit() {
        let toss = FakeToss::default();
        toss.authenticate_virtual_account("pk_va", "o-1", 1000);
        let issued = confirm(&toss, None, "pk_va");
        assert_eq!(issued.body["virtualAccount"]["expired"], false);
        let due = issued.body["virtualAccount"]["dueDate"].as_str().unwrap();
        assert_eq!(due.len(), 19, "KST without an offset: {due}");
        assert!(due > now_kst()[..19].to_owned().as_str(), "due later");
        // The due date passes: no EXPIRED, no failure, only `expired`.
        toss.expire("pk_va");
        let read = toss.handle(call(
            Endpoint::ByKey {
                payment_key: "pk_va",
            },
            "/v1/payments/pk_va",
            None,
            b"",
        ));
        assert_eq!(read.body["status"], "WAITING_FOR_DEPOSIT");
        assert_eq!(read.body["virtualAccount"]["expired"], true);
        assert_eq!(read.body["failure"], Value::Null);
        assert_eq!(read.body["approvedAt"], Value::Null);
        assert!(
            !toss.deposit("pk_va"),
            "an expired account takes no deposit"
        );
        // A due date set later than now: not expired until it passes.
        toss.authenticate_virtual_account("pk_va2", "o-1", 1000);
        confirm(&toss, None, "pk_va2");
        let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
        toss.set_due_date("pk_va2", &due_date_of(soon));
        assert!(!toss.payment("pk_va2").unwrap().deposit_expired());
        std::thread::sleep(Duration::from_millis(2100));
        assert!(toss.payment("pk_va2").unwrap().deposit_expired());
    }
}
