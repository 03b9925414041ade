use sea_orm::entity::prelude::*;

/// One try at the PG of a payment (see `crate::domain::Attempt`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub payment_id: String,
    pub number: i32,
    pub kind: String,
    pub payment_key: Option<String>,
    pub billing_key_id: Option<String>,
    pub status: String,
    pub method: Option<String>,
    pub va_bank_code: Option<String>,
    pub va_account_number: Option<String>,
    pub va_customer_name: Option<String>,
    pub va_due_date: Option<DateTimeUtc>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub failure_retryable: Option<bool>,
    pub toss_sends: i32,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

without_relations!();
