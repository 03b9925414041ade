//! Reconciliation runs, their discrepancies, and the staging tables a run streams Toss's pages
//! into. The comparison itself is SQL over the staged pages and our tables: memory stays bounded
//! by one page, whatever the size of the day.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select, Statement, TransactionTrait, Value,
};

use super::entities::{reconciliation_discrepancy as discrepancy, reconciliation_run as run};
use super::mapping::parse;
use super::{ReadAs, Store, StoreError, StoreResult, corrupt};
use crate::domain::reconciliation::{
    Discrepancy, ReconciliationRun, RunStatus, RunSummary, RunTrigger, Side,
};
use crate::domain::{PassId, PaymentId, RunId};

/// A discrepancy with the row id it is stored under (for paging through a run's list).
#[derive(Debug, Clone)]
pub struct StoredDiscrepancy {
    pub id: i64,
    pub discrepancy: Discrepancy,
}

/// How a start of a date went: the run as it now is, and the pass this caller must carry out
/// (`None` when another pass is running it).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub run: ReconciliationRun,
    pub pass: Option<PassId>,
}

/// Run and pass ids are stored as text.
impl From<&RunId> for Value {
    fn from(id: &RunId) -> Self {
        id.to_string().into()
    }
}

impl From<&PassId> for Value {
    fn from(id: &PassId) -> Self {
        id.to_string().into()
    }
}

impl TryFrom<run::Model> for ReconciliationRun {
    type Error = StoreError;
    fn try_from(row: run::Model) -> Result<Self, Self::Error> {
        Ok(copied!(row => Self {
            trigger, started_at, finished_at, lease_until, error,
            ;
            date: parse(&row.date, "reconciliation date")?,
            status: parse(&row.status, "reconciliation status")?,
            summary: row
                .summary
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("reconciliation summary", e))?,
            id: parse(&row.id, "reconciliation id")?,
            pass_id: parse(&row.pass_id, "reconciliation pass")?,
        }))
    }
}

impl TryFrom<discrepancy::Model> for StoredDiscrepancy {
    type Error = StoreError;
    fn try_from(row: discrepancy::Model) -> Result<Self, Self::Error> {
        let side =
            |status: Option<String>, amount_krw| status.map(|status| Side { status, amount_krw });
        Ok(Self {
            id: row.id,
            discrepancy: Discrepancy {
                kind: parse(&row.kind, "discrepancy kind")?,
                order_id: row.order_id,
                payment_key: row.payment_key,
                transaction_key: row.transaction_key,
                payment_id: row.payment_id,
                ours: side(row.ours_status, row.ours_amount_krw),
                theirs: side(row.theirs_status, row.theirs_amount_krw),
            },
        })
    }
}

/// A run's discrepancies, in the order the run found them.
fn discrepancies_of(run_id: &RunId) -> Select<discrepancy::Entity> {
    discrepancy::Entity::find()
        .filter(discrepancy::Column::RunId.eq(run_id))
        .order_by_asc(discrepancy::Column::Id)
}

/// A statement written with PostgreSQL's `$1`; SQLite numbers its parameters `?1`.
pub(super) fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

impl Store {
    /// Starts `date`: creates its run, or takes it over when it is not running (finished,
    /// failed, or its pass stopped renewing its lease). Whoever gets a `pass` carries it out.
    pub async fn claim_run(
        &self,
        date: NaiveDate,
        trigger: RunTrigger,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Claimed> {
        let pass = PassId::new();
        let fresh = run::ActiveModel {
            id: Set(RunId::new().to_string()),
            date: Set(date.to_string()),
            status: Set(RunStatus::Running.as_str().to_owned()),
            trigger: Set(trigger.as_str().to_owned()),
            pass_id: Set(pass.to_string()),
            started_at: Set(now),
            finished_at: Set(None),
            lease_until: Set(lease_until),
            summary: Set(None),
            error: Set(None),
        };
        let inserted = run::Entity::insert(fresh.clone())
            .on_conflict(
                OnConflict::column(run::Column::Date)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        let claimed = if inserted == 1 {
            true
        } else {
            // The run keeps its id; everything else starts again.
            let taken = run::Entity::update_many()
                .set(run::ActiveModel {
                    id: NotSet,
                    ..fresh
                })
                .filter(run::Column::Date.eq(date.to_string()))
                .filter(
                    run::Column::Status
                        .ne(RunStatus::Running.as_str())
                        .or(run::Column::LeaseUntil.lt(now)),
                )
                .exec(&self.db)
                .await?;
            taken.rows_affected == 1
        };
        let run = self
            .run_of_date(date)
            .await?
            .ok_or_else(|| StoreError::Other(format!("the run of {date} vanished")))?;
        let pass = (claimed && run.pass_id == pass).then_some(pass);
        Ok(Claimed { run, pass })
    }

    pub async fn run(&self, id: &RunId) -> StoreResult<Option<ReconciliationRun>> {
        run::Entity::find_by_id(id.to_string())
            .one_as(&self.db)
            .await
    }

    pub async fn run_of_date(&self, date: NaiveDate) -> StoreResult<Option<ReconciliationRun>> {
        run::Entity::find()
            .filter(run::Column::Date.eq(date.to_string()))
            .one_as(&self.db)
            .await
    }

    /// The runs, newest date first (at most `limit`).
    pub async fn runs(&self, limit: u64) -> StoreResult<Vec<ReconciliationRun>> {
        run::Entity::find()
            .order_by_desc(run::Column::Date)
            .limit(limit)
            .all_as(&self.db)
            .await
    }

    /// A run's discrepancies after row `after`, in the order the run found them.
    pub async fn discrepancies(
        &self,
        run_id: &RunId,
        after: i64,
        limit: u64,
    ) -> StoreResult<Vec<StoredDiscrepancy>> {
        discrepancies_of(run_id)
            .filter(discrepancy::Column::Id.gt(after))
            .limit(limit)
            .all_as(&self.db)
            .await
    }

    /// A run's discrepancies that name payment `payment_id`, in the order the run found them.
    pub async fn discrepancies_naming(
        &self,
        run_id: &RunId,
        payment_id: PaymentId,
    ) -> StoreResult<Vec<Discrepancy>> {
        let found: Vec<StoredDiscrepancy> = discrepancies_of(run_id)
            .filter(discrepancy::Column::PaymentId.eq(payment_id.to_string()))
            .all_as(&self.db)
            .await?;
        Ok(found.into_iter().map(|stored| stored.discrepancy).collect())
    }

    /// Payments still flagged by a run of `date` (their review reason names it), after `after`
    /// (by id), at most `limit`.
    pub async fn flagged_by_run_of(
        &self,
        date: NaiveDate,
        after: Option<PaymentId>,
        limit: u64,
    ) -> StoreResult<Vec<PaymentId>> {
        use super::entities::payment;
        payment::Entity::find()
            .filter(payment::Column::NeedsReview.eq(true))
            .filter(payment::Column::ReviewReason.starts_with(format!("reconciliation of {date}:")))
            .apply_if(after, |q, after| {
                q.filter(payment::Column::Id.gt(after.to_string()))
            })
            .order_by_asc(payment::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| parse(&row.id, "payment id"))
            .collect()
    }

    /// Moves the lease of the pass forward; `false` when the pass is no longer the run's.
    pub async fn renew_run(
        &self,
        run_id: &RunId,
        pass: &PassId,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = run::Entity::update_many()
            .col_expr(run::Column::LeaseUntil, Expr::value(until))
            .filter(run::Column::Id.eq(run_id))
            .filter(run::Column::PassId.eq(pass))
            .filter(run::Column::Status.eq(RunStatus::Running.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Ends the pass: `COMPLETED` with its summary or `FAILED` with why. `false` when the pass
    /// is no longer the run's (another start took it over).
    pub async fn finish_run(
        &self,
        run_id: &RunId,
        pass: &PassId,
        outcome: Result<&RunSummary, &str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (status, summary, error) = match outcome {
            Ok(summary) => (
                RunStatus::Completed,
                Some(serde_json::to_string(summary).expect("a summary serializes")),
                None,
            ),
            Err(error) => (RunStatus::Failed, None, Some(error.to_owned())),
        };
        let result = run::Entity::update_many()
            .col_expr(run::Column::Status, Expr::value(status.as_str()))
            .col_expr(run::Column::Summary, Expr::value(summary))
            .col_expr(run::Column::Error, Expr::value(error))
            .col_expr(run::Column::FinishedAt, Expr::value(now))
            .filter(run::Column::Id.eq(run_id))
            .filter(run::Column::PassId.eq(pass))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Compares the staged pages of `pass` with our payments and refunds of `date` (completed
    /// between `from` and `to`), in one transaction: the run's discrepancies are replaced by
    /// what this pass found, and each payment's sale settlement is written. `None` when the pass
    /// is no longer the run's.
    pub async fn compare(
        &self,
        run_id: &RunId,
        pass: &PassId,
        date: NaiveDate,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> StoreResult<Option<RunSummary>> {
        let backend = self.db.get_database_backend();
        let txn = self.db.begin().await?;
        let mut owner = run::Entity::find_by_id(run_id.to_string());
        if backend == DbBackend::Postgres {
            owner = owner.lock_exclusive();
        }
        match owner.one(&txn).await? {
            Some(row) if row.pass_id == pass.to_string() => {}
            _ => {
                txn.rollback().await?;
                return Ok(None);
            }
        }
        let exec = |sql: &'static str, values: Vec<Value>| statement(backend, sql, values);
        txn.execute_raw(exec(
            "DELETE FROM reconciliation_discrepancies WHERE run_id = $1",
            vec![run_id.into()],
        ))
        .await?;
        let ids = || vec![Value::from(run_id), Value::from(pass)];
        let mut from_transactions = 0;
        for sql in [APPROVALS, CANCELS, OTHERS] {
            from_transactions += txn.execute_raw(exec(sql, ids())).await?.rows_affected();
        }
        let mut window = ids();
        window.extend([Value::from(from), Value::from(to)]);
        txn.execute_raw(exec(OUR_PAYMENTS, window.clone())).await?;
        txn.execute_raw(exec(OUR_REFUNDS, window)).await?;
        txn.execute_raw(exec(UNKNOWN_SETTLEMENTS, ids())).await?;
        txn.execute_raw(exec(
            SETTLE_PAYMENTS,
            vec![pass.into(), date.to_string().into()],
        ))
        .await?;

        let totals = txn
            .query_one_raw(exec(TOTALS, vec![pass.into(), run_id.into()]))
            .await?
            .ok_or_else(|| StoreError::Other("no totals".to_owned()))?;
        let number = |index| totals.try_get_by_index::<i64>(index);
        let toss_transactions = number(0)?;
        let summary = RunSummary {
            toss_transactions,
            matched: toss_transactions - i64::try_from(from_transactions).unwrap_or(i64::MAX),
            approved_krw: number(1)?,
            cancelled_krw: number(2)?,
            fees_krw: number(3)?,
            payout_krw: number(4)?,
            discrepancies: number(5)?,
        };
        txn.commit().await?;
        Ok(Some(summary))
    }

    /// Claims the daily schedule's run of `date` for this instance: the first to ask wins.
    pub async fn claim_schedule(&self, date: NaiveDate, now: DateTime<Utc>) -> StoreResult<bool> {
        let row = vec![date.to_string().into(), now.into()];
        let (columns, key) = (["date", "claimed_at"], ["date"]);
        Ok(self
            .insert_new("reconciliation_schedule", &columns, &key, [row])
            .await?
            == 1)
    }

    /// Records that a discrepancy (`key`) of `date` flagged its payment; `false` when an
    /// earlier run of the date did already, so a re-run flags nothing twice.
    pub async fn claim_flag(
        &self,
        date: NaiveDate,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let row = vec![date.to_string().into(), key.into(), now.into()];
        let (columns, unique) = (["date", "flag_key", "created_at"], ["date", "flag_key"]);
        Ok(self
            .insert_new("reconciliation_flags", &columns, &unique, [row])
            .await?
            == 1)
    }

    /// Gives back a claim of [`Store::claim_flag`] that flagged nothing (the payment was flagged
    /// already), so the discrepancy may flag it once that flag is gone.
    pub async fn release_flag(&self, date: NaiveDate, key: &str) -> StoreResult<()> {
        let mut delete = Query::delete();
        delete
            .from_table(Alias::new("reconciliation_flags"))
            .and_where(Expr::col(Alias::new("date")).eq(date.to_string()))
            .and_where(Expr::col(Alias::new("flag_key")).eq(key));
        self.db.execute(&delete).await?;
        Ok(())
    }
}

/// An `INSERT` of discrepancies from the rows the `SELECT` made of `parts` finds.
macro_rules! discrepancies {
    ($($part:literal),+ $(,)?) => {
        concat!(
            "INSERT INTO reconciliation_discrepancies (run_id, kind, order_id, payment_key, \
             transaction_key, payment_id, ours_status, ours_amount_krw, theirs_status, \
             theirs_amount_krw) ",
            $($part),+
        )
    };
}

/// Each Toss approval against our payment with its paymentKey (else its orderId): none at all
/// is MISSING_HERE; another amount AMOUNT_MISMATCH; not paid here (or under another order or
/// key) STATUS_MISMATCH.
const APPROVALS: &str = discrepancies!(
    "SELECT $1, CASE WHEN p.id IS NULL AND q.id IS NULL THEN 'MISSING_HERE' \
       WHEN p.id IS NULL THEN 'STATUS_MISMATCH' \
       WHEN p.amount_krw <> t.amount_krw THEN 'AMOUNT_MISMATCH' \
       ELSE 'STATUS_MISMATCH' END, \
     t.order_id, t.payment_key, t.transaction_key, COALESCE(p.id, q.id), \
     COALESCE(p.status, q.status), COALESCE(p.amount_krw, q.amount_krw), t.status, t.amount_krw \
     FROM reconciliation_transactions t \
     LEFT JOIN payments p ON p.payment_key = t.payment_key \
     LEFT JOIN payments q ON p.id IS NULL AND q.order_id = t.order_id \
     WHERE t.pass_id = $2 AND t.kind = 'APPROVAL' AND (p.id IS NULL OR p.amount_krw <> t.amount_krw \
       OR p.order_id <> t.order_id OR p.status NOT IN ",
    "('COMPLETED', 'PARTIAL_REFUND', 'REFUNDED')",
    ") ORDER BY t.transaction_at, t.transaction_key"
);

/// Each Toss cancel against our refund with its transactionKey: none is MISSING_HERE (our
/// payment, when we know it, is named); another amount AMOUNT_MISMATCH; a refund not
/// COMPLETED here STATUS_MISMATCH.
const CANCELS: &str = discrepancies!(
    "SELECT $1, CASE WHEN r.id IS NULL THEN 'MISSING_HERE' \
       WHEN r.amount_krw <> t.amount_krw THEN 'AMOUNT_MISMATCH' ELSE 'STATUS_MISMATCH' END, \
     t.order_id, t.payment_key, t.transaction_key, COALESCE(r.payment_id, p.id), \
     r.status, r.amount_krw, t.status, t.amount_krw \
     FROM reconciliation_transactions t \
     LEFT JOIN refunds r ON r.pg_cancel_key = t.transaction_key \
     LEFT JOIN payments p ON p.payment_key = t.payment_key \
     WHERE t.pass_id = $2 AND t.kind = 'CANCEL' \
       AND (r.id IS NULL OR r.amount_krw <> t.amount_krw OR r.status <> 'COMPLETED') \
     ORDER BY t.transaction_at, t.transaction_key"
);

/// Other transactions (an issued virtual account) only need a payment of ours.
const OTHERS: &str = discrepancies!(
    "SELECT $1, 'MISSING_HERE', t.order_id, t.payment_key, t.transaction_key, NULL, NULL, NULL, \
     t.status, t.amount_krw \
     FROM reconciliation_transactions t \
     WHERE t.pass_id = $2 AND t.kind = 'OTHER' \
       AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.payment_key = t.payment_key) \
       AND NOT EXISTS (SELECT 1 FROM payments q WHERE q.order_id = t.order_id) \
     ORDER BY t.transaction_at, t.transaction_key"
);

/// Our payments approved through Toss on the day whose approval Toss does not list.
const OUR_PAYMENTS: &str = discrepancies!(
    "SELECT $1, 'MISSING_AT_TOSS', p.order_id, p.payment_key, p.pg_approval_key, p.id, \
     p.status, p.amount_krw, NULL, NULL \
     FROM payments p \
     WHERE p.pg_provider = 'toss' AND p.status IN ",
    "('COMPLETED', 'PARTIAL_REFUND', 'REFUNDED')",
    " AND p.completed_at >= $3 AND p.completed_at <= $4 \
       AND NOT EXISTS (SELECT 1 FROM reconciliation_transactions t \
         WHERE t.pass_id = $2 AND t.kind = 'APPROVAL' AND t.payment_key = p.payment_key) \
     ORDER BY p.completed_at, p.id"
);

/// Our refunds completed through Toss on the day whose cancel Toss does not list.
const OUR_REFUNDS: &str = discrepancies!(
    "SELECT $1, 'MISSING_AT_TOSS', p.order_id, p.payment_key, r.pg_cancel_key, p.id, \
     r.status, r.amount_krw, NULL, NULL \
     FROM refunds r JOIN payments p ON p.id = r.payment_id \
     WHERE p.pg_provider = 'toss' AND r.status = 'COMPLETED' \
       AND r.refunded_at >= $3 AND r.refunded_at <= $4 \
       AND NOT EXISTS (SELECT 1 FROM reconciliation_transactions t \
         WHERE t.pass_id = $2 AND t.kind = 'CANCEL' AND t.transaction_key = r.pg_cancel_key) \
     ORDER BY r.refunded_at, r.id"
);

/// Settlement rows of no payment of ours (and of no transaction already reported).
const UNKNOWN_SETTLEMENTS: &str = discrepancies!(
    "SELECT $1, 'MISSING_HERE', s.order_id, s.payment_key, s.transaction_key, NULL, NULL, NULL, \
     'SETTLED', s.amount_krw \
     FROM reconciliation_settlements s \
     WHERE s.pass_id = $2 \
       AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.payment_key = s.payment_key) \
       AND NOT EXISTS (SELECT 1 FROM reconciliation_transactions t \
         WHERE t.pass_id = $2 AND t.payment_key = s.payment_key) \
     ORDER BY s.row_no"
);

/// Each payment's sale settlement (its first `SALE` row), written onto the payment.
const SETTLE_PAYMENTS: &str = "UPDATE payments SET (settlement_fee_krw, settlement_payout_krw, \
  settlement_sold_date, settlement_paid_out_date) = \
  (SELECT s.fee_krw, s.payout_krw, COALESCE(s.sold_date, $2), s.paid_out_date \
    FROM reconciliation_settlements s WHERE s.pass_id = $1 AND s.kind = 'SALE' \
    AND s.payment_key = payments.payment_key ORDER BY s.row_no LIMIT 1) \
  WHERE payment_key IN (SELECT s.payment_key FROM reconciliation_settlements s \
    WHERE s.pass_id = $1 AND s.kind = 'SALE')";

/// The summary's totals (sums cast back to integers: PostgreSQL sums bigints as numeric).
const TOTALS: &str = "SELECT \
  (SELECT COUNT(*) FROM reconciliation_transactions WHERE pass_id = $1), \
  (SELECT CAST(COALESCE(SUM(amount_krw), 0) AS BIGINT) FROM reconciliation_transactions \
    WHERE pass_id = $1 AND kind = 'APPROVAL'), \
  (SELECT CAST(COALESCE(SUM(amount_krw), 0) AS BIGINT) FROM reconciliation_transactions \
    WHERE pass_id = $1 AND kind = 'CANCEL'), \
  (SELECT CAST(COALESCE(SUM(fee_krw), 0) AS BIGINT) FROM reconciliation_settlements WHERE pass_id = $1), \
  (SELECT CAST(COALESCE(SUM(payout_krw), 0) AS BIGINT) FROM reconciliation_settlements WHERE pass_id = $1), \
  (SELECT COUNT(*) FROM reconciliation_discrepancies WHERE run_id = $2)";
