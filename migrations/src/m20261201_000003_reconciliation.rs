//! Reconciliation against Toss's books: the approval's `transactionKey` and the sale's
//! settlement on each payment, the runs (one per KST date) and their discrepancies, the staging
//! tables a run streams Toss's pages into, the daily schedule's claims, and the review flags a
//! run has raised (so a re-run raises none twice).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    PaymentKey,
    CompletedAt,
    PgApprovalKey,
    SettlementFeeKrw,
    SettlementPayoutKrw,
    SettlementSoldDate,
    SettlementPaidOutDate,
}

#[derive(DeriveIden, Clone, Copy)]
enum Refunds {
    Table,
    RefundedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ReconciliationRuns {
    Table,
    Id,
    Date,
    Status,
    Trigger,
    PassId,
    StartedAt,
    FinishedAt,
    LeaseUntil,
    Summary,
    Error,
}

#[derive(DeriveIden, Clone, Copy)]
enum ReconciliationDiscrepancies {
    Table,
    Id,
    RunId,
    Kind,
    OrderId,
    PaymentKey,
    TransactionKey,
    PaymentId,
    OursStatus,
    OursAmountKrw,
    TheirsStatus,
    TheirsAmountKrw,
}

#[derive(DeriveIden, Clone, Copy)]
enum ReconciliationTransactions {
    Table,
    PassId,
    TransactionKey,
    PaymentKey,
    OrderId,
    Kind,
    Status,
    AmountKrw,
    TransactionAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ReconciliationSettlements {
    Table,
    PassId,
    RowNo,
    PaymentKey,
    TransactionKey,
    OrderId,
    Kind,
    AmountKrw,
    FeeKrw,
    PayoutKrw,
    SoldDate,
    PaidOutDate,
}

#[derive(DeriveIden, Clone, Copy)]
enum ReconciliationSchedule {
    Table,
    Date,
    ClaimedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ReconciliationFlags {
    Table,
    Date,
    FlagKey,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let columns = [
            ColumnDef::new(Payments::PgApprovalKey)
                .string_len(200)
                .null()
                .to_owned(),
            ColumnDef::new(Payments::SettlementFeeKrw)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::SettlementPayoutKrw)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::SettlementSoldDate)
                .string_len(10)
                .null()
                .to_owned(),
            ColumnDef::new(Payments::SettlementPaidOutDate)
                .string_len(10)
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // A run joins Toss's transactions to our payments by paymentKey.
        index(
            manager,
            "idx_payments_payment_key",
            Payments::Table,
            &[Payments::PaymentKey],
            false,
        )
        .await?;
        // ... and looks for our payments and refunds completed on the day.
        index(
            manager,
            "idx_payments_completed",
            Payments::Table,
            &[Payments::CompletedAt],
            false,
        )
        .await?;
        index(
            manager,
            "idx_refunds_refunded",
            Refunds::Table,
            &[Refunds::RefundedAt],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReconciliationRuns::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ReconciliationRuns::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    // One run per KST date: a re-run replaces its result.
                    .col(
                        ColumnDef::new(ReconciliationRuns::Date)
                            .string_len(10)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationRuns::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationRuns::Trigger)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationRuns::PassId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationRuns::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationRuns::FinishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationRuns::LeaseUntil)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ReconciliationRuns::Summary).text().null())
                    .col(ColumnDef::new(ReconciliationRuns::Error).text().null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReconciliationDiscrepancies::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::RunId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::Kind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::OrderId)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::PaymentKey)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::TransactionKey)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::PaymentId)
                            .string_len(36)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::OursStatus)
                            .string_len(32)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::OursAmountKrw)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::TheirsStatus)
                            .string_len(32)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationDiscrepancies::TheirsAmountKrw)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_reconciliation_discrepancies_run",
            ReconciliationDiscrepancies::Table,
            &[ReconciliationDiscrepancies::RunId],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReconciliationTransactions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ReconciliationTransactions::PassId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationTransactions::TransactionKey)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationTransactions::PaymentKey)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationTransactions::OrderId)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationTransactions::Kind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationTransactions::Status)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationTransactions::AmountKrw)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationTransactions::TransactionAt)
                            .text()
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ReconciliationTransactions::PassId)
                            .col(ReconciliationTransactions::TransactionKey),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_reconciliation_transactions_key",
            ReconciliationTransactions::Table,
            &[
                ReconciliationTransactions::PassId,
                ReconciliationTransactions::PaymentKey,
            ],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReconciliationSettlements::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ReconciliationSettlements::PassId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::RowNo)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::PaymentKey)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::TransactionKey)
                            .string_len(200)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::OrderId)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::Kind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::AmountKrw)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::FeeKrw)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::PayoutKrw)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::SoldDate)
                            .string_len(10)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSettlements::PaidOutDate)
                            .string_len(10)
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ReconciliationSettlements::PassId)
                            .col(ReconciliationSettlements::RowNo),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_reconciliation_settlements_key",
            ReconciliationSettlements::Table,
            // With row_no, a payment's first row is found in the index: SQLite otherwise
            // walks the primary key for `ORDER BY row_no` once per payment.
            &[
                ReconciliationSettlements::PassId,
                ReconciliationSettlements::PaymentKey,
                ReconciliationSettlements::RowNo,
            ],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReconciliationSchedule::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ReconciliationSchedule::Date)
                            .string_len(10)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationSchedule::ClaimedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReconciliationFlags::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ReconciliationFlags::Date)
                            .string_len(10)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationFlags::FlagKey)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconciliationFlags::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ReconciliationFlags::Date)
                            .col(ReconciliationFlags::FlagKey),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ReconciliationFlags::Table.into_iden(),
            ReconciliationSchedule::Table.into_iden(),
            ReconciliationSettlements::Table.into_iden(),
            ReconciliationTransactions::Table.into_iden(),
            ReconciliationDiscrepancies::Table.into_iden(),
            ReconciliationRuns::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for (name, table) in [
            ("idx_refunds_refunded", Refunds::Table.into_iden()),
            ("idx_payments_completed", Payments::Table.into_iden()),
            ("idx_payments_payment_key", Payments::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        for column in [
            Payments::SettlementPaidOutDate,
            Payments::SettlementSoldDate,
            Payments::SettlementPayoutKrw,
            Payments::SettlementFeeKrw,
            Payments::PgApprovalKey,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

async fn index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: &[C],
    unique: bool,
) -> Result<(), DbErr> {
    let mut statement = Index::create();
    statement.name(name).table(table).if_not_exists();
    if unique {
        statement.unique();
    }
    for column in columns {
        statement.col(*column);
    }
    manager.create_index(statement.to_owned()).await
}
