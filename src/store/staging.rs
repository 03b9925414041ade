//! The staging tables a reconciliation pass streams Toss's pages into, keyed by the pass.

use sea_orm::sea_query::{Alias, OnConflict, Query};
use sea_orm::{ConnectionTrait, Value};

use super::reconciliation::statement;
use super::{Store, StoreResult};
use crate::domain::{PassId, PgSettlement, PgTransaction};

/// Rows per INSERT: SQLite takes at most 32,766 parameters per statement.
const INSERT_CHUNK: usize = 1000;

const TRANSACTION_COLUMNS: [&str; 8] = [
    "pass_id",
    "transaction_key",
    "payment_key",
    "order_id",
    "kind",
    "status",
    "amount_krw",
    "transaction_at",
];

const SETTLEMENT_COLUMNS: [&str; 11] = [
    "pass_id",
    "row_no",
    "payment_key",
    "transaction_key",
    "order_id",
    "kind",
    "amount_krw",
    "fee_krw",
    "payout_krw",
    "sold_date",
    "paid_out_date",
];

impl Store {
    /// Forgets the staged pages of `pass`, or (`None`) of every pass no running run owns (a
    /// pass whose instance died leaves its pages behind).
    pub async fn clear_staging(&self, pass: Option<&PassId>) -> StoreResult<()> {
        let backend = self.db.get_database_backend();
        for table in ["reconciliation_transactions", "reconciliation_settlements"] {
            let (sql, values) = match pass {
                Some(pass) => (
                    format!("DELETE FROM {table} WHERE pass_id = $1"),
                    vec![Value::from(pass)],
                ),
                None => (
                    format!(
                        "DELETE FROM {table} WHERE pass_id NOT IN \
                         (SELECT pass_id FROM reconciliation_runs WHERE status = 'RUNNING')"
                    ),
                    Vec::new(),
                ),
            };
            self.db
                .execute_raw(statement(backend, &sql, values))
                .await?;
        }
        Ok(())
    }

    /// Stages one page of Toss's transactions. A transaction Toss lists twice is kept once.
    pub async fn stage_transactions(
        &self,
        pass: &PassId,
        rows: &[PgTransaction],
    ) -> StoreResult<()> {
        let rows = rows.iter().map(|row| {
            vec![
                pass.into(),
                row.transaction_key.clone().into(),
                row.payment_key.clone().into(),
                row.order_id.clone().into(),
                row.kind().as_str().into(),
                row.status.as_str().into(),
                row.amount.into(),
                row.transaction_at.clone().into(),
            ]
        });
        let (table, key) = (
            "reconciliation_transactions",
            ["pass_id", "transaction_key"],
        );
        self.insert_new(table, &TRANSACTION_COLUMNS, &key, rows)
            .await
            .map(drop)
    }

    /// Stages one page of Toss's settlements; `first_row` numbers its first row.
    pub async fn stage_settlements(
        &self,
        pass: &PassId,
        first_row: i64,
        rows: &[PgSettlement],
    ) -> StoreResult<()> {
        let rows = rows.iter().zip(first_row..).map(|(row, row_no)| {
            vec![
                pass.into(),
                row_no.into(),
                row.payment_key.clone().into(),
                row.transaction_key.clone().into(),
                row.order_id.clone().into(),
                if row.is_cancel { "CANCEL" } else { "SALE" }.into(),
                row.amount.into(),
                row.fee.into(),
                row.payout.into(),
                row.sold_date.map(|d| d.to_string()).into(),
                row.paid_out_date.map(|d| d.to_string()).into(),
            ]
        });
        let (table, key) = ("reconciliation_settlements", ["pass_id", "row_no"]);
        self.insert_new(table, &SETTLEMENT_COLUMNS, &key, rows)
            .await
            .map(drop)
    }

    /// Inserts `rows` into `table`, a chunk per statement; a row whose `key` is there already
    /// is kept as it was. Returns how many rows were inserted.
    pub(super) async fn insert_new(
        &self,
        table: &str,
        columns: &[&str],
        key: &[&str],
        rows: impl IntoIterator<Item = Vec<Value>>,
    ) -> StoreResult<u64> {
        let rows: Vec<Vec<Value>> = rows.into_iter().collect();
        let mut inserted = 0;
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new(table))
                .columns(columns.iter().copied().map(Alias::new))
                .on_conflict(
                    OnConflict::columns(key.iter().copied().map(Alias::new))
                        .do_nothing()
                        .to_owned(),
                );
            for row in chunk {
                insert.values_panic(row.iter().cloned().map(Into::into));
            }
            inserted += self.db.execute(&insert).await?.rows_affected();
        }
        Ok(inserted)
    }
}
