//! Encryption at rest: AES-256-GCM (RustCrypto `aes-gcm`), a fresh random 96-bit nonce per
//! value. Two things are sealed: billing keys (a billing key is a stored card: a database dump
//! must not be enough to charge it) and refund accounts (`service::AccountSealer`), both under
//! the keys of `BILLING_KEY_ENCRYPTION_KEY`.
//!
//! `BILLING_KEY_ENCRYPTION_KEY` is a [`Keyring`]: one or more 32-byte base64 keys separated by
//! commas, newest first. The newest seals; any of them opens. Each key is known by its *key
//! version*, the first 4 bytes of a SHA-256 of the key in hex (it says which key sealed a value
//! and nothing usable about the key), so the list can be reordered or grown without renumbering.
//!
//! A value is stored as `v3.<key version>.<base64(nonce ‖ ciphertext ‖ tag)>`, sealed with its
//! row as associated data (`billing_key:<id>`, `refund_account:<id>`): a sealed value copied
//! to another row does not open. Billing keys stored before (bare base64, under the single key
//! of then, without associated data) still open under any key of the ring, until
//! `payment-service reseal` moves them to the newest key and binds them to their row.
//!
//! Refund accounts are sealed in [`accounts`]; [`reseal`] moves every sealed column under the
//! newest key.

mod accounts;
mod reseal;

pub use accounts::AccountSealer;
pub use reseal::{ResealCounts, ResealReport, reseal};

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::domain::{BillingKeyId, BillingKeySecret};

const NONCE_LEN: usize = 12;

/// The format of values sealed under a keyring (`v3.<key version>.<sealed>`).
const FORMAT: &str = "v3";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// A configured key is not 32 bytes of base64: refused at start-up.
    #[error(
        "BILLING_KEY_ENCRYPTION_KEY must be 32 bytes encoded in base64 (e.g. `openssl rand -base64 32`), or several such keys separated by commas, newest first: {0}"
    )]
    BadKey(String),
    /// A stored value that no key of the ring can open: a key that is not (or no longer) in
    /// the list encrypted it (a changed or generated key), or it was altered or copied from
    /// another row.
    #[error(
        "a stored billing key cannot be decrypted with the configured BILLING_KEY_ENCRYPTION_KEY (it was encrypted under another key, or altered, or belongs to another row)"
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

    /// base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .0
            .encrypt(&nonce, Payload { msg: plain, aad })
            .expect("AES-GCM encryption of a short value cannot fail");
        STANDARD.encode([&nonce[..], &ciphertext].concat())
    }

    /// `None` for a value sealed under another key or for another place, or altered.
    pub fn open(&self, stored: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(stored).ok()?;
        let (nonce, msg) = bytes.split_first_chunk::<NONCE_LEN>()?;
        self.0
            .decrypt(&Nonce::from(*nonce), Payload { msg, aad })
            .ok()
    }
}

/// What opening a stored value found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<T> {
    pub value: T,
    /// Sealed under the newest key in the current format: `reseal` leaves it alone.
    pub current: bool,
}

/// What `reseal` makes of one stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resealed {
    /// Already under the newest key, bound to its row.
    Current,
    /// The value sealed anew under the newest key.
    Sealed(String),
    /// No key of the ring opens it: left as it is.
    Unreadable,
}

/// The keys of `BILLING_KEY_ENCRYPTION_KEY`, newest first. `Debug` never shows a key (a
/// [`Sealer`] does not).
#[derive(Clone, Debug)]
pub struct Keyring {
    /// (key version, sealer), newest first; never empty.
    keys: Vec<(String, Sealer)>,
    /// Whether the key was generated at start (values sealed now do not survive a restart).
    generated: bool,
}

/// The key version of `key`: 8 hex digits of a SHA-256 of it (domain-separated).
fn key_version(key: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(b"payment-service sealing key version\0")
        .chain_update(key)
        .finalize();
    hex::encode(&digest[..4])
}

impl Keyring {
    /// The keys as configured: 32-byte keys in standard base64, separated by commas, newest
    /// first (whitespace around each is ignored). A single key is a ring of one.
    pub fn parse(configured: &str) -> Result<Self, CipherError> {
        let entries: Vec<&str> = configured.split(',').map(str::trim).collect();
        let many = entries.len() > 1;
        let mut keys: Vec<(String, Sealer)> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            // Which entry is wrong, never its value.
            let which = |why: String| {
                if many {
                    CipherError::BadKey(format!("key {} of the list {why}", index + 1))
                } else {
                    CipherError::BadKey(why)
                }
            };
            if entry.is_empty() {
                return Err(which("is empty".to_owned()));
            }
            let bytes = STANDARD
                .decode(entry)
                .map_err(|_| which("is not valid base64".to_owned()))?;
            let len = bytes.len();
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| which(format!("decodes to {len} bytes, not 32")))?;
            let version = key_version(&key);
            if keys.iter().any(|(known, _)| *known == version) {
                return Err(which("is listed twice".to_owned()));
            }
            keys.push((version, Sealer::new(&key)));
        }
        Ok(Self {
            keys,
            generated: false,
        })
    }

    /// A random key for this process only.
    pub fn generate() -> Self {
        let key: [u8; 32] = Aes256Gcm::generate_key(OsRng).into();
        Self {
            keys: vec![(key_version(&key), Sealer::new(&key))],
            generated: true,
        }
    }

    pub fn is_generated(&self) -> bool {
        self.generated
    }

    /// The version of the newest key, the one that seals.
    pub fn current_version(&self) -> &str {
        &self.keys[0].0
    }

    /// How many keys open (the newest included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Seals `plain` under the newest key, bound to `aad`: `v3.<key version>.<sealed>`.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> String {
        let (version, sealer) = &self.keys[0];
        format!("{FORMAT}.{version}.{}", sealer.seal(plain, aad))
    }

    /// Whether `stored` is in this ring's format (whatever its key).
    pub fn is_sealed_here(stored: &str) -> bool {
        stored
            .strip_prefix(FORMAT)
            .is_some_and(|rest| rest.starts_with('.'))
    }

    /// Opens a value of this ring's format bound to `aad`. `None`: not this format, a key not
    /// in the ring, another place, or altered.
    pub fn open(&self, stored: &str, aad: &[u8]) -> Option<Opened<Vec<u8>>> {
        let rest = stored.strip_prefix(FORMAT)?.strip_prefix('.')?;
        let (version, sealed) = rest.split_once('.')?;
        let position = self.keys.iter().position(|(known, _)| known == version)?;
        let plain = self.keys[position].1.open(sealed, aad)?;
        Some(Opened {
            value: plain,
            current: position == 0,
        })
    }

    /// Opens a value sealed by version 2 (bare base64 under one key, with `aad` as it was
    /// then), under whichever key of the ring opens it. Never current.
    pub fn open_unversioned(&self, stored: &str, aad: &[u8]) -> Option<Vec<u8>> {
        self.keys
            .iter()
            .find_map(|(_, sealer)| sealer.open(stored, aad))
    }

    /// What `reseal` makes of a value that opened as `opened`: left alone when current, else
    /// sealed anew under the newest key, bound to `aad`.
    pub fn reseal(&self, opened: Option<Opened<Vec<u8>>>, aad: &[u8]) -> Resealed {
        match opened {
            Some(Opened { current: true, .. }) => Resealed::Current,
            Some(Opened { value, .. }) => Resealed::Sealed(self.seal(&value, aad)),
            None => Resealed::Unreadable,
        }
    }
}

/// Encrypts and decrypts billing keys, each bound to its row's id. `Debug` never shows a key.
#[derive(Clone, Debug)]
pub struct BillingKeyCipher {
    keyring: Keyring,
}

/// The associated data of billing key `id`'s value.
fn billing_key_aad(id: &str) -> Vec<u8> {
    format!("billing_key:{id}").into_bytes()
}

impl BillingKeyCipher {
    /// The keys as configured (see [`Keyring::parse`]).
    pub fn from_base64(encoded: &str) -> Result<Self, CipherError> {
        Keyring::parse(encoded).map(|keyring| Self { keyring })
    }

    /// A random key for this process only.
    pub fn generate() -> Self {
        Self {
            keyring: Keyring::generate(),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seals billing key `key` of row `id` under the newest key.
    pub fn encrypt(&self, id: BillingKeyId, key: &BillingKeySecret) -> String {
        self.keyring
            .seal(key.expose().as_bytes(), &billing_key_aad(&id.to_string()))
    }

    /// Opens the value stored on row `id`: sealed by this version (bound to the row) or by
    /// version 2 (unbound, under any key of the ring).
    pub fn decrypt(&self, id: BillingKeyId, stored: &str) -> Result<BillingKeySecret, CipherError> {
        self.open(&id.to_string(), stored)
            .and_then(|opened| String::from_utf8(opened.value).ok())
            .map(BillingKeySecret::new)
            .ok_or(CipherError::Undecryptable)
    }

    fn open(&self, id: &str, stored: &str) -> Option<Opened<Vec<u8>>> {
        if Keyring::is_sealed_here(stored) {
            return self.keyring.open(stored, &billing_key_aad(id));
        }
        let value = self.keyring.open_unversioned(stored, b"")?;
        Some(Opened {
            value,
            current: false,
        })
    }

    /// The value of row `id` (its id as stored) under the newest key, bound to the row.
    pub fn reseal(&self, id: &str, stored: &str) -> Resealed {
        self.keyring
            .reseal(self.open(id, stored), &billing_key_aad(id))
    }
}

/// Whether two secrets are equal, in time that depends on neither (SHA-256 of each, compared
/// in constant time: not even the length of the right one shows). For Toss's webhook `secret`.
pub fn secrets_equal(claimed: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    let claimed: [u8; 32] = Sha256::digest(claimed.as_bytes()).into();
    let expected: [u8; 32] = Sha256::digest(expected.as_bytes()).into();
    claimed.ct_eq(&expected).into()
}

/// How a billing key is found again from Toss's `BILLING_DELETED` webhook, which names it:
/// SHA-256, so the column reveals nothing usable (billing keys are long random strings).
pub fn fingerprint(key: &str) -> String {
    sha256_hex(&format!("billing-key:{key}"))
}

/// The `authKey` of a card registration, as remembered (it is single-use; its hash is enough to
/// recognise a reload).
pub fn auth_key_hash(auth_key: &str) -> String {
    sha256_hex(&format!("auth-key:{auth_key}"))
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const OTHER: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 bytes

    fn secret(value: &str) -> BillingKeySecret {
        BillingKeySecret::new(value.to_owned())
    }

    /// Whether `cipher` refuses `stored` as the value of row `id` (and says so clearly).
    fn refused(cipher: &BillingKeyCipher, id: BillingKeyId, stored: &str) -> bool {
        cipher.decrypt(id, stored).unwrap_err() == CipherError::Undecryptable
    }

    /// A value as version 2 stored it: bare base64, no associated data.
    fn sealed_by_version_2(key: &str, plain: &str) -> String {
        let key: [u8; 32] = STANDARD.decode(key).unwrap().try_into().unwrap();
        Sealer::new(&key).seal(plain.as_bytes(), b"")
    }

    #[test]
    fn round_trips_with_a_fresh_nonce_each_time() {
        let cipher = BillingKeyCipher::from_base64(KEY).unwrap();
        let id = BillingKeyId::new();
        let secret = secret("bk_live_secret_value");
        let (a, b) = (cipher.encrypt(id, &secret), cipher.encrypt(id, &secret));
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.contains("bk_live_secret_value"));
        assert!(a.starts_with(&format!("v3.{}.", cipher.keyring().current_version())));
        for stored in [&a, &b] {
            let opened = cipher.decrypt(id, stored).unwrap();
            assert_eq!(opened.expose(), "bk_live_secret_value");
        }
    }

    #[test]
    fn a_value_is_bound_to_its_row() {
        let cipher = BillingKeyCipher::from_base64(KEY).unwrap();
        let stored = cipher.encrypt(BillingKeyId::new(), &secret("bk"));
        assert!(refused(&cipher, BillingKeyId::new(), &stored));
    }

    #[test]
    fn another_key_or_an_altered_value_is_a_clear_error() {
        let cipher = BillingKeyCipher::from_base64(KEY).unwrap();
        let id = BillingKeyId::new();
        let stored = cipher.encrypt(id, &secret("bk"));
        assert!(refused(&BillingKeyCipher::generate(), id, &stored));
        let (prefix, body) = stored.rsplit_once('.').unwrap();
        let mut bytes = STANDARD.decode(body).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("{prefix}.{}", STANDARD.encode(bytes));
        assert!(refused(&cipher, id, &altered));
        for junk in ["%%%", "", "v3.", "v3.00000000.AAAA", "v3..", "v9.x.y"] {
            assert!(refused(&cipher, id, junk), "{junk:?}");
        }
    }

    #[test]
    fn the_newest_key_seals_and_every_key_opens() {
        let old = BillingKeyCipher::from_base64(KEY).unwrap();
        let id = BillingKeyId::new();
        let under_old = old.encrypt(id, &secret("bk_old"));
        let v2 = sealed_by_version_2(KEY, "bk_v2");

        let rotated = BillingKeyCipher::from_base64(&format!("{OTHER}, {KEY}")).unwrap();
        assert_eq!(rotated.keyring().len(), 2);
        assert_ne!(
            rotated.keyring().current_version(),
            old.keyring().current_version()
        );
        assert_eq!(rotated.decrypt(id, &under_old).unwrap().expose(), "bk_old");
        assert_eq!(rotated.decrypt(id, &v2).unwrap().expose(), "bk_v2");
        let under_new = rotated.encrypt(id, &secret("bk_new"));
        assert!(under_new.starts_with(&format!("v3.{}.", rotated.keyring().current_version())));
        assert!(refused(&old, id, &under_new), "sealed under the newest key");

        // Re-sealing moves the old ones; the newest alone then opens everything.
        let key = id.to_string();
        assert_eq!(rotated.reseal(&key, &under_new), Resealed::Current);
        let Resealed::Sealed(moved) = rotated.reseal(&key, &under_old) else {
            panic!("resealed")
        };
        let Resealed::Sealed(moved_v2) = rotated.reseal(&key, &v2) else {
            panic!("resealed")
        };
        assert_eq!(rotated.reseal(&key, &moved), Resealed::Current);
        assert_eq!(rotated.reseal(&key, "damaged"), Resealed::Unreadable);
        let newest = BillingKeyCipher::from_base64(OTHER).unwrap();
        assert_eq!(newest.decrypt(id, &moved).unwrap().expose(), "bk_old");
        assert_eq!(newest.decrypt(id, &moved_v2).unwrap().expose(), "bk_v2");
        assert_eq!(newest.decrypt(id, &under_new).unwrap().expose(), "bk_new");
        assert!(
            refused(&newest, BillingKeyId::new(), &moved_v2),
            "a resealed version 2 value is bound to its row"
        );
    }

    #[test]
    fn secrets_are_compared_whole() {
        let secret = "ps_eqRGgYO1r57E4Z541ZMW3QnN2Eya";
        for (claimed, expected, equal) in [
            (secret, secret, true),
            ("ps_eqRGgYO1r57E4Z541ZMW3QnN2Eyb", secret, false),
            ("ps_eqRGgYO1r57E4Z541ZMW3QnN2Ey", secret, false),
            ("", "ps_x", false),
            ("", "", true),
        ] {
            assert_eq!(secrets_equal(claimed, expected), equal, "{claimed:?}");
        }
    }

    #[test]
    fn a_version_2_value_opens_under_a_single_key_as_before() {
        let cipher = BillingKeyCipher::from_base64(KEY).unwrap();
        let v2 = sealed_by_version_2(KEY, "bk_v2");
        assert_eq!(
            cipher.decrypt(BillingKeyId::new(), &v2).unwrap().expose(),
            "bk_v2"
        );
        let other = BillingKeyCipher::from_base64(OTHER).unwrap();
        assert!(refused(&other, BillingKeyId::new(), &v2));
    }

    #[test]
    fn a_wrong_key_is_refused_without_showing_it() {
        for bad in [
            "not base64!".to_owned(),
            STANDARD.encode([0u8; 16]),
            format!("{KEY},"),
            format!("{KEY},{KEY}"),
            format!("{KEY},{}", STANDARD.encode([0u8; 31])),
        ] {
            let error = BillingKeyCipher::from_base64(&bad).unwrap_err();
            assert!(matches!(error, CipherError::BadKey(_)), "{bad}");
            assert!(!error.to_string().contains(KEY), "{error}");
        }
        assert!(
            BillingKeyCipher::from_base64(&format!("{KEY},{}", STANDARD.encode([0u8; 31])))
                .unwrap_err()
                .to_string()
                .contains("key 2 of the list decodes to 31 bytes"),
        );
        let cipher = BillingKeyCipher::from_base64(&format!(" {OTHER} ,{KEY} ")).unwrap();
        let shown = format!("{cipher:?}");
        assert!(!shown.contains(KEY) && !shown.contains(OTHER), "{shown}");
    }
}
