//! Adopting Toss's record: [`decide`] applied in one transaction (`Store::adopt`), or, for the
//! usual reply to a claimed attempt, as one conditional statement.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::decide::{Attempt, Context, Verdict, decide, forget_cancel};
use super::{ServiceSettings, events};
use crate::domain::{Actor, Payment, PaymentId, Refund, RefundId};
use crate::error::AppError;
use crate::gateway::PgPayment;
use crate::store::{Seen, Store, Target};

/// What adopting a record left: the payment and its refunds as they now are, and the verdict.
#[derive(Debug, Clone)]
pub struct Adopted {
    pub payment: Payment,
    pub refunds: Vec<Refund>,
    pub verdict: Verdict,
}

/// Adopting Toss's records for the payments of one actor.
#[derive(Clone)]
pub(super) struct Adoption {
    pub(super) store: Store,
    pub(super) settings: Arc<ServiceSettings>,
    /// The PG's name for the payments it approves (`toss`).
    pub(super) provider: &'static str,
    pub(super) actor: Actor,
}

impl Adoption {
    /// Adopts `record` for payment `id` through [`decide`], in one transaction. A flag a
    /// reconciliation run set goes once the payment no longer disagrees with what it found.
    pub(super) async fn record(
        &self,
        id: PaymentId,
        record: &PgPayment,
        cancel_of: Option<RefundId>,
    ) -> Result<Adopted, AppError> {
        self.record_seen(id, None, record, cancel_of).await
    }

    /// [`Adoption::record`], from the payment and its refunds as `seen` when given (see
    /// [`Store::adopt_seen`]): one statement when nothing changed since.
    pub(super) async fn record_seen(
        &self,
        id: PaymentId,
        seen: Option<Seen>,
        record: &PgPayment,
        cancel_of: Option<RefundId>,
    ) -> Result<Adopted, AppError> {
        let adopted = self.only(id, seen, record, cancel_of).await?;
        Ok(self.unflag_if_resolved(adopted).await)
    }

    /// [`Adoption::record_seen`], the flag left to the caller (a person's review).
    pub(super) async fn only(
        &self,
        id: PaymentId,
        seen: Option<Seen>,
        record: &PgPayment,
        cancel_of: Option<RefundId>,
    ) -> Result<Adopted, AppError> {
        let decided = |payment: &Payment, refunds: &[Refund]| {
            let decision = decide(
                payment,
                Attempt::of(payment).as_ref(),
                refunds,
                record,
                &self.context(payment, cancel_of),
            );
            (decision.plan, (decision.verdict, decision.alert))
        };
        let adopted = match seen {
            Some(seen) => self.store.adopt_seen(seen, decided).await?,
            None => self.store.adopt(id, decided).await?,
        };
        let Some((payment, refunds, (verdict, alert))) = adopted else {
            return Err(AppError::NotFound(format!("payment {id} not found")));
        };
        Self::report(&payment, record, &verdict, alert);
        Ok(Adopted {
            payment,
            refunds,
            verdict,
        })
    }

    /// A payment a reconciliation run flagged, whose adopted record no longer disagrees with
    /// what the run found, is no longer flagged by it. Best effort: the flag is only a note.
    async fn unflag_if_resolved(&self, adopted: Adopted) -> Adopted {
        if !adopted.payment.needs_review {
            return adopted;
        }
        let (payment, refunds) = (&adopted.payment, &adopted.refunds);
        match super::reconciliation::clear_resolved_flag(&self.store, payment, refunds).await {
            Ok(Some(cleared)) => Adopted {
                payment: cleared,
                ..adopted
            },
            Ok(None) => adopted,
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "review flag not re-checked");
                adopted
            }
        }
    }

    /// A confirm reply for the attempt `claimed` was just claimed for. The usual answer (approved,
    /// nothing cancelled) is one named change, applied as one conditional statement on the row
    /// as claimed; anything else, or a row that moved meanwhile, takes the locking transaction.
    pub(super) async fn reply(
        &self,
        claimed: &Payment,
        record: &PgPayment,
    ) -> Result<Adopted, AppError> {
        let decision = decide(
            claimed,
            Attempt::of(claimed).as_ref(),
            &[],
            record,
            &self.context(claimed, None),
        );
        if let (Some(update), Verdict::Settled, None) =
            (&decision.update, &decision.verdict, &decision.alert)
        {
            let after = update.applied_to(claimed, Utc::now());
            if let Some(payment) = self
                .store
                .update_payment(
                    Target::attempt(claimed),
                    update,
                    events::of_update(update, &after, &self.actor.adopting()),
                )
                .await?
            {
                Self::report(&payment, record, &Verdict::Settled, None);
                let adopted = Adopted {
                    payment,
                    refunds: Vec::new(),
                    verdict: Verdict::Settled,
                };
                return Ok(self.unflag_if_resolved(adopted).await);
            }
        }
        self.record(claimed.id, record, None).await
    }

    /// Forgets the refused cancel request of a payment waiting for its deposit (see
    /// [`forget_cancel`]), in one transaction; the payment as it then is.
    pub(super) async fn forget_cancel_request(&self, id: PaymentId) -> Result<Payment, AppError> {
        let forgotten = self
            .store
            .adopt(id, |payment, _| {
                (forget_cancel(payment, &self.context(payment, None)), ())
            })
            .await?;
        match forgotten {
            Some((payment, _, ())) => Ok(payment),
            None => Err(AppError::NotFound(format!("payment {id} not found"))),
        }
    }

    pub(super) fn context(&self, payment: &Payment, cancel_of: Option<RefundId>) -> Context {
        let now = Utc::now();
        Context {
            now,
            provider: self.provider,
            window: self.settings.confirm_window,
            send_lease: self.settings.claim_lease(),
            retry_at: self.settings.backoff(payment.reconcile_attempts),
            deposit_check_at: now + DEPOSIT_CHECK_INTERVAL,
            cancel_of,
            actor: self.actor.adopting(),
        }
    }

    fn report(
        payment: &Payment,
        record: &PgPayment,
        verdict: &Verdict,
        alert: Option<(&'static str, String)>,
    ) {
        let id = payment.id;
        if let Some((alert, detail)) = alert {
            tracing::error!(alert, payment_id = %id, order_id = %payment.order_id, %detail, "Toss's record needs attention");
        }
        match &verdict {
            Verdict::Settled => {
                tracing::info!(payment_id = %id, status = %payment.status, pg_status = record.status.as_str(), "adopted Toss's record")
            }
            Verdict::Undecided { .. } => {
                tracing::info!(payment_id = %id, pg_status = record.status.as_str(), "Toss has not decided the attempt yet")
            }
            Verdict::Foreign => {
                tracing::warn!(payment_id = %id, "Toss's record is about another order; ignored")
            }
            Verdict::Contradiction(reason) => {
                tracing::warn!(payment_id = %id, %reason, "payment set aside for review")
            }
            Verdict::Ignored(why) => {
                tracing::info!(payment_id = %id, why, "Toss's record changes nothing here")
            }
        }
    }
}

/// How often a payment waiting for its virtual-account deposit is read back (webhooks usually
/// tell first).
const DEPOSIT_CHECK_INTERVAL: Duration = Duration::from_secs(600);
