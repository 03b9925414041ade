//! A payment's link to the PG's record of it, read one way.

use super::{DomainError, Payment, PaymentKey};

/// What ties a payment to a payment at the PG, and how much of it the PG vouched for.
/// Read from the row by [`Payment::pg_ref`]; code that cares whether a key was adopted from
/// the PG or claimed by a caller matches on this, never on the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgRef<'a> {
    /// Nothing at the PG: no attempt was sent (or it was released) and nobody recorded one.
    None,
    /// The `paymentKey` of an attempt this service sent that the PG has not approved (yet): in
    /// flight, waiting for its deposit, or cancelled before it.
    Attempt(&'a PaymentKey),
    /// The `paymentKey` the PG approved: this service adopted the PG's record of it.
    Adopted(&'a PaymentKey),
    /// What a trusted caller recorded when it confirmed without a `paymentKey`: unverified, maybe
    /// not a key at all, maybe another order's.
    Recorded {
        provider: Option<&'a str>,
        id: &'a str,
    },
}

impl<'a> PgRef<'a> {
    /// Reads the columns: `payment_key` (the attempt's key) and `pg_transaction_id` (what paid,
    /// as adopted or as recorded). An approval writes both the same; a record writes only the
    /// id, to a payment with no attempt (a release clears the key). A key with another id is
    /// therefore never written; it reads as the attempt's key, as the PG would know it.
    pub fn of(payment: &'a Payment) -> Self {
        match (&payment.payment_key, payment.pg_transaction_id.as_deref()) {
            (Some(key), Some(id)) if id == key.as_str() => Self::Adopted(key),
            (Some(key), _) => Self::Attempt(key),
            (None, Some(id)) => Self::Recorded {
                provider: payment.pg_provider.as_deref(),
                id,
            },
            (None, None) => Self::None,
        }
    }

    /// The id of the PG's payment that paid this one: the adopted key, or the id a caller
    /// recorded. `None` while nothing paid (an attempt's key is not a payment yet).
    pub fn paid_by(self) -> Option<&'a str> {
        match self {
            Self::Adopted(key) => Some(key.as_str()),
            Self::Recorded { id, .. } => Some(id),
            Self::Attempt(_) | Self::None => None,
        }
    }

    /// The key to read the PG's record under: the attempt's, adopted or not, else the id a
    /// caller recorded. `Some(Err)`: a recorded id that is not a `paymentKey`, which no payment
    /// at the PG can have.
    pub fn lookup_key(self) -> Option<Result<PaymentKey, DomainError>> {
        match self {
            Self::Attempt(key) | Self::Adopted(key) => Some(Ok(key.clone())),
            Self::Recorded { id, .. } => Some(PaymentKey::parse(id)),
            Self::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::OrderId;

    fn payment(key: Option<&str>, id: Option<&str>, provider: Option<&str>) -> Payment {
        let mut p = Payment::new_pending(
            "user".to_owned(),
            OrderId::parse("order-1").unwrap(),
            10_000,
            "card".to_owned(),
            Utc::now(),
        );
        p.payment_key = key.map(|k| PaymentKey::parse(k).unwrap());
        p.pg_transaction_id = id.map(str::to_owned);
        p.pg_provider = provider.map(str::to_owned);
        p
    }

    fn key(k: &str) -> PaymentKey {
        PaymentKey::parse(k).unwrap()
    }

    #[test]
    fn nothing_sent_and_nothing_recorded_is_none() {
        let p = payment(None, None, None);
        assert_eq!(p.pg_ref(), PgRef::None);
        assert_eq!(p.pg_ref().paid_by(), None);
        assert_eq!(p.pg_ref().lookup_key(), None);
    }

    #[test]
    fn an_attempt_not_approved_is_looked_up_by_its_key_but_paid_nothing() {
        let p = payment(Some("pk_1"), None, Some("toss"));
        assert_eq!(p.pg_ref(), PgRef::Attempt(&key("pk_1")));
        assert_eq!(p.pg_ref().paid_by(), None);
        assert_eq!(p.pg_ref().lookup_key(), Some(Ok(key("pk_1"))));
    }

    #[test]
    fn an_approved_key_is_adopted() {
        let p = payment(Some("pk_1"), Some("pk_1"), Some("toss"));
        assert_eq!(p.pg_ref(), PgRef::Adopted(&key("pk_1")));
        assert_eq!(p.pg_ref().paid_by(), Some("pk_1"));
        assert_eq!(p.pg_ref().lookup_key(), Some(Ok(key("pk_1"))));
    }

    #[test]
    fn an_id_without_a_key_is_a_callers_claim_even_when_it_is_a_toss_key() {
        let p = payment(None, Some("pk_of_another_order"), Some("toss"));
        assert_eq!(
            p.pg_ref(),
            PgRef::Recorded {
                provider: Some("toss"),
                id: "pk_of_another_order"
            }
        );
        assert!(!matches!(p.pg_ref(), PgRef::Adopted(_)));
        assert_eq!(p.pg_ref().paid_by(), Some("pk_of_another_order"));
        assert_eq!(
            p.pg_ref().lookup_key(),
            Some(Ok(key("pk_of_another_order")))
        );
    }

    #[test]
    fn a_recorded_id_that_is_no_key_cannot_be_looked_up() {
        let p = payment(None, Some("bank transfer #12 / 3"), None);
        assert_eq!(
            p.pg_ref(),
            PgRef::Recorded {
                provider: None,
                id: "bank transfer #12 / 3"
            }
        );
        assert_eq!(p.pg_ref().paid_by(), Some("bank transfer #12 / 3"));
        assert!(matches!(p.pg_ref().lookup_key(), Some(Err(_))));
    }

    #[test]
    fn a_key_with_another_id_reads_as_the_attempts_key() {
        let p = payment(Some("pk_1"), Some("pk_2"), Some("toss"));
        assert_eq!(p.pg_ref(), PgRef::Attempt(&key("pk_1")));
        assert_eq!(p.pg_ref().lookup_key(), Some(Ok(key("pk_1"))));
    }

    #[test]
    fn the_updates_that_write_the_columns_say_which_it_is() {
        use crate::domain::PaymentUpdate;
        let now = Utc::now();
        let pending = payment(None, None, None);
        let claimed = PaymentUpdate::Claim {
            payment_key: key("pk_1"),
            provider: "toss".to_owned(),
            at: now,
            lease_until: now,
        }
        .applied_to(&pending, now);
        assert_eq!(claimed.pg_ref(), PgRef::Attempt(&key("pk_1")));
        let recorded = PaymentUpdate::Record {
            provider: Some("toss".to_owned()),
            transaction_id: Some("pk_9".to_owned()),
        }
        .applied_to(&pending, now);
        assert_eq!(
            recorded.pg_ref(),
            PgRef::Recorded {
                provider: Some("toss"),
                id: "pk_9"
            }
        );
        let released = PaymentUpdate::Release { failure: None }.applied_to(&claimed, now);
        assert_eq!(released.pg_ref(), PgRef::None);
    }
}
