//! Attempts: every try at Toss of a payment (a confirm of one `paymentKey`, or one billing
//! charge), kept after the next one starts. Until now the payment row held only its latest
//! attempt; that one is backfilled from it, so a version 2 database keeps what it knew.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum PaymentAttempts {
    Table,
    Id,
    PaymentId,
    Number,
    Kind,
    PaymentKey,
    BillingKeyId,
    Status,
    Method,
    VaBankCode,
    VaAccountNumber,
    VaCustomerName,
    VaDueDate,
    FailureCode,
    FailureMessage,
    FailureRetryable,
    TossSends,
    StartedAt,
    FinishedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PaymentAttempts::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PaymentAttempts::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::PaymentId)
                            .string_len(36)
                            .not_null(),
                    )
                    // The payment's `confirm_attempt` when the attempt was claimed.
                    .col(ColumnDef::new(PaymentAttempts::Number).integer().not_null())
                    // `confirm` or `charge`.
                    .col(
                        ColumnDef::new(PaymentAttempts::Kind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::PaymentKey)
                            .string_len(200)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::BillingKeyId)
                            .string_len(36)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::Status)
                            .string_len(32)
                            .not_null(),
                    )
                    // Toss's `method`, as Toss wrote it.
                    .col(ColumnDef::new(PaymentAttempts::Method).text().null())
                    // The virtual account, as the payment stores it.
                    .col(ColumnDef::new(PaymentAttempts::VaBankCode).text().null())
                    .col(
                        ColumnDef::new(PaymentAttempts::VaAccountNumber)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::VaCustomerName)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::VaDueDate)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::FailureCode)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::FailureMessage)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::FailureRetryable)
                            .boolean()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::TossSends)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::FinishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentAttempts::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_payment_attempts_payment")
                            .from(PaymentAttempts::Table, PaymentAttempts::PaymentId)
                            .to(Payments::Table, Payments::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_payment_attempts_number")
                    .table(PaymentAttempts::Table)
                    .col(PaymentAttempts::PaymentId)
                    .col(PaymentAttempts::Number)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_payment_attempts_payment")
                    .table(PaymentAttempts::Table)
                    .col(PaymentAttempts::PaymentId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        backfill(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PaymentAttempts::Table).to_owned())
            .await
    }
}

/// One attempt for every payment that made one: its latest, as the payment row knew it. A
/// payment completed without the PG (recorded, no key) and an attempt released without a
/// failure (it never happened at Toss) leave none.
async fn backfill(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let new_id = match db.get_database_backend() {
        DbBackend::Postgres => "gen_random_uuid()::text".to_owned(),
        // A version 4 UUID from SQLite's random bytes.
        _ => "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || \
              substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || \
              substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
            .to_owned(),
    };
    let expired = "'VIRTUAL_ACCOUNT_EXPIRED', 'PG_EXPIRED', 'EXPIRED_PAYMENT'";
    let ended = "'PENDING', 'CANCELLED', 'FAILED'";
    let sql = format!(
        "INSERT INTO payment_attempts (id, payment_id, number, kind, payment_key, billing_key_id, \
             status, method, va_bank_code, va_account_number, va_customer_name, va_due_date, \
             failure_code, failure_message, failure_retryable, toss_sends, started_at, \
             finished_at, updated_at) \
         SELECT {new_id}, id, CASE WHEN confirm_attempt > 0 THEN confirm_attempt ELSE 1 END, \
             CASE WHEN billing_key_id IS NOT NULL THEN 'charge' ELSE 'confirm' END, \
             payment_key, billing_key_id, attempt_status, pg_method, va_bank_code, \
             va_account_number, va_customer_name, va_due_date, \
             CASE WHEN attempt_status IN ('FAILED', 'EXPIRED') THEN failure_code END, \
             CASE WHEN attempt_status IN ('FAILED', 'EXPIRED') THEN failure_message END, \
             CASE WHEN attempt_status IN ('FAILED', 'EXPIRED') THEN failure_retryable END, \
             confirm_sends, COALESCE(confirm_started_at, created_at), \
             CASE WHEN attempt_status = 'APPROVED' THEN COALESCE(completed_at, updated_at) \
                  WHEN attempt_status IN ('FAILED', 'EXPIRED', 'CANCELLED') THEN updated_at END, \
             updated_at \
         FROM (SELECT p.*, CASE \
                 WHEN status = 'IN_PROGRESS' THEN 'IN_PROGRESS' \
                 WHEN status = 'WAITING_FOR_DEPOSIT' THEN 'WAITING_FOR_DEPOSIT' \
                 WHEN status IN ('COMPLETED', 'PARTIAL_REFUND', 'REFUNDED') \
                      AND payment_key IS NOT NULL THEN 'APPROVED' \
                 WHEN status IN ({ended}) AND failure_code IN ({expired}) THEN 'EXPIRED' \
                 WHEN status IN ({ended}) AND failure_code IS NOT NULL THEN 'FAILED' \
                 WHEN status = 'CANCELLED' AND va_account_number IS NOT NULL THEN 'CANCELLED' \
               END AS attempt_status \
               FROM payments p \
               WHERE confirm_attempt > 0 OR payment_key IS NOT NULL \
                  OR billing_key_id IS NOT NULL) latest \
         WHERE attempt_status IS NOT NULL"
    );
    db.execute_unprepared(&sql).await?;
    // A claim numbers its attempt `confirm_attempt + 1`: a payment whose attempt predates the
    // count must not get number 1 twice.
    db.execute_unprepared(
        "UPDATE payments SET confirm_attempt = 1 WHERE confirm_attempt = 0 \
         AND id IN (SELECT payment_id FROM payment_attempts)",
    )
    .await?;
    Ok(())
}
