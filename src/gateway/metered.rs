//! A gateway wrapper that bounds how many PG calls run at once and measures each one:
//! `toss_requests_total{operation, outcome}` and `toss_request_duration_seconds{operation}`;
//! [`MeteredBooks`] measures the reads of Toss's books the same way.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use chrono::NaiveDate;

use super::{
    BillingGateway, Books, CancelRequest, ChargeRequest, ConfirmRequest, GatewayError,
    IssueRequest, Outcome, PaymentGateway, PgBillingKey, PgPayment, PgSettlement, PgTransaction,
};
use crate::domain::{OrderId, PaymentKey};

/// Wraps a payment gateway, or a billing gateway (whose calls are measured as
/// `billing_issue`, `billing_charge` and `lookup`).
pub struct MeteredGateway<G: ?Sized = dyn PaymentGateway> {
    inner: Arc<G>,
    slots: Semaphore,
}

impl<G: ?Sized> MeteredGateway<G> {
    pub fn new(inner: Arc<G>, max_concurrency: usize) -> Self {
        Self {
            inner,
            slots: Semaphore::new(max_concurrency.max(1)),
        }
    }

    async fn measure<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        // Waiting for a slot is not the PG's latency; only the call is timed.
        let _slot = self.slots.acquire().await.ok();
        measured(operation, call).await
    }
}

/// Times and counts one PG call.
async fn measured<T>(
    operation: &'static str,
    call: impl Future<Output = Result<T, GatewayError>>,
) -> Result<T, GatewayError> {
    let started = Instant::now();
    let result = call.await;
    let label: &'static str = match &result {
        Ok(_) => Outcome::Ok,
        Err(error) => error.outcome(),
    }
    .into();
    metrics::counter!("toss_requests_total", "operation" => operation, "outcome" => label)
        .increment(1);
    metrics::histogram!("toss_request_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    result
}

/// Toss's books, measured as every other PG call (`operation` `transactions` / `settlements`).
/// A reconciliation run reads one page at a time, so no concurrency bound is needed.
pub struct MeteredBooks {
    inner: Arc<dyn Books>,
}

impl MeteredBooks {
    pub fn new(inner: Arc<dyn Books>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Books for MeteredBooks {
    async fn transactions(
        &self,
        date: NaiveDate,
        starting_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PgTransaction>, GatewayError> {
        measured(
            "transactions",
            self.inner.transactions(date, starting_after, limit),
        )
        .await
    }

    async fn settlements(
        &self,
        date: NaiveDate,
        page: u32,
        size: u32,
    ) -> Result<Vec<PgSettlement>, GatewayError> {
        measured("settlements", self.inner.settlements(date, page, size)).await
    }
}

#[async_trait]
impl<G: PaymentGateway + ?Sized> PaymentGateway for MeteredGateway<G> {
    fn provider(&self) -> Option<&'static str> {
        self.inner.provider()
    }

    async fn confirm(&self, request: &ConfirmRequest) -> Result<PgPayment, GatewayError> {
        self.measure("confirm", self.inner.confirm(request)).await
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<PgPayment, GatewayError> {
        self.measure("cancel", self.inner.cancel(request)).await
    }

    async fn payment_by_key(
        &self,
        payment_key: &PaymentKey,
    ) -> Result<Option<PgPayment>, GatewayError> {
        self.measure("lookup", self.inner.payment_by_key(payment_key))
            .await
    }

    async fn payment_by_order(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<PgPayment>, GatewayError> {
        self.measure("lookup", self.inner.payment_by_order(order_id))
            .await
    }
}

#[async_trait]
impl<G: BillingGateway + ?Sized> BillingGateway for MeteredGateway<G> {
    async fn issue_billing_key(
        &self,
        request: &IssueRequest,
    ) -> Result<PgBillingKey, GatewayError> {
        self.measure("billing_issue", self.inner.issue_billing_key(request))
            .await
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<PgPayment, GatewayError> {
        self.measure("billing_charge", self.inner.charge(request))
            .await
    }

    fn decline_is_retryable(&self, code: &str) -> bool {
        self.inner.decline_is_retryable(code)
    }
}
