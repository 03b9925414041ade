//! The one writer of SQL text for statements written by hand: a confirm's `payments`
//! statements (`payment_sql`), an attempt's write (`attempts`), and one statement instead of a
//! transaction of several, on PostgreSQL: a data-modifying `WITH` runs its parts as one
//! statement, so they commit together in one round trip.

use sea_orm::sea_query::{PostgresQueryBuilder, UpdateStatement};
use sea_orm::{
    ActiveModelTrait, ActiveValue, DbBackend, EntityName, EntityTrait, IdenStatic, Iterable,
    Statement, Value,
};

/// A statement being written: its text and its values in the order of their placeholders
/// (`$n` on PostgreSQL, numbered from one, `?` on SQLite).
pub(super) struct Sql {
    backend: DbBackend,
    pub(super) text: String,
    pub(super) values: Vec<Value>,
}

impl Sql {
    pub(super) fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::with_capacity(1024),
            values: Vec::with_capacity(24),
        }
    }

    /// An `UPDATE … RETURNING *` written by sea-query, to begin a PostgreSQL statement with.
    pub(super) fn update_returning(mut update: UpdateStatement) -> Self {
        update.returning_all();
        let (text, values) = update.build(PostgresQueryBuilder);
        Self {
            backend: DbBackend::Postgres,
            text,
            values: values.0,
        }
    }

    /// `WITH <name> AS (<the statement so far>)`: the statement becomes the first `WITH` part.
    pub(super) fn into_with(mut self, name: &str) -> Self {
        self.text.insert_str(0, &format!("WITH {name} AS ("));
        self.text.push(')');
        self
    }

    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// `"column"`.
    pub(super) fn column(&mut self, column: impl IdenStatic) -> &mut Self {
        self.text.push('"');
        self.text.push_str(column.as_str());
        self.text.push('"');
        self
    }

    /// A placeholder for `value`.
    pub(super) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        use std::fmt::Write;
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                let _ = write!(self.text, "${}", self.values.len());
            }
            _ => self.text.push('?'),
        }
        self
    }

    /// `value` bound now, its placeholder returned instead of written: for text the caller
    /// writes itself, in the order its values were bound.
    pub(super) fn param(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    /// ` AND "column" = <value>`: one more condition a row must meet.
    pub(super) fn and_eq(&mut self, column: impl IdenStatic, value: impl Into<Value>) -> &mut Self {
        self.push(" AND ").column(column).push(" = ").bind(value)
    }

    /// `INSERT INTO <table> (<columns the model sets>) SELECT <their values> [FROM from]
    /// [WHERE filter]`: a row inserted once per row of `from` (a `WITH` part), or once if
    /// `filter` holds.
    pub(super) fn insert_select<A: ActiveModelTrait>(
        &mut self,
        model: A,
        from: Option<&str>,
        filter: Option<&str>,
    ) -> &mut Self {
        let set = set_columns(&model);
        self.insert_into::<A>(set.iter().map(|(column, _)| *column));
        for (n, (_, value)) in set.into_iter().enumerate() {
            self.push(if n > 0 { ", " } else { "" }).bind(value);
        }
        if let Some(from) = from {
            self.push(" FROM ").push(from);
        }
        if let Some(filter) = filter {
            self.push(" WHERE ").push(filter);
        }
        self
    }

    /// `INSERT INTO <table> (<columns>) SELECT … FROM from`, one row per row of `from`, whose
    /// values are `then`'s where `when` holds and `otherwise`'s elsewhere (a `CASE` only for the
    /// columns where the two differ). Both models must set the same columns; `when` may use
    /// the parameters bound before.
    pub(super) fn insert_select_either<A: ActiveModelTrait>(
        &mut self,
        when: &str,
        then: A,
        otherwise: A,
        from: &str,
    ) -> &mut Self {
        let otherwise = set_columns(&otherwise);
        let both: Vec<_> = set_columns(&then)
            .into_iter()
            .filter_map(|(column, yes)| {
                let (_, no) = otherwise
                    .iter()
                    .find(|(other, _)| other.as_str() == column.as_str())?;
                Some((column, yes, no.clone()))
            })
            .collect();
        self.insert_into::<A>(both.iter().map(|(column, ..)| *column));
        for (n, (_, yes, no)) in both.into_iter().enumerate() {
            self.push(if n > 0 { ", " } else { "" });
            if yes == no {
                self.bind(yes);
            } else {
                let case = format!("CASE WHEN {when} THEN ");
                self.push(&case)
                    .bind(yes)
                    .push(" ELSE ")
                    .bind(no)
                    .push(" END");
            }
        }
        self.push(" FROM ").push(from)
    }

    /// `INSERT INTO "<table>" (<columns>) SELECT `.
    fn insert_into<A: ActiveModelTrait>(
        &mut self,
        columns: impl Iterator<Item = <A::Entity as EntityTrait>::Column>,
    ) {
        let table = <A::Entity as Default>::default().table_name().to_owned();
        self.push("INSERT INTO \"").push(&table).push("\" (");
        for (n, column) in columns.enumerate() {
            self.push(if n > 0 { ", " } else { "" }).column(column);
        }
        self.push(") SELECT ");
    }

    /// `"column" = <value>, …` for the columns a model sets but `skip`: the `SET` of an
    /// `UPDATE` written by hand.
    pub(super) fn assignments<A: ActiveModelTrait>(
        &mut self,
        model: A,
        skip: &[&str],
    ) -> &mut Self {
        let set = set_columns(&model)
            .into_iter()
            .filter(|(column, _)| !skip.contains(&column.as_str()));
        for (n, (column, value)) in set.enumerate() {
            self.push(if n > 0 { ", " } else { "" })
                .column(column)
                .push(" = ")
                .bind(value);
        }
        self
    }

    pub(super) fn into_statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

/// The columns a model sets, with their values, in the order of the entity's columns.
fn set_columns<A: ActiveModelTrait>(model: &A) -> Vec<(<A::Entity as EntityTrait>::Column, Value)> {
    <A::Entity as EntityTrait>::Column::iter()
        .filter_map(|column| match model.get(column) {
            ActiveValue::Set(value) | ActiveValue::Unchanged(value) => Some((column, value)),
            ActiveValue::NotSet => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entities::event;
    use sea_orm::ActiveValue::{NotSet, Set};

    fn model(kind: &str) -> event::ActiveModel {
        event::ActiveModel {
            seq: NotSet,
            event_id: Set("e1".to_owned()),
            event_type: Set(kind.to_owned()),
            ..Default::default()
        }
    }

    /// A statement with `bound` values already in it, and no text.
    fn after(bound: i32) -> Sql {
        let mut sql = Sql::new(DbBackend::Postgres);
        for n in 0..bound {
            sql.param(n);
        }
        sql
    }

    #[test]
    fn insert_select_names_only_the_columns_set() {
        let mut sql = after(2);
        sql.insert_select(
            model("payment.completed"),
            Some("changed"),
            Some("x IS NOT NULL"),
        );
        assert_eq!(
            sql.text,
            "INSERT INTO \"events\" (\"event_id\", \"event_type\") SELECT $3, $4 \
             FROM changed WHERE x IS NOT NULL"
        );
        assert_eq!(sql.values.len(), 4);
    }

    #[test]
    fn insert_select_either_chooses_only_where_the_models_differ() {
        let mut sql = after(1);
        sql.insert_select_either("r.x = $1", model("a"), model("b"), "r");
        assert_eq!(
            sql.text,
            "INSERT INTO \"events\" (\"event_id\", \"event_type\") SELECT $2, \
             CASE WHEN r.x = $1 THEN $3 ELSE $4 END FROM r"
        );
        assert_eq!(sql.values.len(), 4);
    }

    #[test]
    fn assignments_skip_what_they_are_told() {
        let mut sql = after(3);
        sql.assignments(model("payment.completed"), &["event_id"]);
        assert_eq!(sql.text, "\"event_type\" = $4");
        assert_eq!(sql.values.len(), 4);
    }

    #[test]
    fn placeholders_follow_the_backend() {
        let mut sql = Sql::new(DbBackend::Sqlite);
        sql.column(event::Column::EventId).push(" = ").bind("e");
        let seq = sql.param(1);
        sql.push(" AND ").push(&seq);
        assert_eq!(sql.text, "\"event_id\" = ? AND ?");
        assert_eq!(sql.values.len(), 2);
        assert_eq!(after(2).param(0), "$3");
    }
}
