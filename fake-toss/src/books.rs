//! Toss's books: every approval and cancel is a transaction, listed by `GET /v1/transactions`
//! (`startingAfter` paging) and settled by `GET /v1/settlements` (`page` paging; a cancel is a
//! negative row; the fee is 3 % plus 10 % VAT on it); list calls can be made to answer 429.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{FakePayment, FakeToss, Mid, Reply, now_kst};

/// One row of Toss's transactions: an approval (`DONE`) or a cancel (the payment's status after
/// it), in the order they happened.
#[derive(Debug, Clone)]
pub struct FakeTransaction {
    pub transaction_key: String,
    pub payment_key: String,
    pub order_id: String,
    pub status: String,
    pub amount: i64,
    /// KST, RFC 3339 (`2026-11-29T10:00:00+09:00`).
    pub transaction_at: String,
    /// The key set whose books list it: each MID sees only its own.
    mid: Mid,
}

impl FakeToss {
    pub(crate) fn throttled(&self) -> Option<Reply> {
        let mut left = self.0.throttled_lists.lock().expect("fake Toss state");
        (*left > 0).then(|| {
            *left -= 1;
            Reply::refused(
                429,
                "TOO_MANY_REQUESTS",
                "요청량이 너무 많습니다. 잠시 후 다시 시도해주세요.",
            )
        })
    }

    /// `GET /v1/transactions`: those between `startDate` and `endDate` (KST local times), after
    /// `startingAfter`, at most `limit` (1..=5000, default 100).
    pub(crate) fn transactions(&self, query: &str, mid: Mid) -> Reply {
        let params = parameters(query);
        let (Some(start), Some(end)) = (params.get("startDate"), params.get("endDate")) else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
            None => 100,
            Some(Ok(limit)) if (1..=5000).contains(&limit) => limit,
            Some(_) => return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다."),
        };
        let log = self.0.transactions.lock().expect("fake Toss state");
        let in_range = |t: &&FakeTransaction| {
            let local = &t.transaction_at[..19];
            t.mid == mid && local >= start.as_str() && local <= end.as_str()
        };
        let mut rows = log.iter().filter(in_range);
        if let Some(after) = params.get("startingAfter") {
            // Everything up to and including that transaction is skipped.
            if !rows.by_ref().any(|t| &t.transaction_key == after) {
                return Reply::new(200, json!([]));
            }
        }
        let page: Vec<Value> = rows.take(limit).map(transaction_json).collect();
        Reply::new(200, Value::Array(page))
    }

    /// `GET /v1/settlements?dateType=soldDate`: the day's transactions settled, page `page`
    /// (from 1) of `size` (1..=5000, default 100) rows.
    pub(crate) fn settlements(&self, query: &str, mid: Mid) -> Reply {
        let params = parameters(query);
        let (Some(start), Some(end)) = (params.get("startDate"), params.get("endDate")) else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let number = |name: &str, default: usize, max: usize| match params.get(name) {
            None => Some(default),
            Some(raw) => raw.parse::<usize>().ok().filter(|n| (1..=max).contains(n)),
        };
        let (Some(page), Some(size)) = (number("page", 1, usize::MAX), number("size", 100, 5000))
        else {
            return Reply::refused(400, "INVALID_REQUEST", "잘못된 요청입니다.");
        };
        let log = self.0.transactions.lock().expect("fake Toss state");
        let rows: Vec<Value> = log
            .iter()
            .filter(|t| {
                let day = &t.transaction_at[..10];
                t.mid == mid
                    && day >= start.as_str()
                    && day <= end.as_str()
                    && t.status != "WAITING_FOR_DEPOSIT"
            })
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .map(settlement_json)
            .collect();
        Reply::new(200, Value::Array(rows))
    }

    pub(crate) fn record(&self, payment: &FakePayment, mid: Mid, status: &str, amount: i64) {
        self.0
            .transactions
            .lock()
            .expect("fake Toss state")
            .push(FakeTransaction {
                transaction_key: payment.last_transaction_key.clone(),
                payment_key: payment.payment_key.clone(),
                order_id: payment.order_id.clone(),
                status: status.to_owned(),
                amount,
                transaction_at: now_kst(),
                mid,
            });
    }

    /// The next `count` calls of the transactions or settlements list answer 429.
    pub fn throttle_lists(&self, count: u32) {
        *self.0.throttled_lists.lock().expect("fake Toss state") = count;
    }

    /// Toss's transactions, oldest first.
    pub fn transaction_log(&self) -> Vec<FakeTransaction> {
        self.0.transactions.lock().expect("fake Toss state").clone()
    }

    /// A payment approved at Toss now, with its transaction, as if confirmed (for a benchmark
    /// that fills Toss's books without a confirm per payment). Returns the approval's key.
    pub fn approve(&self, payment_key: &str, order_id: &str, amount: i64) -> String {
        let mut payment = FakePayment::authenticated(payment_key, order_id, amount);
        payment.approve_now();
        self.record(&payment, Mid::Payments, "DONE", amount);
        let key = payment.last_transaction_key.clone();
        self.keep(payment, Mid::Payments);
        key
    }

    /// Toss's transactions no longer list `transaction_key` (its books lack what ours hold).
    pub fn forget_transaction(&self, transaction_key: &str) {
        self.0
            .transactions
            .lock()
            .expect("fake Toss state")
            .retain(|t| t.transaction_key != transaction_key);
    }

    /// Toss's transaction `transaction_key` now says `amount` (its books disagree with the
    /// payment, as after a partial capture or a data fix on Toss's side).
    pub fn set_transaction_amount(&self, transaction_key: &str, amount: i64) {
        let mut log = self.0.transactions.lock().expect("fake Toss state");
        if let Some(row) = log
            .iter_mut()
            .find(|t| t.transaction_key == transaction_key)
        {
            row.amount = amount;
        }
    }
}

/// `a=1&b=2` into a map (percent-decoded).
fn parameters(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes
            .get(at + 1..at + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[at], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                at += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                at += 1;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A row of `GET /v1/transactions` (§17.3).
fn transaction_json(t: &FakeTransaction) -> Value {
    json!({
        "mId": "tosspayments",
        "transactionKey": t.transaction_key,
        "paymentKey": t.payment_key,
        "orderId": t.order_id,
        "method": "카드",
        "customerKey": null,
        "useEscrow": false,
        "receiptUrl": "https://dashboard.tosspayments.com/receipt",
        "status": t.status,
        "transactionAt": t.transaction_at,
        "currency": "KRW",
        "amount": t.amount
    })
}

/// The fee Toss takes of `amount` in the fake: 3 %, and 10 % VAT on it.
pub fn fee_of(amount: i64) -> (i64, i64) {
    let fee = amount * 3 / 100;
    (fee, fee / 10)
}

/// A row of `GET /v1/settlements` (§17.4): a cancel's amounts are negative.
fn settlement_json(t: &FakeTransaction) -> Value {
    let cancel = t.status != "DONE";
    let sign = if cancel { -1 } else { 1 };
    let (fee, vat) = fee_of(t.amount);
    let sold = &t.transaction_at[..10];
    let paid_out = chrono::NaiveDate::parse_from_str(sold, "%Y-%m-%d")
        .map(|d| (d + chrono::Duration::days(2)).to_string())
        .unwrap_or_else(|_| sold.to_owned());
    json!({
        "mId": "tosspayments",
        "paymentKey": t.payment_key,
        "transactionKey": t.transaction_key,
        "orderId": t.order_id,
        "currency": "KRW",
        "method": "카드",
        "amount": sign * t.amount,
        "interestFee": 0,
        "fees": [{"type": "BASE", "fee": sign * fee}],
        "supplyAmount": sign * (t.amount - t.amount / 11),
        "vat": sign * vat,
        "payOutAmount": sign * (t.amount - fee - vat),
        "approvedAt": t.transaction_at,
        "soldDate": sold,
        "paidOutDate": paid_out,
        "card": null,
        "easyPay": null,
        "cancel": if cancel { json!({"cancelAmount": t.amount, "transactionKey": t.transaction_key}) } else { Value::Null }
    })
}
