//! The client's `Idempotency-Key`, its caller's namespace, and what makes two requests "the same".

use sha2::{Digest, Sha256};

use crate::domain::{Caller, DomainError, ScopedKey};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// A client's `Idempotency-Key`: 1..=255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        if value.is_empty() || value.len() > 255 {
            return Err(DomainError::new(
                "Idempotency-Key",
                "must be 1 to 255 characters",
            ));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(DomainError::new(
                "Idempotency-Key",
                "must be printable ASCII",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key in its namespace, as stored: two callers choosing the same key in different
    /// namespaces never share (or learn about) each other's requests.
    pub fn scoped_to(&self, scope: &Scope) -> ScopedKey {
        let mut hasher = Sha256::new();
        match scope {
            Scope::Merchant => hasher.update(b"merchant"),
            Scope::PaymentKey(payment_key) => {
                hasher.update(b"payment_key");
                hasher.update([0]);
                // Length first: no choice of payment key and key collides with another.
                hasher.update((payment_key.len() as u64).to_be_bytes());
                hasher.update(payment_key.as_bytes());
            }
        }
        hasher.update([0]);
        hasher.update(self.0.as_bytes());
        ScopedKey::from_digest(hex::encode(hasher.finalize()))
    }
}

/// The namespaces of keys: the merchant's, shared by every holder of an API key (keys are
/// rotated, and every holder is the merchant), and, for callers without an API key, one per
/// `payment_key` the request carries. Anonymous callers have no namespace of their own: one
/// shared by every stranger would let a stranger's request with a guessed key answer (or
/// refuse) the buyer's. Only the buyer and Toss know the buyer's `payment_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Merchant,
    PaymentKey(String),
}

impl Scope {
    /// The namespace of a request by `caller` with `body`; `None` for a caller without an API
    /// key whose request names no `payment_key` (its `Idempotency-Key` is ignored).
    pub fn of(caller: Caller, body: &[u8]) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Named {
            payment_key: Option<String>,
        }
        match caller {
            Caller::Merchant => Some(Self::Merchant),
            Caller::Anonymous => serde_json::from_slice::<Named>(body)
                .ok()
                .and_then(|named| named.payment_key)
                .map(Self::PaymentKey),
        }
    }
}

/// What makes two requests "the same": method, path and body bytes.
pub fn request_fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_rules() {
        assert!(IdempotencyKey::parse("abc-123").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("ключ").is_err());
    }

    #[test]
    fn idempotency_keys_are_scoped_by_namespace() {
        let key = IdempotencyKey::parse("k-1").unwrap();
        let pk = |key: &str| Scope::PaymentKey(key.to_owned());
        let merchant = &Scope::Merchant;
        assert_eq!(key.scoped_to(merchant), key.scoped_to(merchant));
        assert_eq!(key.scoped_to(&pk("pk_a")), key.scoped_to(&pk("pk_a")));
        assert_ne!(key.scoped_to(merchant), key.scoped_to(&pk("pk_a")));
        assert_ne!(key.scoped_to(&pk("pk_a")), key.scoped_to(&pk("pk_b")));
        // No payment key and key can pass for another pair.
        assert_ne!(
            IdempotencyKey::parse("b c").unwrap().scoped_to(&pk("a")),
            IdempotencyKey::parse("c").unwrap().scoped_to(&pk("a b"))
        );
        let other = IdempotencyKey::parse("k-2").unwrap();
        assert_ne!(key.scoped_to(merchant), other.scoped_to(merchant));
        let scoped = key.scoped_to(merchant);
        assert_eq!(scoped.as_str().len(), 64);
        assert!(IdempotencyKey::parse(scoped.as_str()).is_ok());
    }

    #[test]
    fn anonymous_requests_are_scoped_by_their_payment_key_or_not_at_all() {
        let body = br#"{"order_id": "o-1", "payment_key": "pk_1", "amount_krw": 1}"#;
        assert_eq!(
            Scope::of(Caller::Anonymous, body),
            Some(Scope::PaymentKey("pk_1".to_owned()))
        );
        assert_eq!(
            Scope::of(Caller::Anonymous, br#"{"payment_key": "pk_\"q\u0041"}"#),
            Some(Scope::PaymentKey("pk_\"qA".to_owned()))
        );
        assert_eq!(Scope::of(Caller::Merchant, body), Some(Scope::Merchant));
        assert_eq!(
            Scope::of(Caller::Merchant, b"not json"),
            Some(Scope::Merchant)
        );
        for ignored in [
            &br#"{"order_id": "o-1"}"#[..],
            br#"{"payment_key": null}"#,
            br#"{"payment_key": 7}"#,
            b"not json",
            b"",
        ] {
            assert_eq!(Scope::of(Caller::Anonymous, ignored), None);
        }
    }

    #[test]
    fn scoped_keys_are_the_digests_stored_before() {
        // Keys stored by earlier versions must still be recognised after an upgrade.
        let key = IdempotencyKey::parse("k-1").unwrap();
        let mut hasher = Sha256::new();
        hasher.update(b"merchant\0k-1");
        assert_eq!(
            key.scoped_to(&Scope::Merchant).as_str(),
            hex::encode(hasher.finalize())
        );
        let mut hasher = Sha256::new();
        hasher.update(b"POST\0/payments\0{}");
        assert_eq!(
            request_fingerprint("POST", "/payments", b"{}"),
            hex::encode(hasher.finalize())
        );
    }
}
