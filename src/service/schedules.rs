//! `POST/DELETE /payments/{payment_id}/schedule`: a payment charged with a billing key at a
//! time, and again after each retryable decline (the worker is `scheduler.rs`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::billing::{active_or_deleted, inactive};
use super::find;
use crate::domain::{
    BillingKeyId, BillingKeyStatus, Payment, PaymentId, PaymentStatus, Schedule, ScheduleStatus,
};
use crate::error::AppError;
use crate::store::Store;

/// What `POST /payments/{payment_id}/schedule` asks for.
#[derive(Debug, Clone)]
pub struct ScheduleCommand {
    pub payment_id: PaymentId,
    pub billing_key_id: BillingKeyId,
    pub charge_at: DateTime<Utc>,
    /// Checked (`domain::retry_delays`); `None`: the configured default.
    pub retry_after_seconds: Option<Vec<u32>>,
}

/// Schedules of renewal charges and the consents they are charged under.
pub struct Schedules {
    pub(super) store: Store,
    /// The delays of a charge's retries when its schedule names none.
    pub(super) retry_delays: Arc<[u32]>,
}

impl Schedules {
    /// Schedules the charge of a `PENDING` payment, with the checks of a charge; replaces a
    /// schedule that has made no attempt yet.
    pub async fn schedule_charge(
        &self,
        command: ScheduleCommand,
    ) -> Result<(Payment, Schedule), AppError> {
        let payment = find(&self.store, command.payment_id).await?;
        let key = active_or_deleted(&self.store, command.billing_key_id).await?;
        if key.user_id != payment.user_id {
            return Err(AppError::BillingKeyMismatch);
        }
        if payment.status != PaymentStatus::Pending {
            return Err(AppError::InvalidState(format!(
                "a payment in status {} cannot be scheduled for a charge",
                payment.status
            )));
        }
        if key.status != BillingKeyStatus::Active {
            return Err(inactive());
        }
        let now = Utc::now();
        let schedule = Schedule {
            payment_id: payment.id,
            billing_key_id: key.id,
            charge_at: command.charge_at,
            next_attempt_at: Some(command.charge_at),
            attempts_made: 0,
            retry_after_seconds: command
                .retry_after_seconds
                .unwrap_or_else(|| self.retry_delays.to_vec()),
            status: ScheduleStatus::Scheduled,
            lease_until: None,
            payment_attempt: None,
            created_at: now,
            updated_at: now,
        };
        if !self.store.put_schedule(&schedule).await? {
            return Err(AppError::InvalidState(
                "the payment's schedule has made an attempt (or is charging) and cannot be replaced"
                    .to_owned(),
            ));
        }
        tracing::info!(payment_id = %payment.id, charge_at = %schedule.charge_at, "charge scheduled");
        // As written: the worker may take it the moment it is due.
        Ok((payment, schedule))
    }

    /// Cancels the payment's schedule (a charge already at Toss finishes); cancelling a
    /// cancelled one answers it as it is.
    pub async fn cancel_schedule(
        &self,
        payment_id: PaymentId,
    ) -> Result<(Payment, Schedule), AppError> {
        let payment = find(&self.store, payment_id).await?;
        // Without a schedule nothing is cancelled, and the read below answers 404.
        let cancelled = self.store.cancel_schedule(payment_id, Utc::now()).await?;
        let schedule =
            self.store.schedule_of(payment_id).await?.ok_or_else(|| {
                AppError::NotFound(format!("payment {payment_id} has no schedule"))
            })?;
        if !cancelled && schedule.status != ScheduleStatus::Cancelled {
            return Err(AppError::InvalidState(format!(
                "the schedule is {} and cannot be cancelled",
                schedule.status
            )));
        }
        if cancelled {
            tracing::info!(payment_id = %payment_id, "schedule cancelled");
        }
        Ok((find(&self.store, payment.id).await?, schedule))
    }

    /// Schedules waiting to charge by `until`, soonest first (at most `limit`).
    pub async fn schedules_due_by(
        &self,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Schedule>, AppError> {
        Ok(self
            .store
            .schedules_in(ScheduleStatus::Scheduled, Some(until), limit)
            .await?)
    }

    /// Schedules that gave up, the latest first (at most `limit`).
    pub async fn exhausted_schedules(&self, limit: u64) -> Result<Vec<Schedule>, AppError> {
        Ok(self
            .store
            .schedules_in(ScheduleStatus::Exhausted, None, limit)
            .await?)
    }

    /// The payment's schedule, if it has one.
    pub async fn schedule_of(&self, payment_id: PaymentId) -> Result<Option<Schedule>, AppError> {
        Ok(self.store.schedule_of(payment_id).await?)
    }

    /// A page of payments with their schedules. A schedule that ended after its payment was read
    /// (a DONE one beside a payment not yet paid, an ended one beside a charge in flight) has its
    /// payment read again, so that the pair never shows the schedule ahead of its payment.
    pub async fn with_schedules(
        &self,
        mut payments: Vec<Payment>,
    ) -> Result<(Vec<Payment>, Vec<Schedule>), AppError> {
        let ids: Vec<PaymentId> = payments.iter().map(|p| p.id).collect();
        let schedules = self.store.schedules_of(&ids).await?;
        for schedule in &schedules {
            let Some(payment) = payments.iter_mut().find(|p| p.id == schedule.payment_id) else {
                continue;
            };
            let ended = !matches!(
                schedule.status,
                ScheduleStatus::Scheduled | ScheduleStatus::Charging
            );
            let behind = match payment.status {
                PaymentStatus::InProgress => ended,
                PaymentStatus::Pending => schedule.status == ScheduleStatus::Done,
                PaymentStatus::WaitingForDeposit
                | PaymentStatus::Completed
                | PaymentStatus::Failed
                | PaymentStatus::Cancelled
                | PaymentStatus::Refunded
                | PaymentStatus::PartialRefund => false,
            };
            if behind && let Some(fresh) = self.store.payment(schedule.payment_id).await? {
                *payment = fresh;
            }
        }
        Ok((payments, schedules))
    }
}
