//! One statement instead of a transaction of several, on PostgreSQL: a data-modifying `WITH`
//! runs its parts as one statement, so they commit together in one round trip.

use sea_orm::sea_query::{PostgresQueryBuilder, UpdateStatement};
use sea_orm::{ActiveModelTrait, ActiveValue, EntityName, EntityTrait, Iden, Iterable, Value};

/// The columns a model sets, quoted and comma-separated, with their values in the same order.
fn set_columns<A: ActiveModelTrait>(model: A) -> (String, Vec<Value>) {
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for column in <A::Entity as EntityTrait>::Column::iter() {
        if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = model.get(column) {
            columns.push(format!("\"{}\"", column.to_string()));
            values.push(value);
        }
    }
    (columns.join(", "), values)
}

/// `$first, $first+1, …`: `count` parameters numbered after those already in the statement.
fn params(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO <table> (<columns the model sets>) SELECT <their values> [FROM from]
/// [WHERE filter]`, its parameters numbered from `first`: a row inserted once per row of `from`
/// (a `WITH` part), or once if `filter` holds.
pub(super) fn insert_select<A: ActiveModelTrait>(
    model: A,
    from: Option<&str>,
    filter: Option<&str>,
    first: usize,
) -> (String, Vec<Value>) {
    let table = <A::Entity as Default>::default().table_name().to_owned();
    let (columns, values) = set_columns(model);
    let mut sql = format!(
        "INSERT INTO \"{table}\" ({columns}) SELECT {}",
        params(first, values.len())
    );
    if let Some(from) = from {
        sql.push_str(&format!(" FROM {from}"));
    }
    if let Some(filter) = filter {
        sql.push_str(&format!(" WHERE {filter}"));
    }
    (sql, values)
}

/// `INSERT INTO <table> (<columns>) SELECT … FROM from`, one row per row of `from`, whose values
/// are `then`'s where `when` holds and `otherwise`'s elsewhere (a `CASE` only for the columns
/// where the two differ). Both models must set the same columns; parameters from `first`, and
/// `when` may use those numbered before it.
pub(super) fn insert_select_either<A: ActiveModelTrait>(
    when: &str,
    then: A,
    otherwise: A,
    from: &str,
    first: usize,
) -> (String, Vec<Value>) {
    let table = <A::Entity as Default>::default().table_name().to_owned();
    let mut columns = Vec::new();
    let mut select = Vec::new();
    let mut values = Vec::new();
    for column in <A::Entity as EntityTrait>::Column::iter() {
        let value = |model: &A| match model.get(column) {
            ActiveValue::Set(value) | ActiveValue::Unchanged(value) => Some(value),
            ActiveValue::NotSet => None,
        };
        let (Some(yes), Some(no)) = (value(&then), value(&otherwise)) else {
            continue;
        };
        columns.push(format!("\"{}\"", column.to_string()));
        let mut param = |value: Value| {
            values.push(value);
            format!("${}", first + values.len() - 1)
        };
        if yes == no {
            select.push(param(yes));
        } else {
            let (yes, no) = (param(yes), param(no));
            select.push(format!("CASE WHEN {when} THEN {yes} ELSE {no} END"));
        }
    }
    let sql = format!(
        "INSERT INTO \"{table}\" ({}) SELECT {} FROM {from}",
        columns.join(", "),
        select.join(", ")
    );
    (sql, values)
}

/// `"column" = $n, …` for the columns a model sets but `skip`, its parameters from `first`: the
/// `SET` of an `UPDATE` written by hand.
pub(super) fn assignments<A: ActiveModelTrait>(
    model: A,
    skip: &[&str],
    first: usize,
) -> (String, Vec<Value>) {
    let mut sets = Vec::new();
    let mut values = Vec::new();
    for column in <A::Entity as EntityTrait>::Column::iter() {
        let name = column.to_string();
        if skip.contains(&name.as_str()) {
            continue;
        }
        if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = model.get(column) {
            values.push(value);
            sets.push(format!("\"{name}\" = ${}", first + values.len() - 1));
        }
    }
    (sets.join(", "), values)
}

/// An `UPDATE … RETURNING *` to use as a `WITH` part, and its parameters.
pub(super) fn update_returning(mut update: UpdateStatement) -> (String, Vec<Value>) {
    update.returning_all();
    let (sql, values) = update.build(PostgresQueryBuilder);
    (sql, values.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entities::event;
    use sea_orm::ActiveValue::{NotSet, Set};

    #[test]
    fn insert_select_names_only_the_columns_set() {
        let model = event::ActiveModel {
            seq: NotSet,
            event_id: Set("e1".to_owned()),
            event_type: Set("payment.completed".to_owned()),
            ..Default::default()
        };
        let (sql, values) = insert_select(model, Some("changed"), Some("x IS NOT NULL"), 3);
        assert_eq!(
            sql,
            "INSERT INTO \"events\" (\"event_id\", \"event_type\") SELECT $3, $4 \
             FROM changed WHERE x IS NOT NULL"
        );
        assert_eq!(values.len(), 2);
    }

    #[test]
    fn insert_select_either_chooses_only_where_the_models_differ() {
        let model = |kind: &str| event::ActiveModel {
            seq: NotSet,
            event_id: Set("e1".to_owned()),
            event_type: Set(kind.to_owned()),
            ..Default::default()
        };
        let (sql, values) = insert_select_either("r.x = $1", model("a"), model("b"), "r", 2);
        assert_eq!(
            sql,
            "INSERT INTO \"events\" (\"event_id\", \"event_type\") SELECT $2, \
             CASE WHEN r.x = $1 THEN $3 ELSE $4 END FROM r"
        );
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn assignments_skip_what_they_are_told() {
        let model = event::ActiveModel {
            seq: NotSet,
            event_id: Set("e1".to_owned()),
            event_type: Set("payment.completed".to_owned()),
            ..Default::default()
        };
        let (sql, values) = assignments(model, &["event_id"], 4);
        assert_eq!(sql, "\"event_type\" = $4");
        assert_eq!(values.len(), 1);
    }
}
