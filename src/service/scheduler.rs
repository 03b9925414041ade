//! The worker of scheduled charges. Every instance runs one; each pass takes the schedules due
//! (with a lease: `Store::take_due_schedules`), charges each through the ordinary charge use
//! case (its claim, its consent guard, its settling of an unknown outcome by reading the order
//! back), and writes what the attempt's end means (`Schedule::after`) with its events in one
//! transaction. A taker that died is replaced once its lease runs out: the schedule remembers
//! the payment attempt it claims, so the new taker never starts a second charge of the same
//! attempt; it settles the one in flight like any charge.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::codes::Code;
use super::{PaymentService, events, find};
use crate::domain::{
    Actor, ChargeEnd, Failure, Next, Payment, PaymentRetriesExhausted, PaymentRetryScheduled,
    PaymentStatus, Schedule, ScheduleStatus,
};
use crate::error::AppError;
use crate::store::ScheduleWrite;

/// How the worker runs (`[billing]` in the configuration).
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// How often it looks for due charges (a due charge starts within this, plus the pass).
    pub poll_interval: Duration,
    /// Schedules taken per pass, at most.
    pub batch: u64,
    /// Charges of one pass at Toss at once, at most.
    pub concurrency: usize,
    /// How long a taken schedule is this instance's; after, another instance takes it over.
    /// Longer than a charge can take (Toss's read timeout and a read-back).
    pub lease: Duration,
    /// How soon a charge whose outcome is unknown, or that did not start, is looked at again.
    pub recheck: Duration,
}

#[derive(Clone)]
pub struct Scheduler {
    service: PaymentService,
    settings: SchedulerSettings,
}

impl Scheduler {
    pub fn new(service: PaymentService, settings: SchedulerSettings) -> Self {
        Self {
            service: service.acting_for(Actor::system()),
            settings,
        }
    }

    /// Runs until `shutdown` is cancelled; a pass under way is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            poll_ms = self.settings.poll_interval.as_millis() as u64,
            "scheduler started"
        );
        loop {
            match self.run_once().await {
                // A full batch: more may be due; take them at once.
                Ok(taken) if taken as u64 >= self.settings.batch => {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "scheduler pass failed; will retry"),
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// One pass: takes what is due and works it through. Returns how many it took.
    pub async fn run_once(&self) -> Result<usize, AppError> {
        let now = Utc::now();
        let store = &self.service.store;
        let due = store.schedules_due(now).await?;
        metrics::gauge!("scheduled_charges_due").set(due as f64);
        let lease_until = now + self.settings.lease;
        let taken = store
            .take_due_schedules(now, lease_until, self.settings.batch)
            .await?;
        let count = taken.len();
        let mut running = tokio::task::JoinSet::new();
        for schedule in taken {
            if running.len() >= self.settings.concurrency.max(1) {
                running.join_next().await;
            }
            let worker = self.clone();
            running.spawn(async move {
                let id = schedule.payment_id;
                let span = tracing::info_span!("scheduled_charge", payment_id = %id);
                if let Err(error) = worker.work(schedule).instrument(span).await {
                    tracing::warn!(payment_id = %id, %error, "scheduled charge not finished; taken again after its lease");
                }
            });
        }
        while running.join_next().await.is_some() {}
        Ok(count)
    }

    /// One taken schedule: charge it (unless its attempt was claimed before), then record what
    /// the attempt's end means.
    async fn work(&self, schedule: Schedule) -> Result<(), AppError> {
        let payment = find(&self.service.store, schedule.payment_id).await?;
        let claim = schedule.payment_attempt.unwrap_or(i32::MAX);
        let claimed_before = payment.confirm_attempt >= claim;
        if !claimed_before && let Some(due) = schedule.next_attempt_at {
            let late = (Utc::now() - due).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("scheduled_charge_start_late_seconds").record(late);
        }
        let end = match payment.status {
            PaymentStatus::Pending if !claimed_before => self.charge(&schedule).await?,
            PaymentStatus::InProgress => self.charge(&schedule).await?,
            _ => end_of(&payment, claimed_before),
        };
        self.finish(&schedule, end).await
    }

    /// Charges the payment through the charge use case, and reads how the attempt ended.
    async fn charge(&self, schedule: &Schedule) -> Result<ChargeEnd, AppError> {
        // Cancelled (or finished) since it was taken: nothing is sent.
        match self.service.store.schedule_of(schedule.payment_id).await? {
            Some(now) if now.status == ScheduleStatus::Charging => {}
            _ => return Ok(ChargeEnd::Gone),
        }
        let refused = |code: Code, message: String| {
            Ok(ChargeEnd::Refused(Failure {
                retryable: Some(false),
                ..code.failure(message)
            }))
        };
        match self
            .service
            .charges()
            .charge(schedule.payment_id, schedule.billing_key_id)
            .await
        {
            Ok(_) | Err(AppError::PgDeclined { .. }) | Err(AppError::InvalidState(_)) => {}
            Err(error @ AppError::ConsentRequired(_)) => {
                return refused(Code::ConsentRequired, error.to_string());
            }
            // Scheduling checked that the key is active and the payment's user's; neither owner
            // ever changes and an issued key's row is never deleted, so only an inactive key
            // comes here, not a missing one nor another user's; were one to, it is refused for
            // good all the same rather than taken again after every lease.
            Err(
                error @ (AppError::BillingKeyInactive(_)
                | AppError::NotFound(_)
                | AppError::BillingKeyMismatch),
            ) => {
                return refused(Code::BillingKeyInactive, error.to_string());
            }
            Err(error) => return Err(error),
        }
        let payment = find(&self.service.store, schedule.payment_id).await?;
        let claim = schedule.payment_attempt.unwrap_or(i32::MAX);
        Ok(end_of(&payment, payment.confirm_attempt >= claim))
    }

    /// Writes what `end` means for `schedule`, with its events, and counts it.
    async fn finish(&self, schedule: &Schedule, end: ChargeEnd) -> Result<(), AppError> {
        let now = Utc::now();
        let recheck =
            chrono::Duration::from_std(self.settings.recheck).unwrap_or(chrono::Duration::zero());
        let next = schedule.after(end, now, recheck);
        let status = Schedule::status_after(&next);
        let payment = find(&self.service.store, schedule.payment_id).await?;
        let actor = Actor::system();
        let (write, events) = match &next {
            Next::Done => (ended(status, schedule.attempts_made + 1), Vec::new()),
            Next::Cancelled => (ended(status, schedule.attempts_made), Vec::new()),
            Next::Retry {
                at,
                attempt,
                failure,
            } => (
                ScheduleWrite {
                    next_attempt_at: Some(*at),
                    ..ended(status, *attempt)
                },
                vec![events::envelope(
                    &payment,
                    PaymentRetryScheduled::of(&payment, *attempt, *at, failure),
                    &actor,
                )],
            ),
            Next::Exhausted {
                attempts_made,
                failure,
            } => (
                ended(status, *attempts_made),
                vec![events::envelope(
                    &payment,
                    PaymentRetriesExhausted::of(&payment, *attempts_made, failure),
                    &actor,
                )],
            ),
            Next::Later { at, again } => (
                ScheduleWrite {
                    status,
                    next_attempt_at: if *again {
                        Some(*at)
                    } else {
                        schedule.next_attempt_at
                    },
                    attempts_made: schedule.attempts_made,
                    lease_until: if *again { None } else { Some(*at) },
                    payment_attempt: if *again {
                        None
                    } else {
                        schedule.payment_attempt
                    },
                },
                Vec::new(),
            ),
        };
        let written = self
            .service
            .store
            .finish_schedule_attempt(schedule, &write, events, now)
            .await?;
        if !written {
            tracing::info!(payment_id = %schedule.payment_id, "schedule changed meanwhile (cancelled, or finished by another instance)");
            return Ok(());
        }
        match &next {
            Next::Retry { at, .. } => {
                metrics::counter!("scheduled_charges_retried_total").increment(1);
                tracing::info!(payment_id = %schedule.payment_id, next_attempt_at = %at, "scheduled charge declined; retry scheduled");
            }
            Next::Exhausted { failure, .. } => {
                metrics::counter!("scheduled_charges_exhausted_total").increment(1);
                tracing::info!(payment_id = %schedule.payment_id, code = %failure.code, "scheduled charge exhausted");
            }
            Next::Done => {
                metrics::counter!("scheduled_charges_done_total").increment(1);
                tracing::info!(payment_id = %schedule.payment_id, "scheduled charge paid");
            }
            Next::Later { .. } | Next::Cancelled => {}
        }
        Ok(())
    }
}

/// A schedule that ended: no next attempt, no lease.
fn ended(status: ScheduleStatus, attempts_made: i32) -> ScheduleWrite {
    ScheduleWrite {
        status,
        next_attempt_at: None,
        attempts_made,
        lease_until: None,
        payment_attempt: None,
    }
}

/// How the schedule's attempt ended, as the payment shows it. `claimed`: the payment's attempt
/// is the schedule's (its charge was claimed), so a `PENDING` payment with a failure was
/// declined by it.
fn end_of(payment: &Payment, claimed: bool) -> ChargeEnd {
    match payment.status {
        PaymentStatus::Completed | PaymentStatus::PartialRefund | PaymentStatus::Refunded => {
            ChargeEnd::Paid
        }
        PaymentStatus::InProgress | PaymentStatus::WaitingForDeposit => ChargeEnd::InFlight,
        PaymentStatus::Pending => match (&payment.failure, claimed) {
            (Some(failure), true) => ChargeEnd::Declined(failure.clone()),
            _ => ChargeEnd::NotStarted,
        },
        PaymentStatus::Failed | PaymentStatus::Cancelled => ChargeEnd::Gone,
    }
}
