//! Refund accounts at rest. A deposited virtual account is refunded to an account the caller
//! gives; the cancel may have to be sent again later (by the reconciler, after a crash), so the
//! account is kept on the refund row, sealed (`crypto::Sealer`, AES-256-GCM) under a key derived from the Toss
//! secret key (refunds of Toss payments need that key anyway; rotating it makes the sealed
//! accounts of refunds still pending unreadable, and those refunds fail rather than guess).
//! The refund's id is the associated data: a sealed account cannot be moved to another refund.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::crypto::Sealer;
use crate::domain::{RefundAccount, RefundId, SealedAccount};

const VERSION: &str = "v1.";

/// Seals and opens refund accounts. `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct AccountSealer {
    sealer: Sealer,
}

impl fmt::Debug for AccountSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountSealer(..)")
    }
}

impl AccountSealer {
    /// The key for `toss_secret_key`; without one (no-op gateway, which refunds nothing at a
    /// PG), a random key that lives as long as the process.
    pub fn new(toss_secret_key: Option<&SecretString>) -> Self {
        let sealer = match toss_secret_key {
            Some(secret) => {
                let mut hasher = Sha256::new();
                hasher.update(b"payment-service refund account sealing v1\0");
                hasher.update(secret.expose_secret().as_bytes());
                Sealer::new(&hasher.finalize().into())
            }
            None => Sealer::random(),
        };
        Self { sealer }
    }

    pub fn seal(&self, refund: RefundId, account: &RefundAccount) -> SealedAccount {
        let plain = serde_json::to_vec(account).expect("an account serialises");
        let sealed = self.sealer.seal(&plain, refund.to_string().as_bytes());
        SealedAccount(format!("{VERSION}{sealed}"))
    }

    /// `None` for a value sealed under another key, for another refund, or damaged.
    pub fn open(&self, refund: RefundId, sealed: &SealedAccount) -> Option<RefundAccount> {
        let stored = sealed.0.strip_prefix(VERSION)?;
        let plain = self.sealer.open(stored, refund.to_string().as_bytes())?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_account_opens_only_for_its_refund_and_key() {
        let key = SecretString::from("test_sk_one");
        let sealer = AccountSealer::new(Some(&key));
        let account = RefundAccount::parse("88", "110123456789", "홍길동").unwrap();
        let refund = RefundId::new();
        let sealed = sealer.seal(refund, &account);
        assert!(!sealed.0.contains("110123456789"));
        assert!(!format!("{sealed:?}").contains(&sealed.0));
        assert_eq!(sealer.open(refund, &sealed), Some(account.clone()));
        assert_eq!(sealer.open(RefundId::new(), &sealed), None);
        let other = AccountSealer::new(Some(&SecretString::from("test_sk_two")));
        assert_eq!(other.open(refund, &sealed), None);
        assert_eq!(
            sealer.open(refund, &SealedAccount("v1.AAAA".to_owned())),
            None
        );
        assert_ne!(
            sealer.seal(refund, &account),
            sealed,
            "a fresh nonce each time"
        );
    }
}
