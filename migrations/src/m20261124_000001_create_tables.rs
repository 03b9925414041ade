use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    Id,
    UserId,
    OrderId,
    OrderName,
    SubscriptionId,
    PaymentType,
    PaymentMethod,
    AmountKrw,
    RefundedAmountKrw,
    RefundReservedKrw,
    Currency,
    Status,
    PgProvider,
    PgTransactionId,
    PaymentKey,
    ConfirmAttempt,
    ConfirmStartedAt,
    PgSecret,
    FailureCode,
    FailureMessage,
    NeedsReview,
    ReviewReason,
    ReconcileAttempts,
    NextReconcileAt,
    CreatedAt,
    UpdatedAt,
    CompletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Refunds {
    Table,
    Id,
    PaymentId,
    AmountKrw,
    Reason,
    Status,
    PgCancelKey,
    FailureCode,
    FailureMessage,
    ReconcileAttempts,
    NextReconcileAt,
    CreatedAt,
    UpdatedAt,
    RefundedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Events {
    Table,
    Seq,
    EventId,
    EventType,
    Version,
    OccurredAt,
    Source,
    UserId,
    PaymentId,
    Payload,
    PublishedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyKeys {
    Table,
    Key,
    RequestHash,
    State,
    ResponseStatus,
    ResponseBody,
    ResponseContentType,
    LockedUntil,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Payments::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Payments::UserId).string_len(64).not_null())
                    .col(ColumnDef::new(Payments::OrderId).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(Payments::OrderName).string_len(100).null())
                    .col(ColumnDef::new(Payments::SubscriptionId).string_len(128).null())
                    .col(ColumnDef::new(Payments::PaymentType).string_len(16).not_null())
                    .col(ColumnDef::new(Payments::PaymentMethod).string_len(64).not_null())
                    .col(ColumnDef::new(Payments::AmountKrw).big_integer().not_null())
                    .col(ColumnDef::new(Payments::RefundedAmountKrw).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Payments::RefundReservedKrw).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Payments::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Payments::Status).string_len(20).not_null())
                    .col(ColumnDef::new(Payments::PgProvider).string_len(32).null())
                    .col(ColumnDef::new(Payments::PgTransactionId).string_len(200).null())
                    .col(ColumnDef::new(Payments::PaymentKey).string_len(200).null())
                    .col(ColumnDef::new(Payments::ConfirmAttempt).integer().not_null().default(0))
                    .col(ColumnDef::new(Payments::ConfirmStartedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Payments::PgSecret).string_len(64).null())
                    .col(ColumnDef::new(Payments::FailureCode).string_len(64).null())
                    .col(ColumnDef::new(Payments::FailureMessage).text().null())
                    .col(ColumnDef::new(Payments::NeedsReview).boolean().not_null().default(false))
                    .col(ColumnDef::new(Payments::ReviewReason).text().null())
                    .col(ColumnDef::new(Payments::ReconcileAttempts).integer().not_null().default(0))
                    .col(ColumnDef::new(Payments::NextReconcileAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Payments::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Payments::UpdatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Payments::CompletedAt).timestamp_with_time_zone().null())
                    .check(Expr::col(Payments::AmountKrw).gt(0))
                    .check(Expr::col(Payments::RefundedAmountKrw).gte(0))
                    .check(Expr::col(Payments::RefundReservedKrw).gte(0))
                    .check(
                        Expr::col(Payments::RefundedAmountKrw)
                            .add(Expr::col(Payments::RefundReservedKrw))
                            .lte(Expr::col(Payments::AmountKrw)),
                    )
                    .to_owned(),
            )
            .await?;
        // GET /payments?user_id= lists newest first; without user_id it scans by created_at.
        index(manager, "idx_payments_user_created", Payments::Table, &[Payments::UserId, Payments::CreatedAt]).await?;
        index(manager, "idx_payments_created", Payments::Table, &[Payments::CreatedAt]).await?;
        // The reconciler looks for unsettled payments that are due.
        index(manager, "idx_payments_status_reconcile", Payments::Table, &[Payments::Status, Payments::NextReconcileAt]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Refunds::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Refunds::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Refunds::PaymentId).string_len(36).not_null())
                    .col(ColumnDef::new(Refunds::AmountKrw).big_integer().not_null())
                    .col(ColumnDef::new(Refunds::Reason).string_len(200).not_null())
                    .col(ColumnDef::new(Refunds::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Refunds::PgCancelKey).string_len(64).null().unique_key())
                    .col(ColumnDef::new(Refunds::FailureCode).string_len(64).null())
                    .col(ColumnDef::new(Refunds::FailureMessage).text().null())
                    .col(ColumnDef::new(Refunds::ReconcileAttempts).integer().not_null().default(0))
                    .col(ColumnDef::new(Refunds::NextReconcileAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Refunds::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Refunds::UpdatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Refunds::RefundedAt).timestamp_with_time_zone().null())
                    .check(Expr::col(Refunds::AmountKrw).gt(0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refunds_payment")
                            .from(Refunds::Table, Refunds::PaymentId)
                            .to(Payments::Table, Payments::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_refunds_payment_created", Refunds::Table, &[Refunds::PaymentId, Refunds::CreatedAt]).await?;
        index(manager, "idx_refunds_status_reconcile", Refunds::Table, &[Refunds::Status, Refunds::NextReconcileAt]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Events::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Events::EventId).string_len(36).not_null().unique_key())
                    .col(ColumnDef::new(Events::EventType).string_len(32).not_null())
                    .col(ColumnDef::new(Events::Version).string_len(8).not_null())
                    .col(ColumnDef::new(Events::OccurredAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Events::Source).string_len(64).not_null())
                    .col(ColumnDef::new(Events::UserId).string_len(64).not_null())
                    .col(ColumnDef::new(Events::PaymentId).string_len(36).not_null())
                    .col(ColumnDef::new(Events::Payload).text().not_null())
                    .col(ColumnDef::new(Events::PublishedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_events_payment", Events::Table, &[Events::PaymentId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(IdempotencyKeys::Key).string_len(255).not_null().primary_key())
                    .col(ColumnDef::new(IdempotencyKeys::RequestHash).string_len(64).not_null())
                    .col(ColumnDef::new(IdempotencyKeys::State).string_len(16).not_null())
                    .col(ColumnDef::new(IdempotencyKeys::ResponseStatus).integer().null())
                    .col(ColumnDef::new(IdempotencyKeys::ResponseBody).text().null())
                    .col(ColumnDef::new(IdempotencyKeys::ResponseContentType).string_len(128).null())
                    .col(ColumnDef::new(IdempotencyKeys::LockedUntil).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::ExpiresAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_idempotency_expires", IdempotencyKeys::Table, &[IdempotencyKeys::ExpiresAt]).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Events::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Refunds::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Payments::Table).to_owned()).await?;
        Ok(())
    }
}

async fn index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: &[C],
) -> Result<(), DbErr> {
    let mut statement = Index::create();
    statement.name(name).table(table).if_not_exists();
    for column in columns {
        statement.col(*column);
    }
    manager.create_index(statement.to_owned()).await
}
