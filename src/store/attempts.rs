//! Attempts, written with every change of their payment: inside the same statement on
//! PostgreSQL (a part of the change's `WITH`), inside the same transaction otherwise. What to
//! write comes from `crate::domain::AttemptWrite`; this module only says it in SQL.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, Statement, Value,
};

use super::entities::payment_attempt::{self, Column};
use super::{Store, StoreResult};
use crate::domain::{
    Attempt, AttemptId, AttemptKind, AttemptStatus, AttemptWrite, Payment, PaymentId, PaymentKey,
    Settled,
};

/// Which attempt a write is for: the latest of the payment a `WITH` part (`changed`) returns,
/// or one whose payment and number are known.
#[derive(Debug, Clone)]
pub(super) enum AttemptRow<'a> {
    Latest { cte: &'a str },
    Known { payment_id: String, number: i32 },
}

/// Parameters in the order they appear: `$n` on PostgreSQL (numbered after those already in
/// the statement), `?` on SQLite.
struct Params {
    backend: DbBackend,
    next: usize,
    values: Vec<Value>,
}

impl Params {
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                let placeholder = format!("${}", self.next);
                self.next += 1;
                placeholder
            }
            _ => "?".to_owned(),
        }
    }
}

/// The statement of `write` to `row`, with its parameters (from `$first` on PostgreSQL). With
/// `guarded`, only an attempt in one of `write.from_statuses()` changes.
pub(super) fn write_sql(
    write: &AttemptWrite,
    row: &AttemptRow<'_>,
    guarded: bool,
    backend: DbBackend,
    first: usize,
    now: DateTime<Utc>,
) -> (String, Vec<Value>) {
    let mut p = Params {
        backend,
        next: first,
        values: Vec::new(),
    };
    let sql = match write {
        AttemptWrite::Start {
            kind,
            payment_key,
            billing_key_id,
            at,
        } => {
            let id = p.bind(AttemptId::new().to_string());
            let (payment_id, number, from) = match row {
                AttemptRow::Latest { cte } => (
                    format!("{cte}.id"),
                    format!("{cte}.confirm_attempt"),
                    format!(" FROM {cte}"),
                ),
                AttemptRow::Known { payment_id, number } => {
                    (p.bind(payment_id.clone()), p.bind(*number), String::new())
                }
            };
            let kind = p.bind(kind.as_str());
            let key = p.bind(payment_key.as_ref().map(PaymentKey::to_string));
            let billing = p.bind(billing_key_id.map(|id| id.to_string()));
            let status = p.bind(AttemptStatus::InProgress.as_str());
            let at = p.bind(*at);
            let updated = p.bind(now);
            format!(
                "INSERT INTO payment_attempts (id, payment_id, number, kind, payment_key, \
                 billing_key_id, status, toss_sends, started_at, updated_at) \
                 SELECT {id}, {payment_id}, {number}, {kind}, {key}, {billing}, {status}, 1, \
                 {at}, {updated}{from}"
            )
        }
        AttemptWrite::Send | AttemptWrite::Settle(_) => {
            let mut sets = vec![format!("updated_at = {}", p.bind(now))];
            match write {
                AttemptWrite::Send => {
                    sets.push("toss_sends = payment_attempts.toss_sends + 1".to_owned());
                }
                AttemptWrite::Settle(settled) => {
                    sets.push(format!("status = {}", p.bind(settled.status.as_str())));
                    if let Some(key) = &settled.payment_key {
                        sets.push(format!("payment_key = {}", p.bind(key.to_string())));
                    }
                    if let Some(method) = &settled.method {
                        sets.push(format!("method = {}", p.bind(method.clone())));
                    }
                    if let Some(account) = &settled.virtual_account {
                        sets.push(format!(
                            "va_bank_code = {}",
                            p.bind(account.bank_code.clone())
                        ));
                        sets.push(format!(
                            "va_account_number = {}",
                            p.bind(account.account_number.clone())
                        ));
                        sets.push(format!(
                            "va_customer_name = {}",
                            p.bind(account.customer_name.clone())
                        ));
                        sets.push(format!("va_due_date = {}", p.bind(account.due_date)));
                    }
                    let failure = settled.failure.as_ref();
                    sets.push(format!(
                        "failure_code = {}",
                        p.bind(failure.map(|f| f.code.clone()))
                    ));
                    sets.push(format!(
                        "failure_message = {}",
                        p.bind(failure.map(|f| f.message.clone()))
                    ));
                    sets.push(format!(
                        "failure_retryable = {}",
                        p.bind(failure.and_then(|f| f.retryable))
                    ));
                    if settled.status.is_final() {
                        sets.push(format!("finished_at = {}", p.bind(now)));
                    }
                }
                AttemptWrite::Start { .. } => {}
            }
            let (from, filter) = locate(row, &mut p);
            format!(
                "UPDATE payment_attempts SET {}{from} WHERE {filter}{}",
                sets.join(", "),
                guard(write, guarded)
            )
        }
    };
    (sql, p.values)
}

/// The clause that brings in the `WITH` part (` FROM changed`), and the condition that picks
/// the attempt.
fn locate(row: &AttemptRow<'_>, p: &mut Params) -> (String, String) {
    match row {
        AttemptRow::Latest { cte } => (
            format!(" FROM {cte}"),
            format!(
                "payment_attempts.payment_id = {cte}.id \
                 AND payment_attempts.number = {cte}.confirm_attempt"
            ),
        ),
        AttemptRow::Known { payment_id, number } => {
            let payment_id = p.bind(payment_id.clone());
            let number = p.bind(*number);
            (
                String::new(),
                format!(
                    "payment_attempts.payment_id = {payment_id} \
                     AND payment_attempts.number = {number}"
                ),
            )
        }
    }
}

/// ` AND payment_attempts.status IN (…)`: our own constants, never input.
fn guard(write: &AttemptWrite, guarded: bool) -> String {
    if !guarded {
        return String::new();
    }
    let statuses: Vec<String> = write
        .from_statuses()
        .iter()
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    if statuses.is_empty() {
        return " AND 1 = 0".to_owned();
    }
    format!(" AND payment_attempts.status IN ({})", statuses.join(", "))
}

/// Applies `write` to a known attempt inside the caller's transaction.
pub(super) async fn execute<C: ConnectionTrait>(
    conn: &C,
    write: &AttemptWrite,
    payment_id: PaymentId,
    number: i32,
    guarded: bool,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let backend = conn.get_database_backend();
    let row = AttemptRow::Known {
        payment_id: payment_id.to_string(),
        number,
    };
    let (sql, values) = write_sql(write, &row, guarded, backend, 1, now);
    conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

/// In an adoption's transaction: the attempt write that takes `before` to `after`. Toss's
/// answer about a key is that key's attempt (a late approval of an attempt we had let go
/// included); one Toss made that we have no row of (an approval we never claimed) becomes a new
/// attempt, numbered after the payment's latest, and the payment's count follows. An attempt in
/// flight under another key is never rewritten into it: it ends `RELEASED`, kept as it was.
pub(super) async fn write_adopted<C: ConnectionTrait>(
    conn: &C,
    before: &Payment,
    after: &mut Payment,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let Some(write) = AttemptWrite::between(before, after) else {
        return Ok(());
    };
    let settled = match &write {
        AttemptWrite::Settle(settled)
            if matches!(
                settled.status,
                AttemptStatus::Approved | AttemptStatus::WaitingForDeposit
            ) =>
        {
            settled
        }
        AttemptWrite::Start { .. } | AttemptWrite::Send | AttemptWrite::Settle(_) => {
            return execute(conn, &write, after.id, before.confirm_attempt, true, now).await;
        }
    };
    if let Some(key) = &settled.payment_key {
        let of_key = payment_attempt::Entity::find()
            .filter(Column::PaymentId.eq(after.id.to_string()))
            .filter(Column::PaymentKey.eq(key.as_str()))
            .order_by_desc(Column::Number)
            .one(conn)
            .await?;
        if let Some(row) = of_key {
            return execute(conn, &write, after.id, row.number, false, now).await;
        }
    }
    let in_flight = payment_attempt::Entity::find()
        .filter(Column::PaymentId.eq(after.id.to_string()))
        .filter(Column::Number.eq(before.confirm_attempt))
        .filter(Column::Status.is_in(write.from_statuses().iter().map(|s| s.as_str())))
        .one(conn)
        .await?;
    if let Some(row) = in_flight {
        // A charge learns its key from Toss's answer; a confirm's key is its own.
        let same = match (&row.payment_key, &settled.payment_key) {
            (Some(ours), Some(theirs)) => ours == theirs.as_str(),
            _ => true,
        };
        if same {
            return execute(conn, &write, after.id, before.confirm_attempt, true, now).await;
        }
        let released = AttemptWrite::Settle(Settled::released(None));
        execute(conn, &released, after.id, before.confirm_attempt, true, now).await?;
    }
    after.confirm_attempt = before.confirm_attempt + 1;
    let account = settled.virtual_account.as_ref();
    payment_attempt::ActiveModel {
        id: Set(AttemptId::new().to_string()),
        payment_id: Set(after.id.to_string()),
        number: Set(after.confirm_attempt),
        kind: Set(AttemptKind::Confirm.as_str().to_owned()),
        payment_key: Set(settled.payment_key.as_ref().map(PaymentKey::to_string)),
        billing_key_id: Set(None),
        status: Set(settled.status.as_str().to_owned()),
        method: Set(settled.method.clone()),
        va_bank_code: Set(account.map(|a| a.bank_code.clone())),
        va_account_number: Set(account.map(|a| a.account_number.clone())),
        va_customer_name: Set(account.and_then(|a| a.customer_name.clone())),
        va_due_date: Set(account.and_then(|a| a.due_date)),
        failure_code: Set(None),
        failure_message: Set(None),
        failure_retryable: Set(None),
        // Not sent by us: Toss has it from elsewhere (another instance's lost claim, a
        // confirm made outside the service).
        toss_sends: Set(0),
        started_at: Set(now),
        finished_at: Set(settled.status.is_final().then_some(now)),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(())
}

impl Store {
    /// A payment's attempts, oldest first.
    pub async fn attempts_of(&self, payment_id: PaymentId) -> StoreResult<Vec<Attempt>> {
        payment_attempt::Entity::find()
            .filter(Column::PaymentId.eq(payment_id.to_string()))
            .order_by_asc(Column::Number)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Attempt::try_from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Failure;

    #[test]
    fn a_settle_in_a_with_part_names_the_latest_attempt_of_the_changed_row() {
        let write = AttemptWrite::Settle(Settled {
            status: AttemptStatus::Failed,
            payment_key: None,
            method: None,
            virtual_account: None,
            failure: Some(Failure::new("REJECT_CARD_PAYMENT", "declined")),
        });
        let (sql, values) = write_sql(
            &write,
            &AttemptRow::Latest { cte: "changed" },
            true,
            DbBackend::Postgres,
            7,
            Utc::now(),
        );
        assert_eq!(
            sql,
            "UPDATE payment_attempts SET updated_at = $7, status = $8, failure_code = $9, \
             failure_message = $10, failure_retryable = $11, finished_at = $12 FROM changed \
             WHERE payment_attempts.payment_id = changed.id \
             AND payment_attempts.number = changed.confirm_attempt \
             AND payment_attempts.status IN ('IN_PROGRESS', 'WAITING_FOR_DEPOSIT')"
        );
        assert_eq!(values.len(), 6);
    }

    #[test]
    fn a_known_attempt_is_named_by_parameters_in_order() {
        let now = Utc::now();
        let (sql, values) = write_sql(
            &AttemptWrite::Send,
            &AttemptRow::Known {
                payment_id: "p".into(),
                number: 3,
            },
            true,
            DbBackend::Sqlite,
            1,
            now,
        );
        assert_eq!(
            sql,
            "UPDATE payment_attempts SET updated_at = ?, \
             toss_sends = payment_attempts.toss_sends + 1 \
             WHERE payment_attempts.payment_id = ? AND payment_attempts.number = ? \
             AND payment_attempts.status IN ('IN_PROGRESS')"
        );
        assert_eq!(
            values,
            vec![Value::from(now), Value::from("p"), Value::from(3)]
        );
    }

    /// A release keeps the row: no write ever deletes an attempt.
    #[test]
    fn a_release_ends_the_attempt_and_keeps_it() {
        let (sql, _) = write_sql(
            &AttemptWrite::of_update(&crate::domain::PaymentUpdate::Release { failure: None })
                .unwrap(),
            &AttemptRow::Latest { cte: "changed" },
            true,
            DbBackend::Postgres,
            1,
            Utc::now(),
        );
        assert!(sql.starts_with("UPDATE payment_attempts SET"), "{sql}");
        assert!(
            sql.contains("status = $2") && sql.contains("finished_at"),
            "{sql}"
        );
    }
}
