//! Billing customers and billing keys. A key's row is claimed (`ISSUING`) under the hash of
//! its `authKey` before Toss is called, so a reload or a concurrent request finds it instead of
//! calling Toss again; the key itself is stored only encrypted (the service encrypts).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::entities::{billing_customer, billing_key};
use super::mapping::{parse, unless_empty};
use super::{ReadAs, Store, StoreError, StoreResult, corrupt, is_duplicate};
use crate::domain::{
    BillingCustomer, BillingKey, BillingKeyId, BillingKeyStatus, CardInfo, CustomerKey,
};

impl TryFrom<billing_customer::Model> for BillingCustomer {
    type Error = StoreError;
    fn try_from(row: billing_customer::Model) -> Result<Self, Self::Error> {
        Ok(Self {
            customer_key: CustomerKey::parse(&row.customer_key)
                .map_err(|e| corrupt("customer key", e))?,
            user_id: row.user_id,
            created_at: row.created_at,
        })
    }
}

impl TryFrom<billing_key::Model> for BillingKey {
    type Error = StoreError;
    fn try_from(row: billing_key::Model) -> Result<Self, Self::Error> {
        let card = unless_empty(CardInfo {
            issuer_code: row.card_issuer_code,
            number: row.card_number,
            card_type: row.card_type,
            owner_type: row.card_owner_type,
        });
        Ok(copied!(row => Self {
            user_id, method, issue_lease_until, created_at, deleted_at,
            ;
            id: parse(&row.id, "billing key id")?,
            customer_key: CustomerKey::parse(&row.customer_key)
                .map_err(|e| corrupt("customer key", e))?,
            status: parse(&row.status, "billing key status")?,
            card,
            ciphertext: row.key_ciphertext,
        }))
    }
}

/// What claiming an `authKey` found.
#[derive(Debug)]
pub enum IssueClaim {
    /// This request claimed it: it calls Toss.
    Claimed(BillingKey),
    /// Another request claimed it before (a reload, a double click): its row as it is now.
    Existing(BillingKey),
}

/// What Toss issued, to be stored on the claimed row.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub ciphertext: String,
    pub fingerprint: String,
    pub method: Option<String>,
    pub card: Option<CardInfo>,
}

impl Store {
    pub async fn billing_customer_of(&self, user_id: &str) -> StoreResult<Option<BillingCustomer>> {
        billing_customer::Entity::find_by_id(user_id.to_owned())
            .one_as(&self.db)
            .await
    }

    pub async fn billing_customer_by_key(
        &self,
        customer_key: &CustomerKey,
    ) -> StoreResult<Option<BillingCustomer>> {
        billing_customer::Entity::find()
            .filter(billing_customer::Column::CustomerKey.eq(customer_key.as_str()))
            .one_as(&self.db)
            .await
    }

    /// Inserts `customer`; `false` if the user has one already (whoever raced wins once).
    pub async fn insert_billing_customer(&self, customer: &BillingCustomer) -> StoreResult<bool> {
        let row = billing_customer::ActiveModel {
            user_id: Set(customer.user_id.clone()),
            customer_key: Set(customer.customer_key.as_str().to_owned()),
            created_at: Set(customer.created_at),
        };
        match row.insert(&self.db).await {
            Ok(_) => Ok(true),
            Err(error) if is_duplicate(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Claims the `authKey` (by its hash) for a new key `key` (`ISSUING`), or finds the row
    /// that claimed it first.
    pub async fn claim_issue(
        &self,
        key: &BillingKey,
        auth_key_hash: &str,
    ) -> StoreResult<IssueClaim> {
        let row = billing_key::ActiveModel {
            id: Set(key.id.to_string()),
            user_id: Set(key.user_id.clone()),
            customer_key: Set(key.customer_key.as_str().to_owned()),
            auth_key_hash: Set(auth_key_hash.to_owned()),
            status: Set(BillingKeyStatus::Issuing.as_str().to_owned()),
            issue_lease_until: Set(key.issue_lease_until),
            created_at: Set(key.created_at),
            // Nothing issued yet: the key, its fingerprint and its card stay NULL.
            ..Default::default()
        };
        match row.insert(&self.db).await {
            Ok(row) => Ok(IssueClaim::Claimed(row.try_into()?)),
            Err(error) if is_duplicate(&error) => billing_key::Entity::find()
                .filter(billing_key::Column::AuthKeyHash.eq(auth_key_hash))
                .one_as(&self.db)
                .await?
                .map(IssueClaim::Existing)
                .ok_or_else(|| StoreError::Other("claimed authKey row vanished".to_owned())),
            Err(error) => Err(error.into()),
        }
    }

    /// Takes over an `ISSUING` claim whose request died (its lease passed), for a retry.
    pub async fn take_over_issue(
        &self,
        id: BillingKeyId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<BillingKey>> {
        billing_key::Entity::update_many()
            .col_expr(
                billing_key::Column::IssueLeaseUntil,
                Expr::value(lease_until),
            )
            .filter(billing_key::Column::Id.eq(id.to_string()))
            .filter(billing_key::Column::Status.eq(BillingKeyStatus::Issuing.as_str()))
            .filter(billing_key::Column::IssueLeaseUntil.lt(now))
            .exec_with_returning(&self.db)
            .await?
            .pop()
            .map(BillingKey::try_from)
            .transpose()
    }

    /// Stores what Toss issued on the claimed row: `ACTIVE`.
    pub async fn activate_billing_key(
        &self,
        id: BillingKeyId,
        issued: IssuedKey,
    ) -> StoreResult<Option<BillingKey>> {
        let card = issued.card.unwrap_or_default();
        billing_key::Entity::update_many()
            .set(billing_key::ActiveModel {
                status: Set(BillingKeyStatus::Active.as_str().to_owned()),
                key_ciphertext: Set(Some(issued.ciphertext)),
                key_fingerprint: Set(Some(issued.fingerprint)),
                method: Set(issued.method),
                card_issuer_code: Set(card.issuer_code),
                card_number: Set(card.number),
                card_type: Set(card.card_type),
                card_owner_type: Set(card.owner_type),
                issue_lease_until: Set(None),
                ..Default::default()
            })
            .filter(billing_key::Column::Id.eq(id.to_string()))
            .filter(billing_key::Column::Status.eq(BillingKeyStatus::Issuing.as_str()))
            .exec_with_returning(&self.db)
            .await?
            .pop()
            .map(BillingKey::try_from)
            .transpose()
    }

    /// Forgets a claim Toss refused (nothing was issued): the row leaves no trace.
    pub async fn drop_issue_claim(&self, id: BillingKeyId) -> StoreResult<()> {
        billing_key::Entity::delete_many()
            .filter(billing_key::Column::Id.eq(id.to_string()))
            .filter(billing_key::Column::Status.eq(BillingKeyStatus::Issuing.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn billing_key(&self, id: BillingKeyId) -> StoreResult<Option<BillingKey>> {
        billing_key::Entity::find_by_id(id.to_string())
            .one_as(&self.db)
            .await
    }

    /// A user's issued keys (active and deleted), oldest first.
    pub async fn billing_keys_of(&self, user_id: &str) -> StoreResult<Vec<BillingKey>> {
        billing_key::Entity::find()
            .filter(billing_key::Column::UserId.eq(user_id))
            .filter(billing_key::Column::Status.ne(BillingKeyStatus::Issuing.as_str()))
            .order_by_asc(billing_key::Column::CreatedAt)
            .order_by_asc(billing_key::Column::Id)
            .all_as(&self.db)
            .await
    }

    /// Disables an `ACTIVE` key (by id, or by the fingerprint a webhook names); `None` if no
    /// active key matched. Only ever disables.
    pub async fn delete_billing_key(
        &self,
        key: KeyRef<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<BillingKey>> {
        let filter = match key {
            KeyRef::Id(id) => billing_key::Column::Id.eq(id.to_string()),
            KeyRef::Fingerprint(fingerprint) => billing_key::Column::KeyFingerprint.eq(fingerprint),
        };
        billing_key::Entity::update_many()
            .col_expr(
                billing_key::Column::Status,
                Expr::value(BillingKeyStatus::Deleted.as_str()),
            )
            .col_expr(billing_key::Column::DeletedAt, Expr::value(now))
            .filter(filter)
            .filter(billing_key::Column::Status.eq(BillingKeyStatus::Active.as_str()))
            .exec_with_returning(&self.db)
            .await?
            .into_iter()
            .map(BillingKey::try_from)
            .collect()
    }
}

/// How a billing key is named: by our id, or by its fingerprint (Toss's webhook).
#[derive(Debug, Clone, Copy)]
pub enum KeyRef<'a> {
    Id(BillingKeyId),
    Fingerprint(&'a str),
}
