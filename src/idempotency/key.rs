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

    /// The key in its caller's namespace, as stored: two callers choosing the same key never
    /// share (or learn about) each other's requests.
    pub fn scoped_to(&self, caller: Caller) -> ScopedKey {
        let mut hasher = Sha256::new();
        hasher.update(namespace(caller).as_bytes());
        hasher.update([0]);
        hasher.update(self.0.as_bytes());
        ScopedKey::from_digest(hex(&hasher.finalize()))
    }
}

/// There are exactly two namespaces of keys: the merchant's, shared by every holder of an API
/// key (keys are rotated, and every holder is the merchant), and the anonymous callers'.
fn namespace(caller: Caller) -> &'static str {
    match caller {
        Caller::Merchant => "merchant",
        Caller::Anonymous => "anonymous",
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
    hex(&hasher.finalize())
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
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
    fn idempotency_keys_are_scoped_by_caller() {
        let key = IdempotencyKey::parse("k-1").unwrap();
        assert_eq!(
            key.scoped_to(Caller::Merchant),
            key.scoped_to(Caller::Merchant)
        );
        assert_eq!(
            key.scoped_to(Caller::Anonymous),
            key.scoped_to(Caller::Anonymous)
        );
        assert_ne!(
            key.scoped_to(Caller::Merchant),
            key.scoped_to(Caller::Anonymous)
        );
        let other = IdempotencyKey::parse("k-2").unwrap();
        assert_ne!(
            key.scoped_to(Caller::Merchant),
            other.scoped_to(Caller::Merchant)
        );
        let scoped = key.scoped_to(Caller::Merchant);
        assert_eq!(scoped.as_str().len(), 64);
        assert!(IdempotencyKey::parse(scoped.as_str()).is_ok());
    }

    #[test]
    fn scoped_keys_are_the_digests_stored_before() {
        // Keys stored by earlier versions must still be recognised after an upgrade.
        let key = IdempotencyKey::parse("k-1").unwrap();
        let mut hasher = Sha256::new();
        hasher.update(b"merchant\0k-1");
        assert_eq!(
            key.scoped_to(Caller::Merchant).as_str(),
            hex(&hasher.finalize())
        );
        let mut hasher = Sha256::new();
        hasher.update(b"POST\0/payments\0{}");
        assert_eq!(
            request_fingerprint("POST", "/payments", b"{}"),
            hex(&hasher.finalize())
        );
    }
}
