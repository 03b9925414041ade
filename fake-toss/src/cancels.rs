//! Cancels (`POST /v1/payments/{paymentKey}/cancel`): part or all of a paid balance (checked
//! against `refundableAmount`, spaced when asked for), a virtual account's whole, and a cancel
//! made in Toss's dashboard.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{FakePayment, FakeToss, Mid, Reply, not_found, now_kst, to_json};

impl FakeToss {
    pub(crate) fn cancel(&self, key: &str, body: &[u8], mid: Mid) -> Reply {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let spacing = *self.0.cancel_spacing.lock().expect("fake Toss state");
        let mut payments = self.lock(&self.0.payments, key);
        let Some(kept) = payments.get_mut(key).filter(|kept| kept.mid == mid) else {
            return not_found();
        };
        if kept.payment.status == "WAITING_FOR_DEPOSIT" {
            // Nothing paid: only the whole account can be cancelled (§5.1).
            let payment = &mut kept.payment;
            if body["cancelAmount"]
                .as_i64()
                .is_some_and(|amount| amount != payment.total)
            {
                return Reply::refused(
                    403,
                    "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT",
                    "입금 대기중인 결제는 부분 환불이 불가합니다.",
                );
            }
            cancel_unpaid(payment, body["cancelReason"].as_str().unwrap_or_default());
            return Reply::new(200, to_json(payment));
        }
        if !matches!(kept.payment.status.as_str(), "DONE" | "PARTIAL_CANCELED") {
            return Reply::refused(
                403,
                "NOT_CANCELABLE_PAYMENT",
                "취소 할 수 없는 결제 입니다.",
            );
        }
        if kept.payment.virtual_account {
            // A deposited account is refunded to an account the buyer names.
            let account = &body["refundReceiveAccount"];
            let digits = account["accountNumber"].as_str().is_some_and(|n| {
                !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit())
            });
            if !account.is_object()
                || account["bank"].as_str().is_none_or(str::is_empty)
                || account["holderName"].as_str().is_none_or(str::is_empty)
            {
                return Reply::refused(
                    400,
                    "INVALID_REFUND_ACCOUNT_INFO",
                    "환불 계좌번호와 예금주명이 일치하지 않습니다.",
                );
            }
            if !digits {
                return Reply::refused(
                    400,
                    "INVALID_REFUND_ACCOUNT_NUMBER",
                    "잘못된 환불 계좌번호입니다.",
                );
            }
        }
        if let Some(spacing) = spacing {
            let now = Instant::now();
            if kept
                .last_cancel
                .is_some_and(|last| now.duration_since(last) < spacing)
            {
                return Reply::refused(
                    403,
                    "FORBIDDEN_CONSECUTIVE_REQUEST",
                    "반복적인 요청은 허용되지 않습니다. 잠시 후 다시 시도해주세요.",
                );
            }
            kept.last_cancel = Some(now);
        }
        let payment = &mut kept.payment;
        if let Some(refundable) = body["refundableAmount"].as_i64()
            && refundable != payment.balance
        {
            return Reply::refused(
                400,
                "NOT_MATCHES_REFUNDABLE_AMOUNT",
                "잔액 결과가 일치하지 않습니다.",
            );
        }
        let amount = body["cancelAmount"].as_i64().unwrap_or(payment.balance);
        if amount > payment.balance {
            return Reply::refused(403, "NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        let tax_free = body["taxFreeAmount"].as_i64().unwrap_or(0);
        if tax_free < 0 || tax_free > payment.tax_free || tax_free > amount {
            return Reply::refused(403, "NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        apply_cancel(
            payment,
            amount,
            tax_free,
            body["cancelReason"].as_str().unwrap_or_default(),
        );
        self.record(payment, mid, &payment.status.clone(), amount);
        Reply::new(200, to_json(payment))
    }

    /// Toss's one-cancel-per-payment-per-`spacing` rule (1 s at Toss), for tests of it.
    pub fn space_cancels(&self, spacing: Duration) {
        *self.0.cancel_spacing.lock().expect("fake Toss state") = Some(spacing);
    }

    /// A cancel made in Toss's dashboard, not through the service. A virtual account waiting
    /// for its deposit is cancelled whole, as through the API.
    pub fn cancel_in_dashboard(&self, payment_key: &str, amount: i64) {
        let mut payments = self.lock(&self.0.payments, payment_key);
        let kept = payments.get_mut(payment_key).expect("known payment");
        if kept.payment.status == "WAITING_FOR_DEPOSIT" {
            assert_eq!(
                amount, kept.payment.total,
                "an unpaid account is cancelled whole"
            );
            cancel_unpaid(&mut kept.payment, "dashboard");
            return;
        }
        apply_cancel(&mut kept.payment, amount, 0, "dashboard");
        let status = kept.payment.status.clone();
        self.record(&kept.payment, kept.mid, &status, amount);
    }
}

/// A virtual account cancelled before its deposit: `CANCELED`, the cancel listed "like any
/// other cancel" (the whole amount, balance 0), `approvedAt` still null (§4). No money moved,
/// so Toss's books get no transaction.
pub(crate) fn cancel_unpaid(payment: &mut FakePayment, reason: &str) {
    let (total, tax_free) = (payment.total, payment.tax_free);
    apply_cancel(payment, total, tax_free, reason);
}

fn apply_cancel(payment: &mut FakePayment, amount: i64, tax_free: i64, reason: &str) {
    let transaction_key = format!("cx_{}", uuid::Uuid::new_v4().simple());
    payment.balance -= amount;
    payment.tax_free -= tax_free;
    payment.status = if payment.balance == 0 {
        "CANCELED"
    } else {
        "PARTIAL_CANCELED"
    }
    .to_owned();
    payment.last_transaction_key = transaction_key.clone();
    payment.cancels.push(json!({
        "transactionKey": transaction_key,
        "cancelReason": reason,
        "taxExemptionAmount": 0,
        "canceledAt": now_kst(),
        "cancelAmount": amount,
        "taxFreeAmount": tax_free,
        "refundableAmount": payment.balance,
        "cancelStatus": "DONE",
        "cancelRequestId": null
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use crate::*;

    #[test]
    fn cancels_check_the_refundable_amount_and_the_spacing() {
        let toss = FakeToss::default();
        toss.authenticate("pk_1", "o-1", 1000);
        confirm(&toss, None, "pk_1");
        toss.space_cancels(Duration::from_secs(60));
        let cancel = |body: Value| {
            let body = body.to_string();
            toss.handle(call(
                Endpoint::Cancel {
                    payment_key: "pk_1",
                },
                "/v1/payments/pk_1/cancel",
                None,
                body.as_bytes(),
            ))
        };
        let stale = cancel(json!({"cancelAmount": 400, "refundableAmount": 900}));
        assert_eq!(stale.body["code"], "NOT_MATCHES_REFUNDABLE_AMOUNT");
        let too_soon = cancel(json!({"cancelAmount": 400, "refundableAmount": 1000}));
        assert_eq!(too_soon.body["code"], "FORBIDDEN_CONSECUTIVE_REQUEST");
        let payment = toss.payment("pk_1").unwrap();
        assert_eq!((payment.balance, payment.status.as_str()), (1000, "DONE"));
    }
}
