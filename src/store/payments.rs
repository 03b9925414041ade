use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, SqlErr, Statement, TransactionTrait,
};

use super::entities::payment::{self, Column};
use super::events::{self, NewEvent};
use super::mapping::to_active_payment;
use super::{Store, StoreError, StoreResult, sql};
use crate::domain::{Failure, Payment, PaymentId, PaymentRef, PaymentStatus};

/// Columns a transition may set. `None` leaves a column alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct PaymentChanges {
    pub status: Option<PaymentStatus>,
    pub pg_provider: Option<Option<String>>,
    pub pg_transaction_id: Option<Option<String>>,
    pub payment_key: Option<Option<String>>,
    pub pg_secret: Option<Option<String>>,
    pub failure: Option<Option<Failure>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub confirm_started_at: Option<DateTime<Utc>>,
    /// Adds one to `confirm_attempt`.
    pub new_confirm_attempt: bool,
    pub next_reconcile_at: Option<Option<DateTime<Utc>>>,
    pub reconcile_attempts: Option<i32>,
    /// Sets the review flag with its reason.
    pub review: Option<String>,
}

/// A conditional update of one payment, with the event it produces, in one transaction.
/// It happens only if the payment is still in one of `from` (and, when given, still carries
/// `payment_key`): concurrent requests, instances and the reconciler race on this row count.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub payment: PaymentRef,
    pub from: &'a [PaymentStatus],
    /// When given, only if the stored amount is this one.
    pub amount_krw: Option<i64>,
    pub payment_key: Option<&'a str>,
    pub changes: PaymentChanges,
    pub event: Option<NewEvent>,
}

impl Store {
    pub async fn insert_payment(&self, payment: &Payment) -> StoreResult<()> {
        match to_active_payment(payment).insert(&self.db).await {
            Ok(_) => Ok(()),
            Err(error) => match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => Err(StoreError::DuplicateOrderId),
                _ => Err(error.into()),
            },
        }
    }

    pub async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        payment::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(Payment::try_from)
            .transpose()
    }

    pub async fn payment_by_order(&self, order_id: &str) -> StoreResult<Option<Payment>> {
        payment::Entity::find()
            .filter(Column::OrderId.eq(order_id))
            .one(&self.db)
            .await?
            .map(Payment::try_from)
            .transpose()
    }

    /// The payment whose PG attempt (in flight or confirmed) has this key.
    pub async fn payment_by_pg_key(&self, key: &str) -> StoreResult<Option<Payment>> {
        payment::Entity::find()
            .filter(
                Column::PaymentKey
                    .eq(key)
                    .or(Column::PgTransactionId.eq(key)),
            )
            .one(&self.db)
            .await?
            .map(Payment::try_from)
            .transpose()
    }

    /// Newest first, with the total count of the filter.
    pub async fn list_payments(
        &self,
        user_id: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> StoreResult<(Vec<Payment>, u64)> {
        let mut query = payment::Entity::find();
        if let Some(user_id) = user_id {
            query = query.filter(Column::UserId.eq(user_id));
        }
        let total = query.clone().count(&self.db).await?;
        let rows = query
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(limit)
            .offset(offset)
            .all(&self.db)
            .await?;
        let payments = rows
            .into_iter()
            .map(Payment::try_from)
            .collect::<StoreResult<_>>()?;
        Ok((payments, total))
    }

    /// Applies `transition` if the payment is still where it expects and returns the payment as
    /// it now is; `None` if another request, instance or the reconciler got there first.
    ///
    /// A transition is one statement where it can be: without an event, an autocommitted
    /// `UPDATE … RETURNING`; with one on PostgreSQL, the update and the append in one statement
    /// (see [`Store::transition_with_event_postgres`]). One statement is one transaction and one
    /// round trip.
    pub async fn transition(&self, transition: Transition<'_>) -> StoreResult<Option<Payment>> {
        if let Some(to) = transition.changes.status {
            debug_assert!(
                transition.from.iter().all(|from| from.can_become(to)),
                "illegal transition {:?} -> {to}",
                transition.from
            );
        }
        let new_status = transition.changes.status;
        let mut update = payment::Entity::update_many()
            .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(match &transition.payment {
                PaymentRef::Id(id) => Column::Id.eq(id.to_string()),
                PaymentRef::OrderId(order_id) => Column::OrderId.eq(order_id.as_str()),
            })
            .filter(Column::Status.is_in(transition.from.iter().map(|status| status.as_str())));
        if let Some(key) = transition.payment_key {
            update = update.filter(Column::PaymentKey.eq(key));
        }
        if let Some(amount) = transition.amount_krw {
            update = update.filter(Column::AmountKrw.eq(amount));
        }
        for (column, value) in transition.changes.assignments() {
            update = update.col_expr(column, value);
        }
        let row = match transition.event {
            None => update.exec_with_returning(&self.db).await?.pop(),
            Some(event) if self.db.get_database_backend() == DbBackend::Postgres => {
                self.transition_with_event_postgres(update, event).await?
            }
            Some(event) => {
                let txn = self.db.begin().await?;
                let row = update.exec_with_returning(&txn).await?.pop();
                if row.is_some() {
                    events::append(&txn, event).await?;
                    txn.commit().await?;
                } else {
                    txn.rollback().await?;
                }
                row
            }
        };
        let Some(row) = row else {
            return Ok(None);
        };
        if let Some(to) = new_status {
            let from = match transition.from {
                [one] => one.as_str(),
                _ => "ANY",
            };
            count_transition(from, to.as_str());
        }
        Payment::try_from(row).map(Some)
    }

    /// The conditional update and its event as one statement: the event is inserted from the
    /// updated row, so it exists exactly when the update happened, and both commit together.
    async fn transition_with_event_postgres(
        &self,
        update: sea_orm::UpdateMany<payment::Entity>,
        event: NewEvent,
    ) -> StoreResult<Option<payment::Model>> {
        let (update_sql, mut values) = sql::update_returning(update.into_query());
        let (append_sql, event_values) = event.insert_postgres(Some("changed"), values.len() + 1);
        values.extend(event_values);
        let sql = format!(
            "WITH changed AS ({update_sql}), appended AS ({append_sql}) SELECT * FROM changed"
        );
        Ok(payment::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .one(&self.db)
            .await?)
    }

    /// Flags a payment for a person, whatever its status (a refund's record contradicts ours).
    pub async fn flag_for_review(&self, id: PaymentId, reason: &str) -> StoreResult<()> {
        payment::Entity::update_many()
            .col_expr(Column::NeedsReview, Expr::value(true))
            .col_expr(Column::ReviewReason, Expr::value(reason))
            .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Unsettled payments whose next reconciliation is due, oldest due first.
    pub async fn payments_due(&self, now: DateTime<Utc>, limit: u64) -> StoreResult<Vec<Payment>> {
        payment::Entity::find()
            .filter(Column::Status.eq(PaymentStatus::InProgress.as_str()))
            .filter(Column::NeedsReview.eq(false))
            .filter(Column::NextReconcileAt.lte(now))
            .order_by_asc(Column::NextReconcileAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Payment::try_from)
            .collect()
    }

    /// Takes a due payment for one reconciliation pass by moving its due time; only one
    /// instance wins the row.
    pub async fn lease_payment(
        &self,
        payment: &Payment,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut update = payment::Entity::update_many()
            .col_expr(Column::NextReconcileAt, Expr::value(until))
            .col_expr(
                Column::ReconcileAttempts,
                Expr::col(Column::ReconcileAttempts).add(1),
            )
            .filter(Column::Id.eq(payment.id.to_string()))
            .filter(Column::Status.eq(PaymentStatus::InProgress.as_str()));
        update = match payment.next_reconcile_at {
            Some(at) => update.filter(Column::NextReconcileAt.eq(at)),
            None => update.filter(Column::NextReconcileAt.is_null()),
        };
        Ok(update.exec(&self.db).await?.rows_affected == 1)
    }

    /// How many payments are `IN_PROGRESS`, and since when the oldest one is.
    pub async fn unsettled_payments(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let query =
            payment::Entity::find().filter(Column::Status.eq(PaymentStatus::InProgress.as_str()));
        let count = query.clone().count(&self.db).await?;
        let oldest = query
            .order_by_asc(Column::ConfirmStartedAt)
            .one(&self.db)
            .await?
            .and_then(|row| row.confirm_started_at.or(Some(row.updated_at)));
        Ok((count, oldest))
    }
}

impl PaymentChanges {
    fn assignments(self) -> Vec<(Column, SimpleExpr)> {
        let mut set: Vec<(Column, SimpleExpr)> = Vec::new();
        if let Some(status) = self.status {
            set.push((Column::Status, Expr::value(status.as_str())));
        }
        if let Some(value) = self.pg_provider {
            set.push((Column::PgProvider, Expr::value(value)));
        }
        if let Some(value) = self.pg_transaction_id {
            set.push((Column::PgTransactionId, Expr::value(value)));
        }
        if let Some(value) = self.payment_key {
            set.push((Column::PaymentKey, Expr::value(value)));
        }
        if let Some(value) = self.pg_secret {
            set.push((Column::PgSecret, Expr::value(value)));
        }
        if let Some(failure) = self.failure {
            let (code, message) = match failure {
                Some(f) => (Some(f.code), Some(f.message)),
                None => (None, None),
            };
            set.push((Column::FailureCode, Expr::value(code)));
            set.push((Column::FailureMessage, Expr::value(message)));
        }
        if let Some(at) = self.completed_at {
            set.push((Column::CompletedAt, Expr::value(at)));
        }
        if let Some(at) = self.confirm_started_at {
            set.push((Column::ConfirmStartedAt, Expr::value(at)));
        }
        if self.new_confirm_attempt {
            set.push((
                Column::ConfirmAttempt,
                Expr::col(Column::ConfirmAttempt).add(1),
            ));
        }
        if let Some(at) = self.next_reconcile_at {
            set.push((Column::NextReconcileAt, Expr::value(at)));
        }
        if let Some(attempts) = self.reconcile_attempts {
            set.push((Column::ReconcileAttempts, Expr::value(attempts)));
        }
        if let Some(reason) = self.review {
            set.push((Column::NeedsReview, Expr::value(true)));
            set.push((Column::ReviewReason, Expr::value(reason)));
        }
        set
    }
}

/// `payment_transitions_total{from, to}`.
pub(super) fn count_transition(from: &str, to: &str) {
    metrics::counter!("payment_transitions_total", "from" => from.to_owned(), "to" => to.to_owned())
        .increment(1);
}
