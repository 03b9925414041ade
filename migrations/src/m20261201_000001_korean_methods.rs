//! Korean payment methods: the virtual account a buyer pays into, what Toss reports about the
//! method (its name, the card summary, the receipt), tax-free amounts of payments and refunds,
//! the cancel a merchant asked for, and the refund account of a deposited virtual account
//! (sealed: encrypted by the service, never stored readable).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    TaxFreeAmountKrw,
    PgMethod,
    ReceiptUrl,
    CardIssuerCode,
    CardNumber,
    CardInstallmentMonths,
    CardApproveNo,
    VaBankCode,
    VaAccountNumber,
    VaCustomerName,
    VaDueDate,
    CancelReason,
}

#[derive(DeriveIden, Clone, Copy)]
enum Refunds {
    Table,
    TaxFreeAmountKrw,
    RefundAccount,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        let payment_columns = [
            ColumnDef::new(Payments::TaxFreeAmountKrw)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            // Toss's `method` (카드, 가상계좌, 간편결제, ...), as Toss wrote it.
            ColumnDef::new(Payments::PgMethod).text().null().to_owned(),
            ColumnDef::new(Payments::ReceiptUrl)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::CardIssuerCode)
                .text()
                .null()
                .to_owned(),
            // Masked by Toss (`12345678****000*`).
            ColumnDef::new(Payments::CardNumber)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::CardInstallmentMonths)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::CardApproveNo)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::VaBankCode)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::VaAccountNumber)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::VaCustomerName)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::VaDueDate)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            // Set when a merchant asked to cancel the payment: a cancel at Toss in flight ends
            // CANCELLED, whoever adopts Toss's record.
            ColumnDef::new(Payments::CancelReason)
                .text()
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
            ColumnDef::new(Refunds::TaxFreeAmountKrw)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            // AES-256-GCM sealed; needed again when the cancel is resent.
            ColumnDef::new(Refunds::RefundAccount)
                .text()
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
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Columns are only added; SQLite cannot drop several at once, and nothing reads them
        // after a downgrade.
        Ok(())
    }
}
