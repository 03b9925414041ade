use chrono::Utc;

use super::{PaymentService, annotate, find, find_ref};
use crate::domain::{
    Amount, Attempt, OrderId, Payment, PaymentId, PaymentRef, PaymentStatus, PaymentType, Refund,
    ScopedKey, StoredEvent, UserId,
};
use crate::error::AppError;
use crate::store::StoreError;

/// A payment to create; every field already validated.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub user_id: UserId,
    pub order_id: OrderId,
    pub order_name: Option<String>,
    pub subscription_id: Option<String>,
    pub payment_type: PaymentType,
    pub amount: Amount,
    pub payment_method: String,
    /// The tax-free part of the amount, `0..=amount`.
    pub tax_free_amount_krw: i64,
    /// The request's scoped `Idempotency-Key`, kept on the payment so that a retry of this
    /// create finds it.
    pub idempotency_key: Option<ScopedKey>,
}

impl PaymentService {
    pub async fn create(&self, new: NewPayment) -> Result<Payment, AppError> {
        let now = Utc::now();
        let payment = Payment {
            order_name: new.order_name,
            subscription_id: new.subscription_id,
            payment_type: new.payment_type,
            idempotency_key: new.idempotency_key,
            tax_free_amount_krw: new.tax_free_amount_krw,
            ..Payment::new_pending(
                new.user_id.as_str().to_owned(),
                new.order_id,
                new.amount.get(),
                new.payment_method,
                now,
            )
        };
        annotate(&payment);
        match self.store.insert_payment(&payment).await {
            Ok(()) => {}
            Err(StoreError::DuplicateOrderId) if payment.idempotency_key.is_some() => {
                return self.created_before(&payment).await;
            }
            Err(error) => return Err(error.into()),
        }
        tracing::info!(payment_id = %payment.id, order_id = %payment.order_id, amount_krw = payment.amount_krw, "payment created");
        Ok(payment)
    }

    /// `attempt`'s order id is taken. When the payment was created by the same request under
    /// the same key (a retry whose first answer was lost: a 5xx, a crash, an expired lease),
    /// that payment, as it is now, is the answer; otherwise the order id is a duplicate.
    async fn created_before(&self, attempt: &Payment) -> Result<Payment, AppError> {
        let Some(existing) = self.store.payment_by_order(&attempt.order_id).await? else {
            return Err(AppError::DuplicateOrderId);
        };
        if existing.idempotency_key != attempt.idempotency_key {
            return Err(AppError::DuplicateOrderId);
        }
        let same_request = existing.user_id == attempt.user_id
            && existing.order_name == attempt.order_name
            && existing.subscription_id == attempt.subscription_id
            && existing.payment_type == attempt.payment_type
            && existing.payment_method == attempt.payment_method
            && existing.amount_krw == attempt.amount_krw
            && existing.tax_free_amount_krw == attempt.tax_free_amount_krw;
        if !same_request {
            return Err(AppError::IdempotencyKeyReused);
        }
        annotate(&existing);
        tracing::info!(payment_id = %existing.id, "create retried under its Idempotency-Key: answering with the payment it created");
        Ok(existing)
    }

    /// A payment by id. An unsettled one that is due for a read-back wakes the settler.
    pub async fn get(&self, id: PaymentId) -> Result<Payment, AppError> {
        let payment = find(&self.store, id).await?;
        if payment.status == PaymentStatus::InProgress
            && payment.next_reconcile_at.is_none_or(|at| at <= Utc::now())
        {
            self.settle_now.notify_one();
        }
        Ok(payment)
    }

    pub async fn list(
        &self,
        user_id: Option<&str>,
        needs_review: Option<bool>,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<Payment>, u64), AppError> {
        Ok(self
            .store
            .list_payments(user_id, needs_review, limit, offset)
            .await?)
    }

    pub async fn refunds(&self, id: PaymentId) -> Result<(Payment, Vec<Refund>), AppError> {
        let payment = find(&self.store, id).await?;
        let refunds = self.store.refunds_of(id).await?;
        Ok((payment, refunds))
    }

    /// A payment by its order id.
    pub async fn get_by_order(&self, order_id: &OrderId) -> Result<Payment, AppError> {
        find_ref(&self.store, &PaymentRef::OrderId(order_id.clone())).await
    }

    /// A payment's attempts at the PG, oldest first.
    pub async fn attempts(&self, id: PaymentId) -> Result<Vec<Attempt>, AppError> {
        find(&self.store, id).await?;
        Ok(self.store.attempts_of(id).await?)
    }

    /// A payment's events, in the order they happened.
    pub async fn events_of(&self, id: PaymentId) -> Result<Vec<StoredEvent>, AppError> {
        find(&self.store, id).await?;
        Ok(self.store.events_for_payment(&id.to_string()).await?)
    }

    pub async fn events_after(&self, after: i64, limit: u64) -> Result<Vec<StoredEvent>, AppError> {
        Ok(self.store.events_after(after, limit).await?)
    }
}
