//! The database, every row of every table, and the differences between two snapshots.

use std::collections::BTreeMap;
use std::fmt;

use reqwest::StatusCode;
use sea_orm::{DatabaseConnection, FromQueryResult, JsonValue, Statement};
use serde_json::Value;

use super::request::shown;

/// (table, ordering key)
const TABLES: &[(&str, &str)] = &[
    ("payments", "id"),
    ("refunds", "id"),
    ("events", "seq"),
    ("webhook_deliveries", "transmission_id"),
    ("idempotency_keys", "key"),
];

pub struct Snapshot(Vec<(&'static str, &'static str, Vec<Value>)>);

pub struct Change {
    pub table: &'static str,
    before: Option<Value>,
    after: Option<Value>,
}

impl Change {
    pub(super) fn added_event_type(&self) -> Option<&str> {
        match (&self.before, &self.after) {
            (None, Some(row)) => row["event_type"].as_str(),
            _ => None,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |r: &Option<Value>| r.as_ref().map_or("(none)".to_owned(), Value::to_string);
        write!(
            f,
            "  {}: {} -> {}",
            self.table,
            shown(row(&self.before).as_bytes()),
            shown(row(&self.after).as_bytes())
        )
    }
}

impl Snapshot {
    pub async fn take(db: &DatabaseConnection) -> Self {
        let backend = db.get_database_backend();
        let mut tables = Vec::new();
        for (table, key) in TABLES {
            let rows = JsonValue::find_by_statement(Statement::from_string(
                backend,
                format!("SELECT * FROM {table} ORDER BY {key}"),
            ))
            .all(db)
            .await
            .unwrap_or_else(|e| panic!("reading {table}: {e}"));
            tables.push((*table, *key, rows));
        }
        Self(tables)
    }

    /// Rows added, removed or changed. `remembered`: the status of a POST with an
    /// `Idempotency-Key`, which may add the one row that remembers that answer.
    pub fn diff(&self, after: &Snapshot, remembered: Option<StatusCode>) -> Vec<Change> {
        let mut changes = Vec::new();
        for ((table, key, before_rows), (_, _, after_rows)) in self.0.iter().zip(&after.0) {
            let by_key = |rows: &Vec<Value>| -> BTreeMap<String, Value> {
                rows.iter()
                    .map(|row| (row[*key].to_string(), row.clone()))
                    .collect()
            };
            let (before, after) = (by_key(before_rows), by_key(after_rows));
            for (k, row) in &before {
                if after.get(k) != Some(row) {
                    changes.push(Change {
                        table,
                        before: Some(row.clone()),
                        after: after.get(k).cloned(),
                    });
                }
            }
            let mut added: Vec<&Value> = after
                .iter()
                .filter(|(k, _)| !before.contains_key(*k))
                .map(|(_, row)| row)
                .collect();
            if *table == "idempotency_keys"
                && let Some(status) = remembered
                && added.len() == 1
                && added[0]["state"] != "in_flight"
                && added[0]["response_status"].as_u64() == Some(status.as_u16().into())
            {
                added.clear();
            }
            changes.extend(added.into_iter().map(|row| Change {
                table,
                before: None,
                after: Some(row.clone()),
            }));
        }
        changes
    }
}
