//! Encryption at rest: AES-256-GCM (RustCrypto `aes-gcm`), a fresh random 96-bit nonce per
//! value, stored as base64(nonce ‖ ciphertext ‖ tag). Two things are sealed with it: billing keys
//! (a billing key is a stored card: a database dump must not be enough to charge it), under the
//! key from `BILLING_KEY_ENCRYPTION_KEY`, and refund accounts (`service::AccountSealer`).

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::domain::BillingKeySecret;

const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// The configured key is not 32 bytes of base64: refused at start-up.
    #[error(
        "BILLING_KEY_ENCRYPTION_KEY must be 32 bytes encoded in base64 (e.g. `openssl rand -base64 32`): {0}"
    )]
    BadKey(String),
    /// A stored value that this key cannot open: another key encrypted it (a changed or
    /// generated key), or it was altered.
    #[error(
        "a stored billing key cannot be decrypted with the configured BILLING_KEY_ENCRYPTION_KEY (it was encrypted under another key, or altered)"
    )]
    Undecryptable,
}

/// AES-256-GCM under one key. `aad` binds a value to its place (a row's id): a sealed value
/// moved elsewhere does not open. `Debug` never shows the key.
#[derive(Clone)]
pub struct Sealer(Aes256Gcm);

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer([REDACTED])")
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }

    /// A random key for this process only.
    pub fn random() -> Self {
        Self(Aes256Gcm::new(&Aes256Gcm::generate_key(OsRng)))
    }

    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .0
            .encrypt(&nonce, Payload { msg: plain, aad })
            .expect("AES-GCM encryption of a short value cannot fail");
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&ciphertext);
        STANDARD.encode(stored)
    }

    /// `None` for a value sealed under another key or for another place, or altered.
    pub fn open(&self, stored: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(stored).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.0
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

/// Encrypts and decrypts billing keys. `Debug` never shows the key.
#[derive(Clone)]
pub struct BillingKeyCipher {
    sealer: Sealer,
    /// Whether the key was generated at start (keys then do not survive a restart).
    generated: bool,
}

impl fmt::Debug for BillingKeyCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BillingKeyCipher")
            .field("key", &"[REDACTED]")
            .field("generated", &self.generated)
            .finish()
    }
}

impl BillingKeyCipher {
    /// The key as configured: 32 bytes in standard base64.
    pub fn from_base64(encoded: &str) -> Result<Self, CipherError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| CipherError::BadKey("not valid base64".to_owned()))?;
        if bytes.len() != 32 {
            return Err(CipherError::BadKey(format!(
                "decodes to {} bytes, not 32",
                bytes.len()
            )));
        }
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CipherError::BadKey("not an AES-256 key".to_owned()))?;
        Ok(Self {
            sealer: Sealer::new(&key),
            generated: false,
        })
    }

    /// A random key for this process only.
    pub fn generate() -> Self {
        Self {
            sealer: Sealer::random(),
            generated: true,
        }
    }

    pub fn is_generated(&self) -> bool {
        self.generated
    }

    pub fn encrypt(&self, key: &BillingKeySecret) -> String {
        self.sealer.seal(key.expose().as_bytes(), b"")
    }

    pub fn decrypt(&self, stored: &str) -> Result<BillingKeySecret, CipherError> {
        let plain = self
            .sealer
            .open(stored, b"")
            .ok_or(CipherError::Undecryptable)?;
        String::from_utf8(plain)
            .map(BillingKeySecret::new)
            .map_err(|_| CipherError::Undecryptable)
    }
}

/// How a billing key is found again from Toss's `BILLING_DELETED` webhook, which names it:
/// SHA-256, so the column reveals nothing usable (billing keys are long random strings).
pub fn fingerprint(key: &str) -> String {
    let digest = Sha256::digest(format!("billing-key:{key}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `authKey` of a card registration, as remembered (it is single-use; its hash is enough to
/// recognise a reload).
pub fn auth_key_hash(auth_key: &str) -> String {
    let digest = Sha256::digest(format!("auth-key:{auth_key}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

    #[test]
    fn round_trips_with_a_fresh_nonce_each_time() {
        let cipher = BillingKeyCipher::from_base64(KEY).unwrap();
        let secret = BillingKeySecret::new("bk_live_secret_value".to_owned());
        let (a, b) = (cipher.encrypt(&secret), cipher.encrypt(&secret));
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.contains("bk_live_secret_value"));
        assert_eq!(cipher.decrypt(&a).unwrap().expose(), "bk_live_secret_value");
        assert_eq!(cipher.decrypt(&b).unwrap().expose(), "bk_live_secret_value");
    }

    #[test]
    fn another_key_or_an_altered_value_is_a_clear_error() {
        let cipher = BillingKeyCipher::from_base64(KEY).unwrap();
        let stored = cipher.encrypt(&BillingKeySecret::new("bk".to_owned()));
        let other = BillingKeyCipher::generate();
        assert_eq!(
            other.decrypt(&stored).unwrap_err(),
            CipherError::Undecryptable
        );
        let mut bytes = STANDARD.decode(&stored).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            cipher.decrypt(&STANDARD.encode(bytes)).unwrap_err(),
            CipherError::Undecryptable
        );
        assert_eq!(
            cipher.decrypt("%%%").unwrap_err(),
            CipherError::Undecryptable
        );
    }

    #[test]
    fn a_wrong_key_is_refused() {
        assert!(matches!(
            BillingKeyCipher::from_base64("not base64!"),
            Err(CipherError::BadKey(_))
        ));
        assert!(matches!(
            BillingKeyCipher::from_base64(&STANDARD.encode([0u8; 16])),
            Err(CipherError::BadKey(_))
        ));
        let cipher = BillingKeyCipher::from_base64(KEY).unwrap();
        assert!(!format!("{cipher:?}").contains(KEY));
    }
}
