use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refunds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub payment_id: String,
    pub amount_krw: i64,
    pub reason: String,
    pub status: String,
    pub pg_cancel_key: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub reconcile_attempts: i32,
    pub next_reconcile_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub refunded_at: Option<DateTimeUtc>,
    pub origin: String,
    pub sends: i32,
    pub last_sent_at: Option<DateTimeUtc>,
    /// The scoped Idempotency-Key of the refund request, when it had one.
    pub idempotency_key: Option<String>,
    pub tax_free_amount_krw: i64,
    /// The refund account of a deposited virtual account, sealed (AES-256-GCM).
    pub refund_account: Option<String>,
    pub requested_by_type: String,
    pub requested_by_name: Option<String>,
}

without_relations!();
