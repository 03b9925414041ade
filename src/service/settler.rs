//! The background task that settles what requests left unsettled: payments `IN_PROGRESS` and
//! refunds `PENDING` whose next look is due (after an unknown outcome, or a crash). Each row is
//! leased by a conditional update, so several instances can run it side by side.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::attempt::AttemptLife;
use super::refunds::DrivenBy;
use super::{Cancelling, PaymentService, Refunding, ServiceSettings};
use crate::store::Store;

pub struct Settler {
    service: PaymentService,
    interval: Duration,
}

impl Settler {
    pub fn new(service: PaymentService, interval: Duration) -> Self {
        Self { service, interval }
    }

    /// Runs until `shutdown` is cancelled; a pass under way is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            interval_ms = self.interval.as_millis() as u64,
            "settler started"
        );
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
                _ = self.service.settle_now.notified() => {}
            }
            if let Err(error) = self.service.settle_due().await {
                tracing::warn!(%error, "settling pass failed; will retry");
            }
        }
        tracing::info!("settler stopped");
    }
}

/// One settler pass: the attempts, cancels and refunds in flight that are due, and housekeeping.
pub(super) struct Settling {
    pub(super) store: Store,
    pub(super) settings: Arc<ServiceSettings>,
    pub(super) life: AttemptLife,
    pub(super) cancels: Cancelling,
    pub(super) refunds: Refunding,
}

impl Settling {
    /// One pass over everything due. Returns how many rows it looked at.
    pub(super) async fn settle_due(&self) -> Result<usize, crate::error::AppError> {
        let now = Utc::now();
        let lease_until = self.settings.claim_expiry();
        let mut seen = 0;
        for mut payment in self
            .store
            .payments_due(now, self.settings.reconcile_batch)
            .await?
        {
            if !self.store.lease_payment(&payment, lease_until).await? {
                continue;
            }
            seen += 1;
            payment.reconcile_attempts += 1;
            let id = payment.id;
            let span =
                tracing::info_span!("settle", payment_id = %id, order_id = %payment.order_id);
            let settled = if payment.status == crate::domain::PaymentStatus::WaitingForDeposit
                && payment.cancel_reason.is_some()
            {
                // A cancel was asked for and not finished (a crash, a lost answer): send it.
                self.cancels
                    .cancel_at_pg(payment)
                    .instrument(span)
                    .await
                    .map(|_| ())
            } else {
                self.life
                    .settle(payment, true)
                    .instrument(span)
                    .await
                    .map(|_| ())
            };
            if let Err(error) = settled {
                tracing::info!(payment_id = %id, code = error.code(), "settled payment");
            }
        }
        for refund in self
            .store
            .refunds_due(now, self.settings.reconcile_batch)
            .await?
        {
            if !self.store.lease_refund(&refund, lease_until).await? {
                continue;
            }
            seen += 1;
            let id = refund.id;
            let span = tracing::info_span!(
                "settle",
                payment_id = %refund.payment_id,
                refund_id = %id,
                order_id = tracing::field::Empty,
            );
            let settled = self
                .refunds
                .drive(id, refund.payment_id, Duration::ZERO, DrivenBy::Later, None)
                .instrument(span)
                .await;
            if let Err(error) = settled {
                tracing::info!(refund_id = %id, code = error.code(), "settled refund");
            }
        }
        crate::idempotency::purge_expired(&self.store, now).await?;
        let retention = chrono::Duration::from_std(self.settings.webhook_retention)
            .unwrap_or(chrono::Duration::MAX);
        if let Some(cutoff) = now.checked_sub_signed(retention) {
            self.store.purge_webhooks_before(cutoff).await?;
        }
        Ok(seen)
    }
}
