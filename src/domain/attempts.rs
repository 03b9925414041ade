//! Attempts: each try at the PG of a payment (the confirm of one `paymentKey`, or one charge of
//! a billing key), kept after the next one starts. The payment row holds the latest attempt's
//! working state; what Toss said of each attempt stays on the attempt.
//!
//! An attempt is written with every change of its payment, in the same statement or transaction
//! (money rule 4). What to write is derived from the change: [`AttemptWrite::of_update`] for a
//! named change, [`AttemptWrite::between`] for an adoption's payment before and after. Both say
//! the same for every named change (see the tests), so no write path can forget the attempt.

use chrono::{DateTime, Utc};

use super::{
    AttemptId, BillingKeyId, Failure, Payment, PaymentId, PaymentKey, PaymentStatus, PaymentUpdate,
    PgDetails, VirtualAccount,
};

text_enum! {
    /// What was tried at the PG.
    pub enum AttemptKind in "kind", "attempt kind"
        shown as "AttemptKindDto", "What was tried at Toss." {
        /// The confirm of a buyer's `paymentKey`.
        Confirm = "confirm",
        /// A charge of one of our billing keys (its `paymentKey` is Toss's answer).
        Charge = "charge",
    }
}

text_enum! {
    /// Where an attempt stands.
    pub enum AttemptStatus in "status", "attempt status" {
        /// Sent (or about to be); Toss's answer is not known yet.
        InProgress = "IN_PROGRESS",
        /// Toss approved it: the payment was paid by it.
        Approved = "APPROVED",
        /// Toss issued a virtual account for it; the deposit has not come.
        WaitingForDeposit = "WAITING_FOR_DEPOSIT",
        /// Toss declined it, or it ended without approval.
        Failed = "FAILED",
        /// Its window or its virtual account's due date passed.
        Expired = "EXPIRED",
        /// Its virtual account was cancelled at the merchant's request before any deposit.
        Cancelled = "CANCELLED",
        /// Let go with no failure of its own: Toss has no record of its key, the key is another
        /// order's, Toss refused our credentials, or another attempt was approved. Kept as sent.
        Released = "RELEASED",
    }
}

impl AttemptStatus {
    /// Whether the attempt is over (it has a `finished_at`).
    pub fn is_final(self) -> bool {
        match self {
            Self::InProgress | Self::WaitingForDeposit => false,
            Self::Approved | Self::Failed | Self::Expired | Self::Cancelled | Self::Released => {
                true
            }
        }
    }

    /// How an attempt that failed with `failure` ended: `EXPIRED` when its time ran out (a
    /// virtual account past its due date, a window Toss let expire), else `FAILED`.
    pub fn of_failure(failure: &Failure) -> Self {
        if EXPIRED_CODES.contains(&failure.code.as_str()) {
            Self::Expired
        } else {
            Self::Failed
        }
    }
}

/// Failure codes that mean the attempt's time ran out: ours for a virtual account past its due
/// date, ours for a record Toss shows `EXPIRED` without a code, and Toss's own.
pub const EXPIRED_CODES: [&str; 3] = ["VIRTUAL_ACCOUNT_EXPIRED", "PG_EXPIRED", "EXPIRED_PAYMENT"];

/// One try at the PG, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: AttemptId,
    pub payment_id: PaymentId,
    /// The payment's `confirm_attempt` when it was claimed; unique per payment.
    pub number: i32,
    pub kind: AttemptKind,
    /// Toss's key of it: the buyer's for a confirm, Toss's answer for a charge.
    pub payment_key: Option<PaymentKey>,
    pub billing_key_id: Option<BillingKeyId>,
    pub status: AttemptStatus,
    /// Toss's `method` (`카드`, `가상계좌`, ...), once Toss named it.
    pub method: Option<String>,
    pub virtual_account: Option<VirtualAccount>,
    pub failure: Option<Failure>,
    /// How often it was sent to Toss.
    pub toss_sends: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// What Toss's answer made of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub status: AttemptStatus,
    /// Toss's key of the attempt, when the answer names it (a charge's is known only then);
    /// `None` leaves the attempt's.
    pub payment_key: Option<PaymentKey>,
    /// `None` leaves the attempt's.
    pub method: Option<String>,
    /// `None` leaves the attempt's (an expired account stays on its attempt).
    pub virtual_account: Option<VirtualAccount>,
    /// Replaces the attempt's (none for an approval).
    pub failure: Option<Failure>,
}

impl Settled {
    /// `status`, with nothing Toss named.
    fn bare(status: AttemptStatus) -> Self {
        Self {
            status,
            payment_key: None,
            method: None,
            virtual_account: None,
            failure: None,
        }
    }

    /// `status`, with the key, method and account Toss named.
    fn named(status: AttemptStatus, payment_key: &PaymentKey, details: &PgDetails) -> Self {
        Self {
            payment_key: Some(payment_key.clone()),
            method: details.method.clone(),
            virtual_account: details.virtual_account.clone(),
            ..Self::bare(status)
        }
    }

    /// An end that names no key, method or account (the attempt keeps its own).
    pub fn ended(status: AttemptStatus, failure: Option<Failure>) -> Self {
        Self {
            failure,
            ..Self::bare(status)
        }
    }

    /// How an attempt let go ends: with its failure, or released when it has none to tell.
    pub fn released(failure: Option<&Failure>) -> Self {
        match failure {
            Some(failure) => Self::ended(AttemptStatus::of_failure(failure), Some(failure.clone())),
            None => Self::ended(AttemptStatus::Released, None),
        }
    }
}

/// What a change of a payment does to its latest attempt (number = the payment's
/// `confirm_attempt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptWrite {
    /// A claim: a new attempt, `IN_PROGRESS`, sent once.
    Start {
        kind: AttemptKind,
        payment_key: Option<PaymentKey>,
        billing_key_id: Option<BillingKeyId>,
        at: DateTime<Utc>,
    },
    /// Sent once more.
    Send,
    /// Toss's answer settled it (or made it wait for a deposit), or it was let go.
    Settle(Settled),
}

impl AttemptWrite {
    /// The attempt write of a named change, as the store applies it with the change.
    pub fn of_update(update: &PaymentUpdate) -> Option<Self> {
        match update {
            PaymentUpdate::Claim {
                payment_key, at, ..
            } => Some(Self::Start {
                kind: AttemptKind::Confirm,
                payment_key: Some(payment_key.clone()),
                billing_key_id: None,
                at: *at,
            }),
            PaymentUpdate::Charge {
                billing_key_id, at, ..
            } => Some(Self::Start {
                kind: AttemptKind::Charge,
                payment_key: None,
                billing_key_id: Some(*billing_key_id),
                at: *at,
            }),
            PaymentUpdate::Resend { .. } => Some(Self::Send),
            PaymentUpdate::Release { failure } => {
                Some(Self::Settle(Settled::released(failure.as_ref())))
            }
            PaymentUpdate::Complete {
                payment_key,
                details,
                ..
            } => Some(Self::Settle(Settled::named(
                AttemptStatus::Approved,
                payment_key,
                details,
            ))),
            PaymentUpdate::AwaitDeposit {
                payment_key,
                details,
                ..
            } => Some(Self::Settle(Settled::named(
                AttemptStatus::WaitingForDeposit,
                payment_key,
                details,
            ))),
            // Of a payment waiting for its deposit only: the store changes only an attempt that
            // waits (a `PENDING` payment's last attempt is over already).
            PaymentUpdate::Cancel { .. } => {
                Some(Self::Settle(Settled::ended(AttemptStatus::Cancelled, None)))
            }
            // Completed without the PG: no attempt at all.
            PaymentUpdate::Record { .. }
            | PaymentUpdate::Reschedule { .. }
            | PaymentUpdate::Annotate { .. }
            | PaymentUpdate::SetAside { .. }
            | PaymentUpdate::Resolve
            | PaymentUpdate::RequestCancel { .. } => None,
        }
    }

    /// The attempt write that takes `before` to `after` (an adoption's plan, whatever made it).
    pub fn between(before: &Payment, after: &Payment) -> Option<Self> {
        use PaymentStatus::*;
        if after.confirm_attempt != before.confirm_attempt {
            return Some(Self::Start {
                kind: match after.payment_key {
                    Some(_) => AttemptKind::Confirm,
                    None => AttemptKind::Charge,
                },
                payment_key: after.payment_key.clone(),
                billing_key_id: after.billing_key_id,
                at: after.confirm_started_at.unwrap_or(after.updated_at),
            });
        }
        let was_open = matches!(before.status, Pending | InProgress | WaitingForDeposit);
        let was_in_flight = matches!(before.status, InProgress | WaitingForDeposit);
        let settled = |status| {
            Some(Self::Settle(Settled {
                payment_key: after.payment_key.clone(),
                method: after.pg_method.clone(),
                virtual_account: after.virtual_account.clone(),
                ..Settled::bare(status)
            }))
        };
        match after.status {
            // Completed by Toss's approval (a payment recorded without the PG has no key).
            Completed | PartialRefund | Refunded if was_open && after.payment_key.is_some() => {
                settled(AttemptStatus::Approved)
            }
            WaitingForDeposit if matches!(before.status, Pending | InProgress) => {
                settled(AttemptStatus::WaitingForDeposit)
            }
            Pending if was_in_flight => {
                Some(Self::Settle(Settled::released(after.failure.as_ref())))
            }
            Cancelled if before.status == WaitingForDeposit => {
                Some(Self::Settle(Settled::ended(AttemptStatus::Cancelled, None)))
            }
            InProgress
                if before.status == InProgress && after.confirm_sends > before.confirm_sends =>
            {
                Some(Self::Send)
            }
            Pending | InProgress | WaitingForDeposit | Completed | PartialRefund | Refunded
            | Failed | Cancelled => None,
        }
    }

    /// The statuses of the attempt this write may change; any other is left alone.
    pub fn from_statuses(&self) -> &'static [AttemptStatus] {
        use AttemptStatus::*;
        match self {
            // A new row: nothing to start from.
            Self::Start { .. } => &[],
            Self::Send => &[InProgress],
            Self::Settle(settled) => match settled.status {
                Approved | Failed | Expired | Released => &[InProgress, WaitingForDeposit],
                WaitingForDeposit => &[InProgress],
                Cancelled => &[WaitingForDeposit],
                InProgress => &[],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::changes::one_of_each;

    fn key(k: &str) -> PaymentKey {
        PaymentKey::parse(k).unwrap()
    }

    fn payment(status: PaymentStatus) -> Payment {
        let now = Utc::now();
        let mut p = Payment::sample("order_1", 1000, now);
        p.status = status;
        p.confirm_attempt = 2;
        p.confirm_sends = 1;
        if status != PaymentStatus::Pending {
            p.payment_key = Some(key("pk_in_flight"));
            p.confirm_started_at = Some(now);
        }
        p
    }

    /// What the store writes with a named change is what the change does to the payment: the
    /// two ways of deriving the attempt write agree wherever the store lets the change apply.
    #[test]
    fn a_named_change_and_its_effect_on_the_payment_say_the_same() {
        let now = Utc::now();
        for change in one_of_each(&key("pk_in_flight"), 2, now) {
            for &from in change.from_statuses() {
                let before = payment(from);
                let after = change.applied_to(&before, now);
                let derived = AttemptWrite::between(&before, &after);
                let named = AttemptWrite::of_update(&change);
                let expected = match (&named, from) {
                    // A cancel of a `PENDING` payment: its last attempt is over already, and
                    // the store's guard (`from_statuses`) leaves it alone.
                    (Some(AttemptWrite::Settle(s)), PaymentStatus::Pending)
                        if s.status == AttemptStatus::Cancelled =>
                    {
                        None
                    }
                    _ => named.clone(),
                };
                match (&derived, &expected) {
                    (
                        Some(AttemptWrite::Start { kind: a, .. }),
                        Some(AttemptWrite::Start { kind: b, .. }),
                    ) => assert_eq!(a, b, "{change:?} from {from}"),
                    (Some(AttemptWrite::Settle(a)), Some(AttemptWrite::Settle(b))) => {
                        assert_eq!(a.status, b.status, "{change:?} from {from}");
                        assert_eq!(a.failure, b.failure, "{change:?} from {from}");
                        if b.payment_key.is_some() {
                            assert_eq!(a.payment_key, b.payment_key, "{change:?} from {from}");
                            assert_eq!(a.method, b.method, "{change:?} from {from}");
                        }
                    }
                    _ => assert_eq!(derived, expected, "{change:?} from {from}"),
                }
            }
        }
    }

    #[test]
    fn expiry_codes_end_an_attempt_expired() {
        for code in EXPIRED_CODES {
            assert_eq!(
                AttemptStatus::of_failure(&Failure::new(code, "")),
                AttemptStatus::Expired
            );
        }
        assert_eq!(
            AttemptStatus::of_failure(&Failure::new("VIRTUAL_ACCOUNT_CANCELLED", "")),
            AttemptStatus::Failed
        );
    }
}
