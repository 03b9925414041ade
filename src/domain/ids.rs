use std::fmt;

use uuid::Uuid;

/// A value that failed to parse into a domain type; the text says which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DomainError {
    pub field: &'static str,
    pub reason: String,
}

impl DomainError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

macro_rules! uuid_id {
    ($name:ident) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id; v7 so that ids sort by creation time.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| DomainError::new(stringify!($name), "must be a UUID"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(PaymentId);
uuid_id!(RefundId);
uuid_id!(BillingKeyId);
uuid_id!(AttemptId);
uuid_id!(RunId);
uuid_id!(PassId);

/// The merchant's order id, as Toss accepts it: 6..=64 characters of `A-Z a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let len = value.chars().count();
        if !(6..=64).contains(&len) {
            return Err(DomainError::new("order_id", "must be 6 to 64 characters"));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DomainError::new(
                "order_id",
                "may contain only A-Z, a-z, 0-9, '-' and '_'",
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

/// Toss's `paymentKey` of a confirm attempt: 1..=200 printable ASCII characters without spaces
/// (Toss's keys are at most 200), and not `.` or `..`, which a URL cannot carry as the path
/// segment of Toss's lookup and cancel endpoints. Parsed where a key enters the service: an
/// HTTP body or query, a Toss reply, a stored row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PaymentKey(String);

impl PaymentKey {
    pub const MAX_LEN: usize = 200;

    pub fn parse(value: &str) -> Result<Self, DomainError> {
        if value.is_empty()
            || value.len() > Self::MAX_LEN
            || value == "."
            || value == ".."
            || !value.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(DomainError::new(
                "payment_key",
                "must be 1 to 200 printable ASCII characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

impl From<PaymentKey> for String {
    fn from(key: PaymentKey) -> Self {
        key.0
    }
}

/// Who pays: 1..=64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let len = value.chars().count();
        if !(1..=64).contains(&len) {
            return Err(DomainError::new("user_id", "must be 1 to 64 characters"));
        }
        if value.chars().any(char::is_control) || value.trim().is_empty() {
            return Err(DomainError::new(
                "user_id",
                "must not be blank or contain control characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

/// An amount of KRW that a payment may carry: 1..=1,000,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

impl Amount {
    pub const MAX: i64 = 1_000_000_000;

    pub fn new(value: i64) -> Result<Self, DomainError> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(DomainError::new(
                "amount_krw",
                format!("must be between 1 and {}", Self::MAX),
            ))
        }
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Who sends a request: the merchant or anyone. It decides what an answer shows, and in which
/// namespace an `Idempotency-Key` lives (`crate::idempotency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// Holds one of the API keys, whichever: keys are rotated, and every holder is the merchant.
    Merchant,
    /// No API key, or not a valid one: browsers and frontends on the public routes.
    Anonymous,
}

/// A client's `Idempotency-Key` within its caller's namespace (a SHA-256 digest, 64 hex
/// characters): it names one operation across its retries, in the idempotency records and on
/// the rows the operation created. Made by `crate::idempotency` (`IdempotencyKey::scoped_to`);
/// it lives here because payments and refunds carry it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopedKey(String);

impl ScopedKey {
    /// A digest made by `IdempotencyKey::scoped_to`, or read back from a row.
    pub fn from_digest(digest: String) -> Self {
        Self(digest)
    }
}

text_newtype!(OrderId, PaymentKey, UserId, ScopedKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_id_follows_toss_rules() {
        assert!(OrderId::parse("order_2026-11-23").is_ok());
        assert!(OrderId::parse("abc12").is_err());
        assert!(OrderId::parse(&"a".repeat(64)).is_ok());
        assert!(OrderId::parse(&"a".repeat(65)).is_err());
        assert!(OrderId::parse("order 123").is_err());
        assert!(OrderId::parse("order.123").is_err());
        assert!(OrderId::parse("주문번호123456").is_err());
    }

    #[test]
    fn payment_key_rules() {
        for key in [
            "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
            "a/b?c#d%e",
            "...",
            &"k".repeat(200),
        ] {
            assert_eq!(PaymentKey::parse(key).unwrap().as_str(), key);
        }
        // Empty, too long, not addressable in a URL path, spaces, control or non-ASCII.
        for key in [
            "",
            &"k".repeat(201),
            ".",
            "..",
            "key with space",
            "tab\there",
            "nul\u{0}",
            "키",
        ] {
            let error = PaymentKey::parse(key).unwrap_err();
            assert_eq!(
                error.to_string(),
                "payment_key: must be 1 to 200 printable ASCII characters"
            );
        }
    }

    #[test]
    fn amount_bounds() {
        assert!(Amount::new(0).is_err());
        assert!(Amount::new(-1).is_err());
        assert_eq!(Amount::new(1).unwrap().get(), 1);
        assert!(Amount::new(1_000_000_000).is_ok());
        assert!(Amount::new(1_000_000_001).is_err());
    }

    #[test]
    fn user_id_rules() {
        assert!(UserId::parse("u-1").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("   ").is_err());
        assert!(UserId::parse("a\u{0}b").is_err());
        assert!(UserId::parse(&"가".repeat(64)).is_ok());
        assert!(UserId::parse(&"가".repeat(65)).is_err());
    }
}

/// A payment as a request names it: by our id or by the merchant's order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentRef {
    Id(PaymentId),
    OrderId(OrderId),
}

impl From<PaymentId> for PaymentRef {
    fn from(id: PaymentId) -> Self {
        Self::Id(id)
    }
}
