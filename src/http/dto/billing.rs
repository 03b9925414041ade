//! Billing (자동결제): customer keys, billing keys, the card registration's redirects, charges.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::timestamp;
use crate::domain::{BillingCustomer, BillingKey, BillingKeyStatus, CardInfo};

/// Body of `POST /billing/customers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": "u-1"}))]
pub struct CreateCustomerRequest {
    /// 1..64 characters, not blank, no control characters.
    #[schema(pattern = "user id")]
    pub user_id: String,
}

/// A user's customer key, for the frontend's `requestBillingAuth({customerKey})`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"user_id": "u-1", "customer_key": "4f9d2c1e-8b7a-4e3f-9c2d-1a0b9e8f7d6c"}))]
pub struct BillingCustomerDto {
    pub user_id: String,
    /// Random (a UUID), never derived from the user id.
    pub customer_key: String,
}

impl From<&BillingCustomer> for BillingCustomerDto {
    fn from(customer: &BillingCustomer) -> Self {
        Self {
            user_id: customer.user_id.clone(),
            customer_key: customer.customer_key.to_string(),
        }
    }
}

/// Body of `POST /billing-keys`: what Toss's success redirect carries.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer_key": "4f9d2c1e-8b7a-4e3f-9c2d-1a0b9e8f7d6c", "auth_key": "bln_a1b2c3d4e5"}))]
pub struct IssueBillingKeyRequest {
    /// The customer key `POST /billing/customers` gave.
    #[schema(pattern = "customer key")]
    pub customer_key: String,
    /// Toss's single-use `authKey` of the card registration.
    #[schema(pattern = "auth key")]
    pub auth_key: String,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingKeyStatusDto {
    Active,
    Deleted,
}

/// A billing key. The key itself is never shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "billing_key_id": "019ad0c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
    "user_id": "u-1",
    "customer_key": "4f9d2c1e-8b7a-4e3f-9c2d-1a0b9e8f7d6c",
    "method": "카드",
    "card": {"issuer_code": "71", "number": "43301234****123*", "card_type": "신용", "owner_type": "개인"},
    "status": "ACTIVE",
    "created_at": "2026-12-01T09:30:00.000Z",
    "deleted_at": null
}))]
pub struct BillingKeyDto {
    #[schema(format = Uuid)]
    pub billing_key_id: String,
    pub user_id: String,
    pub customer_key: String,
    pub method: Option<String>,
    pub card: Option<CardInfo>,
    pub status: BillingKeyStatusDto,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub deleted_at: Option<String>,
}

impl From<&BillingKey> for BillingKeyDto {
    fn from(key: &BillingKey) -> Self {
        Self {
            billing_key_id: key.id.to_string(),
            user_id: key.user_id.clone(),
            customer_key: key.customer_key.to_string(),
            method: key.method.clone(),
            card: key.card.clone(),
            // Issuing rows are never shown (the service filters them).
            status: match key.status {
                BillingKeyStatus::Active | BillingKeyStatus::Issuing => BillingKeyStatusDto::Active,
                BillingKeyStatus::Deleted => BillingKeyStatusDto::Deleted,
            },
            created_at: timestamp(key.created_at),
            deleted_at: key.deleted_at.map(timestamp),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BillingKeyListDto {
    pub billing_keys: Vec<BillingKeyDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListBillingKeysParams {
    /// The user whose keys to list (required).
    #[param(required = true, pattern = "user id")]
    pub user_id: Option<String>,
}

/// Query of `GET /billing/toss/success`, as Toss sends it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct BillingSuccessParams {
    #[param(required = true, pattern = "customer key")]
    pub customer_key: Option<String>,
    /// Single-use.
    #[param(required = true, pattern = "auth key")]
    pub auth_key: Option<String>,
}

/// Query of `GET /billing/toss/fail`, as Toss sends it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BillingFailParams {
    /// Toss's error code, e.g. `PAY_PROCESS_CANCELED`. Anything but 1..64 characters of
    /// `A-Z a-z 0-9 _` is passed on as `UNKNOWN`.
    #[param(pattern = r"^[^\u0000]*$")]
    pub code: Option<String>,
    /// Toss's message; control characters are dropped and it is cut at 510 characters.
    #[param(pattern = r"^[^\u0000]*$")]
    pub message: Option<String>,
}

/// Body of `POST /payments/{payment_id}/charge`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"billing_key_id": "019ad0c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"}))]
#[schema(as = ChargeRequest)]
pub struct ChargePaymentRequest {
    /// An `ACTIVE` billing key of the payment's user.
    #[schema(format = Uuid)]
    pub billing_key_id: String,
}
