use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    #[sea_orm(unique)]
    pub order_id: String,
    pub order_name: Option<String>,
    pub subscription_id: Option<String>,
    pub payment_type: String,
    pub payment_method: String,
    pub amount_krw: i64,
    pub refunded_amount_krw: i64,
    pub refund_reserved_krw: i64,
    pub currency: String,
    pub status: String,
    pub pg_provider: Option<String>,
    pub pg_transaction_id: Option<String>,
    pub payment_key: Option<String>,
    pub confirm_attempt: i32,
    pub confirm_started_at: Option<DateTimeUtc>,
    pub pg_secret: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub needs_review: bool,
    pub review_reason: Option<String>,
    pub reconcile_attempts: i32,
    pub next_reconcile_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    pub confirm_sends: i32,
    pub annotated_attempt: Option<i32>,
    pub cancel_slot: Option<String>,
    pub cancel_slot_until: Option<DateTimeUtc>,
    /// The scoped Idempotency-Key of the create, when it had one.
    pub idempotency_key: Option<String>,
    /// The billing key of a charge attempt (or of the charge that paid).
    pub billing_key_id: Option<String>,
    pub failure_retryable: Option<bool>,
    pub tax_free_amount_krw: i64,
    pub pg_method: Option<String>,
    pub receipt_url: Option<String>,
    pub card_issuer_code: Option<String>,
    pub card_number: Option<String>,
    pub card_installment_months: Option<i32>,
    pub card_approve_no: Option<String>,
    pub va_bank_code: Option<String>,
    pub va_account_number: Option<String>,
    pub va_customer_name: Option<String>,
    pub va_due_date: Option<DateTimeUtc>,
    /// Set when a merchant asked to cancel it.
    pub cancel_reason: Option<String>,
    pub cancel_requested_by_type: Option<String>,
    pub cancel_requested_by_name: Option<String>,
    pub pg_approval_key: Option<String>,
    pub settlement_fee_krw: Option<i64>,
    pub settlement_payout_krw: Option<i64>,
    pub settlement_sold_date: Option<String>,
    pub settlement_paid_out_date: Option<String>,
}

without_relations!();
