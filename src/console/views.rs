//! What the pages show, as text: amounts, times in KST, our record beside Toss's with the
//! differences marked, and one timeline of a payment (attempts, refunds, events, reviews).

use chrono::{DateTime, Utc};

use crate::domain::reconciliation::kst;
use crate::domain::{Attempt, Payment, PaymentStatus, PgStatus, Refund, Review, StoredEvent};
use crate::gateway::PgPayment;

/// What every signed-in page carries: who is signed in, the session's CSRF token for the
/// page's forms, and a line about what the last action did.
pub struct Layout {
    pub operator: String,
    pub csrf_token: String,
    pub notice: Option<&'static str>,
}

/// `12,345원`.
pub fn won(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}{out}원", if amount < 0 { "-" } else { "" })
}

/// `2026-12-06 18:30:00 KST`.
pub fn when(at: DateTime<Utc>) -> String {
    at.with_timezone(&kst())
        .format("%Y-%m-%d %H:%M:%S KST")
        .to_string()
}

/// The same for the templates: `{{ amount|won }}`, `{{ at|when }}`, `{{ at|when_opt }}`, and
/// `{{ side|side }}` for a side of a discrepancy.
pub mod filters {
    use chrono::{DateTime, Utc};

    use crate::domain::reconciliation::Side;

    #[askama::filter_fn]
    pub fn won(amount: &i64, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(super::won(*amount))
    }

    #[askama::filter_fn]
    pub fn when(at: &DateTime<Utc>, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(super::when(*at))
    }

    /// A side of a discrepancy: `DONE 15,000원`, its status alone, or `-`.
    #[askama::filter_fn]
    pub fn side(side: &Option<Side>, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(side.as_ref().map_or_else(
            || "-".to_owned(),
            |side| match side.amount_krw {
                Some(amount) => format!("{} {}", side.status, super::won(amount)),
                None => side.status.clone(),
            },
        ))
    }

    #[askama::filter_fn]
    pub fn when_opt(at: &Option<DateTime<Utc>>, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(at.map_or_else(|| "-".to_owned(), super::when))
    }
}

/// One line of the side-by-side comparison.
pub struct CompareRow {
    pub label: &'static str,
    pub ours: String,
    pub toss: String,
    pub differs: bool,
}

/// Whether Toss's status is one our status can stand beside without a contradiction.
fn status_agrees(ours: PaymentStatus, toss: &PgStatus) -> bool {
    use PgStatus as T;
    match ours {
        PaymentStatus::Pending => {
            matches!(toss, T::Ready | T::InProgress | T::Aborted | T::Expired)
        }
        PaymentStatus::InProgress => matches!(toss, T::Ready | T::InProgress),
        PaymentStatus::WaitingForDeposit => matches!(toss, T::WaitingForDeposit),
        PaymentStatus::Completed => matches!(toss, T::Done),
        PaymentStatus::Failed => matches!(toss, T::Aborted | T::Expired),
        PaymentStatus::Cancelled => matches!(toss, T::Canceled | T::Aborted | T::Expired),
        PaymentStatus::Refunded => matches!(toss, T::Canceled),
        PaymentStatus::PartialRefund => matches!(toss, T::PartialCanceled),
    }
}

fn text<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Our record and Toss's, field by field.
pub fn compare(payment: &Payment, toss: &PgPayment) -> Vec<CompareRow> {
    let balance = payment.amount_krw - payment.refunded_amount_krw;
    let toss_cancelled: i64 = toss.cancels.iter().map(|cancel| cancel.amount).sum();
    vec![
        CompareRow {
            label: "상태 / Status",
            ours: payment.status.as_str().to_owned(),
            toss: toss.status.as_str().to_owned(),
            differs: !status_agrees(payment.status, &toss.status),
        },
        CompareRow {
            label: "주문번호 / Order id",
            ours: payment.order_id.to_string(),
            toss: toss.order_id.clone(),
            differs: payment.order_id.as_str() != toss.order_id,
        },
        CompareRow {
            label: "결제 키 / Payment key",
            ours: text(payment.payment_key.as_ref().map(|key| key.as_str())),
            toss: toss.payment_key.as_str().to_owned(),
            differs: payment
                .payment_key
                .as_ref()
                .is_some_and(|key| key != &toss.payment_key),
        },
        CompareRow {
            label: "결제 금액 / Amount",
            ours: won(payment.amount_krw),
            toss: toss.total_amount.map_or_else(|| "-".to_owned(), won),
            differs: toss.total_amount != Some(payment.amount_krw),
        },
        CompareRow {
            label: "환불 합계 / Refunded",
            ours: won(payment.refunded_amount_krw),
            toss: won(toss_cancelled),
            differs: payment.refunded_amount_krw != toss_cancelled,
        },
        CompareRow {
            label: "잔액 / Balance",
            ours: won(balance),
            toss: toss.balance_amount.map_or_else(|| "-".to_owned(), won),
            differs: toss.balance_amount.is_some_and(|toss| toss != balance),
        },
    ]
}

/// One entry of a payment's timeline.
pub struct Entry {
    pub at: DateTime<Utc>,
    pub kind: &'static str,
    pub what: String,
    pub who: String,
}

fn entry(at: DateTime<Utc>, kind: &'static str, what: String, who: String) -> Entry {
    Entry {
        at,
        kind,
        what,
        who,
    }
}

/// Attempts, refunds, events and reviews of one payment, oldest first.
pub fn timeline(
    attempts: &[Attempt],
    refunds: &[Refund],
    events: &[StoredEvent],
    reviews: &[Review],
) -> Vec<Entry> {
    let mut entries = Vec::new();
    for attempt in attempts {
        let mut what = format!(
            "#{} {} {} (sends {})",
            attempt.number,
            attempt.kind.as_str(),
            attempt.status.as_str(),
            attempt.toss_sends
        );
        if let Some(key) = &attempt.payment_key {
            what.push_str(&format!(", paymentKey {}", key.as_str()));
        }
        if let Some(failure) = &attempt.failure {
            what.push_str(&format!(", {}: {}", failure.code, failure.message));
        }
        entries.push(entry(
            attempt.started_at,
            "시도 / Attempt",
            what,
            "-".to_owned(),
        ));
    }
    for refund in refunds {
        let what = format!(
            "{} {} ({})",
            won(refund.amount_krw),
            refund.status.as_str(),
            refund.reason
        );
        entries.push(entry(
            refund.created_at,
            "환불 / Refund",
            what,
            "-".to_owned(),
        ));
    }
    for event in events {
        entries.push(entry(
            event.occurred_at,
            "이벤트 / Event",
            format!("{} (seq {})", event.event_type, event.seq),
            event.actor.to_string(),
        ));
    }
    for review in reviews {
        entries.push(entry(
            review.created_at,
            "검토 / Review",
            format!("{}: {} → {}", review.action, review.note, review.outcome),
            review.requested_by.to_string(),
        ));
    }
    entries.sort_by_key(|entry| entry.at);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(won(0), "0원");
        assert_eq!(won(999), "999원");
        assert_eq!(won(1000), "1,000원");
        assert_eq!(won(1234567), "1,234,567원");
        assert_eq!(won(-15000), "-15,000원");
    }

    #[test]
    fn a_paid_payment_agrees_with_done_only() {
        assert!(status_agrees(PaymentStatus::Completed, &PgStatus::Done));
        assert!(!status_agrees(
            PaymentStatus::Completed,
            &PgStatus::PartialCanceled
        ));
        assert!(!status_agrees(PaymentStatus::Pending, &PgStatus::Done));
    }
}
