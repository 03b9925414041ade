//! Adopting a record about a payment: the plan `decide` makes from the payment and its refunds,
//! written with its events in one transaction (the payment row locked), or, from the rows as one
//! statement saw them, as one statement guarded by their versions.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::attempts;
use super::entities::{payment, refund};
use super::events::{self, NewEvent};
use super::mapping::{refunds_in, to_active_payment, to_active_refund};
use super::sql::Sql;
use super::{ReadAs, Store, StoreResult, count_transition};
use crate::domain::{AttemptWrite, Payment, PaymentId, Refund, RefundId};

/// A write of the adoption transaction to one refund row.
#[derive(Debug, Clone)]
pub enum RefundWrite {
    Insert(Refund),
    Update(Refund),
    /// A refund the PG refused at once: it leaves no trace.
    Delete(RefundId),
}

impl RefundWrite {
    /// `refunds` as they are once this write is made.
    fn apply_to(self, refunds: &mut Vec<Refund>) {
        match self {
            Self::Insert(refund) => refunds.push(refund),
            Self::Update(refund) => {
                if let Some(slot) = refunds.iter_mut().find(|r| r.id == refund.id) {
                    *slot = refund;
                }
            }
            Self::Delete(refund_id) => refunds.retain(|r| r.id != refund_id),
        }
    }
}

/// The row of a refund an adoption updates, changed `now`.
fn updated_refund(refund: &Refund, now: DateTime<Utc>) -> refund::ActiveModel {
    let mut row = to_active_refund(refund);
    row.updated_at = sea_orm::ActiveValue::Set(now);
    row
}

/// What an adoption writes, decided from the rows as locked: the payment as it must become, the
/// refunds' changes, and the events, all in one transaction.
#[derive(Debug, Clone)]
pub struct Plan {
    pub payment: Payment,
    pub refunds: Vec<RefundWrite>,
    pub events: Vec<NewEvent>,
}

impl Plan {
    /// A plan that writes only the payment: no refund, no event.
    pub fn payment(payment: Payment) -> Self {
        Self {
            payment,
            refunds: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// A payment and its refunds as one statement saw them, with the version of every row
/// (PostgreSQL's `xmin`: every write of a row makes a new one). [`Store::adopt_seen`] writes a
/// plan decided from them only while none of them changed: as if they had been locked since.
#[derive(Debug, Clone)]
pub struct Seen {
    pub(super) payment: Payment,
    pub(super) version: String,
    /// Oldest first, each with its row's version.
    pub(super) refunds: Vec<(Refund, String)>,
}

impl Seen {
    pub fn payment(&self) -> &Payment {
        &self.payment
    }

    /// The refunds' versions as [`REFUNDS_VERSION_SQL`] writes them: `id:xmin`, by id.
    fn refunds_version(&self) -> String {
        let mut versions: Vec<String> = self
            .refunds
            .iter()
            .map(|(refund, version)| format!("{}:{version}", refund.id))
            .collect();
        versions.sort();
        versions.join(",")
    }
}

/// The versions of the refunds of the payment `$n` names (`{payment}`), one string: any
/// refund inserted, deleted or written since changes it. Ids are ordered byte-wise (`"C"`), as
/// Rust sorts them in [`Seen::refunds_version`].
const REFUNDS_VERSION_SQL: &str = "(SELECT coalesce(string_agg(r.id || ':' || r.xmin::text, ',' \
     ORDER BY r.id COLLATE \"C\"), '') FROM refunds r WHERE r.payment_id = {payment})";

/// The refunds of payment `id`, locked `FOR UPDATE` in id order (as anyone locking several
/// would), oldest first as [`refunds_in`] reads them. The plan rewrites them whole, so a write of
/// a refund row alone (a send counted, a lease, its next look) must either have committed
/// before this read, or wait for the adoption and then judge its `WHERE` by what it wrote.
async fn locked_refunds(txn: &DatabaseTransaction, id: PaymentId) -> StoreResult<Vec<Refund>> {
    let mut refunds: Vec<Refund> = refund::Entity::find()
        .filter(refund::Column::PaymentId.eq(id.to_string()))
        .order_by_asc(refund::Column::Id)
        .lock_exclusive()
        .all_as(txn)
        .await?;
    refunds.sort_by_key(|refund| (refund.created_at, refund.id));
    Ok(refunds)
}

impl Store {
    /// Adopts a record about payment `id` in one transaction: the payment row and its refunds
    /// are locked and read, `decide` turns them into a [`Plan`] (or nothing to do), and the
    /// plan's writes and events commit together. Returns the payment and its refunds as they
    /// now are, with what `decide` said; `None` if there is no such payment.
    pub async fn adopt<T>(
        &self,
        id: PaymentId,
        decide: impl FnOnce(&Payment, &[Refund]) -> (Option<Plan>, T),
    ) -> StoreResult<Option<(Payment, Vec<Refund>, T)>> {
        let txn = self.db.begin().await?;
        // SQLite runs one connection: its transaction is alone already.
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        let mut select = payment::Entity::find_by_id(id.to_string());
        if postgres {
            select = select.lock_exclusive();
        }
        let Some(row) = select.one(&txn).await? else {
            txn.rollback().await?;
            return Ok(None);
        };
        let before = Payment::try_from(row)?;
        let mut refunds = if postgres {
            locked_refunds(&txn, id).await?
        } else {
            refunds_in(&txn, id).await?
        };
        let (plan, said) = decide(&before, &refunds);
        let Some(plan) = plan else {
            txn.rollback().await?;
            return Ok(Some((before, refunds, said)));
        };
        let now = Utc::now();
        // `decide` sets `updated_at` when something a client sees changed.
        let mut after = plan.payment;
        // Derived from the payment before and after, whatever the plan: no plan can forget it.
        attempts::write_adopted(&txn, &before, &mut after, now).await?;
        payment::Entity::update(to_active_payment(&after))
            .exec(&txn)
            .await?;
        for write in plan.refunds {
            match &write {
                RefundWrite::Insert(refund) => {
                    to_active_refund(refund).insert(&txn).await?;
                }
                RefundWrite::Update(refund) => {
                    refund::Entity::update(updated_refund(refund, now))
                        .exec(&txn)
                        .await?;
                }
                RefundWrite::Delete(refund_id) => {
                    refund::Entity::delete_by_id(refund_id.to_string())
                        .exec(&txn)
                        .await?;
                }
            }
            write.apply_to(&mut refunds);
        }
        for event in plan.events {
            events::append(&txn, event).await?;
        }
        txn.commit().await?;
        if before.status != after.status {
            count_transition(before.status.as_str(), after.status.as_str());
        }
        Ok(Some((after, refunds, said)))
    }

    /// [`Store::adopt`] from the rows as `seen`, without a lock or a transaction, on
    /// PostgreSQL: the plan `decide` makes of them is written as one statement (the payment, the
    /// refunds, the events: `WITH` parts) that changes nothing unless the payment and every one
    /// of its refunds are still the versions seen: one round trip. When they are not (another
    /// writer came between), when `decide` has nothing to write (the rows as they are now may
    /// say otherwise), or when the plan changes an attempt, it is the locking transaction after
    /// all, `decide` asked again. SQLite: the transaction.
    pub async fn adopt_seen<T>(
        &self,
        seen: Seen,
        mut decide: impl FnMut(&Payment, &[Refund]) -> (Option<Plan>, T),
    ) -> StoreResult<Option<(Payment, Vec<Refund>, T)>> {
        let id = seen.payment.id;
        if self.db.get_database_backend() == DbBackend::Postgres {
            let mut refunds: Vec<Refund> = seen.refunds.iter().map(|(r, _)| r.clone()).collect();
            if let (Some(plan), said) = decide(&seen.payment, &refunds)
                && AttemptWrite::between(&seen.payment, &plan.payment).is_none()
            {
                let before = seen.payment.status;
                let after = plan.payment.clone();
                if Box::pin(self.write_seen(&seen, plan, &mut refunds)).await? {
                    if before != after.status {
                        count_transition(before.as_str(), after.status.as_str());
                    }
                    return Ok(Some((after, refunds, said)));
                }
            }
        }
        self.adopt(id, decide).await
    }

    /// The plan's writes as one statement, guarded by the versions `seen`; `false` (nothing
    /// written) when a row moved since. `refunds` becomes the refunds as written.
    async fn write_seen(
        &self,
        seen: &Seen,
        plan: Plan,
        refunds: &mut Vec<Refund>,
    ) -> StoreResult<bool> {
        let now = Utc::now();
        let mut sql = Sql::new(DbBackend::Postgres);
        let id = sql.param(seen.payment.id.to_string());
        let version = sql.param(seen.version.clone());
        let refunds_version = sql.param(seen.refunds_version());
        let guard = REFUNDS_VERSION_SQL.replace("{payment}", &id);
        sql.push("WITH adopted AS (UPDATE \"payments\" SET ")
            .assignments(to_active_payment(&plan.payment), &["id"])
            .push(&format!(
                " WHERE \"payments\".\"id\" = {id} AND \"payments\".xmin::text = {version} \
                 AND {guard} = {refunds_version} RETURNING \"payments\".\"id\")"
            ));
        for (n, write) in plan.refunds.into_iter().enumerate() {
            sql.push(&format!(", refund_{n} AS ("));
            match &write {
                RefundWrite::Insert(refund) => {
                    sql.insert_select(to_active_refund(refund), Some("adopted"), None)
                }
                RefundWrite::Update(refund) => sql
                    .push("UPDATE \"refunds\" SET ")
                    .assignments(updated_refund(refund, now), &["id"])
                    .push(" FROM adopted WHERE \"refunds\".\"id\" = ")
                    .bind(refund.id.to_string()),
                RefundWrite::Delete(refund_id) => sql
                    .push("DELETE FROM \"refunds\" USING adopted WHERE \"refunds\".\"id\" = ")
                    .bind(refund_id.to_string()),
            };
            sql.push(")");
            write.apply_to(refunds);
        }
        for (n, event) in plan.events.into_iter().enumerate() {
            sql.push(&format!(", event_{n} AS ("));
            event.insert_postgres(&mut sql, Some("adopted"));
            sql.push(")");
        }
        sql.push(" SELECT * FROM adopted");
        let written = self.db.query_one_raw(sql.into_statement()).await?;
        Ok(written.is_some())
    }
}
