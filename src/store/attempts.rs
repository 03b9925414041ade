//! Attempts, written with every change of their payment: inside the same statement on
//! PostgreSQL (a part of the change's `WITH`), inside the same transaction otherwise. What to
//! write comes from `crate::domain::AttemptWrite`; this module only says it in SQL.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, Value,
};

use super::entities::payment_attempt::{self, Column};
use super::{ReadAs, Store, StoreResult, sql::Sql};
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

/// Writes the statement of `write` to `row` into `p`. With `guarded`, only an attempt in one of
/// `write.from_statuses()` changes.
pub(super) fn write_sql(
    p: &mut Sql,
    write: &AttemptWrite,
    row: &AttemptRow<'_>,
    guarded: bool,
    now: DateTime<Utc>,
) {
    let sql = match write {
        AttemptWrite::Start {
            kind,
            payment_key,
            billing_key_id,
            at,
        } => {
            let id = p.param(AttemptId::new().to_string());
            let (payment_id, number, from) = locate(row, p);
            let kind = p.param(kind.as_str());
            let key = p.param(payment_key.as_ref().map(PaymentKey::to_string));
            let billing = p.param(billing_key_id.map(|id| id.to_string()));
            let status = p.param(AttemptStatus::InProgress.as_str());
            let at = p.param(*at);
            let updated = p.param(now);
            format!(
                "INSERT INTO payment_attempts (id, payment_id, number, kind, payment_key, \
                 billing_key_id, status, toss_sends, started_at, updated_at) \
                 SELECT {id}, {payment_id}, {number}, {kind}, {key}, {billing}, {status}, 1, \
                 {at}, {updated}{from}"
            )
        }
        AttemptWrite::Send | AttemptWrite::Settle(_) => {
            let mut sets = vec![format!("updated_at = {}", p.param(now))];
            let mut set = |column: &str, value: Value| {
                sets.push(format!("{column} = {}", p.param(value)));
            };
            match write {
                AttemptWrite::Send => {
                    sets.push("toss_sends = payment_attempts.toss_sends + 1".to_owned());
                }
                AttemptWrite::Settle(settled) => {
                    set("status", settled.status.as_str().into());
                    if let Some(key) = &settled.payment_key {
                        set("payment_key", key.to_string().into());
                    }
                    if let Some(method) = &settled.method {
                        set("method", method.clone().into());
                    }
                    if let Some(account) = &settled.virtual_account {
                        set("va_bank_code", account.bank_code.clone().into());
                        set("va_account_number", account.account_number.clone().into());
                        set("va_customer_name", account.customer_name.clone().into());
                        set("va_due_date", account.due_date.into());
                    }
                    let failure = settled.failure.as_ref();
                    set("failure_code", failure.map(|f| f.code.clone()).into());
                    set("failure_message", failure.map(|f| f.message.clone()).into());
                    set(
                        "failure_retryable",
                        failure.and_then(|f| f.retryable).into(),
                    );
                    if settled.status.is_final() {
                        set("finished_at", now.into());
                    }
                }
                AttemptWrite::Start { .. } => {}
            }
            let (payment_id, number, from) = locate(row, p);
            format!(
                "UPDATE payment_attempts SET {}{from} WHERE payment_attempts.payment_id = \
                 {payment_id} AND payment_attempts.number = {number}{}",
                sets.join(", "),
                guard(write, guarded)
            )
        }
    };
    p.push(&sql);
}

/// The attempt's payment id and number as SQL, and the clause that brings in the `WITH` part
/// they come from (` FROM changed`) when they do.
fn locate(row: &AttemptRow<'_>, p: &mut Sql) -> (String, String, String) {
    match row {
        AttemptRow::Latest { cte } => (
            format!("{cte}.id"),
            format!("{cte}.confirm_attempt"),
            format!(" FROM {cte}"),
        ),
        AttemptRow::Known { payment_id, number } => {
            (p.param(payment_id.clone()), p.param(*number), String::new())
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
    let row = AttemptRow::Known {
        payment_id: payment_id.to_string(),
        number,
    };
    let mut sql = Sql::new(conn.get_database_backend());
    write_sql(&mut sql, write, &row, guarded, now);
    conn.execute_raw(sql.into_statement()).await?;
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
        status: Set(settled.status.as_str().to_owned()),
        method: Set(settled.method.clone()),
        va_bank_code: Set(account.map(|a| a.bank_code.clone())),
        va_account_number: Set(account.map(|a| a.account_number.clone())),
        va_customer_name: Set(account.and_then(|a| a.customer_name.clone())),
        va_due_date: Set(account.and_then(|a| a.due_date)),
        // Not sent by us: Toss has it from elsewhere (another instance's lost claim, a
        // confirm made outside the service).
        toss_sends: Set(0),
        started_at: Set(now),
        finished_at: Set(settled.status.is_final().then_some(now)),
        updated_at: Set(now),
        // No billing key, no failure: those columns stay NULL.
        ..Default::default()
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
            .all_as(&self.db)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Failure;
    use sea_orm::DbBackend;

    /// `write` to `row` as a statement with `bound` values before it.
    fn written(
        write: &AttemptWrite,
        row: &AttemptRow<'_>,
        backend: DbBackend,
        bound: i32,
        now: DateTime<Utc>,
    ) -> (String, Vec<Value>) {
        let mut sql = Sql::new(backend);
        for n in 0..bound {
            sql.param(n);
        }
        write_sql(&mut sql, write, row, true, now);
        (sql.text, sql.values.split_off(bound as usize))
    }

    #[test]
    fn a_settle_in_a_with_part_names_the_latest_attempt_of_the_changed_row() {
        let write = AttemptWrite::Settle(Settled {
            status: AttemptStatus::Failed,
            payment_key: None,
            method: None,
            virtual_account: None,
            failure: Some(Failure::new("REJECT_CARD_PAYMENT", "declined")),
        });
        let (sql, values) = written(
            &write,
            &AttemptRow::Latest { cte: "changed" },
            DbBackend::Postgres,
            6,
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
        let (sql, values) = written(
            &AttemptWrite::Send,
            &AttemptRow::Known {
                payment_id: "p".into(),
                number: 3,
            },
            DbBackend::Sqlite,
            0,
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
        let (sql, _) = written(
            &AttemptWrite::of_update(&crate::domain::PaymentUpdate::Release { failure: None })
                .unwrap(),
            &AttemptRow::Latest { cte: "changed" },
            DbBackend::Postgres,
            0,
            Utc::now(),
        );
        assert!(sql.starts_with("UPDATE payment_attempts SET"), "{sql}");
        assert!(
            sql.contains("status = $2") && sql.contains("finished_at"),
            "{sql}"
        );
    }
}
