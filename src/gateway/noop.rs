//! The gateway used when no Toss key is configured.

use async_trait::async_trait;
use chrono::Utc;

use super::{
    CancelRequest, ConfirmRequest, GatewayError, PaymentGateway, PgCancel, PgPayment, PgStatus,
};
use crate::domain::{OrderId, PaymentKey};

/// A gateway that verifies nothing: every confirm and cancel "succeeds" by echoing the request.
///
/// Its answers prove nothing about money, so [`PaymentGateway::provider`] is `None`: the service
/// then records the caller's claim as is and must require an API key from that caller.
#[derive(Debug, Default, Clone)]
pub struct NoopGateway;

#[async_trait]
impl PaymentGateway for NoopGateway {
    fn provider(&self) -> Option<&'static str> {
        None
    }

    async fn confirm(&self, request: &ConfirmRequest) -> Result<PgPayment, GatewayError> {
        Ok(PgPayment {
            order_id: request.order_id.to_string(),
            total_amount: Some(request.amount),
            balance_amount: Some(request.amount),
            approved_at: Some(Utc::now()),
            ..echo(&request.payment_key, PgStatus::Done)
        })
    }

    /// There is no record to read the order id or the remaining balance from, so `order_id` is
    /// empty and both amounts are `None`; the service's own records are the only truth here.
    async fn cancel(&self, request: &CancelRequest) -> Result<PgPayment, GatewayError> {
        // Derived from the idempotency key so that a retried refund names the same transaction.
        let transaction_key = format!("noop-{}", request.idempotency_key);
        Ok(PgPayment {
            last_transaction_key: Some(transaction_key.clone()),
            cancels: vec![PgCancel {
                transaction_key,
                amount: request.amount.unwrap_or_default(),
                reason: Some(request.reason.clone()),
                status: Some("DONE".to_owned()),
                canceled_at: Some(Utc::now()),
                tax_free_amount: request.tax_free_amount.unwrap_or_default(),
            }],
            ..echo(&request.payment_key, PgStatus::Canceled)
        })
    }

    async fn payment_by_key(
        &self,
        _payment_key: &PaymentKey,
    ) -> Result<Option<PgPayment>, GatewayError> {
        Ok(None)
    }

    async fn payment_by_order(
        &self,
        _order_id: &OrderId,
    ) -> Result<Option<PgPayment>, GatewayError> {
        Ok(None)
    }
}

/// A record of `payment_key` in `status` that says nothing else but its currency.
fn echo(payment_key: &PaymentKey, status: PgStatus) -> PgPayment {
    PgPayment {
        payment_key: payment_key.clone(),
        order_id: String::new(),
        status,
        total_amount: None,
        balance_amount: None,
        currency: Some("KRW".to_owned()),
        method: None,
        secret: None,
        last_transaction_key: None,
        approved_at: None,
        tax_free_amount: None,
        deposit_expired: false,
        cancels: Vec::new(),
        failure: None,
        details: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echoes_the_request_and_finds_nothing() {
        let gateway = NoopGateway;
        let key = PaymentKey::parse("pk").unwrap();
        let order_id = OrderId::parse("order-1").unwrap();
        assert_eq!(gateway.provider(), None);

        let confirmed = gateway
            .confirm(&ConfirmRequest {
                payment_key: key.clone(),
                order_id: order_id.clone(),
                amount: 1000,
                idempotency_key: "k".to_owned(),
            })
            .await
            .unwrap();
        assert_eq!(
            (
                confirmed.status,
                confirmed.total_amount,
                confirmed.balance_amount
            ),
            (PgStatus::Done, Some(1000), Some(1000))
        );
        assert_eq!(confirmed.currency.as_deref(), Some("KRW"));

        let canceled = gateway
            .cancel(&CancelRequest::refund("pk", "r", 400))
            .await
            .unwrap();
        assert_eq!(canceled.cancels.len(), 1);
        assert_eq!(canceled.cancels[0].amount, 400);
        assert_eq!(canceled.cancels[0].status.as_deref(), Some("DONE"));

        assert_eq!(gateway.payment_by_key(&key).await, Ok(None));
        assert_eq!(gateway.payment_by_order(&order_id).await, Ok(None));
    }
}
