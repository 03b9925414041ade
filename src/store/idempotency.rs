//! Durable `Idempotency-Key` records: the first request with a key runs, later ones replay it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, SqlErr};

use super::entities::idempotency_key::{self, Column};
use super::{Store, StoreResult};

const IN_FLIGHT: &str = "IN_FLIGHT";
const DONE: &str = "DONE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// This request owns the key: run it, then `finish_idempotent` or `abandon_idempotent`.
    Started,
    /// The first request with this key finished; send its response again.
    Replay(StoredResponse),
    /// The key was used with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

impl Store {
    /// Claims `key` for a request whose fingerprint is `request_hash`. A claim whose owner
    /// vanished (crash) is taken over once `locked_until` has passed; a record past
    /// `expires_at` is forgotten.
    pub async fn begin_idempotent(
        &self,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
        locked_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<IdempotencyBegin> {
        loop {
            let claim = idempotency_key::ActiveModel {
                key: Set(key.to_owned()),
                request_hash: Set(request_hash.to_owned()),
                state: Set(IN_FLIGHT.to_owned()),
                response_status: Set(None),
                response_body: Set(None),
                response_content_type: Set(None),
                locked_until: Set(locked_until),
                created_at: Set(now),
                expires_at: Set(expires_at),
            };
            match claim.insert(&self.db).await {
                Ok(_) => return Ok(IdempotencyBegin::Started),
                Err(error)
                    if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
                Err(error) => return Err(error.into()),
            }
            let Some(existing) = idempotency_key::Entity::find_by_id(key.to_owned())
                .one(&self.db)
                .await?
            else {
                continue;
            };
            if existing.expires_at <= now {
                idempotency_key::Entity::delete_many()
                    .filter(Column::Key.eq(key))
                    .filter(Column::ExpiresAt.eq(existing.expires_at))
                    .exec(&self.db)
                    .await?;
                continue;
            }
            if existing.request_hash != request_hash {
                return Ok(IdempotencyBegin::Mismatch);
            }
            if existing.state == DONE {
                return Ok(IdempotencyBegin::Replay(StoredResponse {
                    status: existing
                        .response_status
                        .and_then(|s| u16::try_from(s).ok())
                        .unwrap_or(500),
                    content_type: existing.response_content_type,
                    body: existing.response_body.unwrap_or_default(),
                }));
            }
            if existing.locked_until > now {
                return Ok(IdempotencyBegin::InFlight);
            }
            let taken = idempotency_key::Entity::update_many()
                .col_expr(Column::LockedUntil, Expr::value(locked_until))
                .filter(Column::Key.eq(key))
                .filter(Column::State.eq(IN_FLIGHT))
                .filter(Column::LockedUntil.eq(existing.locked_until))
                .exec(&self.db)
                .await?;
            return Ok(if taken.rows_affected == 1 {
                IdempotencyBegin::Started
            } else {
                IdempotencyBegin::InFlight
            });
        }
    }

    pub async fn finish_idempotent(&self, key: &str, response: &StoredResponse) -> StoreResult<()> {
        idempotency_key::Entity::update_many()
            .col_expr(Column::State, Expr::value(DONE))
            .col_expr(
                Column::ResponseStatus,
                Expr::value(i32::from(response.status)),
            )
            .col_expr(Column::ResponseBody, Expr::value(response.body.clone()))
            .col_expr(
                Column::ResponseContentType,
                Expr::value(response.content_type.clone()),
            )
            .filter(Column::Key.eq(key))
            .filter(Column::State.eq(IN_FLIGHT))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Forgets a claim whose request must not be replayed (a 5xx, an auth failure).
    pub async fn abandon_idempotent(&self, key: &str) -> StoreResult<()> {
        idempotency_key::Entity::delete_many()
            .filter(Column::Key.eq(key))
            .filter(Column::State.eq(IN_FLIGHT))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn purge_expired_idempotency(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(idempotency_key::Entity::delete_many()
            .filter(Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
