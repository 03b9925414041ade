//! Money engine v2: resends of confirms and cancels, one cancel at a time per payment, refunds
//! made outside the service, one failure annotation per attempt, and the review history.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    ConfirmSends,
    AnnotatedAttempt,
    CancelSlot,
    CancelSlotUntil,
}

#[derive(DeriveIden, Clone, Copy)]
enum Refunds {
    Table,
    Origin,
    Sends,
    LastSentAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Reviews {
    Table,
    Id,
    PaymentId,
    Action,
    Note,
    Reviewer,
    Outcome,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        let payment_columns = [
            // Sends of the confirm of the attempt in flight; each resend has a fresh Toss key.
            ColumnDef::new(Payments::ConfirmSends)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            // The attempt whose failure the fail redirect recorded (once per attempt).
            ColumnDef::new(Payments::AnnotatedAttempt)
                .integer()
                .null()
                .to_owned(),
            // The refund whose cancel is at Toss now: Toss takes one cancel per payment at a time.
            ColumnDef::new(Payments::CancelSlot)
                .string_len(36)
                .null()
                .to_owned(),
            ColumnDef::new(Payments::CancelSlotUntil)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ];
        for mut column in payment_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        let refund_columns = [
            // SERVICE: made here; PG: found in Toss's record (dashboard cancels).
            ColumnDef::new(Refunds::Origin)
                .string_len(16)
                .not_null()
                .default("SERVICE")
                .to_owned(),
            ColumnDef::new(Refunds::Sends)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Refunds::LastSentAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ];
        for mut column in refund_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Refunds::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Refunds already completed by v1 were all sent once.
        manager
            .get_connection()
            .execute_unprepared("UPDATE refunds SET sends = 1 WHERE pg_cancel_key IS NOT NULL")
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Reviews::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Reviews::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Reviews::PaymentId).string_len(36).not_null())
                    .col(ColumnDef::new(Reviews::Action).string_len(16).not_null())
                    .col(ColumnDef::new(Reviews::Note).text().not_null())
                    .col(ColumnDef::new(Reviews::Reviewer).string_len(64).not_null())
                    .col(ColumnDef::new(Reviews::Outcome).text().not_null())
                    .col(
                        ColumnDef::new(Reviews::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_reviews_payment")
                    .table(Reviews::Table)
                    .col(Reviews::PaymentId)
                    .col(Reviews::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Reviews::Table).to_owned())
            .await
    }
}
