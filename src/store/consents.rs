//! Buyers' consents to a subscription's amount, and the amount a subscription's charges may
//! reach without a new one.

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use super::entities::payment;
use super::mapping::parse;
use super::{ReadAs, Store, StoreError, StoreResult};
use crate::domain::{Consent, PaymentId};

pub(super) mod consent {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "billing_consents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub consent_id: String,
        pub user_id: String,
        pub subscription_id: String,
        pub max_amount_krw: i64,
        pub consented_at: DateTimeUtc,
        pub evidence: String,
        pub created_at: DateTimeUtc,
    }

    without_relations!();
}

impl TryFrom<consent::Model> for Consent {
    type Error = StoreError;
    fn try_from(row: consent::Model) -> Result<Self, Self::Error> {
        Ok(copied!(row => Self {
            user_id, subscription_id, max_amount_krw, consented_at, evidence, created_at,
            ;
            consent_id: parse(&row.consent_id, "consent id")?,
        }))
    }
}

impl Store {
    pub async fn insert_consent(&self, consent: &Consent) -> StoreResult<()> {
        set!(consent => consent::ActiveModel {
            user_id, subscription_id, max_amount_krw, consented_at, evidence, created_at,
            ;
            consent_id: Set(consent.consent_id.to_string()),
        })
        .insert(&self.db)
        .await?;
        Ok(())
    }

    /// A subscription's consents, newest first (by when the buyer agreed, then when recorded).
    pub async fn consents_of(
        &self,
        subscription_id: &str,
        user_id: Option<&str>,
        limit: Option<u64>,
    ) -> StoreResult<Vec<Consent>> {
        consent::Entity::find()
            .filter(consent::Column::SubscriptionId.eq(subscription_id))
            .apply_if(user_id, |q, user| {
                q.filter(consent::Column::UserId.eq(user))
            })
            .order_by_desc(consent::Column::ConsentedAt)
            .order_by_desc(consent::Column::CreatedAt)
            .order_by_desc(consent::Column::ConsentId)
            .limit(limit)
            .all_as(&self.db)
            .await
    }

    /// The amount of the subscription's first approved billing charge (another payment than
    /// `except`), if there was one.
    pub async fn first_charged_amount(
        &self,
        subscription_id: &str,
        user_id: &str,
        except: PaymentId,
    ) -> StoreResult<Option<i64>> {
        Ok(payment::Entity::find()
            .filter(payment::Column::SubscriptionId.eq(subscription_id))
            .filter(payment::Column::UserId.eq(user_id))
            .filter(payment::Column::BillingKeyId.is_not_null())
            .filter(payment::Column::CompletedAt.is_not_null())
            .filter(payment::Column::Id.ne(except.to_string()))
            .order_by_asc(payment::Column::CompletedAt)
            .one(&self.db)
            .await?
            .map(|row| row.amount_krw))
    }
}
