//! Rows to domain records.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{event, payment, payment_attempt, refund};
use super::{ReadAs, StoreError, StoreResult, corrupt};
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

/// `value`, unless every field of it is empty: a row with no card column set has no card.
pub(super) fn unless_empty<T: Default + PartialEq>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
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
        Ok(copied!(row => Payment {
            user_id, order_name, subscription_id, payment_method, amount_krw, refunded_amount_krw,
            refund_reserved_krw, currency, pg_provider, pg_transaction_id, confirm_attempt,
            confirm_started_at, pg_secret, needs_review, review_reason, reconcile_attempts,
            next_reconcile_at, created_at, updated_at, completed_at, confirm_sends,
            annotated_attempt, cancel_slot_until, tax_free_amount_krw, pg_method, receipt_url,
            cancel_reason, pg_approval_key,
            ;
            id: parse(&row.id, "payment id")?,
            payment_type: parse(&row.payment_type, "payment type")?,
            status: parse(&row.status, "status")?,
            failure: failure(row.failure_code, row.failure_message, row.failure_retryable),
            billing_key_id: parse_optional(row.billing_key_id, "billing key id")?,
            order_id: OrderId::parse(&row.order_id).map_err(|e| corrupt("order id", e))?,
            payment_key: payment_key(row.payment_key)?,
            cancel_slot: parse_optional(row.cancel_slot, "cancel slot")?,
            idempotency_key: row.idempotency_key.map(ScopedKey::from_digest),
            card: unless_empty(CardSummary {
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
            cancel_requested_by: row
                .cancel_requested_by_type
                .map(|kind| Actor::from_parts(&kind, row.cancel_requested_by_name))
                .transpose()
                .map_err(|e| corrupt("cancel's actor", e))?,
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
        }))
    }
}

impl TryFrom<payment_attempt::Model> for Attempt {
    type Error = StoreError;
    fn try_from(row: payment_attempt::Model) -> Result<Self, Self::Error> {
        Ok(copied!(row => Attempt {
            number, method, toss_sends, started_at, finished_at, updated_at,
            ;
            id: parse(&row.id, "attempt id")?,
            payment_id: parse(&row.payment_id, "payment id")?,
            kind: parse(&row.kind, "attempt kind")?,
            payment_key: payment_key(row.payment_key)?,
            billing_key_id: parse_optional(row.billing_key_id, "billing key id")?,
            status: parse(&row.status, "attempt status")?,
            virtual_account: virtual_account(
                row.va_bank_code,
                row.va_account_number,
                row.va_customer_name,
                row.va_due_date,
            ),
            failure: failure(row.failure_code, row.failure_message, row.failure_retryable),
        }))
    }
}

impl TryFrom<refund::Model> for Refund {
    type Error = StoreError;
    fn try_from(row: refund::Model) -> Result<Self, Self::Error> {
        Ok(copied!(row => Refund {
            amount_krw, reason, pg_cancel_key, reconcile_attempts, next_reconcile_at, created_at,
            refunded_at, sends, last_sent_at, tax_free_amount_krw,
            ;
            id: parse(&row.id, "refund id")?,
            payment_id: parse(&row.payment_id, "payment id")?,
            status: parse(&row.status, "refund status")?,
            failure: failure(row.failure_code, row.failure_message, None),
            origin: parse(&row.origin, "refund origin")?,
            idempotency_key: row.idempotency_key.map(ScopedKey::from_digest),
            refund_account: row.refund_account.map(SealedAccount),
            requested_by: Actor::from_parts(&row.requested_by_type, row.requested_by_name)
                .map_err(|e| corrupt("refund's actor", e))?,
        }))
    }
}

impl TryFrom<event::Model> for StoredEvent {
    type Error = StoreError;
    fn try_from(row: event::Model) -> Result<Self, Self::Error> {
        Ok(copied!(row => StoredEvent {
            seq, event_id, event_type, version, occurred_at, source, user_id, payment_id,
            trace_context,
            ;
            payload: serde_json::from_str(&row.payload).map_err(|e| corrupt("event payload", e))?,
            actor: Actor::from_parts(&row.actor_type, row.actor_name)
                .map_err(|e| corrupt("event's actor", e))?,
        }))
    }
}

pub(super) fn to_active_payment(p: &Payment) -> payment::ActiveModel {
    use sea_orm::ActiveValue::Set;
    set!(p => payment::ActiveModel {
        user_id, order_name, subscription_id, payment_method, amount_krw, refunded_amount_krw,
        refund_reserved_krw, currency, pg_provider, pg_transaction_id, confirm_attempt,
        confirm_started_at, pg_secret, needs_review, review_reason, reconcile_attempts,
        next_reconcile_at, created_at, updated_at, completed_at, confirm_sends, annotated_attempt,
        cancel_slot_until, tax_free_amount_krw, pg_method, receipt_url, cancel_reason,
        pg_approval_key,
        ;
        id: Set(p.id.to_string()),
        order_id: Set(p.order_id.to_string()),
        payment_type: Set(p.payment_type.as_str().to_owned()),
        status: Set(p.status.as_str().to_owned()),
        payment_key: Set(p.payment_key.as_ref().map(PaymentKey::to_string)),
        failure_code: Set(p.failure.as_ref().map(|f| f.code.clone())),
        failure_message: Set(p.failure.as_ref().map(|f| f.message.clone())),
        cancel_slot: Set(p.cancel_slot.map(|id| id.to_string())),
        idempotency_key: Set(p
            .idempotency_key
            .as_ref()
            .map(|key| key.as_str().to_owned())),
        billing_key_id: Set(p.billing_key_id.map(|id| id.to_string())),
        failure_retryable: Set(p.failure.as_ref().and_then(|f| f.retryable)),
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
        cancel_requested_by_type: Set(p
            .cancel_requested_by
            .as_ref()
            .map(|a| a.kind.as_str().to_owned())),
        cancel_requested_by_name: Set(p.cancel_requested_by.as_ref().and_then(|a| a.name.clone())),
        settlement_fee_krw: Set(p.settlement.as_ref().map(|s| s.fee_krw)),
        settlement_payout_krw: Set(p.settlement.as_ref().map(|s| s.payout_krw)),
        settlement_sold_date: Set(p.settlement.as_ref().map(|s| s.sold_date.clone())),
        settlement_paid_out_date: Set(p.settlement.as_ref().and_then(|s| s.paid_out_date.clone())),
    })
}

pub(super) fn to_active_refund(r: &Refund) -> refund::ActiveModel {
    use sea_orm::ActiveValue::Set;
    set!(r => refund::ActiveModel {
        amount_krw, reason, pg_cancel_key, reconcile_attempts, next_reconcile_at, created_at,
        refunded_at, sends, last_sent_at, tax_free_amount_krw,
        ;
        id: Set(r.id.to_string()),
        payment_id: Set(r.payment_id.to_string()),
        status: Set(r.status.as_str().to_owned()),
        failure_code: Set(r.failure.as_ref().map(|f| f.code.clone())),
        failure_message: Set(r.failure.as_ref().map(|f| f.message.clone())),
        updated_at: Set(r.created_at),
        origin: Set(r.origin.as_str().to_owned()),
        idempotency_key: Set(r.idempotency_key.as_ref().map(|k| k.as_str().to_owned())),
        refund_account: Set(r.refund_account.as_ref().map(|a| a.0.clone())),
        requested_by_type: Set(r.requested_by.kind.as_str().to_owned()),
        requested_by_name: Set(r.requested_by.name.clone()),
    })
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
        .all_as(conn)
        .await
}
