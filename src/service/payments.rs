use chrono::Utc;

use super::PaymentService;
use crate::domain::{
    Amount, OrderId, Payment, PaymentId, PaymentRef, PaymentStatus, PaymentType, Refund,
    StoredEvent, UserId,
};
use crate::error::AppError;

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
}

impl PaymentService {
    pub async fn create(&self, new: NewPayment) -> Result<Payment, AppError> {
        let now = Utc::now();
        let payment = Payment {
            id: PaymentId::new(),
            user_id: new.user_id.as_str().to_owned(),
            order_id: new.order_id.as_str().to_owned(),
            order_name: new.order_name,
            subscription_id: new.subscription_id,
            payment_type: new.payment_type,
            payment_method: new.payment_method,
            amount_krw: new.amount.get(),
            refunded_amount_krw: 0,
            refund_reserved_krw: 0,
            currency: "KRW".to_owned(),
            status: PaymentStatus::Pending,
            pg_provider: None,
            pg_transaction_id: None,
            payment_key: None,
            confirm_attempt: 0,
            confirm_sends: 0,
            annotated_attempt: None,
            cancel_slot: None,
            cancel_slot_until: None,
            confirm_started_at: None,
            pg_secret: None,
            failure: None,
            needs_review: false,
            review_reason: None,
            reconcile_attempts: 0,
            next_reconcile_at: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
        };
        Self::annotate(&payment);
        self.store.insert_payment(&payment).await?;
        tracing::info!(payment_id = %payment.id, order_id = %payment.order_id, amount_krw = payment.amount_krw, "payment created");
        Ok(payment)
    }

    /// A payment by id. An unsettled one that is due for a read-back wakes the reconciler.
    pub async fn get(&self, id: PaymentId) -> Result<Payment, AppError> {
        let payment = self.find(id).await?;
        if payment.status == PaymentStatus::InProgress
            && !payment.needs_review
            && payment.next_reconcile_at.is_some_and(|at| at <= Utc::now())
        {
            self.reconcile_now.notify_one();
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
        let payment = self.find(id).await?;
        let refunds = self.store.refunds_of(id).await?;
        Ok((payment, refunds))
    }

    pub async fn events_after(&self, after: i64, limit: u64) -> Result<Vec<StoredEvent>, AppError> {
        Ok(self.store.events_after(after, limit).await?)
    }

    pub(super) async fn find(&self, id: PaymentId) -> Result<Payment, AppError> {
        let payment = self
            .store
            .payment(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("payment {id} not found")))?;
        Self::annotate(&payment);
        Ok(payment)
    }

    pub(super) async fn find_ref(&self, payment: &PaymentRef) -> Result<Payment, AppError> {
        match payment {
            PaymentRef::Id(id) => self.find(*id).await,
            PaymentRef::OrderId(order_id) => self.find_by_order(order_id).await,
        }
    }

    pub(super) async fn find_by_order(&self, order_id: &str) -> Result<Payment, AppError> {
        let payment = self
            .store
            .payment_by_order(order_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no payment with order_id {order_id}")))?;
        Self::annotate(&payment);
        Ok(payment)
    }
}
