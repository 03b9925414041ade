//! What `/ready` and `/metrics` ask of the service: whether the database answers, how much is
//! left to settle or to publish, and the database pool's connections.

use chrono::{DateTime, Utc};

use super::PaymentService;
use crate::error::AppError;

/// Rows waiting for something: how many, and since when the oldest waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub count: u64,
    pub oldest: Option<DateTime<Utc>>,
}

/// What requests left unsettled; `None` where the database did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsettledStats {
    /// Payments `IN_PROGRESS`, oldest by the start of their confirm.
    pub payments: Option<Backlog>,
    /// Refunds `PENDING`.
    pub refunds: Option<Backlog>,
}

impl PaymentService {
    /// `Ok` when the database answers; otherwise `SERVICE_UNAVAILABLE`, whatever the cause.
    pub async fn ready(&self) -> Result<(), AppError> {
        self.store
            .ping()
            .await
            .map_err(|error| AppError::Unavailable(error.to_string()))
    }

    /// Read at each call, so the numbers are right whichever instance settled what.
    pub async fn unsettled_stats(&self) -> UnsettledStats {
        let payments = self.store.unsettled_payments().await.ok();
        let refunds = self.store.unsettled_refunds().await.ok();
        UnsettledStats {
            payments: payments.map(|(count, oldest)| Backlog { count, oldest }),
            refunds: refunds.map(|(count, oldest)| Backlog { count, oldest }),
        }
    }

    /// The database pool's connections now: open, and idle among them.
    pub fn pool_connections(&self) -> (u32, usize) {
        self.store.pool_connections()
    }

    /// Events not yet published by a relay; `None` where the database did not answer.
    pub async fn outbox_backlog(&self) -> Option<Backlog> {
        let (count, oldest) = self.store.unpublished_stats().await.ok()?;
        Some(Backlog { count, oldest })
    }
}
