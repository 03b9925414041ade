//! The `payments` statements of a confirm (its conditional updates and the reads by id and by
//! order id), written as SQL text instead of through sea-query, and their rows decoded by
//! position instead of by name. A confirm's CPU went mostly here (`docs/benchmarks.md`, "Where
//! the time goes"): a 60-column list built anew for every statement, and every column of every
//! row looked up by its name.
//!
//! What never changes is built once and kept: the column list (`COLUMNS`, in the order of
//! `payment::Model`) and the reads. An update's `SET` and `WHERE` are written per call from
//! `&'static str` column names; its values are bound, never written into the text.

use std::sync::LazyLock;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};

use super::entities::payment::{self, Column};
use super::{StoreResult, sql::Sql};

/// `payment::Model` read from a row whose columns are `$field`s in this order, and the list of
/// those columns: both come from the one list, so the text and the decoder cannot disagree.
macro_rules! by_position {
    ($($field:ident),+ $(,)?) => {
        /// The columns of `payments`, in the order [`decode`] reads them.
        const COLUMNS: &[&str] = &[$(stringify!($field)),+];

        /// A row that lists [`COLUMNS`] in order (`RETURNING`, `SELECT`), by position.
        fn decode(row: &QueryResult) -> Result<payment::Model, DbErr> {
            let mut at = 0;
            let mut next = || {
                at += 1;
                at - 1
            };
            // Fields are evaluated in the order written: the order of `COLUMNS`.
            Ok(payment::Model { $($field: row.try_get_by_index(next())?,)+ })
        }
    };
}

by_position!(
    id,
    user_id,
    order_id,
    order_name,
    subscription_id,
    payment_type,
    payment_method,
    amount_krw,
    refunded_amount_krw,
    refund_reserved_krw,
    currency,
    status,
    pg_provider,
    pg_transaction_id,
    payment_key,
    confirm_attempt,
    confirm_started_at,
    pg_secret,
    failure_code,
    failure_message,
    needs_review,
    review_reason,
    reconcile_attempts,
    next_reconcile_at,
    created_at,
    updated_at,
    completed_at,
    confirm_sends,
    annotated_attempt,
    cancel_slot,
    cancel_slot_until,
    idempotency_key,
    billing_key_id,
    failure_retryable,
    tax_free_amount_krw,
    pg_method,
    receipt_url,
    card_issuer_code,
    card_number,
    card_installment_months,
    card_approve_no,
    va_bank_code,
    va_account_number,
    va_customer_name,
    va_due_date,
    cancel_reason,
    cancel_requested_by_type,
    cancel_requested_by_name,
    pg_approval_key,
    settlement_fee_krw,
    settlement_payout_krw,
    settlement_sold_date,
    settlement_paid_out_date,
);

/// `"id", "user_id", …`: every column, in the order [`decode`] reads them.
static COLUMN_LIST: LazyLock<String> = LazyLock::new(|| {
    COLUMNS
        .iter()
        .map(|column| format!("\"{column}\""))
        .collect::<Vec<_>>()
        .join(", ")
});

/// A read of one payment by a unique column, written once per backend.
struct Read {
    postgres: LazyLock<String>,
    sqlite: LazyLock<String>,
}

impl Read {
    fn sql(&self, backend: DbBackend) -> &str {
        match backend {
            DbBackend::Postgres => &self.postgres,
            _ => &self.sqlite,
        }
    }
}

/// `SELECT <every column> FROM "payments" WHERE "<by>" = <placeholder> LIMIT 1`.
fn read_sql(by: &str, placeholder: &str) -> String {
    format!(
        "SELECT {} FROM \"payments\" WHERE \"{by}\" = {placeholder} LIMIT 1",
        *COLUMN_LIST
    )
}

static BY_ID: Read = Read {
    postgres: LazyLock::new(|| read_sql("id", "$1")),
    sqlite: LazyLock::new(|| read_sql("id", "?")),
};

static BY_ORDER_ID: Read = Read {
    postgres: LazyLock::new(|| read_sql("order_id", "$1")),
    sqlite: LazyLock::new(|| read_sql("order_id", "?")),
};

/// Which unique column a read finds its payment by.
#[derive(Debug, Clone, Copy)]
pub(super) enum ReadBy {
    Id,
    OrderId,
}

/// The payment whose `by` column is `value`, decoded by position.
pub(super) async fn read<C: ConnectionTrait>(
    conn: &C,
    by: ReadBy,
    value: &str,
) -> StoreResult<Option<payment::Model>> {
    let backend = conn.get_database_backend();
    let sql = match by {
        ReadBy::Id => BY_ID.sql(backend),
        ReadBy::OrderId => BY_ORDER_ID.sql(backend),
    };
    let statement = Statement::from_sql_and_values(backend, sql, [Value::from(value)]);
    first_row(conn, statement).await
}

/// The one row `statement` returns (it lists [`COLUMNS`]), decoded by position.
pub(super) async fn first_row<C: ConnectionTrait>(
    conn: &C,
    statement: Statement,
) -> StoreResult<Option<payment::Model>> {
    let row = conn.query_one_raw(statement).await?;
    Ok(row.map(|row| decode(&row)).transpose()?)
}

/// What an update sets a column to.
#[derive(Debug, Clone)]
pub(super) enum Assign {
    /// `"column" = <value>`
    To(Value),
    /// `"column" = "column" + n`
    Add(i32),
}

/// `"column" = <value>`.
pub(super) fn to(value: impl Into<Value>) -> Assign {
    Assign::To(value.into())
}

impl Sql {
    /// ` RETURNING <every column>`, in the order [`decode`] reads them.
    pub(super) fn returning_all(&mut self) -> &mut Self {
        self.push(" RETURNING ").push(&COLUMN_LIST)
    }
}

/// `"column" = …, …`: the `SET` list of `assignments`.
pub(super) fn write_assignments(sql: &mut Sql, assignments: Vec<(Column, Assign)>) {
    for (n, (column, assign)) in assignments.into_iter().enumerate() {
        if n > 0 {
            sql.push(", ");
        }
        sql.column(column).push(" = ");
        match assign {
            Assign::To(value) => sql.bind(value),
            Assign::Add(step) => sql.column(column).push(" + ").bind(step),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{IdenStatic, Iterable};

    #[test]
    fn columns_are_the_models_in_its_order() {
        let model: Vec<&str> = Column::iter().map(|column| column.as_str()).collect();
        assert_eq!(COLUMNS, model.as_slice());
    }

    #[test]
    fn reads_are_written_once_per_backend() {
        let sql = BY_ORDER_ID.sql(DbBackend::Postgres);
        assert!(sql.starts_with("SELECT \"id\", \"user_id\", \"order_id\", "));
        assert!(sql.ends_with(" FROM \"payments\" WHERE \"order_id\" = $1 LIMIT 1"));
        assert!(
            BY_ID
                .sql(DbBackend::Sqlite)
                .ends_with("WHERE \"id\" = ? LIMIT 1")
        );
        assert!(std::ptr::eq(
            BY_ID.sql(DbBackend::Postgres),
            BY_ID.sql(DbBackend::Postgres)
        ));
    }

    #[test]
    fn assignments_set_values_and_steps() {
        let mut sql = Sql::new(DbBackend::Postgres);
        sql.push("UPDATE \"payments\" SET ");
        write_assignments(
            &mut sql,
            vec![
                (Column::Status, Assign::To("IN_PROGRESS".into())),
                (Column::ConfirmAttempt, Assign::Add(1)),
            ],
        );
        assert_eq!(
            sql.text,
            "UPDATE \"payments\" SET \"status\" = $1, \"confirm_attempt\" = \"confirm_attempt\" + $2"
        );
        assert_eq!(sql.values.len(), 2);
    }
}
