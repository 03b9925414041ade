//! The attempt `decide` judges, as the payment's row names it.

use crate::domain::{BillingKeyId, Payment, PaymentKey, PgRef};

/// What a claimed attempt is: a confirm of the buyer's `paymentKey`, or a charge of one of our
/// billing keys (whose `paymentKey` Toss names only in its answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::service) enum Attempt {
    Confirm(PaymentKey),
    Charge(BillingKeyId),
}

impl Attempt {
    /// The attempt a payment has in flight (or last had), as its row says.
    pub(in crate::service) fn of(payment: &Payment) -> Option<Self> {
        match (&payment.payment_key, payment.billing_key_id) {
            (None, Some(id)) if payment.charge_in_flight() => Some(Self::Charge(id)),
            (Some(key), _) => Some(Self::Confirm(key.clone())),
            (None, _) => None,
        }
    }

    /// Whether `payment` was paid by this attempt.
    pub(in crate::service) fn approved(&self, payment: &Payment) -> bool {
        match self {
            Self::Confirm(key) => payment.pg_ref().paid_by() == Some(key.as_str()),
            Self::Charge(id) => {
                payment.billing_key_id == Some(*id) && matches!(payment.pg_ref(), PgRef::Adopted(_))
            }
        }
    }

    /// Whether this attempt is the one `payment` has in flight (or waiting for its deposit).
    pub(in crate::service) fn in_flight(&self, payment: &Payment) -> bool {
        match self {
            Self::Confirm(key) => payment.payment_key.as_ref() == Some(key),
            Self::Charge(id) => {
                payment.payment_key.is_none() && payment.billing_key_id == Some(*id)
            }
        }
    }
}
