//! One statement instead of a transaction of several, on PostgreSQL: a data-modifying `WITH`
//! runs its parts as one statement, so they commit together in one round trip.

use sea_orm::sea_query::{PostgresQueryBuilder, UpdateStatement};
use sea_orm::{ActiveModelTrait, ActiveValue, EntityTrait, Iden, Iterable, Value};

/// The columns a model sets, quoted and comma-separated, with their values in the same order.
pub(super) fn set_columns<A: ActiveModelTrait>(model: A) -> (String, Vec<Value>) {
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
pub(super) fn params(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    fn set_columns_skips_columns_not_set() {
        let model = event::ActiveModel {
            seq: NotSet,
            event_id: Set("e1".to_owned()),
            event_type: Set("payment.completed".to_owned()),
            ..Default::default()
        };
        let (columns, values) = set_columns(model);
        assert_eq!(columns, "\"event_id\", \"event_type\"");
        assert_eq!(values.len(), 2);
        assert_eq!(params(3, 2), "$3, $4");
    }
}
