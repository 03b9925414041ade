//! The outbox: events are written in the transaction of the state change they describe.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::entities::event;
use super::{ReadAs, Store, StoreResult, sql::Sql};
use crate::domain::{Actor, StoredEvent};

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
    /// Who made the change the event records.
    pub actor: Actor,
    /// The W3C `traceparent` of the span that made the change, when traces are on.
    pub trace_context: Option<String>,
}

/// Taken by every transaction that appends an event, from the append to its commit: sequence
/// values are handed out before commit, so without it a consumer paging by `seq` could pass a
/// lower number that commits later. Held only that briefly, it keeps `seq` in commit order.
const APPEND_LOCK_SQL: &str = "pg_advisory_xact_lock(727100002)";

impl NewEvent {
    fn into_model(self) -> event::ActiveModel {
        event::ActiveModel {
            seq: NotSet,
            event_id: Set(self.event_id),
            event_type: Set(self.event_type.to_owned()),
            version: Set(self.version.to_owned()),
            occurred_at: Set(self.occurred_at),
            source: Set(self.source.to_owned()),
            user_id: Set(self.user_id),
            payment_id: Set(self.payment_id),
            payload: Set(self.payload.to_string()),
            published_at: Set(None),
            actor_type: Set(self.actor.kind.as_str().to_owned()),
            actor_name: Set(self.actor.name),
            trace_context: Set(self.trace_context),
        }
    }

    /// PostgreSQL: the append as one statement, `INSERT … SELECT … [FROM source] WHERE <lock>`,
    /// written into `sql`. The lock is a filter (volatile, so evaluated
    /// per row of `source`, after it), and `seq` is drawn only for rows that passed it: the lock
    /// comes before the sequence value whatever the plan.
    pub(super) fn insert_postgres(self, sql: &mut Sql, source: Option<&str>) {
        let filter = format!("{APPEND_LOCK_SQL} IS NOT NULL");
        sql.insert_select(self.into_model(), source, Some(&filter));
    }
}

/// Appends inside the caller's transaction.
pub(super) async fn append<C: ConnectionTrait>(conn: &C, event: NewEvent) -> StoreResult<()> {
    match conn.get_database_backend() {
        DbBackend::Postgres => {
            let mut sql = Sql::new(DbBackend::Postgres);
            event.insert_postgres(&mut sql, None);
            conn.execute_raw(sql.into_statement()).await?;
        }
        _ => {
            event.into_model().insert(conn).await?;
        }
    }
    Ok(())
}

impl Store {
    /// Events with `seq > after`, oldest first.
    pub async fn events_after(&self, after: i64, limit: u64) -> StoreResult<Vec<StoredEvent>> {
        event::Entity::find()
            .filter(event::Column::Seq.gt(after))
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .all_as(&self.db)
            .await
    }

    pub async fn events_for_payment(&self, payment_id: &str) -> StoreResult<Vec<StoredEvent>> {
        event::Entity::find()
            .filter(event::Column::PaymentId.eq(payment_id))
            .order_by_asc(event::Column::Seq)
            .all_as(&self.db)
            .await
    }
}

/// Unpublished events claimed by one relay pass. No other pass can claim them until this batch is
/// marked or released (or dropped, which releases it).
pub struct UnpublishedBatch {
    events: Vec<StoredEvent>,
    hold: Hold,
}

enum Hold {
    /// PostgreSQL: the rows stay locked `FOR UPDATE` by this open transaction.
    Rows(DatabaseTransaction),
    /// SQLite has one connection and one writer, so a transaction held across publishing would
    /// stall every request. Claims are serialised within the process instead.
    Process {
        db: DatabaseConnection,
        _guard: OwnedMutexGuard<()>,
    },
}

/// Serialises SQLite claims: SQLite serves one process, so this is every relay there is.
static SQLITE_CLAIM: LazyLock<Arc<Mutex<()>>> = LazyLock::new(|| Arc::new(Mutex::new(())));

impl UnpublishedBatch {
    /// Oldest `seq` first.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// Marks the events with these `seq`s published and ends the claim. Returns how many rows it
    /// marked.
    pub async fn mark_published(self, seqs: &[i64]) -> StoreResult<u64> {
        let now = Utc::now();
        match self.hold {
            Hold::Rows(txn) => {
                let marked = mark(&txn, seqs, now).await?;
                txn.commit().await?;
                Ok(marked)
            }
            Hold::Process { db, _guard } => mark(&db, seqs, now).await,
        }
    }

    /// Ends the claim without marking anything.
    pub async fn release(self) -> StoreResult<()> {
        match self.hold {
            Hold::Rows(txn) => txn.rollback().await.map_err(Into::into),
            Hold::Process { .. } => Ok(()),
        }
    }
}

async fn mark<C: ConnectionTrait>(conn: &C, seqs: &[i64], now: DateTime<Utc>) -> StoreResult<u64> {
    if seqs.is_empty() {
        return Ok(0);
    }
    let result = event::Entity::update_many()
        .col_expr(event::Column::PublishedAt, Expr::value(now))
        .filter(event::Column::Seq.is_in(seqs.iter().copied()))
        .filter(event::Column::PublishedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

fn unpublished() -> sea_orm::Select<event::Entity> {
    event::Entity::find()
        .filter(event::Column::PublishedAt.is_null())
        .order_by_asc(event::Column::Seq)
}

/// The oldest `limit` unpublished events (locked, skipping rows another relay holds, where the
/// database has row locks), less those with an earlier unpublished event of their payment
/// outside the claim: that one is held by another relay, or beyond the limit, and must reach
/// NATS first. The rows left out stay locked with the claim, so no other relay takes them
/// either.
fn claim_sql(backend: DbBackend) -> String {
    let (limit, lock) = match backend {
        DbBackend::Postgres => ("$1", " FOR UPDATE SKIP LOCKED"),
        _ => ("?", ""),
    };
    format!(
        "WITH claimed AS (\
             SELECT seq FROM events WHERE published_at IS NULL ORDER BY seq LIMIT {limit}{lock}\
         ) \
         SELECT e.* FROM events e \
         WHERE e.seq IN (SELECT seq FROM claimed) \
           AND NOT EXISTS (\
             SELECT 1 FROM events earlier \
             WHERE earlier.payment_id = e.payment_id \
               AND earlier.published_at IS NULL \
               AND earlier.seq < e.seq \
               AND earlier.seq NOT IN (SELECT seq FROM claimed)\
           ) \
         ORDER BY e.seq"
    )
}

async fn claim<C: ConnectionTrait>(conn: &C, limit: u64) -> StoreResult<Vec<event::Model>> {
    let backend = conn.get_database_backend();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(event::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            claim_sql(backend),
            [limit.into()],
        ))
        .all(conn)
        .await?)
}

impl Store {
    /// Claims unpublished events for one relay pass, oldest first, so that no other relay (in
    /// any instance) gets them while this batch is held; on PostgreSQL rows another relay holds
    /// are skipped, not waited for. An event is claimed only if every earlier unpublished event
    /// of its payment is in the claim too: per payment, events go out in `seq` order, however
    /// many relays run.
    pub async fn claim_unpublished(&self, limit: u64) -> StoreResult<UnpublishedBatch> {
        let (rows, hold) = match self.db.get_database_backend() {
            DbBackend::Postgres => {
                let txn = self.db.begin().await?;
                let rows = match claim(&txn, limit).await {
                    Ok(rows) => rows,
                    Err(error) => {
                        let _ = txn.rollback().await;
                        return Err(error);
                    }
                };
                (rows, Hold::Rows(txn))
            }
            _ => {
                let guard = SQLITE_CLAIM.clone().lock_owned().await;
                let rows = claim(&self.db, limit).await?;
                let db = self.db.clone();
                (rows, Hold::Process { db, _guard: guard })
            }
        };
        let events = rows
            .into_iter()
            .map(StoredEvent::try_from)
            .collect::<StoreResult<Vec<_>>>();
        match events {
            Ok(events) => Ok(UnpublishedBatch { events, hold }),
            Err(error) => {
                let _ = (UnpublishedBatch {
                    events: Vec::new(),
                    hold,
                })
                .release()
                .await;
                Err(error)
            }
        }
    }

    /// How far the relay is behind: how many events are not yet published, and when the oldest
    /// of them happened.
    pub async fn unpublished_stats(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let count = unpublished().count(&self.db).await?;
        let oldest = unpublished().one(&self.db).await?;
        Ok((count, oldest.map(|row| row.occurred_at)))
    }
}
