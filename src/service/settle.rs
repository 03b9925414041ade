//! Turning the PG's record of a payment into ours: after a confirm reply, and whenever the
//! outcome of a confirm is unknown (timeout, 5xx, "already processed", a crash). We never guess:
//! we read the PG's record and adopt it, or wait and read again.

use chrono::Utc;

use super::{ConfirmOutcome, PaymentService, events};
use crate::domain::{Failure, Payment, PaymentStatus};
use crate::error::AppError;
use crate::gateway::{PgPayment, PgStatus};
use crate::store::{PaymentChanges, Transition};

impl PaymentService {
    /// Reads the PG's record of an `IN_PROGRESS` payment and adopts it.
    pub(super) async fn settle(&self, payment: Payment) -> Result<ConfirmOutcome, AppError> {
        let Some(payment_key) = payment.payment_key.clone() else {
            return Ok(ConfirmOutcome::Unsettled(payment));
        };
        match self.gateway.payment_by_key(&payment_key).await {
            Ok(Some(record)) => self.adopt(payment, record).await,
            Ok(None) => {
                // Toss may not show an attempt it is still working on; only after its own
                // confirm window is "not found" final.
                let started = payment.confirm_started_at.unwrap_or(payment.updated_at);
                let window_passed = started + self.settings.confirm_window < Utc::now();
                if window_passed {
                    let failure = Failure {
                        code: "PG_PAYMENT_NOT_FOUND".to_owned(),
                        message: "the PG has no record of this payment attempt".to_owned(),
                    };
                    tracing::warn!(payment_id = %payment.id, "PG does not know the attempt after the confirm window; back to PENDING");
                    let released = self.release(&payment, Some(failure)).await?;
                    return self.outcome(released, payment.id, &payment_key).await;
                }
                self.retry_later(&payment).await
            }
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "read-back failed; will retry");
                self.retry_later(&payment).await
            }
        }
    }

    /// Applies the PG's record of the attempt `payment.payment_key` (a confirm reply or a
    /// read-back) to an `IN_PROGRESS` payment.
    pub(super) async fn adopt(
        &self,
        payment: Payment,
        record: PgPayment,
    ) -> Result<ConfirmOutcome, AppError> {
        let payment_key = payment.payment_key.clone().unwrap_or_default();
        if let Err(reason) = check_record(&payment, &record) {
            self.set_aside(&payment, &reason).await?;
            return Err(AppError::PgResponseMismatch);
        }
        match &record.status {
            PgStatus::Done | PgStatus::PartialCanceled | PgStatus::Canceled => {
                if !record.cancels.is_empty() {
                    tracing::warn!(payment_id = %payment.id, cancels = record.cancels.len(), "PG shows cancels this service did not make");
                }
                let completed = self.complete(&payment, &record).await?;
                self.outcome(completed, payment.id, &payment_key).await
            }
            PgStatus::Aborted | PgStatus::Expired => {
                let failure = record.failure.clone().map_or_else(
                    || Failure {
                        code: format!("PG_{}", status_name(&record.status)),
                        message: "the PG ended the payment attempt without approval".to_owned(),
                    },
                    |f| Failure {
                        code: f.code,
                        message: f.message,
                    },
                );
                tracing::info!(payment_id = %payment.id, code = %failure.code, "PG shows the attempt failed; back to PENDING");
                let released = self.release(&payment, Some(failure)).await?;
                self.outcome(released, payment.id, &payment_key).await
            }
            PgStatus::Ready
            | PgStatus::InProgress
            | PgStatus::WaitingForDeposit
            | PgStatus::Other(_) => {
                if record.secret.is_some() && payment.pg_secret.is_none() {
                    self.store
                        .transition(Transition {
                            payment: payment.id.into(),
                            amount_krw: None,
                            from: &[PaymentStatus::InProgress],
                            payment_key: Some(&payment_key),
                            changes: PaymentChanges {
                                pg_secret: Some(record.secret.clone()),
                                ..Default::default()
                            },
                            event: None,
                        })
                        .await?;
                }
                tracing::info!(payment_id = %payment.id, pg_status = status_name(&record.status), "PG has not settled the attempt yet");
                self.retry_later(&payment).await
            }
        }
    }

    async fn complete(
        &self,
        payment: &Payment,
        record: &PgPayment,
    ) -> Result<Option<Payment>, AppError> {
        let mut completed = payment.clone();
        completed.status = PaymentStatus::Completed;
        let event = events::completed(
            &completed,
            payment.pg_provider.as_deref(),
            Some(&record.payment_key),
        );
        let applied = self
            .store
            .transition(Transition {
                payment: payment.id.into(),
                amount_krw: None,
                from: &[PaymentStatus::InProgress],
                payment_key: Some(&record.payment_key),
                changes: PaymentChanges {
                    status: Some(PaymentStatus::Completed),
                    pg_transaction_id: Some(Some(record.payment_key.clone())),
                    pg_secret: Some(record.secret.clone()),
                    failure: Some(None),
                    completed_at: Some(record.approved_at.unwrap_or_else(Utc::now)),
                    next_reconcile_at: Some(None),
                    ..Default::default()
                },
                event: Some(event),
            })
            .await?;
        if applied.is_some() {
            tracing::info!(payment_id = %payment.id, order_id = %payment.order_id, "payment completed at the PG");
        }
        Ok(applied)
    }

    /// Leaves the payment `IN_PROGRESS` and looks again later.
    async fn retry_later(&self, payment: &Payment) -> Result<ConfirmOutcome, AppError> {
        let payment_key = payment.payment_key.clone().unwrap_or_default();
        let rescheduled = self
            .store
            .transition(Transition {
                payment: payment.id.into(),
                amount_krw: None,
                from: &[PaymentStatus::InProgress],
                payment_key: Some(&payment_key),
                changes: PaymentChanges {
                    next_reconcile_at: Some(Some(self.backoff(payment.reconcile_attempts))),
                    ..Default::default()
                },
                event: None,
            })
            .await?;
        self.outcome(rescheduled, payment.id, &payment_key).await
    }

    /// The PG's record contradicts ours: a person must look. The payment stays `IN_PROGRESS`,
    /// flagged, and the reconciler leaves it alone.
    async fn set_aside(&self, payment: &Payment, reason: &str) -> Result<(), AppError> {
        tracing::error!(alert = "pg_record_mismatch", payment_id = %payment.id, order_id = %payment.order_id, %reason, "PG record contradicts ours; payment set aside for review");
        self.store
            .transition(Transition {
                payment: payment.id.into(),
                amount_krw: None,
                from: &[PaymentStatus::InProgress],
                payment_key: payment.payment_key.as_deref(),
                changes: PaymentChanges {
                    review: Some(reason.to_owned()),
                    next_reconcile_at: Some(None),
                    ..Default::default()
                },
                event: None,
            })
            .await?;
        Ok(())
    }

    /// What a confirm of `payment_key` amounts to now, whoever settled it: from the payment a
    /// transition just returned, or, when another request got there first, as read again.
    async fn outcome(
        &self,
        updated: Option<Payment>,
        payment_id: crate::domain::PaymentId,
        payment_key: &str,
    ) -> Result<ConfirmOutcome, AppError> {
        let payment = match updated {
            Some(payment) => payment,
            None => self.find(payment_id).await?,
        };
        match payment.status {
            PaymentStatus::Completed | PaymentStatus::PartialRefund | PaymentStatus::Refunded
                if payment.pg_transaction_id.as_deref() == Some(payment_key) =>
            {
                Ok(ConfirmOutcome::Completed(payment))
            }
            PaymentStatus::InProgress if payment.needs_review => Err(AppError::PgResponseMismatch),
            PaymentStatus::InProgress => Ok(ConfirmOutcome::Unsettled(payment)),
            PaymentStatus::Pending => match payment.failure {
                Some(failure) => Err(AppError::PgDeclined {
                    code: failure.code,
                    message: failure.message,
                }),
                None => Err(AppError::InvalidState(
                    "the payment attempt was abandoned".to_owned(),
                )),
            },
            status @ (PaymentStatus::Completed
            | PaymentStatus::PartialRefund
            | PaymentStatus::Refunded
            | PaymentStatus::Failed
            | PaymentStatus::Cancelled) => Err(AppError::InvalidState(format!(
                "the payment is {status} by another attempt"
            ))),
        }
    }
}

/// The PG's record must be about this order, this attempt and this amount before we believe it.
fn check_record(payment: &Payment, record: &PgPayment) -> Result<(), String> {
    if record.order_id != payment.order_id {
        return Err(format!(
            "PG orderId {:?} differs from ours {:?}",
            record.order_id, payment.order_id
        ));
    }
    if payment.payment_key.as_deref() != Some(record.payment_key.as_str()) {
        return Err("PG paymentKey differs from the attempt in flight".to_owned());
    }
    let must_have_amount = matches!(
        record.status,
        PgStatus::Done | PgStatus::PartialCanceled | PgStatus::Canceled
    );
    match record.total_amount {
        Some(total) if total != payment.amount_krw => {
            return Err(format!(
                "PG totalAmount {total} differs from ours {}",
                payment.amount_krw
            ));
        }
        None if must_have_amount => return Err("PG record has no totalAmount".to_owned()),
        _ => {}
    }
    if let Some(currency) = &record.currency
        && currency != &payment.currency
    {
        return Err(format!(
            "PG currency {currency} differs from ours {}",
            payment.currency
        ));
    }
    Ok(())
}

fn status_name(status: &PgStatus) -> &str {
    match status {
        PgStatus::Ready => "READY",
        PgStatus::InProgress => "IN_PROGRESS",
        PgStatus::WaitingForDeposit => "WAITING_FOR_DEPOSIT",
        PgStatus::Done => "DONE",
        PgStatus::Canceled => "CANCELED",
        PgStatus::PartialCanceled => "PARTIAL_CANCELED",
        PgStatus::Aborted => "ABORTED",
        PgStatus::Expired => "EXPIRED",
        PgStatus::Other(other) => other,
    }
}
