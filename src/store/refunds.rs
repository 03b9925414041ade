use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, UpdateStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, Iden, Iterable, QueryFilter, QueryOrder, QuerySelect, QueryTrait, SqlErr,
    TransactionTrait,
};

use super::adoption::Seen;
use super::entities::{payment, refund};
use super::events::{self, NewEvent};
use super::mapping::{refunds_in, to_active_refund};
use super::sql::Sql;
use super::{ReadAs, Store, StoreError, StoreResult};
use crate::domain::{Payment, PaymentId, PaymentStatus, Refund, RefundId, RefundStatus, ScopedKey};

const REFUNDABLE: [PaymentStatus; 2] = [PaymentStatus::Completed, PaymentStatus::PartialRefund];

fn refundable_statuses() -> impl Iterator<Item = &'static str> {
    REFUNDABLE.iter().map(|status| status.as_str())
}

/// A refund's cancel about to be sent as its reservation commits: when, the cancel slot's
/// lease, and the refund's lease (the settler leaves it alone until then).
#[derive(Debug, Clone, Copy)]
pub struct SendNow {
    pub now: DateTime<Utc>,
    pub slot_until: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
}

/// What [`Store::reserve_refund`] did.
#[derive(Debug)]
pub enum Reservation {
    /// Nothing: the balance or the status does not allow the refund.
    Refused,
    /// The amount is reserved and the refund recorded `PENDING`, never sent.
    Reserved,
    /// As `Reserved`, and the cancel slot taken and the first send recorded: send it now.
    Sending(Box<Sending>),
}

/// A refund reserved with the payment's cancel slot and its first send recorded.
#[derive(Debug)]
pub struct Sending {
    /// The payment as the reservation left it (the slot held).
    pub payment: Payment,
    /// The payment and its refunds (this one as sent) as the reservation left them, for the
    /// adoption of the cancel's answer.
    pub seen: Seen,
}

/// `refund` as [`Store::mark_refund_sent`] leaves it after its first send is recorded.
fn sent_refund(refund: &Refund, send: &SendNow) -> Refund {
    Refund {
        sends: refund.sends + 1,
        last_sent_at: Some(send.now),
        next_reconcile_at: Some(send.lease_until),
        ..refund.clone()
    }
}

impl Store {
    /// Sets `refund.amount_krw` aside from the payment's balance and records the refund as
    /// `PENDING`, before the PG is called. [`Reservation::Refused`] when the balance (or the
    /// status) no longer allows it: two concurrent refunds cannot both take the same money.
    ///
    /// `taken`: only if the refunded and reserved amounts still add up to this (a tax-free part
    /// was computed from them).
    ///
    /// `send`: the refund's cancel is to be sent at once. On PostgreSQL the same statement then
    /// also takes the payment's cancel slot if it is free and, if it took it, records the refund
    /// as sent (what [`Store::take_cancel_slot`] and [`Store::mark_refund_sent`] would do next),
    /// and brings back the payment and its refunds as they then are ([`Reservation::Sending`]).
    pub async fn reserve_refund(
        &self,
        refund: &Refund,
        taken: Option<i64>,
        send: Option<SendNow>,
    ) -> StoreResult<Reservation> {
        if self.db.get_database_backend() == DbBackend::Postgres {
            return match send {
                Some(send) => self.reserve_and_send(refund, taken, send).await,
                None => self.reserve_postgres(refund, taken).await,
            };
        }
        let txn = self.db.begin().await?;
        if !reserve(&txn, refund, taken).await? {
            txn.rollback().await?;
            return Ok(Reservation::Refused);
        }
        txn.commit().await?;
        Ok(Reservation::Reserved)
    }

    /// One statement: the refund row is inserted from the reserving update's row.
    async fn reserve_postgres(
        &self,
        refund: &Refund,
        taken: Option<i64>,
    ) -> StoreResult<Reservation> {
        let mut sql = Sql::update_returning(reserve_update(refund, taken)).into_with("reserved");
        sql.push(" ")
            .insert_select(to_active_refund(refund), Some("reserved"), None);
        let inserted = self
            .db
            .execute_raw(sql.into_statement())
            .await
            .map_err(already_recorded)?;
        Ok(if inserted.rows_affected() == 1 {
            Reservation::Reserved
        } else {
            Reservation::Refused
        })
    }

    /// The reservation, the cancel slot if free, the refund inserted as sent if the slot was
    /// taken (as reserved otherwise), and the payment with its refunds read back, in one
    /// statement.
    async fn reserve_and_send(
        &self,
        refund: &Refund,
        taken: Option<i64>,
        send: SendNow,
    ) -> StoreResult<Reservation> {
        let id = refund.id.to_string();
        let free = Expr::col(payment::Column::CancelSlot)
            .is_null()
            .or(Expr::col(payment::Column::CancelSlotUntil).lt(send.now));
        let mut update = reserve_update(refund, taken);
        update
            .value(
                payment::Column::CancelSlot,
                Expr::case(free.clone(), Expr::value(id.clone()))
                    .finally(Expr::col(payment::Column::CancelSlot)),
            )
            .value(
                payment::Column::CancelSlotUntil,
                Expr::case(free, Expr::value(send.slot_until))
                    .finally(Expr::col(payment::Column::CancelSlotUntil)),
            );
        let mut sql = Sql::update_returning(update);
        // The new row's version, for the adoption that follows the send.
        sql.push(", xmin::text AS row_version");
        let mut sql = sql.into_with("reserved");
        let sent = sent_refund(refund, &send);
        let when = format!("reserved.cancel_slot = {}", sql.param(id.clone()));
        sql.push(", inserted AS (").insert_select_either(
            &when,
            to_active_refund(&sent),
            to_active_refund(refund),
            "reserved",
        );
        let column = |table: &str, prefix: &str, name: String| {
            format!("{table}.\"{name}\" AS \"{prefix}{name}\"")
        };
        let mut select: Vec<String> = payment::Column::iter()
            .map(|c| column("reserved", "p_", c.to_string()))
            .collect();
        select.extend(refund::Column::iter().map(|c| column("r", "r_", c.to_string())));
        sql.push(&format!(
            " RETURNING xmin::text AS row_version) \
             SELECT {}, reserved.row_version AS p_row_version, \
             inserted.row_version AS i_row_version, r.xmin::text AS r_row_version \
             FROM reserved CROSS JOIN inserted \
             LEFT JOIN refunds r ON r.payment_id = reserved.id \
             ORDER BY r.created_at, r.id",
            select.join(", ")
        ));
        let rows = self
            .db
            .query_all_raw(sql.into_statement())
            .await
            .map_err(already_recorded)?;
        let Some(first) = rows.first() else {
            return Ok(Reservation::Refused);
        };
        let payment = Payment::try_from(payment::Model::from_query_result(first, "p_")?)?;
        if payment.cancel_slot != Some(refund.id) {
            return Ok(Reservation::Reserved);
        }
        let version: String = first.try_get("", "p_row_version")?;
        let own: String = first.try_get("", "i_row_version")?;
        // The other refunds as the statement's snapshot had them (its own row is not in it).
        let mut refunds = Vec::new();
        for row in &rows {
            if let Some(version) = row.try_get::<Option<String>>("", "r_row_version")? {
                let other = Refund::try_from(refund::Model::from_query_result(row, "r_")?)?;
                refunds.push((other, version));
            }
        }
        refunds.push((sent, own));
        Ok(Reservation::Sending(Box::new(Sending {
            seen: Seen {
                payment: payment.clone(),
                version,
                refunds,
            },
            payment,
        })))
    }

    /// The refund of `payment_id` made under the caller's `Idempotency-Key`, if any.
    pub async fn refund_by_key(
        &self,
        payment_id: PaymentId,
        key: &ScopedKey,
    ) -> StoreResult<Option<Refund>> {
        refund::Entity::find()
            .filter(refund::Column::PaymentId.eq(payment_id.to_string()))
            .filter(refund::Column::IdempotencyKey.eq(key.as_str()))
            .one_as(&self.db)
            .await
    }

    /// Records a refund that needs no PG call (no-op gateway, or a payment not paid through the
    /// PG): balance, status, refund row and event in one transaction. `None` when the balance
    /// or status does not allow it.
    pub async fn record_refund(
        &self,
        refund: &Refund,
        taken: Option<i64>,
        event: impl FnOnce(&Payment, &Refund) -> NewEvent,
    ) -> StoreResult<Option<Payment>> {
        let txn = self.db.begin().await?;
        if !reserve(&txn, refund, taken).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        let payment = move_refunded_amount(&txn, refund).await?;
        events::append(&txn, event(&payment, refund)).await?;
        txn.commit().await?;
        Ok(Some(payment))
    }

    /// A refund's cancel is about to be sent (again): counted, and leased to the sender until
    /// `lease_until` so the reconciler leaves it alone meanwhile. `false` if it is no longer
    /// `PENDING`.
    pub async fn mark_refund_sent(
        &self,
        refund_id: RefundId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let sent = refund::Entity::update_many()
            .col_expr(
                refund::Column::Sends,
                Expr::col(refund::Column::Sends).add(1),
            )
            .col_expr(refund::Column::LastSentAt, Expr::value(now))
            .col_expr(refund::Column::NextReconcileAt, Expr::value(lease_until))
            .col_expr(refund::Column::UpdatedAt, Expr::value(now))
            .filter(refund::Column::Id.eq(refund_id.to_string()))
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()))
            .exec(&self.db)
            .await?;
        Ok(sent.rows_affected == 1)
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
            .one_as(&self.db)
            .await
    }

    /// A payment's refunds, oldest first.
    pub async fn refunds_of(&self, payment_id: PaymentId) -> StoreResult<Vec<Refund>> {
        refunds_in(&self.db, payment_id).await
    }

    pub async fn refunds_due(&self, now: DateTime<Utc>, limit: u64) -> StoreResult<Vec<Refund>> {
        refund::Entity::find()
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()))
            .filter(refund::Column::NextReconcileAt.lte(now))
            .order_by_asc(refund::Column::NextReconcileAt)
            .limit(limit)
            .all_as(&self.db)
            .await
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

/// A unique row that exists already (the same Idempotency-Key, the same Toss cancel).
fn already_recorded(error: sea_orm::DbErr) -> StoreError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(what)) => StoreError::AlreadyRecorded(what),
        _ => error.into(),
    }
}

/// Sets the refund's amount aside (see [`reserve_update`]) and records the refund, in `txn`;
/// `false` when nothing allowed it.
async fn reserve(
    txn: &DatabaseTransaction,
    refund: &Refund,
    taken: Option<i64>,
) -> StoreResult<bool> {
    if txn
        .execute(&reserve_update(refund, taken))
        .await?
        .rows_affected()
        != 1
    {
        return Ok(false);
    }
    // An error drops the transaction, which rolls it back.
    to_active_refund(refund)
        .insert(txn)
        .await
        .map_err(already_recorded)?;
    Ok(true)
}

/// Sets `refund.amount_krw` aside from the payment's balance, only if the status and the
/// balance allow it: the WHERE clause is the balance check.
fn reserve_update(refund: &Refund, taken: Option<i64>) -> UpdateStatement {
    let balance = Expr::col(payment::Column::AmountKrw)
        .sub(Expr::col(payment::Column::RefundedAmountKrw))
        .sub(Expr::col(payment::Column::RefundReservedKrw));
    let mut update = payment::Entity::update_many();
    if let Some(taken) = taken {
        update = update.filter(
            Expr::col(payment::Column::RefundedAmountKrw)
                .add(Expr::col(payment::Column::RefundReservedKrw))
                .eq(taken),
        );
    }
    update
        .col_expr(
            payment::Column::RefundReservedKrw,
            Expr::col(payment::Column::RefundReservedKrw).add(refund.amount_krw),
        )
        .filter(payment::Column::Id.eq(refund.payment_id.to_string()))
        .filter(payment::Column::Status.is_in(refundable_statuses()))
        .filter(balance.gte(refund.amount_krw))
        .into_query()
}

/// A reserved refund went through: its amount moves from the reserve to the refunded total,
/// and the status follows (`REFUNDED` when nothing is left, else `PARTIAL_REFUND`), in one
/// update that returns the payment.
async fn move_refunded_amount(txn: &DatabaseTransaction, refund: &Refund) -> StoreResult<Payment> {
    let refunded_after = Expr::col(payment::Column::RefundedAmountKrw).add(refund.amount_krw);
    let status_after = Expr::case(
        Expr::col(payment::Column::Status)
            .is_in(refundable_statuses())
            .and(
                refunded_after
                    .clone()
                    .gte(Expr::col(payment::Column::AmountKrw)),
            ),
        PaymentStatus::Refunded.as_str(),
    )
    .case(
        Expr::col(payment::Column::Status).is_in(refundable_statuses()),
        PaymentStatus::PartialRefund.as_str(),
    )
    .finally(Expr::col(payment::Column::Status));
    let row = payment::Entity::update_many()
        .col_expr(payment::Column::RefundedAmountKrw, refunded_after)
        .col_expr(
            payment::Column::RefundReservedKrw,
            Expr::col(payment::Column::RefundReservedKrw).sub(refund.amount_krw),
        )
        .col_expr(payment::Column::Status, status_after.into())
        .col_expr(payment::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payment::Column::Id.eq(refund.payment_id.to_string()))
        .exec_with_returning(txn)
        .await?
        .pop()
        .ok_or_else(|| {
            StoreError::Other(format!("refund {} has no payment to settle", refund.id))
        })?;
    let payment = Payment::try_from(row)?;
    // Before this refund the payment was COMPLETED exactly when nothing had been refunded.
    let from = if payment.refunded_amount_krw == refund.amount_krw {
        PaymentStatus::Completed
    } else {
        PaymentStatus::PartialRefund
    };
    super::count_transition(from.as_str(), payment.status.as_str());
    Ok(payment)
}

impl Store {
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
