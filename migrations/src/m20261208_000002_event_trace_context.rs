//! The trace context of each event: the W3C `traceparent` of the span that wrote it, which the
//! relay sends as the NATS header `traceparent`. Null for events written with traces off (and
//! for every event written before this migration).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    TraceContext,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    // "00-" + 32 + "-" + 16 + "-" + 2 hex digits; longer for a future version.
                    .add_column(ColumnDef::new(Events::TraceContext).string_len(128).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Only added; nothing reads it after a downgrade.
        Ok(())
    }
}
