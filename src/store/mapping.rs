//! Rows to domain records.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{event, payment, payment_attempt, refund};
use super::{StoreError, StoreResult, corrupt};
use crate::domain::{
    Actor, Attempt, CardSummary, Failure, OrderId, Payment, PaymentId, PaymentKey, Refund,
    ScopedKey, SealedAccount, Settlement, StoredEvent, VirtualAccount,
};

fn failure(
    code: Option<String>,
    message: Option<String>,
    retryable: Option<bool>,
) -> Option<Failure> {
    code.map(|code| Failure {
        code,
        message: message.unwrap_or_default(),
        retryable,
    })
}

/// A column parsed as `T`; `what` names it when it does not parse.
pub(super) fn parse<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| corrupt(what, e))
}

/// An optional column parsed as `T`; `what` names it when it does not parse.
pub(super) fn parse_optional<T: std::str::FromStr>(
    value: Option<String>,
    what: &str,
) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    value.map(|value| parse(&value, what)).transpose()
}

fn payment_key(value: Option<String>) -> Result<Option<PaymentKey>, StoreError> {
    value
        .as_deref()
        .map(PaymentKey::parse)
        .transpose()
        .map_err(|e| corrupt("payment key", e))
}

/// The virtual account of a row that has one (a bank and an account number).
fn virtual_account(
    bank_code: Option<String>,
    account_number: Option<String>,
    customer_name: Option<String>,
    due_date: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<VirtualAccount> {
    match (bank_code, account_number) {
        (Some(bank_code), Some(account_number)) => Some(VirtualAccount {
            bank_code,
            account_number,
            customer_name,
            due_date,
        }),
        _ => None,
    }
}

impl TryFrom<payment::Model> for Payment {
    type Error = StoreError;
    fn try_from(row: payment::Model) -> Result<Self, Self::Error> {
        Ok(Payment {
            id: parse(&row.id, "payment id")?,
            payment_type: parse(&row.payment_type, "payment type")?,
            status: parse(&row.status, "status")?,
            failure: failure(row.failure_code, row.failure_message, row.failure_retryable),
            billing_key_id: parse_optional(row.billing_key_id, "billing key id")?,
            order_id: OrderId::parse(&row.order_id).map_err(|e| corrupt("order id", e))?,
            payment_key: payment_key(row.payment_key)?,
            user_id: row.user_id,
            order_name: row.order_name,
            subscription_id: row.subscription_id,
            payment_method: row.payment_method,
            amount_krw: row.amount_krw,
            refunded_amount_krw: row.refunded_amount_krw,
            refund_reserved_krw: row.refund_reserved_krw,
            currency: row.currency,
            pg_provider: row.pg_provider,
            pg_transaction_id: row.pg_transaction_id,
            confirm_attempt: row.confirm_attempt,
            confirm_started_at: row.confirm_started_at,
            pg_secret: row.pg_secret,
            needs_review: row.needs_review,
            review_reason: row.review_reason,
            reconcile_attempts: row.reconcile_attempts,
            next_reconcile_at: row.next_reconcile_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            completed_at: row.completed_at,
            confirm_sends: row.confirm_sends,
            annotated_attempt: row.annotated_attempt,
            cancel_slot: parse_optional(row.cancel_slot, "cancel slot")?,
            cancel_slot_until: row.cancel_slot_until,
            idempotency_key: row.idempotency_key.map(ScopedKey::from_digest),
            tax_free_amount_krw: row.tax_free_amount_krw,
            pg_method: row.pg_method,
            receipt_url: row.receipt_url,
            card: (row.card_issuer_code.is_some()
                || row.card_number.is_some()
                || row.card_installment_months.is_some()
                || row.card_approve_no.is_some())
            .then_some(CardSummary {
                issuer_code: row.card_issuer_code,
                number: row.card_number,
                installment_plan_months: row.card_installment_months,
                approve_no: row.card_approve_no,
            }),
            virtual_account: virtual_account(
                row.va_bank_code,
                row.va_account_number,
                row.va_customer_name,
                row.va_due_date,
            ),
            cancel_reason: row.cancel_reason,
            cancel_requested_by: row
                .cancel_requested_by_type
                .map(|kind| Actor::from_parts(&kind, row.cancel_requested_by_name))
                .transpose()
                .map_err(|e| corrupt("cancel's actor", e))?,
            pg_approval_key: row.pg_approval_key,
            settlement: match (
                row.settlement_fee_krw,
                row.settlement_payout_krw,
                row.settlement_sold_date,
            ) {
                (Some(fee_krw), Some(payout_krw), Some(sold_date)) => Some(Settlement {
                    fee_krw,
                    payout_krw,
                    sold_date,
                    paid_out_date: row.settlement_paid_out_date,
                }),
                _ => None,
            },
        })
    }
}

impl TryFrom<payment_attempt::Model> for Attempt {
    type Error = StoreError;
    fn try_from(row: payment_attempt::Model) -> Result<Self, Self::Error> {
        Ok(Attempt {
            id: parse(&row.id, "attempt id")?,
            payment_id: parse(&row.payment_id, "payment id")?,
            number: row.number,
            kind: parse(&row.kind, "attempt kind")?,
            payment_key: payment_key(row.payment_key)?,
            billing_key_id: parse_optional(row.billing_key_id, "billing key id")?,
            status: parse(&row.status, "attempt status")?,
            method: row.method,
            virtual_account: virtual_account(
                row.va_bank_code,
                row.va_account_number,
                row.va_customer_name,
                row.va_due_date,
            ),
            failure: failure(row.failure_code, row.failure_message, row.failure_retryable),
            toss_sends: row.toss_sends,
            started_at: row.started_at,
            finished_at: row.finished_at,
            updated_at: row.updated_at,
        })
    }
}

impl TryFrom<refund::Model> for Refund {
    type Error = StoreError;
    fn try_from(row: refund::Model) -> Result<Self, Self::Error> {
        Ok(Refund {
            id: parse(&row.id, "refund id")?,
            payment_id: parse(&row.payment_id, "payment id")?,
            status: parse(&row.status, "refund status")?,
            failure: failure(row.failure_code, row.failure_message, None),
            amount_krw: row.amount_krw,
            reason: row.reason,
            pg_cancel_key: row.pg_cancel_key,
            reconcile_attempts: row.reconcile_attempts,
            next_reconcile_at: row.next_reconcile_at,
            created_at: row.created_at,
            refunded_at: row.refunded_at,
            origin: parse(&row.origin, "refund origin")?,
            idempotency_key: row.idempotency_key.map(ScopedKey::from_digest),
            sends: row.sends,
            last_sent_at: row.last_sent_at,
            tax_free_amount_krw: row.tax_free_amount_krw,
            refund_account: row.refund_account.map(SealedAccount),
            requested_by: Actor::from_parts(&row.requested_by_type, row.requested_by_name)
                .map_err(|e| corrupt("refund's actor", e))?,
        })
    }
}

impl TryFrom<event::Model> for StoredEvent {
    type Error = StoreError;
    fn try_from(row: event::Model) -> Result<Self, Self::Error> {
        Ok(StoredEvent {
            payload: serde_json::from_str(&row.payload).map_err(|e| corrupt("event payload", e))?,
            seq: row.seq,
            event_id: row.event_id,
            event_type: row.event_type,
            version: row.version,
            occurred_at: row.occurred_at,
            source: row.source,
            user_id: row.user_id,
            payment_id: row.payment_id,
            actor: Actor::from_parts(&row.actor_type, row.actor_name)
                .map_err(|e| corrupt("event's actor", e))?,
        })
    }
}

pub(super) fn to_active_payment(p: &Payment) -> payment::ActiveModel {
    use sea_orm::ActiveValue::Set;
    payment::ActiveModel {
        id: Set(p.id.to_string()),
        user_id: Set(p.user_id.clone()),
        order_id: Set(p.order_id.to_string()),
        order_name: Set(p.order_name.clone()),
        subscription_id: Set(p.subscription_id.clone()),
        payment_type: Set(p.payment_type.as_str().to_owned()),
        payment_method: Set(p.payment_method.clone()),
        amount_krw: Set(p.amount_krw),
        refunded_amount_krw: Set(p.refunded_amount_krw),
        refund_reserved_krw: Set(p.refund_reserved_krw),
        currency: Set(p.currency.clone()),
        status: Set(p.status.as_str().to_owned()),
        pg_provider: Set(p.pg_provider.clone()),
        pg_transaction_id: Set(p.pg_transaction_id.clone()),
        payment_key: Set(p.payment_key.as_ref().map(PaymentKey::to_string)),
        confirm_attempt: Set(p.confirm_attempt),
        confirm_started_at: Set(p.confirm_started_at),
        pg_secret: Set(p.pg_secret.clone()),
        failure_code: Set(p.failure.as_ref().map(|f| f.code.clone())),
        failure_message: Set(p.failure.as_ref().map(|f| f.message.clone())),
        needs_review: Set(p.needs_review),
        review_reason: Set(p.review_reason.clone()),
        reconcile_attempts: Set(p.reconcile_attempts),
        next_reconcile_at: Set(p.next_reconcile_at),
        created_at: Set(p.created_at),
        updated_at: Set(p.updated_at),
        completed_at: Set(p.completed_at),
        confirm_sends: Set(p.confirm_sends),
        annotated_attempt: Set(p.annotated_attempt),
        cancel_slot: Set(p.cancel_slot.map(|id| id.to_string())),
        cancel_slot_until: Set(p.cancel_slot_until),
        idempotency_key: Set(p
            .idempotency_key
            .as_ref()
            .map(|key| key.as_str().to_owned())),
        billing_key_id: Set(p.billing_key_id.map(|id| id.to_string())),
        failure_retryable: Set(p.failure.as_ref().and_then(|f| f.retryable)),
        tax_free_amount_krw: Set(p.tax_free_amount_krw),
        pg_method: Set(p.pg_method.clone()),
        receipt_url: Set(p.receipt_url.clone()),
        card_issuer_code: Set(p.card.as_ref().and_then(|c| c.issuer_code.clone())),
        card_number: Set(p.card.as_ref().and_then(|c| c.number.clone())),
        card_installment_months: Set(p.card.as_ref().and_then(|c| c.installment_plan_months)),
        card_approve_no: Set(p.card.as_ref().and_then(|c| c.approve_no.clone())),
        va_bank_code: Set(p.virtual_account.as_ref().map(|v| v.bank_code.clone())),
        va_account_number: Set(p.virtual_account.as_ref().map(|v| v.account_number.clone())),
        va_customer_name: Set(p
            .virtual_account
            .as_ref()
            .and_then(|v| v.customer_name.clone())),
        va_due_date: Set(p.virtual_account.as_ref().and_then(|v| v.due_date)),
        cancel_reason: Set(p.cancel_reason.clone()),
        cancel_requested_by_type: Set(p
            .cancel_requested_by
            .as_ref()
            .map(|a| a.kind.as_str().to_owned())),
        cancel_requested_by_name: Set(p.cancel_requested_by.as_ref().and_then(|a| a.name.clone())),
        pg_approval_key: Set(p.pg_approval_key.clone()),
        settlement_fee_krw: Set(p.settlement.as_ref().map(|s| s.fee_krw)),
        settlement_payout_krw: Set(p.settlement.as_ref().map(|s| s.payout_krw)),
        settlement_sold_date: Set(p.settlement.as_ref().map(|s| s.sold_date.clone())),
        settlement_paid_out_date: Set(p.settlement.as_ref().and_then(|s| s.paid_out_date.clone())),
    }
}

pub(super) fn to_active_refund(r: &Refund) -> refund::ActiveModel {
    use sea_orm::ActiveValue::Set;
    refund::ActiveModel {
        id: Set(r.id.to_string()),
        payment_id: Set(r.payment_id.to_string()),
        amount_krw: Set(r.amount_krw),
        reason: Set(r.reason.clone()),
        status: Set(r.status.as_str().to_owned()),
        pg_cancel_key: Set(r.pg_cancel_key.clone()),
        failure_code: Set(r.failure.as_ref().map(|f| f.code.clone())),
        failure_message: Set(r.failure.as_ref().map(|f| f.message.clone())),
        reconcile_attempts: Set(r.reconcile_attempts),
        next_reconcile_at: Set(r.next_reconcile_at),
        created_at: Set(r.created_at),
        updated_at: Set(r.created_at),
        refunded_at: Set(r.refunded_at),
        origin: Set(r.origin.as_str().to_owned()),
        sends: Set(r.sends),
        last_sent_at: Set(r.last_sent_at),
        idempotency_key: Set(r.idempotency_key.as_ref().map(|k| k.as_str().to_owned())),
        tax_free_amount_krw: Set(r.tax_free_amount_krw),
        refund_account: Set(r.refund_account.as_ref().map(|a| a.0.clone())),
        requested_by_type: Set(r.requested_by.kind.as_str().to_owned()),
        requested_by_name: Set(r.requested_by.name.clone()),
    }
}

/// A payment's refunds, oldest first, on `conn` (a transaction or the pool).
pub(super) async fn refunds_in<C: ConnectionTrait>(
    conn: &C,
    payment_id: PaymentId,
) -> StoreResult<Vec<Refund>> {
    refund::Entity::find()
        .filter(refund::Column::PaymentId.eq(payment_id.to_string()))
        .order_by_asc(refund::Column::CreatedAt)
        .order_by_asc(refund::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(Refund::try_from)
        .collect()
}
