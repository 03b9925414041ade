//! Webhook deliveries already handled, so that Toss's retries and replays are harmless.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::entities::webhook_delivery;
use super::{Store, StoreResult, is_duplicate};

impl Store {
    /// The outcome recorded for a transmission already handled.
    pub async fn webhook_outcome(&self, transmission_id: &str) -> StoreResult<Option<String>> {
        Ok(
            webhook_delivery::Entity::find_by_id(transmission_id.to_owned())
                .one(&self.db)
                .await?
                .map(|row| row.outcome),
        )
    }

    /// Remembers a handled transmission; a concurrent duplicate that got here first wins.
    pub async fn record_webhook(
        &self,
        transmission_id: &str,
        event_type: &str,
        outcome: &str,
    ) -> StoreResult<()> {
        let row = webhook_delivery::ActiveModel {
            transmission_id: Set(transmission_id.to_owned()),
            event_type: Set(event_type.chars().take(64).collect()),
            outcome: Set(outcome.to_owned()),
            received_at: Set(Utc::now()),
        };
        match row.insert(&self.db).await {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Forgets the deliveries received before `cutoff`; returns how many.
    pub async fn purge_webhooks_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        Ok(webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::ReceivedAt.lt(cutoff))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
