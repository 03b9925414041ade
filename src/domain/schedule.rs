//! Scheduled charges (a subscription's renewal carried out with its retries) and the buyers'
//! consents to a subscription's amount (전자상거래법 §13⑥). What a charge attempt's end means
//! for its schedule is decided here, in one pure function ([`Schedule::after`]).

use chrono::{DateTime, Duration, Utc};

use super::{BillingKeyId, DomainError, Failure, PaymentId};

/// Most delays a schedule may list, and the longest one (30 days).
pub const MAX_RETRIES: usize = 10;
pub const MAX_RETRY_DELAY_SECS: u32 = 2_592_000;

/// A buyer's consent to be charged up to `max_amount_krw` for a subscription.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ConsentDto, description = "A buyer's consent to a subscription's amount.")]
#[schema(example = json!({"consent_id": "019ae1f2-3c4d-7e5f-8a9b-0c1d2e3f4a5b", "user_id": "u-1",
    "subscription_id": "sub-1", "max_amount_krw": 33000, "consented_at": "2026-12-01T09:00:00.000Z",
    "evidence": "price-change notice of 2026-11-20 accepted in the app (checkbox), session 8f2c",
    "created_at": "2026-12-01T09:00:02.120Z"}))]
pub struct Consent {
    pub consent_id: uuid::Uuid,
    pub user_id: String,
    pub subscription_id: String,
    pub max_amount_krw: i64,
    #[serde(serialize_with = "super::timestamps::required")]
    pub consented_at: DateTime<Utc>,
    // How the buyer agreed (1..500 characters).
    pub evidence: String,
    #[serde(serialize_with = "super::timestamps::required")]
    pub created_at: DateTime<Utc>,
}

text_enum! {
    /// Where a schedule is.
    pub enum ScheduleStatus in "status", "schedule status" shown as "ScheduleStatusDto" {
        /// Waiting for `next_attempt_at`.
        Scheduled = "SCHEDULED",
        /// Taken by one instance (until its lease), its charge on the way to Toss or at Toss.
        Charging = "CHARGING",
        /// Paid.
        Done = "DONE",
        /// Given up: a final decline, the end of the delays, an inactive key or a missing consent.
        Exhausted = "EXHAUSTED",
        /// Cancelled by the merchant (or the payment ended some other way than paid).
        Cancelled = "CANCELLED",
    }
}

/// The delays between a retryable decline and the next attempt: 1..=10 of 1..=2,592,000 s.
pub fn retry_delays(values: &[i64]) -> Result<Vec<u32>, DomainError> {
    if values.is_empty() || values.len() > MAX_RETRIES {
        return Err(DomainError::new(
            "retry_after_seconds",
            "must list 1 to 10 delays",
        ));
    }
    values
        .iter()
        .map(|&value| {
            u32::try_from(value)
                .ok()
                .filter(|secs| (1..=MAX_RETRY_DELAY_SECS).contains(secs))
                .ok_or_else(|| {
                    DomainError::new(
                        "retry_after_seconds",
                        "each delay must be 1 to 2592000 seconds",
                    )
                })
        })
        .collect()
}

/// A payment's scheduled charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub payment_id: PaymentId,
    pub billing_key_id: BillingKeyId,
    pub charge_at: DateTime<Utc>,
    /// When it is due next (`SCHEDULED`), or was due (`CHARGING`); `None` once it ended.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Charge attempts that reached Toss's answer (approved or declined).
    pub attempts_made: i32,
    pub retry_after_seconds: Vec<u32>,
    pub status: ScheduleStatus,
    /// Until when the instance that took it (`CHARGING`) has it; after, another takes it over.
    pub lease_until: Option<DateTime<Utc>>,
    /// The payment's attempt number the charge in flight claims (`CHARGING`): a payment whose
    /// `confirm_attempt` has reached it was claimed already, so it is never charged again.
    pub payment_attempt: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a charge attempt of a schedule ended, as the payment (or the refusal) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeEnd {
    /// The payment is paid.
    Paid,
    /// Toss declined the attempt.
    Declined(Failure),
    /// Refused before Toss was called, for good: an inactive billing key, a missing consent.
    Refused(Failure),
    /// At Toss, its outcome not known yet: settled like any charge, then looked at again.
    InFlight,
    /// No attempt happened (released without a failure, or an error before the claim): try
    /// again soon.
    NotStarted,
    /// The payment ended without being paid (cancelled, failed): nothing more to charge.
    Gone,
}

/// What the schedule does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Done,
    /// Again at `at`, after a retryable decline; `attempt` is the attempt that was declined.
    Retry {
        at: DateTime<Utc>,
        attempt: i32,
        failure: Failure,
    },
    Exhausted {
        attempts_made: i32,
        failure: Failure,
    },
    /// Look again at `at` (the charge is in flight, or nothing was started).
    Later {
        at: DateTime<Utc>,
        again: bool,
    },
    Cancelled,
}

impl Schedule {
    /// What the end of this schedule's charge attempt (taken with `attempts_made` attempts
    /// before it) means: paid, a retry after the next delay, exhausted, or look again later.
    pub fn after(&self, end: ChargeEnd, now: DateTime<Utc>, recheck: Duration) -> Next {
        let attempt = self.attempts_made + 1;
        match end {
            ChargeEnd::Paid => Next::Done,
            ChargeEnd::Declined(failure) => {
                let delay = usize::try_from(self.attempts_made)
                    .ok()
                    .and_then(|index| self.retry_after_seconds.get(index));
                match (failure.retryable, delay) {
                    (Some(true), Some(&secs)) => Next::Retry {
                        at: now + Duration::seconds(i64::from(secs)),
                        attempt,
                        failure,
                    },
                    _ => Next::Exhausted {
                        attempts_made: attempt,
                        failure,
                    },
                }
            }
            ChargeEnd::Refused(failure) => Next::Exhausted {
                attempts_made: self.attempts_made,
                failure,
            },
            ChargeEnd::InFlight => Next::Later {
                at: now + recheck,
                again: false,
            },
            ChargeEnd::NotStarted => Next::Later {
                at: now + recheck,
                again: true,
            },
            ChargeEnd::Gone => Next::Cancelled,
        }
    }

    /// The status a finished decision leaves.
    pub fn status_after(next: &Next) -> ScheduleStatus {
        match next {
            Next::Done => ScheduleStatus::Done,
            Next::Retry { .. } => ScheduleStatus::Scheduled,
            Next::Exhausted { .. } => ScheduleStatus::Exhausted,
            Next::Later { again: true, .. } => ScheduleStatus::Scheduled,
            Next::Later { again: false, .. } => ScheduleStatus::Charging,
            Next::Cancelled => ScheduleStatus::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(attempts_made: i32, delays: Vec<u32>) -> Schedule {
        let now = Utc::now();
        Schedule {
            payment_id: PaymentId::new(),
            billing_key_id: BillingKeyId::new(),
            charge_at: now,
            next_attempt_at: Some(now),
            attempts_made,
            retry_after_seconds: delays,
            status: ScheduleStatus::Charging,
            lease_until: Some(now),
            payment_attempt: Some(1),
            created_at: now,
            updated_at: now,
        }
    }

    fn decline(retryable: bool) -> Failure {
        Failure {
            code: "REJECT_CARD_PAYMENT".to_owned(),
            message: "limit".to_owned(),
            retryable: Some(retryable),
        }
    }

    #[test]
    fn a_retryable_decline_waits_for_the_next_delay_until_the_list_ends() {
        let now = Utc::now();
        let recheck = Duration::seconds(30);
        let first =
            schedule(0, vec![60, 3600]).after(ChargeEnd::Declined(decline(true)), now, recheck);
        assert_eq!(
            first,
            Next::Retry {
                at: now + Duration::seconds(60),
                attempt: 1,
                failure: decline(true)
            }
        );
        let second =
            schedule(1, vec![60, 3600]).after(ChargeEnd::Declined(decline(true)), now, recheck);
        assert!(
            matches!(second, Next::Retry { at, attempt: 2, .. } if at == now + Duration::seconds(3600))
        );
        let last =
            schedule(2, vec![60, 3600]).after(ChargeEnd::Declined(decline(true)), now, recheck);
        assert!(matches!(
            last,
            Next::Exhausted {
                attempts_made: 3,
                ..
            }
        ));
    }

    #[test]
    fn a_final_decline_or_a_refusal_exhausts_it_at_once() {
        let now = Utc::now();
        let recheck = Duration::seconds(30);
        let hard = schedule(0, vec![60]).after(ChargeEnd::Declined(decline(false)), now, recheck);
        assert!(matches!(
            hard,
            Next::Exhausted {
                attempts_made: 1,
                ..
            }
        ));
        let refused = schedule(1, vec![60]).after(
            ChargeEnd::Refused(Failure {
                code: "CONSENT_REQUIRED".to_owned(),
                message: "over".to_owned(),
                retryable: Some(false),
            }),
            now,
            recheck,
        );
        assert!(matches!(
            refused,
            Next::Exhausted {
                attempts_made: 1,
                ..
            }
        ));
    }

    #[test]
    fn paid_in_flight_and_gone() {
        let now = Utc::now();
        let recheck = Duration::seconds(30);
        let s = schedule(0, vec![60]);
        assert_eq!(s.after(ChargeEnd::Paid, now, recheck), Next::Done);
        assert_eq!(
            Schedule::status_after(&s.after(ChargeEnd::InFlight, now, recheck)),
            ScheduleStatus::Charging
        );
        assert_eq!(
            Schedule::status_after(&s.after(ChargeEnd::NotStarted, now, recheck)),
            ScheduleStatus::Scheduled
        );
        assert_eq!(s.after(ChargeEnd::Gone, now, recheck), Next::Cancelled);
    }

    #[test]
    fn delays_are_checked() {
        assert_eq!(retry_delays(&[1, 2_592_000]).unwrap(), vec![1, 2_592_000]);
        assert!(retry_delays(&[]).is_err());
        assert!(retry_delays(&[0]).is_err());
        assert!(retry_delays(&[2_592_001]).is_err());
        assert!(retry_delays(&[-1]).is_err());
        assert!(retry_delays(&[1; 11]).is_err());
    }
}
