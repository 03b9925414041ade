use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, TransactionTrait,
};

use super::attempts::{self, AttemptRow};
use super::entities::payment::{self, Column};
use super::events::{self, NewEvent};
use super::mapping::{parse, to_active_payment};
use super::payment_sql::{self, Assign, ReadBy};
use super::schedules;
use super::sql::Sql;
use super::{ReadAs, Store, StoreError, StoreResult, count_transition, is_duplicate};
use crate::domain::{
    AttemptWrite, OrderId, Patch, Payment, PaymentId, PaymentKey, PaymentRef, PaymentStatus,
    PaymentUpdate, RefundId,
};

/// Which payment a change is for, and what must still hold for it to happen: the status is one
/// the change may start from, and (when given) the stored amount and the attempt's key.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub payment: PaymentRef,
    /// Only if the stored amount is this one.
    pub amount_krw: Option<i64>,
    /// Only if the attempt in flight (or confirmed) carries this key.
    pub payment_key: Option<&'a PaymentKey>,
    /// Only if the payment is still in this status (the one the caller read).
    pub status: Option<PaymentStatus>,
    /// Only if the payment is still at this attempt (`confirm_attempt`): a charge attempt has
    /// no key to tell it from the next one.
    pub attempt: Option<i32>,
}

impl From<PaymentId> for Target<'_> {
    fn from(id: PaymentId) -> Self {
        Self {
            payment: id.into(),
            amount_krw: None,
            payment_key: None,
            status: None,
            attempt: None,
        }
    }
}

impl<'a> Target<'a> {
    /// `payment`, only while it is still in the status and attempt it was read with.
    pub fn attempt(payment: &'a Payment) -> Self {
        Self {
            payment_key: payment.payment_key.as_ref(),
            status: Some(payment.status),
            attempt: Some(payment.confirm_attempt),
            ..payment.id.into()
        }
    }
}

impl Store {
    pub async fn insert_payment(&self, payment: &Payment) -> StoreResult<()> {
        match to_active_payment(payment).insert(&self.db).await {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate(&error) => Err(StoreError::DuplicateOrderId),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        payment_sql::read(&self.db, ReadBy::Id, &id.to_string())
            .await?
            .map(Payment::try_from)
            .transpose()
    }

    pub async fn payment_by_order(&self, order_id: &OrderId) -> StoreResult<Option<Payment>> {
        payment_sql::read(&self.db, ReadBy::OrderId, order_id.as_str())
            .await?
            .map(Payment::try_from)
            .transpose()
    }

    /// The payment whose PG attempt (in flight or confirmed) has this key.
    pub async fn payment_by_pg_key(&self, key: &PaymentKey) -> StoreResult<Option<Payment>> {
        payment::Entity::find()
            .filter(
                Column::PaymentKey
                    .eq(key.as_str())
                    .or(Column::PgTransactionId.eq(key.as_str())),
            )
            .one_as(&self.db)
            .await
    }

    /// Newest first, with the total count of the filter.
    pub async fn list_payments(
        &self,
        user_id: Option<&str>,
        needs_review: Option<bool>,
        limit: u64,
        offset: u64,
    ) -> StoreResult<(Vec<Payment>, u64)> {
        let query = payment::Entity::find()
            .apply_if(user_id, |q, user_id| q.filter(Column::UserId.eq(user_id)))
            .apply_if(needs_review, |q, flagged| {
                q.filter(Column::NeedsReview.eq(flagged))
            });
        let total = query.clone().count(&self.db).await?;
        let payments = query
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(limit)
            .offset(offset)
            .all_as(&self.db)
            .await?;
        Ok((payments, total))
    }

    /// Applies `update` if the payment is still where `target` expects and returns the payment
    /// as it now is; `None` if another request, instance or the reconciler got there first.
    ///
    /// A change is one statement where it can be: without an event, an autocommitted
    /// `UPDATE … RETURNING`; with one on PostgreSQL, the update and the append in one statement
    /// (see [`Store::transition_postgres`]). One statement is one transaction and one
    /// round trip.
    pub async fn update_payment(
        &self,
        target: Target<'_>,
        update: &PaymentUpdate,
        event: Option<NewEvent>,
    ) -> StoreResult<Option<Payment>> {
        let now = Utc::now();
        let from = update.from_statuses();
        let backend = self.db.get_database_backend();
        let query = update_sql(backend, &target, update, now);
        // The payment's latest attempt changes with it (an attempt is born with its claim).
        let attempt = AttemptWrite::of_update(update);
        // A payment cancelled has nothing left to charge: its schedule ends with it.
        let unschedule = update.to_status() == Some(PaymentStatus::Cancelled);
        let row = match (event, attempt) {
            (None, None) if !unschedule => {
                payment_sql::first_row(&self.db, query.into_statement()).await?
            }
            (event, attempt) if backend == DbBackend::Postgres => {
                self.transition_postgres(query, event, attempt, unschedule, now)
                    .await?
            }
            (event, attempt) => {
                let txn = self.db.begin().await?;
                let row = payment_sql::first_row(&txn, query.into_statement()).await?;
                match &row {
                    Some(changed) => {
                        let id = parse(&changed.id, "payment id")?;
                        if let Some(write) = &attempt {
                            attempts::execute(&txn, write, id, changed.confirm_attempt, true, now)
                                .await?;
                        }
                        if unschedule {
                            schedules::cancel_in(&txn, id, now).await?;
                        }
                        if let Some(event) = event {
                            events::append(&txn, event).await?;
                        }
                        txn.commit().await?;
                    }
                    None => txn.rollback().await?,
                }
                row
            }
        };
        let Some(row) = row else {
            return Ok(None);
        };
        if let Some(to) = update.to_status() {
            let from = match (target.status, from) {
                (Some(known), _) => known.as_str(),
                (None, [one]) => one.as_str(),
                (None, _) => "ANY",
            };
            count_transition(from, to.as_str());
        }
        Payment::try_from(row).map(Some)
    }

    /// The conditional update, its event, its attempt's write and (`unschedule`) the cancel of
    /// its schedule as one statement: they are written from the updated row, so they happen
    /// exactly when the update did, and all commit together.
    async fn transition_postgres(
        &self,
        update: Sql,
        event: Option<NewEvent>,
        attempt: Option<AttemptWrite>,
        unschedule: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<payment::Model>> {
        let mut sql = update.into_with("changed");
        if let Some(event) = event {
            sql.push(", appended AS (");
            event.insert_postgres(&mut sql, Some("changed"));
            sql.push(")");
        }
        if let Some(write) = attempt {
            sql.push(", attempted AS (");
            let latest = AttemptRow::Latest { cte: "changed" };
            attempts::write_sql(&mut sql, &write, &latest, true, now);
            sql.push(")");
        }
        if unschedule {
            sql.push(", unscheduled AS (");
            schedules::cancel_sql(&mut sql, "changed", now);
            sql.push(")");
        }
        // `changed` returns the columns in the order the row is decoded in.
        sql.push(" SELECT * FROM changed");
        payment_sql::first_row(&self.db, sql.into_statement()).await
    }

    /// Unsettled payments whose next reconciliation is due, oldest due first.
    pub async fn payments_due(&self, now: DateTime<Utc>, limit: u64) -> StoreResult<Vec<Payment>> {
        payment::Entity::find()
            .filter(Column::Status.is_in(UNSETTLED.iter().map(|s| s.as_str())))
            // A review flag never keeps a payment in flight from being settled; one without a
            // next look (set aside by an earlier version) is due at once.
            .filter(
                Column::NextReconcileAt
                    .lte(now)
                    .or(Column::NextReconcileAt.is_null()),
            )
            .order_by_asc(Column::NextReconcileAt)
            .limit(limit)
            .all_as(&self.db)
            .await
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
            .filter(Column::Status.is_in(UNSETTLED.iter().map(|s| s.as_str())));
        update = match payment.next_reconcile_at {
            Some(at) => update.filter(Column::NextReconcileAt.eq(at)),
            None => update.filter(Column::NextReconcileAt.is_null()),
        };
        Ok(update.exec(&self.db).await?.rows_affected == 1)
    }

    /// Takes the payment's cancel slot for `refund`: Toss takes one cancel of a payment at a
    /// time, so a refund's cancel is sent only while it holds the slot. Returns the payment as
    /// it is then (its refunded total is the balance the cancel must find at Toss); `None` while
    /// another refund holds it (until its lease ends).
    pub async fn take_cancel_slot(
        &self,
        payment_id: PaymentId,
        refund: RefundId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<Payment>> {
        let free = Column::CancelSlot
            .is_null()
            .or(Column::CancelSlot.eq(refund.to_string()))
            .or(Column::CancelSlotUntil.lt(now));
        payment::Entity::update_many()
            .col_expr(Column::CancelSlot, Expr::value(refund.to_string()))
            .col_expr(Column::CancelSlotUntil, Expr::value(until))
            .filter(Column::Id.eq(payment_id.to_string()))
            .filter(free)
            .exec_with_returning(&self.db)
            .await?
            .pop()
            .map(Payment::try_from)
            .transpose()
    }

    /// Gives the cancel slot back, if `refund` still holds it.
    pub async fn free_cancel_slot(
        &self,
        payment_id: PaymentId,
        refund: RefundId,
    ) -> StoreResult<()> {
        payment::Entity::update_many()
            .col_expr(Column::CancelSlot, Expr::value(None::<String>))
            .col_expr(Column::CancelSlotUntil, Expr::value(None::<DateTime<Utc>>))
            .filter(Column::Id.eq(payment_id.to_string()))
            .filter(Column::CancelSlot.eq(refund.to_string()))
            .exec(&self.db)
            .await?;
        Ok(())
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

/// `UPDATE "payments" SET … WHERE … RETURNING <every column>`: `update` applied to the payment
/// of `target` only if it is still where `target` expects (the statuses `update` may start
/// from, and the amount, key, status and attempt `target` gives).
fn update_sql(
    backend: DbBackend,
    target: &Target<'_>,
    update: &PaymentUpdate,
    now: DateTime<Utc>,
) -> Sql {
    let mut sql = Sql::new(backend);
    sql.push("UPDATE \"payments\" SET ");
    let mut set = vec![(Column::UpdatedAt, payment_sql::to(now))];
    set.extend(assignments(update.patch(now)));
    payment_sql::write_assignments(&mut sql, set);
    sql.push(" WHERE ");
    match &target.payment {
        PaymentRef::Id(id) => sql.column(Column::Id).push(" = ").bind(id.to_string()),
        PaymentRef::OrderId(order_id) => sql
            .column(Column::OrderId)
            .push(" = ")
            .bind(order_id.as_str()),
    };
    let from = update.from_statuses();
    if from.is_empty() {
        sql.push(" AND 1 = 0");
    } else {
        sql.push(" AND ").column(Column::Status).push(" IN (");
        for (n, status) in from.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.bind(status.as_str());
        }
        sql.push(")");
    }
    if let Some(key) = target.payment_key {
        sql.and_eq(Column::PaymentKey, key.as_str());
    }
    if let Some(amount) = target.amount_krw {
        sql.and_eq(Column::AmountKrw, amount);
    }
    if let Some(status) = target.status {
        sql.and_eq(Column::Status, status.as_str());
    }
    if let Some(attempt) = target.attempt {
        sql.and_eq(Column::ConfirmAttempt, attempt);
    }
    if let PaymentUpdate::Annotate { attempt, .. } = update {
        // Once per attempt, whoever races.
        sql.push(" AND (\"annotated_attempt\" IS NULL OR \"annotated_attempt\" <> ")
            .bind(*attempt)
            .push(")");
    }
    sql.returning_all();
    sql
}

/// The SQL of a [`Patch`]: the same columns [`Patch::apply`] sets in memory.
fn assignments(patch: Patch) -> Vec<(Column, Assign)> {
    use payment_sql::to;
    let mut set: Vec<(Column, Assign)> = Vec::new();
    let mut put = |column: Column, value: Assign| set.push((column, value));
    let (sets_secret, sets_failure) = (patch.pg_secret.is_some(), patch.failure.is_some());
    if let Some(status) = patch.status {
        put(Column::Status, to(status.as_str()));
    }
    if let Some(value) = patch.payment_key {
        put(Column::PaymentKey, to(value.map(String::from)));
    }
    if let Some(value) = patch.billing_key_id {
        put(Column::BillingKeyId, to(value.map(|id| id.to_string())));
    }
    if let Some(failure) = patch.failure {
        let (code, message, retryable) = match failure {
            Some(f) => (Some(f.code), Some(f.message), f.retryable),
            None => (None, None, None),
        };
        put(Column::FailureCode, to(code));
        put(Column::FailureMessage, to(message));
        put(Column::FailureRetryable, to(retryable));
    }
    if patch.new_attempt {
        put(Column::ConfirmAttempt, Assign::Add(1));
        put(Column::ConfirmSends, to(1));
        // What the previous attempt left, unless the change sets it itself (as `Patch::apply`).
        let mut cleared = Vec::new();
        if patch.details.is_none() {
            cleared.extend([
                Column::PgMethod,
                Column::ReceiptUrl,
                Column::CardIssuerCode,
                Column::CardNumber,
                Column::CardApproveNo,
                Column::VaBankCode,
                Column::VaAccountNumber,
                Column::VaCustomerName,
            ]);
            put(Column::CardInstallmentMonths, to(None::<i32>));
            put(Column::VaDueDate, to(None::<DateTime<Utc>>));
        }
        if patch.cancel_reason.is_none() {
            cleared.push(Column::CancelReason);
        }
        if patch.cancel_requested_by.is_none() {
            cleared.extend([Column::CancelRequestedByType, Column::CancelRequestedByName]);
        }
        if !sets_secret {
            cleared.push(Column::PgSecret);
        }
        if !sets_failure {
            cleared.extend([Column::FailureCode, Column::FailureMessage]);
            put(Column::FailureRetryable, to(None::<bool>));
        }
        for column in cleared {
            put(column, to(None::<String>));
        }
    }
    if patch.new_send {
        put(Column::ConfirmSends, Assign::Add(1));
    }
    // Each column given is set as given.
    macro_rules! set {
        ($($field:ident: $column:ident),+) => {
            $(if let Some(value) = patch.$field {
                put(Column::$column, to(value));
            })+
        };
    }
    set!(pg_provider: PgProvider, pg_transaction_id: PgTransactionId,
        pg_approval_key: PgApprovalKey, pg_secret: PgSecret, completed_at: CompletedAt,
        confirm_started_at: ConfirmStartedAt, next_reconcile_at: NextReconcileAt,
        reconcile_attempts: ReconcileAttempts, annotated_attempt: AnnotatedAttempt,
        cancel_reason: CancelReason);
    if let Some(review) = patch.review {
        put(Column::NeedsReview, to(review.is_some()));
        put(Column::ReviewReason, to(review));
    }
    if let Some(actor) = patch.cancel_requested_by {
        let kind = actor.as_ref().map(|a| a.kind.as_str().to_owned());
        put(Column::CancelRequestedByType, to(kind));
        put(
            Column::CancelRequestedByName,
            to(actor.and_then(|a| a.name)),
        );
    }
    if let Some(details) = patch.details {
        if let Some(method) = details.method {
            put(Column::PgMethod, to(method));
        }
        if let Some(url) = details.receipt_url {
            put(Column::ReceiptUrl, to(url));
        }
        if let Some(card) = details.card {
            put(Column::CardIssuerCode, to(card.issuer_code));
            put(Column::CardNumber, to(card.number));
            put(
                Column::CardInstallmentMonths,
                to(card.installment_plan_months),
            );
            put(Column::CardApproveNo, to(card.approve_no));
        }
        if let Some(account) = details.virtual_account {
            put(Column::VaBankCode, to(account.bank_code));
            put(Column::VaAccountNumber, to(account.account_number));
            put(Column::VaCustomerName, to(account.customer_name));
            put(Column::VaDueDate, to(account.due_date));
        }
    }
    set
}

/// Statuses whose outcome the PG still has to tell: the reconciler looks at them again.
const UNSETTLED: [PaymentStatus; 2] = [PaymentStatus::InProgress, PaymentStatus::WaitingForDeposit];
