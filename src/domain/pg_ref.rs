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

    fn payment(key: Option<&str>, id: Option<&str>, provider: Option<&str>) -> Payment {
        let mut p = Payment::sample("order-1", 10_000, Utc::now());
        p.payment_key = key.map(|k| PaymentKey::parse(k).unwrap());
        p.pg_transaction_id = id.map(str::to_owned);
        p.pg_provider = provider.map(str::to_owned);
        p
    }

    fn key(k: &str) -> PaymentKey {
        PaymentKey::parse(k).unwrap()
    }

    /// The columns (`payment_key`, `pg_transaction_id`, `pg_provider`), what they read as, what
    /// paid, and the key to look up (`Some(None)`: a recorded id that is no key).
    #[test]
    fn the_columns_read_as_one_link() {
        let (pk_1, pk_other) = (key("pk_1"), key("pk_of_another_order"));
        let recorded = |provider, id| PgRef::Recorded { provider, id };
        for (columns, expected, paid_by, lookup) in [
            // Nothing sent and nothing recorded.
            ((None, None, None), PgRef::None, None, None),
            // An attempt not approved is looked up by its key but paid nothing.
            (
                (Some("pk_1"), None, Some("toss")),
                PgRef::Attempt(&pk_1),
                None,
                Some(Some(&pk_1)),
            ),
            // An approved key is adopted.
            (
                (Some("pk_1"), Some("pk_1"), Some("toss")),
                PgRef::Adopted(&pk_1),
                Some("pk_1"),
                Some(Some(&pk_1)),
            ),
            // An id without a key is a caller's claim, even when it is a Toss key.
            (
                (None, Some("pk_of_another_order"), Some("toss")),
                recorded(Some("toss"), "pk_of_another_order"),
                Some("pk_of_another_order"),
                Some(Some(&pk_other)),
            ),
            // A recorded id that is no key cannot be looked up.
            (
                (None, Some("bank transfer #12 / 3"), None),
                recorded(None, "bank transfer #12 / 3"),
                Some("bank transfer #12 / 3"),
                Some(None),
            ),
            // A key with another id reads as the attempt's key.
            (
                (Some("pk_1"), Some("pk_2"), Some("toss")),
                PgRef::Attempt(&pk_1),
                None,
                Some(Some(&pk_1)),
            ),
        ] {
            let (k, id, provider) = columns;
            let p = payment(k, id, provider);
            assert_eq!(p.pg_ref(), expected, "{columns:?}");
            assert_eq!(p.pg_ref().paid_by(), paid_by, "{columns:?}");
            let looked_up = p.pg_ref().lookup_key().map(Result::ok);
            assert_eq!(looked_up, lookup.map(|k| k.cloned()), "{columns:?}");
        }
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
