//! Reconciliation runs: our books checked against Toss's transactions and settlements for one
//! KST business day.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{PassId, Payment, Refund, RefundStatus, RunId};

/// Korea Standard Time (UTC+9, no daylight saving): the business day of Toss's books.
pub fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("a valid offset")
}

/// Today's date in Korea.
pub fn today_kst(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&kst()).date_naive()
}

/// The first and last instants of `date` in KST, in UTC (00:00:00 .. 23:59:59.999999).
pub fn kst_day_bounds(date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = kst()
        .from_local_datetime(&date.and_time(NaiveTime::MIN))
        .single()
        .expect("KST has no gaps")
        .with_timezone(&Utc);
    (
        start,
        start + chrono::Duration::days(1) - chrono::Duration::microseconds(1),
    )
}

/// A run's date as the API and the console take it: `YYYY-MM-DD`, exactly (chrono alone would
/// also take `+2026-11-2`).
pub fn run_date(raw: &str) -> Option<NaiveDate> {
    let digits = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    digits
        .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
}

text_enum! {
    pub enum RunStatus in "status", "run status" shown as "RunStatusDto" {
        /// Toss's lists are being read and compared.
        Running = "RUNNING",
        /// The comparison finished, whatever it found.
        Completed = "COMPLETED",
        /// Toss or the database could not be read; start the date again.
        Failed = "FAILED",
    }
}

text_enum! {
    /// Who started a run: a person (`POST /reconciliation/runs`), the daily schedule, or the
    /// command line.
    pub enum RunTrigger in "trigger", "run trigger" {
        Api = "api",
        Schedule = "schedule",
        Cli = "cli",
        /// An operator, from the console's form.
        Console = "console",
    }
}

/// The run's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = RunSummaryDto)]
pub struct RunSummary {
    /// Toss's transactions of the day (approvals, cancels, issued virtual accounts).
    pub toss_transactions: i64,
    /// Toss transactions matched to our records.
    pub matched: i64,
    /// The number of `discrepancies`.
    pub discrepancies: i64,
    /// Sum of Toss's approvals of the day.
    pub approved_krw: i64,
    /// Sum of Toss's cancels of the day.
    pub cancelled_krw: i64,
    /// What Toss keeps of the day's sales (settlements' amount minus payout), cancels netted.
    pub fees_krw: i64,
    /// What Toss pays out for the day's sales (settlements' `payOutAmount`), cancels netted.
    pub payout_krw: i64,
}

/// A run of one date. There is one per date: running the date again replaces its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationRun {
    pub id: RunId,
    pub date: NaiveDate,
    pub status: RunStatus,
    pub trigger: String,
    /// The attempt now running the date (a fresh one for every start); only it may finish it.
    pub pass_id: PassId,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Until when the running pass is presumed alive; after it, another start takes over.
    pub lease_until: DateTime<Utc>,
    pub summary: Option<RunSummary>,
    /// Why a run `FAILED` (Toss or the database could not be read).
    pub error: Option<String>,
}

text_enum! {
    pub enum DiscrepancyKind in "kind", "discrepancy kind"
        shown as "DiscrepancyKindDto" {
        /// Toss has an approval or cancel (or a settlement) we have no record of.
        MissingHere = "MISSING_HERE",
        /// We hold a completed payment or refund of the day that Toss does not.
        MissingAtToss = "MISSING_AT_TOSS",
        AmountMismatch = "AMOUNT_MISMATCH",
        StatusMismatch = "STATUS_MISMATCH",
    }
}

/// One side of a discrepancy: a status and an amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub status: String,
    pub amount_krw: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    pub order_id: Option<String>,
    pub payment_key: Option<String>,
    pub transaction_key: Option<String>,
    /// Our payment it concerns, when we have one (it is set aside for review).
    pub payment_id: Option<String>,
    /// Our record: the payment's (approvals) or the refund's (cancels) status and amount.
    pub ours: Option<Side>,
    /// Toss's: the transaction's status and amount, or `SETTLED` and a settlement's amount.
    pub theirs: Option<Side>,
}

impl Discrepancy {
    /// Whether this discrepancy still holds against `payment` and its `refunds` as they are
    /// now: the run's comparison, for one payment. A Toss approval holds until the payment is
    /// paid under its key, order and amount; a Toss cancel until one of its refunds completed
    /// under its `transactionKey` and amount. What only Toss's books can tell (ours missing at
    /// Toss, a settlement) holds until a run says otherwise.
    pub fn holds(&self, payment: &Payment, refunds: &[Refund]) -> bool {
        let Some(theirs) = &self.theirs else {
            return true;
        };
        match theirs.status.as_str() {
            "DONE" => {
                !(payment.status.is_paid()
                    && payment.payment_key.as_ref().map(|key| key.as_str())
                        == self.payment_key.as_deref()
                    && self.order_id.as_deref() == Some(payment.order_id.as_str())
                    && theirs.amount_krw == Some(payment.amount_krw))
            }
            "CANCELED" | "PARTIAL_CANCELED" => !refunds.iter().any(|refund| {
                refund.status == RefundStatus::Completed
                    && refund.pg_cancel_key.is_some()
                    && refund.pg_cancel_key.as_deref() == self.transaction_key.as_deref()
                    && theirs.amount_krw == Some(refund.amount_krw)
            }),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_exactly_yyyy_mm_dd() {
        assert_eq!(
            run_date("2026-11-29"),
            NaiveDate::from_ymd_opt(2026, 11, 29)
        );
        for bad in [
            "2026-1-29",
            "2026-11-31",
            "+2026-11-2",
            "2026/11/29",
            "２026-11-29",
            "",
        ] {
            assert_eq!(run_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_discrepancy_holds_until_the_payment_agrees_with_tosss_transaction() {
        use crate::domain::{PaymentKey, PaymentStatus, RefundOrigin};
        let now = Utc::now();
        let mut payment = Payment::sample("order-1", 10_000, now);
        payment.status = PaymentStatus::InProgress;
        payment.payment_key = Some(PaymentKey::parse("pk_1").unwrap());
        let approval = Discrepancy {
            kind: DiscrepancyKind::StatusMismatch,
            order_id: Some("order-1".into()),
            payment_key: Some("pk_1".into()),
            transaction_key: Some("tx_1".into()),
            payment_id: Some(payment.id.to_string()),
            ours: Some(Side {
                status: "IN_PROGRESS".into(),
                amount_krw: Some(10_000),
            }),
            theirs: Some(Side {
                status: "DONE".into(),
                amount_krw: Some(10_000),
            }),
        };
        assert!(approval.holds(&payment, &[]), "still in flight");
        payment.status = PaymentStatus::Completed;
        assert!(
            !approval.holds(&payment, &[]),
            "paid under Toss's key and amount"
        );
        payment.amount_krw = 9_000;
        assert!(approval.holds(&payment, &[]), "another amount");
        payment.amount_krw = 10_000;
        payment.payment_key = Some(PaymentKey::parse("pk_2").unwrap());
        assert!(approval.holds(&payment, &[]), "another attempt");

        let cancel = Discrepancy {
            kind: DiscrepancyKind::MissingHere,
            transaction_key: Some("cx_1".into()),
            ours: None,
            theirs: Some(Side {
                status: "PARTIAL_CANCELED".into(),
                amount_krw: Some(4_000),
            }),
            ..approval.clone()
        };
        let mut refund = Refund {
            pg_cancel_key: Some("cx_1".into()),
            origin: RefundOrigin::Pg,
            requested_by: crate::domain::Actor::toss(),
            ..Refund::sample(payment.id, 4_000, now)
        };
        assert!(cancel.holds(&payment, &[]));
        assert!(!cancel.holds(&payment, std::slice::from_ref(&refund)));
        refund.status = RefundStatus::Pending;
        assert!(cancel.holds(&payment, &[refund]));
        // Ours missing at Toss: only a run can tell.
        let missing = Discrepancy {
            theirs: None,
            ..approval
        };
        assert!(missing.holds(&payment, &[]));
    }

    #[test]
    fn a_kst_day_starts_at_15_utc_the_day_before() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let (start, end) = kst_day_bounds(date);
        assert_eq!(start.to_rfc3339(), "2026-11-28T15:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-11-29T14:59:59.999999+00:00");
        assert_eq!(today_kst(start), date);
        assert_eq!(today_kst(end), date);
        assert_eq!(
            today_kst(end + chrono::Duration::microseconds(1)),
            date.succ_opt().unwrap()
        );
    }
}
