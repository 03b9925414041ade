//! Toss billing (자동결제): customer keys per user, billing keys (stored encrypted), and the
//! billing key a payment's charge attempt uses.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    BillingKeyId,
    FailureRetryable,
}

#[derive(DeriveIden, Clone, Copy)]
enum BillingCustomers {
    Table,
    UserId,
    CustomerKey,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum BillingKeys {
    Table,
    Id,
    UserId,
    CustomerKey,
    AuthKeyHash,
    Status,
    KeyCiphertext,
    KeyFingerprint,
    Method,
    CardIssuerCode,
    CardNumber,
    CardType,
    CardOwnerType,
    IssueLeaseUntil,
    CreatedAt,
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        let payment_columns = [
            // The billing key of the charge attempt in flight (or the one that paid).
            ColumnDef::new(Payments::BillingKeyId)
                .string_len(36)
                .null()
                .to_owned(),
            // Whether the last decline may pass if tried again later (charges only).
            ColumnDef::new(Payments::FailureRetryable)
                .boolean()
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
        manager
            .create_table(
                Table::create()
                    .table(BillingCustomers::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(BillingCustomers::UserId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(BillingCustomers::CustomerKey)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(BillingCustomers::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BillingKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(BillingKeys::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(BillingKeys::UserId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BillingKeys::CustomerKey)
                            .string_len(64)
                            .not_null(),
                    )
                    // SHA-256 of the single-use authKey: a reload of the success redirect finds
                    // the key it issued instead of calling Toss again.
                    .col(
                        ColumnDef::new(BillingKeys::AuthKeyHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    // ISSUING (claimed, Toss being called), ACTIVE, DELETED.
                    .col(
                        ColumnDef::new(BillingKeys::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    // base64(nonce ‖ AES-256-GCM ciphertext) of Toss's billingKey.
                    .col(ColumnDef::new(BillingKeys::KeyCiphertext).text().null())
                    // SHA-256 of the billing key, to find it from a BILLING_DELETED webhook.
                    .col(
                        ColumnDef::new(BillingKeys::KeyFingerprint)
                            .string_len(64)
                            .null(),
                    )
                    .col(ColumnDef::new(BillingKeys::Method).string_len(32).null())
                    .col(
                        ColumnDef::new(BillingKeys::CardIssuerCode)
                            .string_len(16)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(BillingKeys::CardNumber)
                            .string_len(32)
                            .null(),
                    )
                    .col(ColumnDef::new(BillingKeys::CardType).string_len(16).null())
                    .col(
                        ColumnDef::new(BillingKeys::CardOwnerType)
                            .string_len(16)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(BillingKeys::IssueLeaseUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(BillingKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BillingKeys::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_billing_keys_user")
                    .table(BillingKeys::Table)
                    .col(BillingKeys::UserId)
                    .col(BillingKeys::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_billing_keys_fingerprint")
                    .table(BillingKeys::Table)
                    .col(BillingKeys::KeyFingerprint)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BillingKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(BillingCustomers::Table).to_owned())
            .await
    }
}
