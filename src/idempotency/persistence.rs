//! The `idempotency_keys` table: one row per scoped key, claimed by the first request (`IN_FLIGHT`
//! until its lease ends), then holding that request's response (`DONE`) until it expires. It is
//! reached through the store's connection; no other module touches it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, SqlErr};

use self::entity::Column;
use crate::domain::ScopedKey;
use crate::store::{Store, StoreResult};

const IN_FLIGHT: &str = "IN_FLIGHT";
const DONE: &str = "DONE";

mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub request_hash: String,
        pub state: String,
        pub response_status: Option<i32>,
        pub response_body: Option<String>,
        pub response_content_type: Option<String>,
        pub locked_until: DateTimeUtc,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
    }

    crate::store::without_relations!();
}

/// A response as it is kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextAction {
    /// This request owns the key: run it, then `save_response` or `release`.
    StartProcessing,
    /// The first request with this key finished; send its response again.
    Replay(StoredResponse),
    /// The key was used with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

/// Claims `key` for a request whose fingerprint is `request_hash`. A claim whose owner vanished
/// (crash) is taken over once `locked_until` has passed; a record past `expires_at` is
/// forgotten.
pub async fn try_processing(
    store: &Store,
    key: &ScopedKey,
    request_hash: &str,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<NextAction> {
    let db = store.connection();
    let key = key.as_str();
    loop {
        let claim = entity::ActiveModel {
            key: Set(key.to_owned()),
            request_hash: Set(request_hash.to_owned()),
            state: Set(IN_FLIGHT.to_owned()),
            locked_until: Set(locked_until),
            created_at: Set(now),
            expires_at: Set(expires_at),
            // No response yet: its columns stay NULL.
            ..Default::default()
        };
        match claim.insert(db).await {
            Ok(_) => return Ok(NextAction::StartProcessing),
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            }
            Err(error) => return Err(error.into()),
        }
        let Some(existing) = entity::Entity::find_by_id(key.to_owned()).one(db).await? else {
            continue;
        };
        if existing.expires_at <= now {
            entity::Entity::delete_many()
                .filter(Column::Key.eq(key))
                .filter(Column::ExpiresAt.eq(existing.expires_at))
                .exec(db)
                .await?;
            continue;
        }
        if existing.request_hash != request_hash {
            return Ok(NextAction::Mismatch);
        }
        if existing.state == DONE {
            return Ok(NextAction::Replay(StoredResponse {
                status: existing
                    .response_status
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(500),
                content_type: existing.response_content_type,
                body: existing.response_body.unwrap_or_default(),
            }));
        }
        if existing.locked_until > now {
            return Ok(NextAction::InFlight);
        }
        let taken = entity::Entity::update_many()
            .col_expr(Column::LockedUntil, Expr::value(locked_until))
            .filter(Column::Key.eq(key))
            .filter(Column::State.eq(IN_FLIGHT))
            .filter(Column::LockedUntil.eq(existing.locked_until))
            .exec(db)
            .await?;
        return Ok(if taken.rows_affected == 1 {
            NextAction::StartProcessing
        } else {
            NextAction::InFlight
        });
    }
}

/// Keeps the response of the request that claimed `key`, for its retries.
pub async fn save_response(
    store: &Store,
    key: &ScopedKey,
    response: &StoredResponse,
) -> StoreResult<()> {
    entity::Entity::update_many()
        .set(entity::ActiveModel {
            state: Set(DONE.to_owned()),
            response_status: Set(Some(i32::from(response.status))),
            response_body: Set(Some(response.body.clone())),
            response_content_type: Set(response.content_type.clone()),
            ..Default::default()
        })
        .filter(Column::Key.eq(key.as_str()))
        .filter(Column::State.eq(IN_FLIGHT))
        .exec(store.connection())
        .await?;
    Ok(())
}

/// Forgets a claim whose request must not be replayed (a 5xx, an auth failure).
pub async fn release(store: &Store, key: &ScopedKey) -> StoreResult<()> {
    entity::Entity::delete_many()
        .filter(Column::Key.eq(key.as_str()))
        .filter(Column::State.eq(IN_FLIGHT))
        .exec(store.connection())
        .await?;
    Ok(())
}

/// Forgets the keys whose time is up, returning how many (the reconciler calls it on every
/// pass). A key past its time is also forgotten when it is used again, so this only keeps the
/// table small.
pub async fn purge_expired(store: &Store, now: DateTime<Utc>) -> StoreResult<u64> {
    Ok(entity::Entity::delete_many()
        .filter(Column::ExpiresAt.lte(now))
        .exec(store.connection())
        .await?
        .rows_affected)
}
