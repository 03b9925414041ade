//! The outbox: events are written in the transaction of the state change they describe.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::event;
use super::{Store, StoreResult};
use crate::domain::StoredEvent;

/// An event to append, built by the service.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: &'static str,
    pub version: &'static str,
    pub source: &'static str,
    pub occurred_at: DateTime<Utc>,
    pub user_id: String,
    pub payment_id: String,
    pub payload: serde_json::Value,
}

/// Appends inside the caller's transaction.
pub(super) async fn append<C: ConnectionTrait>(conn: &C, event: NewEvent) -> StoreResult<()> {
    if conn.get_database_backend() == DbBackend::Postgres {
        // Sequence values are handed out before commit, so without this a consumer paging by
        // `seq` could pass a lower number that commits later. The lock is held only from here to
        // commit, which keeps `seq` in commit order.
        conn.execute_unprepared("SELECT pg_advisory_xact_lock(727100002)")
            .await?;
    }
    event::ActiveModel {
        seq: NotSet,
        event_id: Set(event.event_id),
        event_type: Set(event.event_type.to_owned()),
        version: Set(event.version.to_owned()),
        occurred_at: Set(event.occurred_at),
        source: Set(event.source.to_owned()),
        user_id: Set(event.user_id),
        payment_id: Set(event.payment_id),
        payload: Set(event.payload.to_string()),
        published_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Events with `seq > after`, oldest first.
    pub async fn events_after(&self, after: i64, limit: u64) -> StoreResult<Vec<StoredEvent>> {
        event::Entity::find()
            .filter(event::Column::Seq.gt(after))
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(StoredEvent::try_from)
            .collect()
    }

    pub async fn events_for_payment(&self, payment_id: &str) -> StoreResult<Vec<StoredEvent>> {
        event::Entity::find()
            .filter(event::Column::PaymentId.eq(payment_id))
            .order_by_asc(event::Column::Seq)
            .all(&self.db)
            .await?
            .into_iter()
            .map(StoredEvent::try_from)
            .collect()
    }
}
