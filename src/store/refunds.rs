use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};

use super::entities::{payment, refund};
use super::events::{self, NewEvent};
use super::mapping::to_active_refund;
use super::{Store, StoreError, StoreResult};
use crate::domain::{Failure, Payment, PaymentId, PaymentStatus, Refund, RefundId, RefundStatus};

/// What becomes of a reserved refund that did not happen at the PG.
#[derive(Debug, Clone)]
pub enum RefundRelease {
    /// The PG refused at once: the request leaves no trace.
    Forget,
    /// The PG's record shows it never happened after an unknown outcome: keep it as `FAILED`.
    Fail(Failure),
}

const REFUNDABLE: [PaymentStatus; 2] = [PaymentStatus::Completed, PaymentStatus::PartialRefund];

fn refundable_statuses() -> impl Iterator<Item = &'static str> {
    REFUNDABLE.iter().map(|status| status.as_str())
}

impl Store {
    /// Sets `refund.amount_krw` aside from the payment's balance and records the refund as
    /// `PENDING`, before the PG is called. `false` when the balance (or the status) no longer
    /// allows it: two concurrent refunds cannot both take the same money.
    pub async fn reserve_refund(&self, refund: &Refund) -> StoreResult<bool> {
        let txn = self.db.begin().await?;
        if !take_from_balance(&txn, refund.payment_id, refund.amount_krw, true).await? {
            txn.rollback().await?;
            return Ok(false);
        }
        to_active_refund(refund).insert(&txn).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Records a refund that needs no PG call (no-op gateway, or a payment not paid through the
    /// PG): balance, status, refund row and event in one transaction. `None` when the balance
    /// or status does not allow it.
    pub async fn record_refund(
        &self,
        refund: &Refund,
        event: impl FnOnce(&Payment, &Refund) -> NewEvent,
    ) -> StoreResult<Option<Payment>> {
        let txn = self.db.begin().await?;
        if !take_from_balance(&txn, refund.payment_id, refund.amount_krw, false).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        if let Err(error) = to_active_refund(refund).insert(&txn).await {
            txn.rollback().await?;
            return Err(match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(what)) => StoreError::AlreadyRecorded(what),
                _ => error.into(),
            });
        }
        let payment = settle_refund_status(&txn, refund.payment_id).await?;
        events::append(&txn, event(&payment, refund)).await?;
        txn.commit().await?;
        Ok(Some(payment))
    }

    /// A reserved refund went through at the PG: refund, balance, status and event together.
    /// `None` if the refund was no longer `PENDING` (someone else settled it).
    pub async fn complete_refund(
        &self,
        refund_id: RefundId,
        pg_cancel_key: Option<String>,
        refunded_at: DateTime<Utc>,
        event: impl FnOnce(&Payment, &Refund) -> NewEvent,
    ) -> StoreResult<Option<(Payment, Refund)>> {
        let txn = self.db.begin().await?;
        let updated = refund::Entity::update_many()
            .col_expr(
                refund::Column::Status,
                Expr::value(RefundStatus::Completed.as_str()),
            )
            .col_expr(refund::Column::PgCancelKey, Expr::value(pg_cancel_key))
            .col_expr(refund::Column::RefundedAt, Expr::value(refunded_at))
            .col_expr(refund::Column::UpdatedAt, Expr::value(Utc::now()))
            .col_expr(
                refund::Column::NextReconcileAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(refund::Column::Id.eq(refund_id.to_string()))
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let refund = load_refund(&txn, refund_id).await?;
        let moved = payment::Entity::update_many()
            .col_expr(
                payment::Column::RefundedAmountKrw,
                Expr::col(payment::Column::RefundedAmountKrw).add(refund.amount_krw),
            )
            .col_expr(
                payment::Column::RefundReservedKrw,
                Expr::col(payment::Column::RefundReservedKrw).sub(refund.amount_krw),
            )
            .filter(payment::Column::Id.eq(refund.payment_id.to_string()))
            .exec(&txn)
            .await?;
        if moved.rows_affected != 1 {
            return Err(StoreError::Other(format!(
                "refund {refund_id} has no payment to settle"
            )));
        }
        let payment = settle_refund_status(&txn, refund.payment_id).await?;
        events::append(&txn, event(&payment, &refund)).await?;
        txn.commit().await?;
        Ok(Some((payment, refund)))
    }

    /// Gives a reserved amount back to the balance. `false` if the refund was no longer `PENDING`.
    pub async fn release_refund(
        &self,
        refund_id: RefundId,
        release: RefundRelease,
    ) -> StoreResult<bool> {
        let txn = self.db.begin().await?;
        let Some(row) = refund::Entity::find_by_id(refund_id.to_string())
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()))
            .one(&txn)
            .await?
        else {
            txn.rollback().await?;
            return Ok(false);
        };
        let filter = refund::Column::Id
            .eq(refund_id.to_string())
            .and(refund::Column::Status.eq(RefundStatus::Pending.as_str()));
        let affected = match release {
            RefundRelease::Forget => {
                refund::Entity::delete_many()
                    .filter(filter)
                    .exec(&txn)
                    .await?
                    .rows_affected
            }
            RefundRelease::Fail(failure) => {
                refund::Entity::update_many()
                    .col_expr(
                        refund::Column::Status,
                        Expr::value(RefundStatus::Failed.as_str()),
                    )
                    .col_expr(refund::Column::FailureCode, Expr::value(failure.code))
                    .col_expr(refund::Column::FailureMessage, Expr::value(failure.message))
                    .col_expr(refund::Column::UpdatedAt, Expr::value(Utc::now()))
                    .col_expr(
                        refund::Column::NextReconcileAt,
                        Expr::value(None::<DateTime<Utc>>),
                    )
                    .filter(filter)
                    .exec(&txn)
                    .await?
                    .rows_affected
            }
        };
        if affected == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        payment::Entity::update_many()
            .col_expr(
                payment::Column::RefundReservedKrw,
                Expr::col(payment::Column::RefundReservedKrw).sub(row.amount_krw),
            )
            .filter(payment::Column::Id.eq(row.payment_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// How many refunds are `PENDING`, and since when the oldest one is.
    pub async fn unsettled_refunds(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        use sea_orm::PaginatorTrait;
        let query = refund::Entity::find()
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()));
        let count = query.clone().count(&self.db).await?;
        let oldest = query
            .order_by_asc(refund::Column::CreatedAt)
            .one(&self.db)
            .await?
            .map(|row| row.created_at);
        Ok((count, oldest))
    }

    pub async fn refund(&self, id: RefundId) -> StoreResult<Option<Refund>> {
        refund::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(Refund::try_from)
            .transpose()
    }

    /// A payment's refunds, oldest first.
    pub async fn refunds_of(&self, payment_id: PaymentId) -> StoreResult<Vec<Refund>> {
        refund::Entity::find()
            .filter(refund::Column::PaymentId.eq(payment_id.to_string()))
            .order_by_asc(refund::Column::CreatedAt)
            .order_by_asc(refund::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Refund::try_from)
            .collect()
    }

    pub async fn refunds_due(&self, now: DateTime<Utc>, limit: u64) -> StoreResult<Vec<Refund>> {
        refund::Entity::find()
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()))
            .filter(refund::Column::NextReconcileAt.lte(now))
            .order_by_asc(refund::Column::NextReconcileAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Refund::try_from)
            .collect()
    }

    /// Takes a due refund for one reconciliation pass; only one instance wins the row.
    pub async fn lease_refund(&self, refund: &Refund, until: DateTime<Utc>) -> StoreResult<bool> {
        let mut update = refund::Entity::update_many()
            .col_expr(refund::Column::NextReconcileAt, Expr::value(until))
            .col_expr(
                refund::Column::ReconcileAttempts,
                Expr::col(refund::Column::ReconcileAttempts).add(1),
            )
            .filter(refund::Column::Id.eq(refund.id.to_string()))
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()));
        update = match refund.next_reconcile_at {
            Some(at) => update.filter(refund::Column::NextReconcileAt.eq(at)),
            None => update.filter(refund::Column::NextReconcileAt.is_null()),
        };
        Ok(update.exec(&self.db).await?.rows_affected == 1)
    }
}

/// Moves `amount` out of the refundable balance, into the reservation (`reserve`) or straight
/// into the refunded total. The WHERE clause is the balance check.
async fn take_from_balance(
    txn: &DatabaseTransaction,
    payment_id: PaymentId,
    amount: i64,
    reserve: bool,
) -> StoreResult<bool> {
    let column = if reserve {
        payment::Column::RefundReservedKrw
    } else {
        payment::Column::RefundedAmountKrw
    };
    let balance = Expr::col(payment::Column::AmountKrw)
        .sub(Expr::col(payment::Column::RefundedAmountKrw))
        .sub(Expr::col(payment::Column::RefundReservedKrw));
    let mut update = payment::Entity::update_many()
        .col_expr(column, Expr::col(column).add(amount))
        .filter(payment::Column::Id.eq(payment_id.to_string()))
        .filter(payment::Column::Status.is_in(refundable_statuses()))
        .filter(balance.gte(amount));
    if !reserve {
        update = update.col_expr(payment::Column::UpdatedAt, Expr::value(Utc::now()));
    }
    Ok(update.exec(txn).await?.rows_affected == 1)
}

/// After the refunded total changed: `REFUNDED` when nothing is left, else `PARTIAL_REFUND`.
async fn settle_refund_status(
    txn: &DatabaseTransaction,
    payment_id: PaymentId,
) -> StoreResult<Payment> {
    let row = payment::Entity::find_by_id(payment_id.to_string())
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::Other(format!("payment {payment_id} vanished")))?;
    let status = if row.refunded_amount_krw >= row.amount_krw {
        PaymentStatus::Refunded
    } else {
        PaymentStatus::PartialRefund
    };
    let now = Utc::now();
    super::payments::count_transition(&row.status, status.as_str());
    payment::Entity::update_many()
        .col_expr(payment::Column::Status, Expr::value(status.as_str()))
        .col_expr(payment::Column::UpdatedAt, Expr::value(now))
        .filter(payment::Column::Id.eq(payment_id.to_string()))
        .filter(payment::Column::Status.is_in(refundable_statuses()))
        .exec(txn)
        .await?;
    let mut payment = Payment::try_from(row)?;
    payment.status = status;
    payment.updated_at = now;
    Ok(payment)
}

async fn load_refund<C: ConnectionTrait>(conn: &C, id: RefundId) -> StoreResult<Refund> {
    refund::Entity::find_by_id(id.to_string())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::Other(format!("refund {id} vanished")))
        .and_then(Refund::try_from)
}

impl Store {
    /// Leaves a `PENDING` refund to a person: the reconciler no longer picks it up.
    pub async fn unschedule_refund(&self, refund_id: RefundId) -> StoreResult<()> {
        refund::Entity::update_many()
            .col_expr(
                refund::Column::NextReconcileAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(refund::Column::Id.eq(refund_id.to_string()))
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Next reconciliation of a `PENDING` refund.
    pub async fn schedule_refund(&self, refund_id: RefundId, at: DateTime<Utc>) -> StoreResult<()> {
        refund::Entity::update_many()
            .col_expr(refund::Column::NextReconcileAt, Expr::value(at))
            .filter(refund::Column::Id.eq(refund_id.to_string()))
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
