//! Scheduled charges: one row per payment. Due rows are taken with a lease by one conditional
//! `UPDATE … RETURNING` (on PostgreSQL over `FOR UPDATE SKIP LOCKED`, so instances taking at
//! the same time never wait for or take the same rows; SQLite has one writer); the end of an
//! attempt is written with its events in one transaction, only by the taker of that attempt.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, Iterable, PaginatorTrait, QueryFilter,
    Statement, TransactionTrait, Value,
};

use super::events::{self, NewEvent};
use super::mapping::parse;
use super::sql::Sql;
use super::{ReadAs, Store, StoreError, StoreResult, corrupt};
use crate::domain::{PaymentId, Schedule, ScheduleStatus};

pub(super) mod schedule {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payment_schedules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub payment_id: String,
        pub billing_key_id: String,
        pub charge_at: DateTimeUtc,
        pub next_attempt_at: Option<DateTimeUtc>,
        pub attempts_made: i32,
        pub retry_after_seconds: String,
        pub status: String,
        pub lease_until: Option<DateTimeUtc>,
        pub payment_attempt: Option<i32>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    without_relations!();
}

use schedule::Column;

impl TryFrom<schedule::Model> for Schedule {
    type Error = StoreError;
    fn try_from(row: schedule::Model) -> Result<Self, Self::Error> {
        Ok(copied!(row => Self {
            charge_at, next_attempt_at, attempts_made, lease_until, payment_attempt, created_at,
            updated_at,
            ;
            payment_id: parse(&row.payment_id, "schedule's payment id")?,
            billing_key_id: parse(&row.billing_key_id, "schedule's billing key id")?,
            retry_after_seconds: serde_json::from_str(&row.retry_after_seconds)
                .map_err(|e| corrupt("schedule delays", e))?,
            status: parse(&row.status, "schedule status")?,
        }))
    }
}

fn model(s: &Schedule) -> schedule::ActiveModel {
    set!(s => schedule::ActiveModel {
        charge_at, next_attempt_at, attempts_made, lease_until, payment_attempt, created_at,
        updated_at,
        ;
        payment_id: Set(s.payment_id.to_string()),
        billing_key_id: Set(s.billing_key_id.to_string()),
        retry_after_seconds: Set(
            serde_json::to_string(&s.retry_after_seconds).unwrap_or_else(|_| "[]".to_owned())
        ),
        status: Set(s.status.as_str().to_owned()),
    })
}

/// What the end of a taken attempt writes on its schedule.
#[derive(Debug, Clone)]
pub struct ScheduleWrite {
    pub status: ScheduleStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts_made: i32,
    pub lease_until: Option<DateTime<Utc>>,
    /// Cleared when the next take is a fresh attempt (it numbers its own).
    pub payment_attempt: Option<i32>,
}

/// The schedules that may still charge, and so may be cancelled.
const CANCELLABLE: [ScheduleStatus; 2] = [ScheduleStatus::Scheduled, ScheduleStatus::Charging];

/// What a cancel writes on a schedule: `CANCELLED`, no next attempt.
fn cancelled(now: DateTime<Utc>) -> schedule::ActiveModel {
    schedule::ActiveModel {
        status: Set(ScheduleStatus::Cancelled.as_str().to_owned()),
        next_attempt_at: Set(None),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Cancels payment `payment_id`'s schedule (if it may still charge) in `conn`; `false` when
/// nothing was cancelled.
pub(super) async fn cancel_in(
    conn: &impl ConnectionTrait,
    payment_id: PaymentId,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let result = schedule::Entity::update_many()
        .set(cancelled(now))
        .filter(Column::PaymentId.eq(payment_id.to_string()))
        .filter(Column::Status.is_in(CANCELLABLE.map(ScheduleStatus::as_str)))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// [`cancel_in`] as a part of a PostgreSQL statement, for the payment the `WITH` part `cte`
/// returns: cancelled exactly when that payment changed, in its statement.
pub(super) fn cancel_sql(sql: &mut Sql, cte: &str, now: DateTime<Utc>) {
    let from: Vec<String> = CANCELLABLE
        .iter()
        .map(|status| sql.param(status.as_str()))
        .collect();
    sql.push("UPDATE \"payment_schedules\" SET ")
        .assignments(cancelled(now), &[])
        .push(&format!(
            " FROM {cte} WHERE \"payment_schedules\".\"payment_id\" = {cte}.\"id\" \
             AND \"payment_schedules\".\"status\" IN ({})",
            from.join(", ")
        ));
}

impl Store {
    /// Stores `schedule`, replacing the payment's schedule only while that one has made no
    /// attempt and is not being charged. `false`: there is one that cannot be replaced.
    pub async fn put_schedule(&self, schedule: &Schedule) -> StoreResult<bool> {
        let replace = OnConflict::column(Column::PaymentId)
            .update_columns(
                Column::iter().filter(|c| !matches!(c, Column::PaymentId | Column::CreatedAt)),
            )
            .action_and_where(
                Expr::col((schedule::Entity, Column::AttemptsMade))
                    .eq(0)
                    .and(
                        Expr::col((schedule::Entity, Column::Status))
                            .ne(ScheduleStatus::Charging.as_str()),
                    ),
            )
            .to_owned();
        let written = schedule::Entity::insert(model(schedule))
            .on_conflict(replace)
            .exec_without_returning(&self.db)
            .await?;
        Ok(written == 1)
    }

    pub async fn schedule_of(&self, payment_id: PaymentId) -> StoreResult<Option<Schedule>> {
        schedule::Entity::find_by_id(payment_id.to_string())
            .one_as(&self.db)
            .await
    }

    /// The schedules of `payment_ids` (those that have one).
    pub async fn schedules_of(&self, payment_ids: &[PaymentId]) -> StoreResult<Vec<Schedule>> {
        if payment_ids.is_empty() {
            return Ok(Vec::new());
        }
        schedule::Entity::find()
            .filter(Column::PaymentId.is_in(payment_ids.iter().map(ToString::to_string)))
            .all_as(&self.db)
            .await
    }

    /// `SCHEDULED` or `CHARGING` → `CANCELLED`; `false` when it was neither.
    pub async fn cancel_schedule(
        &self,
        payment_id: PaymentId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        cancel_in(&self.db, payment_id, now).await
    }

    /// Takes up to `limit` schedules that are due at `now` (`SCHEDULED`), or whose taker's lease
    /// ran out (`CHARGING`), for this instance until `lease_until`. A fresh take records the
    /// payment attempt its charge will claim; a take-over keeps the one recorded.
    pub async fn take_due_schedules(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<Schedule>> {
        let backend = self.db.get_database_backend();
        let (p, skip_locked) = match backend {
            DbBackend::Postgres => (["$1", "$2", "$3"], " FOR UPDATE SKIP LOCKED"),
            _ => (["?1", "?2", "?3"], ""),
        };
        let [lease, at, limit_param] = p;
        let due = format!(
            "((status = 'SCHEDULED' AND next_attempt_at <= {at}) \
              OR (status = 'CHARGING' AND lease_until <= {at}))"
        );
        let sql = format!(
            "UPDATE payment_schedules SET \
               payment_attempt = CASE WHEN status = 'SCHEDULED' THEN \
                 (SELECT p.confirm_attempt + 1 FROM payments p WHERE p.id = payment_schedules.payment_id) \
                 ELSE payment_attempt END, \
               status = 'CHARGING', lease_until = {lease}, updated_at = {at} \
             WHERE payment_id IN (SELECT payment_id FROM payment_schedules WHERE {due} \
                 ORDER BY next_attempt_at LIMIT {limit_param}{skip_locked}) \
               AND {due} \
             RETURNING *"
        );
        let values: Vec<Value> = vec![
            lease_until.into(),
            now.into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ];
        schedule::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
            .all(&self.db)
            .await?
            .into_iter()
            .map(Schedule::try_from)
            .collect()
    }

    /// Writes the end of the attempt `taken` was taken for, with `events`, in one transaction;
    /// only while the schedule is still `CHARGING` with the same number of attempts made (not
    /// cancelled, not finished by another taker). `false`: nothing was written.
    pub async fn finish_schedule_attempt(
        &self,
        taken: &Schedule,
        write: &ScheduleWrite,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let txn = self.db.begin().await?;
        let result = schedule::Entity::update_many()
            .col_expr(Column::Status, Expr::value(write.status.as_str()))
            .col_expr(Column::NextAttemptAt, Expr::value(write.next_attempt_at))
            .col_expr(Column::AttemptsMade, Expr::value(write.attempts_made))
            .col_expr(Column::LeaseUntil, Expr::value(write.lease_until))
            .col_expr(Column::PaymentAttempt, Expr::value(write.payment_attempt))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::PaymentId.eq(taken.payment_id.to_string()))
            .filter(Column::Status.eq(ScheduleStatus::Charging.as_str()))
            .filter(Column::AttemptsMade.eq(taken.attempts_made))
            .exec(&txn)
            .await?;
        if result.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        for event in events {
            events::append(&txn, event).await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// Up to `limit` schedules in `status`: with `due_before`, those due by then, soonest
    /// first; without, the latest changed first.
    pub async fn schedules_in(
        &self,
        status: ScheduleStatus,
        due_before: Option<DateTime<Utc>>,
        limit: u64,
    ) -> StoreResult<Vec<Schedule>> {
        use sea_orm::{QueryOrder, QuerySelect};
        let mut query = schedule::Entity::find().filter(Column::Status.eq(status.as_str()));
        query = match due_before {
            Some(until) => query
                .filter(Column::NextAttemptAt.lte(until))
                .order_by_asc(Column::NextAttemptAt),
            None => query.order_by_desc(Column::UpdatedAt),
        };
        query.limit(limit).all_as(&self.db).await
    }

    /// Schedules due at `now` and not yet taken.
    pub async fn schedules_due(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(schedule::Entity::find()
            .filter(Column::Status.eq(ScheduleStatus::Scheduled.as_str()))
            .filter(Column::NextAttemptAt.lte(now))
            .count(&self.db)
            .await?)
    }
}
