//! Refund accounts at rest. A deposited virtual account is refunded to an account the caller
//! gives; the cancel may have to be sent again later (by the settler, after a crash), so the
//! account is kept on the refund row, sealed under the keys of `BILLING_KEY_ENCRYPTION_KEY`
//! (`crypto::Keyring`: the newest seals, any opens) with the refund's id as associated data: a
//! sealed account cannot be moved to another refund.
//!
//! Version 2 sealed accounts (`v1.` values) under a key derived from `TOSS_SECRET_KEY`; those
//! still open with that key (kept as a legacy opener) until `payment-service reseal` moves them
//! under the encryption key, after which rotating the Toss key loses nothing. Without a
//! configured encryption key (a generated one would not survive a restart), accounts are still
//! sealed the version 2 way, so a pending refund survives a restart as before.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{Keyring, Opened, Resealed, Sealer};
use crate::domain::{RefundAccount, RefundId, SealedAccount};

/// The prefix of accounts sealed by version 2 (under the key derived from the Toss key).
const LEGACY: &str = "v1.";

/// Seals and opens refund accounts. `Debug` shows nothing of the keys.
#[derive(Clone)]
pub struct AccountSealer {
    keyring: Keyring,
    /// The key version 2 derived from `TOSS_SECRET_KEY`: opens `v1.` values.
    legacy: Option<Sealer>,
}

impl fmt::Debug for AccountSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountSealer(..)")
    }
}

/// The associated data of refund `id`'s account under the keyring.
fn account_aad(id: &str) -> Vec<u8> {
    format!("refund_account:{id}").into_bytes()
}

impl AccountSealer {
    /// Seals under `keyring`; opens what it sealed and what version 2 sealed under the key
    /// derived from `toss_secret_key`.
    pub fn new(keyring: Keyring, toss_secret_key: Option<&SecretString>) -> Self {
        let legacy = toss_secret_key.map(|secret| {
            let mut hasher = Sha256::new();
            hasher.update(b"payment-service refund account sealing v1\0");
            hasher.update(secret.expose_secret().as_bytes());
            Sealer::new(&hasher.finalize().into())
        });
        Self { keyring, legacy }
    }

    /// Whether new accounts are sealed the version 2 way: the encryption key was generated
    /// for this process (it would not survive a restart) and the Toss key's does.
    fn seals_legacy(&self) -> Option<&Sealer> {
        self.legacy.as_ref().filter(|_| self.keyring.is_generated())
    }

    pub fn seal(&self, refund: RefundId, account: &RefundAccount) -> SealedAccount {
        let plain = serde_json::to_vec(account).expect("an account serialises");
        let id = refund.to_string();
        SealedAccount(match self.seals_legacy() {
            Some(legacy) => format!("{LEGACY}{}", legacy.seal(&plain, id.as_bytes())),
            None => self.keyring.seal(&plain, &account_aad(&id)),
        })
    }

    /// `None` for a value sealed under a key no longer configured, for another refund, or
    /// damaged.
    pub fn open(&self, refund: RefundId, sealed: &SealedAccount) -> Option<RefundAccount> {
        let opened = self.open_raw(&refund.to_string(), &sealed.0)?;
        serde_json::from_slice(&opened.value).ok()
    }

    fn open_raw(&self, id: &str, stored: &str) -> Option<Opened<Vec<u8>>> {
        if Keyring::is_sealed_here(stored) {
            return self.keyring.open(stored, &account_aad(id));
        }
        let sealed = stored.strip_prefix(LEGACY)?;
        let plain = self.legacy.as_ref()?.open(sealed, id.as_bytes())?;
        Some(Opened {
            value: plain,
            current: self.seals_legacy().is_some(),
        })
    }

    /// The account of refund `id` (as stored) under the newest key, bound to the refund.
    pub fn reseal(&self, id: &str, stored: &str) -> Resealed {
        self.keyring
            .reseal(self.open_raw(id, stored), &account_aad(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const OTHER: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn ring(keys: &str) -> Keyring {
        Keyring::parse(keys).unwrap()
    }

    #[test]
    fn a_sealed_account_opens_only_for_its_refund_and_key() {
        let toss = SecretString::from("test_sk_one");
        let sealer = AccountSealer::new(ring(KEY), Some(&toss));
        let account = RefundAccount::parse("88", "110123456789", "홍길동").unwrap();
        let refund = RefundId::new();
        let sealed = sealer.seal(refund, &account);
        assert!(sealed.0.starts_with("v3."), "under the encryption key");
        assert!(!sealed.0.contains("110123456789"));
        assert!(!format!("{sealed:?}").contains(&sealed.0));
        assert_eq!(sealer.open(refund, &sealed), Some(account.clone()));
        assert_eq!(sealer.open(RefundId::new(), &sealed), None);
        let other = AccountSealer::new(ring(OTHER), Some(&toss));
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

    #[test]
    fn rotating_the_toss_key_loses_no_account_sealed_under_the_encryption_key() {
        let account = RefundAccount::parse("88", "110123456789", "홍길동").unwrap();
        let refund = RefundId::new();
        let before = AccountSealer::new(ring(KEY), Some(&SecretString::from("test_sk_old")));
        let sealed = before.seal(refund, &account);
        let after = AccountSealer::new(ring(KEY), Some(&SecretString::from("test_sk_new")));
        assert_eq!(after.open(refund, &sealed), Some(account.clone()));
        let without_toss = AccountSealer::new(ring(KEY), None);
        assert_eq!(without_toss.open(refund, &sealed), Some(account));
    }

    #[test]
    fn an_account_sealed_by_version_2_opens_and_is_resealed_under_the_encryption_key() {
        let account = RefundAccount::parse("88", "110123456789", "홍길동").unwrap();
        let refund = RefundId::new();
        let toss = SecretString::from("test_sk_one");
        // Version 2: no encryption key for accounts, the Toss key's derived one.
        let version_2 = AccountSealer::new(Keyring::generate(), Some(&toss));
        let old = version_2.seal(refund, &account);
        assert!(old.0.starts_with("v1."));

        let now = AccountSealer::new(ring(&format!("{OTHER},{KEY}")), Some(&toss));
        assert_eq!(now.open(refund, &old), Some(account.clone()));
        let id = refund.to_string();
        let Resealed::Sealed(moved) = now.reseal(&id, &old.0) else {
            panic!("resealed")
        };
        assert_eq!(now.reseal(&id, &moved), Resealed::Current);
        assert_eq!(
            now.reseal(&RefundId::new().to_string(), &moved),
            Resealed::Unreadable
        );
        // The Toss key rotated: the moved account still opens, the old value no longer does.
        let rotated = AccountSealer::new(ring(OTHER), Some(&SecretString::from("test_sk_two")));
        assert_eq!(
            rotated.open(refund, &SealedAccount(moved)),
            Some(account.clone())
        );
        assert_eq!(rotated.open(refund, &old), None);
        assert_eq!(rotated.reseal(&id, &old.0), Resealed::Unreadable);
    }

    #[test]
    fn without_an_encryption_key_accounts_are_sealed_as_before_and_survive_a_restart() {
        let account = RefundAccount::parse("88", "110123456789", "홍길동").unwrap();
        let refund = RefundId::new();
        let toss = SecretString::from("test_sk_one");
        let first = AccountSealer::new(Keyring::generate(), Some(&toss));
        let sealed = first.seal(refund, &account);
        let restarted = AccountSealer::new(Keyring::generate(), Some(&toss));
        assert_eq!(restarted.open(refund, &sealed), Some(account));
        assert_eq!(
            restarted.reseal(&refund.to_string(), &sealed.0),
            Resealed::Current
        );
    }
}
