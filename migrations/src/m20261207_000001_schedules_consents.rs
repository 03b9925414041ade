//! Version 3: scheduled charges with retries (one schedule per payment) and the buyers'
//! consents to a subscription's amount (전자상거래법 §13⑥).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum BillingConsents {
    Table,
    ConsentId,
    UserId,
    SubscriptionId,
    MaxAmountKrw,
    ConsentedAt,
    Evidence,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum PaymentSchedules {
    Table,
    PaymentId,
    BillingKeyId,
    ChargeAt,
    NextAttemptAt,
    AttemptsMade,
    RetryAfterSeconds,
    Status,
    LeaseUntil,
    PaymentAttempt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BillingConsents::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(BillingConsents::ConsentId)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(BillingConsents::UserId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BillingConsents::SubscriptionId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BillingConsents::MaxAmountKrw)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BillingConsents::ConsentedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(BillingConsents::Evidence).text().not_null())
                    .col(
                        ColumnDef::new(BillingConsents::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_billing_consents_subscription")
                    .table(BillingConsents::Table)
                    .col(BillingConsents::SubscriptionId)
                    .col(BillingConsents::ConsentedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PaymentSchedules::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PaymentSchedules::PaymentId)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PaymentSchedules::BillingKeyId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaymentSchedules::ChargeAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // When the worker may take it next (SCHEDULED), or take it over when the
                    // instance that took it stopped (CHARGING, with `lease_until`).
                    .col(
                        ColumnDef::new(PaymentSchedules::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentSchedules::AttemptsMade)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    // The delays as a JSON array of seconds.
                    .col(
                        ColumnDef::new(PaymentSchedules::RetryAfterSeconds)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaymentSchedules::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaymentSchedules::LeaseUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    // The payment's attempt number the schedule's charge in flight claims (its
                    // `confirm_attempt` + 1 when taken): a taker after a crash tells from it
                    // whether the charge was claimed already, and never starts a second one.
                    .col(
                        ColumnDef::new(PaymentSchedules::PaymentAttempt)
                            .integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentSchedules::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaymentSchedules::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_payment_schedules_due")
                    .table(PaymentSchedules::Table)
                    .col(PaymentSchedules::Status)
                    .col(PaymentSchedules::NextAttemptAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PaymentSchedules::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(BillingConsents::Table).to_owned())
            .await
    }
}
