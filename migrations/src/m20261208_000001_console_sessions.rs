//! Version 3: the operator console's sessions and sign-in lockouts, in the database so that
//! every instance sees the same ones (a session made on one works on the others, a sign-out
//! or a lockout holds everywhere).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ConsoleSessions {
    Table,
    /// SHA-256 (hex) of the session token: the token itself is only in the operator's cookie.
    TokenHash,
    Operator,
    CsrfToken,
    CreatedAt,
    LastSeenAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ConsoleLockouts {
    Table,
    Operator,
    Failures,
    LockedUntil,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConsoleSessions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ConsoleSessions::TokenHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ConsoleSessions::Operator)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConsoleSessions::CsrfToken)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConsoleSessions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConsoleSessions::LastSeenAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_console_sessions_last_seen")
                    .table(ConsoleSessions::Table)
                    .col(ConsoleSessions::LastSeenAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsoleLockouts::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ConsoleLockouts::Operator)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ConsoleLockouts::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(ConsoleLockouts::LockedUntil).timestamp_with_time_zone())
                    .col(
                        ColumnDef::new(ConsoleLockouts::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConsoleLockouts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ConsoleSessions::Table).to_owned())
            .await
    }
}
