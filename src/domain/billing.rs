//! Toss billing (자동결제): a buyer's `customerKey`, and the billing keys Toss issues for it.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{BillingKeyId, DomainError};

/// The key Toss knows a buyer by in billing: 2..=300 characters of `A-Z a-z 0-9 - _ = . , @`
/// (docs/toss-api.md §17.1). Ours are random UUIDs, never derived from the user id: anyone who
/// knows a customer key can misuse it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomerKey(String);

text_newtype!(CustomerKey);

impl CustomerKey {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let len = value.len();
        if !(2..=300).contains(&len)
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=.,@".contains(&b))
        {
            return Err(DomainError::new(
                "customer_key",
                "must be 2 to 300 characters of A-Z, a-z, 0-9, '-', '_', '=', '.', ',', '@'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// A fresh random key (a UUID v4: 122 random bits, nothing of the user in it).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

/// Toss's billing key: whoever holds it (with the secret key) can charge the card. It is never
/// shown, logged or printed; `Debug` says `[REDACTED]` (a `SecretString`'s does).
#[derive(Clone, Debug)]
pub struct BillingKeySecret(SecretString);

impl BillingKeySecret {
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    /// For the one place that must send it (the Toss client) or encrypt it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Toss's single-use `authKey` of a card registration. Not a card, but it can become one once;
/// kept out of logs like the billing key.
#[derive(Clone, Debug)]
pub struct AuthKey(SecretString);

impl AuthKey {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        if value.is_empty()
            || value.len() > 300
            || !value.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(DomainError::new(
                "auth_key",
                "must be 1 to 300 printable ASCII characters",
            ));
        }
        Ok(Self(SecretString::from(value.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

text_enum! {
    pub enum BillingKeyStatus in "billing_key_status", "status" {
        /// Claimed for its `authKey`; Toss is being asked to issue it. Never shown.
        Issuing = "ISSUING",
        Active = "ACTIVE",
        Deleted = "DELETED",
    }
}

/// The card behind a billing key, as Toss describes it (the number masked by Toss).
// Read from Toss's Billing object as is (camelCase), shown as the API's `BillingCardDto`.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all(deserialize = "camelCase"))]
#[schema(as = BillingCardDto)]
pub struct CardInfo {
    pub issuer_code: Option<String>,
    pub number: Option<String>,
    pub card_type: Option<String>,
    pub owner_type: Option<String>,
}

/// A billing key as stored: everything but the key itself, which stays encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingKey {
    pub id: BillingKeyId,
    pub user_id: String,
    pub customer_key: CustomerKey,
    pub status: BillingKeyStatus,
    pub method: Option<String>,
    pub card: Option<CardInfo>,
    /// base64(nonce ‖ ciphertext) of the billing key; `None` while issuing.
    pub ciphertext: Option<String>,
    pub issue_lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A user's customer key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingCustomer {
    pub user_id: String,
    pub customer_key: CustomerKey,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let key = BillingKeySecret::new("bk_secret_value".to_owned());
        assert!(!format!("{key:?}").contains("bk_secret_value"));
        let auth = AuthKey::parse("auth_secret_value").unwrap();
        assert!(!format!("{auth:?}").contains("auth_secret_value"));
    }

    #[test]
    fn customer_keys_are_random_and_valid() {
        let (a, b) = (CustomerKey::random(), CustomerKey::random());
        assert_ne!(a, b);
        assert!(CustomerKey::parse(a.as_str()).is_ok());
        assert!(CustomerKey::parse("a").is_err());
        assert!(CustomerKey::parse("has space").is_err());
    }
}
