//! The changes a payment can undergo, by name. Each knows the statuses it may start from and the
//! columns it sets; the store applies one in one conditional statement (or inside the adoption
//! transaction), and the service builds its event.

use chrono::{DateTime, Utc};

use super::{Actor, BillingKeyId, Failure, Payment, PaymentKey, PaymentStatus, PgDetails};

use PaymentStatus::*;

/// One named state change of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentUpdate {
    /// A confirm attempt with `payment_key` is about to be sent to the PG. Only one request wins
    /// it; the previous attempt's webhook secret and resend count are forgotten.
    Claim {
        payment_key: PaymentKey,
        provider: String,
        at: DateTime<Utc>,
        /// When the attempt becomes the reconciler's if the request that sent it never settles it.
        lease_until: DateTime<Utc>,
    },
    /// A charge of billing key `billing_key_id` is about to be sent to the PG. Like `Claim`,
    /// only one request wins it; Toss's `paymentKey` is known only from its answer.
    Charge {
        billing_key_id: BillingKeyId,
        provider: String,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    },
    /// The confirm of the attempt in flight is sent again (after Toss showed it unapproved). The
    /// count makes each send's idempotency key fresh; the lease keeps others from sending too.
    Resend { lease_until: DateTime<Utc> },
    /// The attempt did not happen at the PG: back to `PENDING` (the buyer may pay again), with
    /// why when there is something to tell (and then `payment.failed`).
    Release { failure: Option<Failure> },
    /// The PG approved the attempt `payment_key`: `COMPLETED`, `payment.completed`.
    Complete {
        payment_key: PaymentKey,
        provider: String,
        secret: Option<String>,
        approved_at: DateTime<Utc>,
        /// Method, card, receipt as the PG reports them.
        details: PgDetails,
        /// The approval's `transactionKey` (the record's `lastTransactionKey` when it shows no
        /// cancel yet), matched against Toss's transactions by reconciliation.
        approval_key: Option<String>,
    },
    /// Completed without a PG (no-op gateway, or a trusted caller's claim).
    Record {
        provider: Option<String>,
        transaction_id: Option<String>,
    },
    /// The PG issued a virtual account for the attempt: `WAITING_FOR_DEPOSIT` until the deposit.
    AwaitDeposit {
        payment_key: PaymentKey,
        provider: String,
        secret: Option<String>,
        check_at: DateTime<Utc>,
        /// The virtual account (and method) as the PG reports them.
        details: PgDetails,
    },
    /// The outcome is still not known: look again at `at`. Keeps the attempt's webhook secret
    /// when the PG's record shows one.
    Reschedule {
        at: DateTime<Utc>,
        secret: Option<String>,
    },
    /// The buyer's browser reported a failure of attempt number `attempt`: recorded once per
    /// attempt (`payment.failed`), the payment stays `PENDING`.
    Annotate { failure: Failure, attempt: i32 },
    /// The PG's record (or a reconciliation run) contradicts ours: a person must look. A note,
    /// never a stop sign: whatever is in flight is still settled as usual.
    SetAside { reason: String },
    /// A person reviewed it: the flag is cleared.
    Resolve,
    /// A merchant asked to cancel a payment waiting for its deposit: the intent is recorded
    /// before the PG is asked, so a crash, the reconciler or a webhook still ends it
    /// `CANCELLED`. The status stays until the PG's record shows the account cancelled.
    RequestCancel {
        reason: String,
        /// Who asked: shown on the `payment.cancelled` this ends in, whoever adopts it.
        requested_by: Actor,
        /// When the reconciler takes the cancel over if this request does not finish it.
        lease_until: DateTime<Utc>,
    },
    /// Nobody paid and the merchant cancelled it: `CANCELLED`, `payment.cancelled`.
    Cancel { reason: String, requested_by: Actor },
}

impl PaymentUpdate {
    /// The statuses this change may start from; the store's conditional update enforces them.
    pub fn from_statuses(&self) -> &'static [PaymentStatus] {
        match self {
            Self::Claim { .. }
            | Self::Charge { .. }
            | Self::Record { .. }
            | Self::Annotate { .. } => &[Pending],
            Self::Resend { .. } => &[InProgress],
            Self::Release { .. } | Self::Reschedule { .. } => &[InProgress, WaitingForDeposit],
            Self::Complete { .. } => &[Pending, InProgress, WaitingForDeposit],
            Self::AwaitDeposit { .. } => &[Pending, InProgress],
            Self::SetAside { .. } | Self::Resolve => &PaymentStatus::ALL,
            Self::RequestCancel { .. } => &[WaitingForDeposit],
            Self::Cancel { .. } => &[Pending, WaitingForDeposit],
        }
    }

    /// The status after the change, when it sets one.
    pub fn to_status(&self) -> Option<PaymentStatus> {
        match self {
            Self::Claim { .. } | Self::Charge { .. } => Some(InProgress),
            Self::Release { .. } => Some(Pending),
            Self::Complete { .. } | Self::Record { .. } => Some(Completed),
            Self::AwaitDeposit { .. } => Some(WaitingForDeposit),
            Self::Cancel { .. } => Some(Cancelled),
            Self::RequestCancel { .. }
            | Self::Resend { .. }
            | Self::Reschedule { .. }
            | Self::Annotate { .. }
            | Self::SetAside { .. }
            | Self::Resolve => None,
        }
    }

    /// The columns this change sets.
    pub fn patch(&self, now: DateTime<Utc>) -> Patch {
        match self.clone() {
            Self::Claim {
                payment_key,
                provider,
                at,
                lease_until,
            } => Patch {
                payment_key: Some(Some(payment_key)),
                billing_key_id: Some(None),
                ..Patch::attempt(provider, at, lease_until)
            },
            Self::Charge {
                billing_key_id,
                provider,
                at,
                lease_until,
            } => Patch {
                payment_key: Some(None),
                billing_key_id: Some(Some(billing_key_id)),
                ..Patch::attempt(provider, at, lease_until)
            },
            Self::Resend { lease_until } => Patch {
                new_send: true,
                next_reconcile_at: Some(Some(lease_until)),
                ..Patch::default()
            },
            Self::Release { failure } => Patch {
                status: Some(Pending),
                payment_key: Some(None),
                pg_provider: Some(None),
                pg_secret: Some(None),
                failure: failure.map(Some),
                next_reconcile_at: Some(None),
                ..Patch::default()
            },
            Self::Complete {
                payment_key,
                provider,
                secret,
                approved_at,
                details,
                approval_key,
            } => Patch {
                status: Some(Completed),
                pg_approval_key: approval_key.map(Some),
                pg_transaction_id: Some(Some(payment_key.to_string())),
                payment_key: Some(Some(payment_key)),
                pg_provider: Some(Some(provider)),
                pg_secret: secret.map(Some),
                failure: Some(None),
                completed_at: Some(approved_at),
                next_reconcile_at: Some(None),
                cancel_reason: Some(None),
                cancel_requested_by: Some(None),
                details: Some(details),
                ..Patch::default()
            },
            Self::Record {
                provider,
                transaction_id,
            } => Patch {
                status: Some(Completed),
                pg_provider: Some(provider),
                pg_transaction_id: Some(transaction_id),
                failure: Some(None),
                completed_at: Some(now),
                ..Patch::default()
            },
            Self::AwaitDeposit {
                payment_key,
                provider,
                secret,
                check_at,
                details,
            } => Patch {
                status: Some(WaitingForDeposit),
                payment_key: Some(Some(payment_key)),
                pg_provider: Some(Some(provider)),
                pg_secret: secret.map(Some),
                failure: Some(None),
                next_reconcile_at: Some(Some(check_at)),
                reconcile_attempts: Some(0),
                details: Some(details),
                ..Patch::default()
            },
            Self::Reschedule { at, secret } => Patch {
                next_reconcile_at: Some(Some(at)),
                pg_secret: secret.map(Some),
                ..Patch::default()
            },
            Self::Annotate { failure, attempt } => Patch {
                failure: Some(Some(failure)),
                annotated_attempt: Some(attempt),
                ..Patch::default()
            },
            Self::SetAside { reason } => Patch {
                review: Some(Some(reason)),
                ..Patch::default()
            },
            Self::Resolve => Patch {
                review: Some(None),
                ..Patch::default()
            },
            Self::RequestCancel {
                reason,
                requested_by,
                lease_until,
            } => Patch {
                cancel_reason: Some(Some(reason)),
                cancel_requested_by: Some(Some(requested_by)),
                next_reconcile_at: Some(Some(lease_until)),
                ..Patch::default()
            },
            Self::Cancel {
                reason,
                requested_by,
            } => Patch {
                status: Some(Cancelled),
                cancel_reason: Some(Some(reason)),
                cancel_requested_by: Some(Some(requested_by)),
                next_reconcile_at: Some(None),
                ..Patch::default()
            },
        }
    }

    /// The payment as this change leaves it (in memory; the store writes the same columns).
    pub fn applied_to(&self, payment: &Payment, now: DateTime<Utc>) -> Payment {
        let mut after = payment.clone();
        self.patch(now).apply(&mut after);
        after.updated_at = now;
        after
    }
}

/// Columns a change sets. `None` leaves a column alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    pub status: Option<PaymentStatus>,
    pub pg_provider: Option<Option<String>>,
    pub pg_transaction_id: Option<Option<String>>,
    pub pg_approval_key: Option<Option<String>>,
    pub payment_key: Option<Option<PaymentKey>>,
    pub billing_key_id: Option<Option<BillingKeyId>>,
    pub pg_secret: Option<Option<String>>,
    pub failure: Option<Option<Failure>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub confirm_started_at: Option<DateTime<Utc>>,
    /// Adds one to `confirm_attempt`, sets `confirm_sends` to one, and forgets what the
    /// previous attempt left on the payment (method, card, receipt, virtual account, cancel
    /// request, webhook secret, failure): those stay on that attempt's own record.
    pub new_attempt: bool,
    /// Adds one to `confirm_sends`.
    pub new_send: bool,
    pub next_reconcile_at: Option<Option<DateTime<Utc>>>,
    pub reconcile_attempts: Option<i32>,
    pub annotated_attempt: Option<i32>,
    /// Sets (`Some(reason)`) or clears (`None`) the review flag.
    pub review: Option<Option<String>>,
    pub cancel_reason: Option<Option<String>>,
    /// Who asked for the cancel; set and cleared with `cancel_reason`.
    pub cancel_requested_by: Option<Option<Actor>>,
    /// What the PG reported about the method; each part given replaces ours.
    pub details: Option<PgDetails>,
}

impl Patch {
    /// What a claim and a charge both set: a new attempt at `provider`, started `at`, the
    /// reconciler's after `lease_until`.
    fn attempt(provider: String, at: DateTime<Utc>, lease_until: DateTime<Utc>) -> Self {
        Self {
            status: Some(InProgress),
            pg_provider: Some(Some(provider)),
            pg_secret: Some(None),
            failure: Some(None),
            new_attempt: true,
            confirm_started_at: Some(at),
            next_reconcile_at: Some(Some(lease_until)),
            reconcile_attempts: Some(0),
            ..Self::default()
        }
    }

    pub fn apply(&self, payment: &mut Payment) {
        let p = self.clone();
        // First: whatever else the change sets is the new attempt's.
        if p.new_attempt {
            payment.confirm_attempt += 1;
            payment.confirm_sends = 1;
            payment.pg_method = None;
            payment.receipt_url = None;
            payment.card = None;
            payment.virtual_account = None;
            payment.cancel_reason = None;
            payment.cancel_requested_by = None;
            payment.pg_secret = None;
            payment.failure = None;
        }
        // Each column given replaces ours.
        macro_rules! replace {
            ($($field:ident),+ => $wrap:expr) => {
                $(if let Some(value) = p.$field {
                    payment.$field = $wrap(value);
                })+
            };
        }
        replace!(status, pg_provider, pg_transaction_id, pg_approval_key, payment_key,
            billing_key_id, pg_secret, failure, next_reconcile_at, reconcile_attempts,
            cancel_reason, cancel_requested_by => std::convert::identity);
        replace!(completed_at, confirm_started_at, annotated_attempt => Some);
        if p.new_send {
            payment.confirm_sends += 1;
        }
        if let Some(review) = p.review {
            payment.needs_review = review.is_some();
            payment.review_reason = review;
        }
        if let Some(details) = p.details {
            payment.pg_method = details.method.or(payment.pg_method.take());
            payment.receipt_url = details.receipt_url.or(payment.receipt_url.take());
            payment.card = details.card.or(payment.card.take());
            payment.virtual_account = details.virtual_account.or(payment.virtual_account.take());
        }
    }
}

/// The status a paid payment has once `refunded_amount_krw` is counted.
pub fn status_after_refunds(payment: &Payment) -> PaymentStatus {
    if payment.refunded_amount_krw >= payment.amount_krw {
        Refunded
    } else if payment.refunded_amount_krw > 0 {
        PartialRefund
    } else {
        Completed
    }
}

/// For tests: one change of every kind (a release with no failure, a decline and an expiry),
/// about the attempt `attempt` whose key at Toss is `in_flight`.
#[cfg(test)]
pub(crate) fn one_of_each(
    in_flight: &PaymentKey,
    attempt: i32,
    now: DateTime<Utc>,
) -> Vec<PaymentUpdate> {
    let details = PgDetails {
        method: Some("카드".into()),
        ..PgDetails::default()
    };
    vec![
        PaymentUpdate::Claim {
            payment_key: PaymentKey::parse("pk_new").expect("a valid key"),
            provider: "toss".into(),
            at: now,
            lease_until: now,
        },
        PaymentUpdate::Charge {
            billing_key_id: BillingKeyId::new(),
            provider: "toss".into(),
            at: now,
            lease_until: now,
        },
        PaymentUpdate::Resend { lease_until: now },
        PaymentUpdate::Release { failure: None },
        PaymentUpdate::Release {
            failure: Some(Failure::new("REJECT_CARD_PAYMENT", "declined")),
        },
        PaymentUpdate::Release {
            failure: Some(Failure::new("VIRTUAL_ACCOUNT_EXPIRED", "expired")),
        },
        PaymentUpdate::Complete {
            payment_key: in_flight.clone(),
            provider: "toss".into(),
            secret: None,
            approved_at: now,
            details: details.clone(),
            approval_key: None,
        },
        PaymentUpdate::Record {
            provider: None,
            transaction_id: Some("tx".into()),
        },
        PaymentUpdate::AwaitDeposit {
            payment_key: in_flight.clone(),
            provider: "toss".into(),
            secret: None,
            check_at: now,
            details,
        },
        PaymentUpdate::Reschedule {
            at: now,
            secret: None,
        },
        PaymentUpdate::Annotate {
            failure: Failure::new("X", "x"),
            attempt,
        },
        PaymentUpdate::SetAside { reason: "r".into() },
        PaymentUpdate::Resolve,
        PaymentUpdate::RequestCancel {
            reason: "r".into(),
            requested_by: Actor::api_key("key-1"),
            lease_until: now,
        },
        PaymentUpdate::Cancel {
            reason: "r".into(),
            requested_by: Actor::api_key("key-1"),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_to_a_status_is_a_legal_transition() {
        let now = Utc::now();
        for change in one_of_each(&PaymentKey::parse("k").unwrap(), 1, now) {
            assert!(!change.from_statuses().is_empty(), "{change:?}");
            if let Some(to) = change.to_status() {
                for from in change.from_statuses() {
                    assert!(from.can_become(to), "{change:?}: {from} -> {to}");
                }
                assert_eq!(change.patch(now).status, Some(to));
            }
        }
    }
}
