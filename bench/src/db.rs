//! Baseline (b): the database alone, doing per flow what the service asks of it, on a fresh
//! database of the same schema (migrated by the service's own `Store::connect`), through the
//! same driver (SeaORM over sqlx) with the same connection settings.
//!
//! `mirror` (b): statement for statement what the service sends for create -> confirm
//! (-> refund), as read from `src/service` and `src/store`:
//!
//! | step    | statements                                                                   |
//! |---------|------------------------------------------------------------------------------|
//! | create  | INSERT payment RETURNING * (autocommit)                                        |
//! | confirm | UPDATE … WHERE order_id=… AND status='PENDING' AND amount_krw=… RETURNING *   |
//! |         | (autocommit); PostgreSQL: one statement WITH changed AS (UPDATE … WHERE       |
//! |         | status='IN_PROGRESS' AND payment_key=… RETURNING *) INSERT event SELECT … FROM |
//! |         | changed WHERE pg_advisory_xact_lock(…); SQLite: BEGIN, that UPDATE, INSERT    |
//! |         | event, COMMIT                                                                |
//! | refund  | SELECT payment; PostgreSQL: one statement WITH reserved AS (UPDATE payment    |
//! |         | RETURNING *) INSERT refund SELECT … FROM reserved; SQLite: BEGIN, UPDATE,     |
//! |         | INSERT, COMMIT; then BEGIN, UPDATE refund RETURNING *, UPDATE payment (amounts |
//! |         | and status) RETURNING *, INSERT event [PostgreSQL: SELECT … WHERE             |
//! |         | pg_advisory_xact_lock(…)], COMMIT                                              |
//!
//! Commits per flow: 3, plus 2 for a refund. `commits` (b0): the same commits without the reads,
//! without RETURNING and without the advisory lock, each as a plain transaction (the claim as
//! one autocommitted UPDATE).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use payment_service::store::{DatabaseOptions, Store};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait,
    Value,
};

use crate::flows::{AMOUNT_KRW, Flow};
use crate::stats::Recorder;

/// Connects as the service does: migrated schema, then the same pool settings.
pub async fn connect(url: &str, pool: u32) -> anyhow::Result<DatabaseConnection> {
    let options = DatabaseOptions {
        url: url.to_owned(),
        max_connections: pool,
        acquire_timeout: Duration::from_secs(5),
    };
    Store::connect(&options).await?.close().await;

    Ok(Database::connect(Store::pool_options(&options)).await?)
}

pub struct DbFlow {
    pub db: DatabaseConnection,
    pub run_id: String,
    pub refund_share: f64,
    /// true: (b), every statement the service sends; false: (b0), the commits only.
    pub mirror: bool,
}

const INSERT_PAYMENT: &str = "INSERT INTO payments (id, user_id, order_id, order_name, \
    subscription_id, payment_type, payment_method, amount_krw, refunded_amount_krw, \
    refund_reserved_krw, currency, status, pg_provider, pg_transaction_id, payment_key, \
    confirm_attempt, confirm_started_at, pg_secret, failure_code, failure_message, needs_review, \
    review_reason, reconcile_attempts, next_reconcile_at, created_at, updated_at, completed_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
    $19, $20, $21, $22, $23, $24, $25, $26, $27) RETURNING *";

const SELECT_PAYMENT: &str = "SELECT * FROM payments WHERE id = $1 LIMIT 1";

const CLAIM: &str = "UPDATE payments SET updated_at = $1, status = $2, payment_key = $3, \
    pg_provider = $4, failure_code = $5, failure_message = $6, confirm_started_at = $7, \
    confirm_attempt = confirm_attempt + 1, next_reconcile_at = $8, reconcile_attempts = $9 \
    WHERE order_id = $10 AND status IN ($11) AND amount_krw = $12";

/// What the service appends to the claim and the completion: the payment as it now is.
const RETURNING: &str = " RETURNING *";

const COMPLETE: &str = "UPDATE payments SET updated_at = $1, status = $2, pg_transaction_id = $3, \
    pg_secret = $4, failure_code = $5, failure_message = $6, completed_at = $7, \
    next_reconcile_at = $8 WHERE id = $9 AND status IN ($10) AND payment_key = $11";

/// The completion with its event as the service sends it to PostgreSQL: one statement.
const COMPLETE_WITH_EVENT: &str = "WITH changed AS (UPDATE payments SET updated_at = $1, \
    status = $2, pg_transaction_id = $3, pg_secret = $4, failure_code = $5, \
    failure_message = $6, completed_at = $7, next_reconcile_at = $8 WHERE id = $9 \
    AND status IN ($10) AND payment_key = $11 RETURNING *), \
    appended AS (INSERT INTO events (event_id, event_type, version, occurred_at, source, \
    user_id, payment_id, payload) SELECT $12, $13, $14, $15, $16, $17, $18, $19 FROM changed \
    WHERE pg_advisory_xact_lock(727100002) IS NOT NULL) SELECT * FROM changed";

const INSERT_EVENT: &str = "INSERT INTO events (event_id, event_type, version, occurred_at, \
    source, user_id, payment_id, payload, published_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *";

const RESERVE: &str = "UPDATE payments SET refund_reserved_krw = refund_reserved_krw + $1 \
    WHERE id = $2 AND status IN ($3, $4) \
    AND amount_krw - refunded_amount_krw - refund_reserved_krw >= $5";

const INSERT_REFUND: &str = "INSERT INTO refunds (id, payment_id, amount_krw, reason, status, \
    pg_cancel_key, failure_code, failure_message, reconcile_attempts, next_reconcile_at, \
    created_at, updated_at, refunded_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

const COMPLETE_REFUND: &str = "UPDATE refunds SET status = $1, pg_cancel_key = $2, \
    refunded_at = $3, updated_at = $4, next_reconcile_at = $5 WHERE id = $6 AND status = $7";

const MOVE_AMOUNTS: &str = "UPDATE payments SET refunded_amount_krw = refunded_amount_krw + $1, \
    refund_reserved_krw = refund_reserved_krw - $2, status = CASE WHEN status IN ($3, $4) \
    AND refunded_amount_krw + $5 >= amount_krw THEN $6 WHEN status IN ($7, $8) THEN $9 \
    ELSE status END, updated_at = $10 WHERE id = $11";

/// PostgreSQL: the reservation and the refund row as the service sends them, one statement.
const RESERVE_WITH_REFUND: &str = "WITH reserved AS (UPDATE payments \
    SET refund_reserved_krw = refund_reserved_krw + $1 WHERE id = $2 AND status IN ($3, $4) \
    AND amount_krw - refunded_amount_krw - refund_reserved_krw >= $5 RETURNING *) \
    INSERT INTO refunds (id, payment_id, amount_krw, reason, status, pg_cancel_key, \
    failure_code, failure_message, reconcile_attempts, next_reconcile_at, created_at, \
    updated_at, refunded_at) \
    SELECT $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 FROM reserved";

/// PostgreSQL: the outbox append as the service sends it inside a transaction.
const INSERT_EVENT_LOCKED: &str = "INSERT INTO events (event_id, event_type, version, \
    occurred_at, source, user_id, payment_id, payload, published_at) \
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE pg_advisory_xact_lock(727100002) IS NOT NULL";

fn none_text() -> Value {
    Value::from(None::<String>)
}

fn none_time() -> Value {
    Value::from(None::<DateTime<Utc>>)
}

impl DbFlow {
    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.db.get_database_backend();
        let sql = match backend {
            // SQLite numbers its parameters `?1`, PostgreSQL `$1`.
            DbBackend::Sqlite => sql.replace('$', "?"),
            _ => sql.to_owned(),
        };
        Statement::from_sql_and_values(backend, sql, values)
    }

    fn postgres(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    async fn read<C: ConnectionTrait>(&self, conn: &C, sql: &str, id: &str) -> Result<(), DbErr> {
        conn.query_one_raw(self.statement(sql, vec![id.into()]))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(id.to_owned()))?;
        Ok(())
    }

    /// An event's values, in the order of `INSERT_EVENT` and `COMPLETE_WITH_EVENT`.
    fn event_values(event_type: &str, payment_id: &str) -> Vec<Value> {
        let payload = serde_json::json!({
            "payment_id": payment_id, "order_id": "bench", "amount": AMOUNT_KRW,
            "currency": "KRW", "payment_method": "card", "pg_provider": "toss",
            "pg_transaction_id": format!("pk_{payment_id}"), "payment_type": "ONE_TIME",
            "subscription_id": null,
        });
        vec![
            uuid::Uuid::now_v7().to_string().into(),
            event_type.into(),
            "1.0".into(),
            Utc::now().into(),
            "payment-service".into(),
            "bench-user".into(),
            payment_id.into(),
            payload.to_string().into(),
        ]
    }

    async fn append_event<C: ConnectionTrait>(
        &self,
        conn: &C,
        event_type: &str,
        payment_id: &str,
    ) -> Result<(), DbErr> {
        let sql = if self.mirror && self.postgres() {
            INSERT_EVENT_LOCKED
        } else {
            INSERT_EVENT
        };
        let mut values = Self::event_values(event_type, payment_id);
        values.push(none_time());
        conn.execute_raw(self.statement(sql, values)).await?;
        Ok(())
    }

    async fn create(&self, payment_id: &str, order_id: &str) -> Result<(), DbErr> {
        let now = Utc::now();
        let values: Vec<Value> = vec![
            payment_id.into(),
            "bench-user".into(),
            order_id.into(),
            "bench order".into(),
            none_text(),
            "ONE_TIME".into(),
            "card".into(),
            AMOUNT_KRW.into(),
            0i64.into(),
            0i64.into(),
            "KRW".into(),
            "PENDING".into(),
            none_text(),
            none_text(),
            none_text(),
            0i32.into(),
            none_time(),
            none_text(),
            none_text(),
            none_text(),
            false.into(),
            none_text(),
            0i32.into(),
            none_time(),
            now.into(),
            now.into(),
            none_time(),
        ];
        self.db
            .query_one_raw(self.statement(INSERT_PAYMENT, values))
            .await?;
        Ok(())
    }

    async fn confirm(&self, payment_id: &str, order_id: &str) -> Result<(), DbErr> {
        let payment_key = format!("pk_{order_id}");
        let now = Utc::now();
        let claim_values: Vec<Value> = vec![
            now.into(),
            "IN_PROGRESS".into(),
            payment_key.clone().into(),
            "toss".into(),
            none_text(),
            none_text(),
            now.into(),
            (now + chrono::Duration::seconds(90)).into(),
            0i32.into(),
            order_id.into(),
            "PENDING".into(),
            AMOUNT_KRW.into(),
        ];
        let claimed = if self.mirror {
            let claimed = self
                .db
                .query_one_raw(self.statement(&format!("{CLAIM}{RETURNING}"), claim_values))
                .await?;
            u64::from(claimed.is_some())
        } else {
            self.db
                .execute_raw(self.statement(CLAIM, claim_values))
                .await?
                .rows_affected()
        };
        expect_one(claimed, "claim")?;

        let now = Utc::now();
        let mut values: Vec<Value> = vec![
            now.into(),
            "COMPLETED".into(),
            payment_key.clone().into(),
            "ps_fakesecret0001".into(),
            none_text(),
            none_text(),
            now.into(),
            none_time(),
            payment_id.into(),
            "IN_PROGRESS".into(),
            payment_key.into(),
        ];
        if self.mirror && self.postgres() {
            values.extend(Self::event_values("payment.completed", payment_id));
            let completed = self
                .db
                .query_one_raw(self.statement(COMPLETE_WITH_EVENT, values))
                .await?;
            return expect_one(u64::from(completed.is_some()), "complete");
        }
        let txn = self.db.begin().await?;
        let completed = if self.mirror {
            let row = txn
                .query_one_raw(self.statement(&format!("{COMPLETE}{RETURNING}"), values))
                .await?;
            u64::from(row.is_some())
        } else {
            txn.execute_raw(self.statement(COMPLETE, values))
                .await?
                .rows_affected()
        };
        expect_one(completed, "complete")?;
        self.append_event(&txn, "payment.completed", payment_id)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn refund(&self, payment_id: &str) -> Result<(), DbErr> {
        let refund_id = uuid::Uuid::new_v4().to_string();
        if self.mirror {
            self.read(&self.db, SELECT_PAYMENT, payment_id).await?;
        }
        let now = Utc::now();
        let reserve: Vec<Value> = vec![
            AMOUNT_KRW.into(),
            payment_id.into(),
            "COMPLETED".into(),
            "PARTIAL_REFUND".into(),
            AMOUNT_KRW.into(),
        ];
        let refund_row: Vec<Value> = vec![
            refund_id.clone().into(),
            payment_id.into(),
            AMOUNT_KRW.into(),
            "bench refund".into(),
            "PENDING".into(),
            none_text(),
            none_text(),
            none_text(),
            0i32.into(),
            (now + chrono::Duration::seconds(90)).into(),
            now.into(),
            now.into(),
            none_time(),
        ];
        if self.mirror && self.postgres() {
            let values = reserve.into_iter().chain(refund_row).collect();
            let inserted = self
                .db
                .execute_raw(self.statement(RESERVE_WITH_REFUND, values))
                .await?
                .rows_affected();
            expect_one(inserted, "reserve")?;
        } else {
            let txn = self.db.begin().await?;
            let reserved = txn
                .execute_raw(self.statement(RESERVE, reserve))
                .await?
                .rows_affected();
            expect_one(reserved, "reserve")?;
            txn.execute_raw(self.statement(INSERT_REFUND, refund_row))
                .await?;
            txn.commit().await?;
        }

        let now = Utc::now();
        let returning = if self.mirror { RETURNING } else { "" };
        let txn = self.db.begin().await?;
        let completed = txn
            .execute_raw(self.statement(
                &format!("{COMPLETE_REFUND}{returning}"),
                vec![
                    "COMPLETED".into(),
                    format!("cx_{refund_id}").into(),
                    now.into(),
                    now.into(),
                    none_time(),
                    refund_id.clone().into(),
                    "PENDING".into(),
                ],
            ))
            .await?
            .rows_affected();
        expect_one(completed, "complete refund")?;
        let moved = txn
            .execute_raw(self.statement(
                &format!("{MOVE_AMOUNTS}{returning}"),
                vec![
                    AMOUNT_KRW.into(),
                    AMOUNT_KRW.into(),
                    "COMPLETED".into(),
                    "PARTIAL_REFUND".into(),
                    AMOUNT_KRW.into(),
                    "REFUNDED".into(),
                    "COMPLETED".into(),
                    "PARTIAL_REFUND".into(),
                    "PARTIAL_REFUND".into(),
                    now.into(),
                    payment_id.into(),
                ],
            ))
            .await?
            .rows_affected();
        expect_one(moved, "move amounts")?;
        self.append_event(&txn, "payment.refunded", payment_id)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}

fn expect_one(rows: u64, what: &str) -> Result<(), DbErr> {
    if rows == 1 {
        Ok(())
    } else {
        Err(DbErr::Custom(format!("{what}: {rows} rows updated")))
    }
}

/// A short, countable name for a database error.
fn error_name(error: &DbErr) -> String {
    let text = error.to_string();
    let short: String = text.chars().take(80).collect();
    short
}

impl Flow for DbFlow {
    async fn run(&self, worker: usize, seq: u64, recorder: &mut Recorder) -> bool {
        let payment_id = uuid::Uuid::now_v7().to_string();
        let order_id = format!("d{}-{worker}-{seq}", self.run_id);

        let t = Instant::now();
        if let Err(error) = self.create(&payment_id, &order_id).await {
            recorder.error(format!("db create {}", error_name(&error)));
            return false;
        }
        recorder.step("create", t.elapsed());

        let t = Instant::now();
        if let Err(error) = self.confirm(&payment_id, &order_id).await {
            recorder.error(format!("db confirm {}", error_name(&error)));
            return false;
        }
        recorder.step("confirm", t.elapsed());

        if rand::random::<f64>() < self.refund_share {
            let t = Instant::now();
            if let Err(error) = self.refund(&payment_id).await {
                recorder.error(format!("db refund {}", error_name(&error)));
                return false;
            }
            recorder.step("refund", t.elapsed());
        }
        true
    }
}
