//! Who made each change: the actor of every event, who asked for each refund, each cancel and
//! each review. Rows written before this migration get the best that can be inferred: an event
//! `system` (nothing recorded who caused it), a refund `api_key` (only API keys could ask for
//! one) or `toss` (found in Toss's record), a cancel `api_key`, a review `api_key` named after
//! the position its `reviewer` recorded (`api-key-2` becomes `key-2`, the name `API_KEYS` keys
//! now have) or `system` (a reconciliation run's flag). Names unknown stay null.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Events {
    Table,
    ActorType,
    ActorName,
}

#[derive(DeriveIden, Clone, Copy)]
enum Refunds {
    Table,
    RequestedByType,
    RequestedByName,
}

#[derive(DeriveIden, Clone, Copy)]
enum Reviews {
    Table,
    RequestedByType,
    RequestedByName,
}

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    CancelRequestedByType,
    CancelRequestedByName,
}

fn kind(column: impl IntoIden, default: &str) -> ColumnDef {
    ColumnDef::new(column)
        .string_len(16)
        .not_null()
        .default(default)
        .to_owned()
}

fn name(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).text().null().to_owned()
}

async fn add(
    manager: &SchemaManager<'_>,
    table: impl IntoIden + Copy,
    columns: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    // SQLite adds one column per ALTER TABLE.
    for mut column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add(
            manager,
            Events::Table,
            vec![kind(Events::ActorType, "system"), name(Events::ActorName)],
        )
        .await?;
        add(
            manager,
            Refunds::Table,
            vec![
                kind(Refunds::RequestedByType, "api_key"),
                name(Refunds::RequestedByName),
            ],
        )
        .await?;
        add(
            manager,
            Reviews::Table,
            vec![
                kind(Reviews::RequestedByType, "api_key"),
                name(Reviews::RequestedByName),
            ],
        )
        .await?;
        // Null while no cancel was asked for.
        add(
            manager,
            Payments::Table,
            vec![
                ColumnDef::new(Payments::CancelRequestedByType)
                    .string_len(16)
                    .null()
                    .to_owned(),
                name(Payments::CancelRequestedByName),
            ],
        )
        .await?;
        let db = manager.get_connection();
        for statement in [
            "UPDATE refunds SET requested_by_type = 'toss' WHERE origin = 'PG'",
            "UPDATE reviews SET requested_by_type = 'system' WHERE reviewer = 'system'",
            "UPDATE reviews SET requested_by_name = 'key-' || substr(reviewer, 9) \
             WHERE reviewer LIKE 'api-key-%'",
            "UPDATE payments SET cancel_requested_by_type = 'api_key' \
             WHERE cancel_reason IS NOT NULL",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Columns are only added; nothing reads them after a downgrade.
        Ok(())
    }
}
