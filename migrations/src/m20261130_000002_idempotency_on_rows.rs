use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    IdempotencyKey,
}

#[derive(DeriveIden, Clone, Copy)]
enum Refunds {
    Table,
    PaymentId,
    IdempotencyKey,
}

const REFUNDS_KEY_INDEX: &str = "idx_refunds_payment_idempotency_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The caller's scoped Idempotency-Key (a digest) of the request that created the row:
        // a retry whose first answer was lost finds what it made instead of making it again.
        // SQLite takes one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Payments::Table)
                    .add_column(ColumnDef::new(Payments::IdempotencyKey).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Refunds::Table)
                    .add_column(ColumnDef::new(Refunds::IdempotencyKey).text().null())
                    .to_owned(),
            )
            .await?;
        // One refund per key and payment; rows without a key (NULL) are never equal.
        manager
            .create_index(
                Index::create()
                    .name(REFUNDS_KEY_INDEX)
                    .table(Refunds::Table)
                    .col(Refunds::PaymentId)
                    .col(Refunds::IdempotencyKey)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(REFUNDS_KEY_INDEX)
                    .table(Refunds::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Refunds::Table)
                    .drop_column(Refunds::IdempotencyKey)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Payments::Table)
                    .drop_column(Payments::IdempotencyKey)
                    .to_owned(),
            )
            .await
    }
}
