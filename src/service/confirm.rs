//! Confirming a payment: through the PG when it can verify the payment (a Toss `payment_key`),
//! else by recording the caller's claim (the plan's fallback path, API key required).

use std::sync::Arc;

use chrono::Utc;

use super::attempt::{Attempt, AttemptLife};
use super::{RACE_RETRIES, ServiceSettings, annotate, change, find, find_ref};
use crate::domain::{
    Actor, Failure, OrderId, Payment, PaymentKey, PaymentRef, PaymentStatus, PaymentUpdate,
};
use crate::error::AppError;
use crate::store::{Store, Target};

#[derive(Debug, Clone)]
pub struct ConfirmCommand {
    pub payment: PaymentRef,
    pub payment_key: Option<PaymentKey>,
    /// What the client believes the amount is; refused before any PG call if it differs.
    pub amount_krw: Option<i64>,
    pub pg_transaction_id: Option<String>,
    pub pg_provider: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ConfirmOutcome {
    /// `COMPLETED` (now, or already by the same key).
    Completed(Payment),
    /// The PG's outcome is not known yet (`IN_PROGRESS`); the service settles it by itself.
    Unsettled(Payment),
    /// The PG issued a virtual account (`WAITING_FOR_DEPOSIT`); the deposit completes it.
    AwaitingDeposit(Payment),
}

impl ConfirmOutcome {
    pub fn payment(&self) -> &Payment {
        match self {
            Self::Completed(p) | Self::Unsettled(p) | Self::AwaitingDeposit(p) => p,
        }
    }
}

/// The confirm use case: the buyer's (or the success redirect's) `paymentKey` confirmed at Toss,
/// or a caller's claim recorded; and the fail redirect.
pub struct Confirming {
    pub(super) store: Store,
    /// `Some("toss")` when a real PG verifies confirms.
    pub(super) provider: Option<&'static str>,
    pub(super) settings: Arc<ServiceSettings>,
    pub(super) actor: Actor,
    pub(super) life: AttemptLife,
}

impl Confirming {
    /// Whether this confirm must carry an API key: only a PG's answer proves a payment, so a
    /// claim that no PG will verify needs a trusted caller.
    pub fn confirm_needs_api_key(&self, command: &ConfirmCommand) -> bool {
        command.payment_key.is_none() || self.provider.is_none()
    }

    pub async fn confirm(&self, command: ConfirmCommand) -> Result<ConfirmOutcome, AppError> {
        if let (Some(payment_key), Some(provider)) = (&command.payment_key, self.provider) {
            return self
                .confirm_with_pg(
                    command.payment,
                    command.amount_krw,
                    payment_key.clone(),
                    provider,
                )
                .await;
        }
        let payment = find_ref(&self.store, &command.payment).await?;
        check_amount(&payment, command.amount_krw)?;
        // The no-op path keeps the caller's transaction id; a Toss key stands in only when none
        // was given.
        let transaction_id = command
            .pg_transaction_id
            .or(command.payment_key.map(String::from));
        self.confirm_recorded(payment, transaction_id, command.pg_provider)
            .await
    }

    /// The success redirect: Toss sent the buyer back with `paymentKey`, `orderId`, `amount`.
    pub async fn confirm_redirect(
        &self,
        payment_key: PaymentKey,
        order_id: OrderId,
        amount_krw: i64,
    ) -> Result<ConfirmOutcome, AppError> {
        let Some(provider) = self.provider else {
            return Err(AppError::PgNotConfigured);
        };
        let payment = PaymentRef::OrderId(order_id);
        self.confirm_with_pg(payment, Some(amount_krw), payment_key, provider)
            .await
    }

    /// The failure redirect: records why the buyer's attempt failed on a `PENDING` payment.
    /// Nothing proves this redirect came from Toss, so it can only annotate, never move money,
    /// and only once per attempt: alternating codes cannot fill the event log.
    pub async fn record_redirect_failure(
        &self,
        order_id: &OrderId,
        failure: Failure,
    ) -> Result<Payment, AppError> {
        let payment = find_ref(&self.store, &PaymentRef::OrderId(order_id.clone())).await?;
        let attempt = payment.confirm_attempt;
        if payment.status != PaymentStatus::Pending || payment.annotated_attempt == Some(attempt) {
            return Ok(payment);
        }
        let update = PaymentUpdate::Annotate {
            failure: failure.clone(),
            attempt,
        };
        match change(
            &self.store,
            &payment,
            payment.id.into(),
            &update,
            &self.actor,
        )
        .await?
        {
            Some(updated) => {
                tracing::info!(payment_id = %payment.id, code = %failure.code, "buyer's attempt failed (fail redirect)");
                Ok(updated)
            }
            None => find(&self.store, payment.id).await,
        }
    }

    async fn confirm_recorded(
        &self,
        mut payment: Payment,
        pg_transaction_id: Option<String>,
        pg_provider: Option<String>,
    ) -> Result<ConfirmOutcome, AppError> {
        for _ in 0..RACE_RETRIES {
            match payment.status {
                PaymentStatus::Pending => {
                    let update = PaymentUpdate::Record {
                        provider: pg_provider.clone(),
                        transaction_id: pg_transaction_id.clone(),
                    };
                    let applied = change(
                        &self.store,
                        &payment,
                        payment.id.into(),
                        &update,
                        &self.actor,
                    )
                    .await?;
                    if let Some(completed) = applied {
                        tracing::info!(payment_id = %payment.id, "payment completed (recorded without PG verification)");
                        return Ok(ConfirmOutcome::Completed(completed));
                    }
                }
                PaymentStatus::Completed
                    if payment.pg_ref().paid_by() == pg_transaction_id.as_deref()
                        && payment.pg_provider == pg_provider =>
                {
                    return Ok(ConfirmOutcome::Completed(payment));
                }
                status => return Err(not_confirmable(status)),
            }
            payment = find(&self.store, payment.id).await?;
        }
        Err(AppError::RequestInProgress)
    }

    /// Confirms through the PG. A first attempt, the usual case, is claimed before anything is
    /// read; when the claim does not happen, the payment as it is says why (or that this is a
    /// retry of an attempt already made).
    async fn confirm_with_pg(
        &self,
        payment: PaymentRef,
        amount_krw: Option<i64>,
        payment_key: PaymentKey,
        provider: &'static str,
    ) -> Result<ConfirmOutcome, AppError> {
        if let Some(claimed) = self
            .claim(payment.clone(), amount_krw, &payment_key, provider)
            .await?
        {
            return self.life.send(claimed, Attempt::Confirm(payment_key)).await;
        }
        let mut payment = find_ref(&self.store, &payment).await?;
        check_amount(&payment, amount_krw)?;
        let mut settled_other_key = false;
        for _ in 0..RACE_RETRIES {
            match payment.status {
                PaymentStatus::Pending => {
                    if let Some(claimed) = self
                        .claim(payment.id.into(), None, &payment_key, provider)
                        .await?
                    {
                        return self.life.send(claimed, Attempt::Confirm(payment_key)).await;
                    }
                }
                PaymentStatus::Completed
                    if payment.pg_ref().paid_by() == Some(payment_key.as_str()) =>
                {
                    return Ok(ConfirmOutcome::Completed(payment));
                }
                PaymentStatus::InProgress if payment.payment_key.as_ref() == Some(&payment_key) => {
                    return self.life.settle_if_due(payment).await;
                }
                PaymentStatus::WaitingForDeposit
                    if payment.payment_key.as_ref() == Some(&payment_key) =>
                {
                    return Ok(ConfirmOutcome::AwaitingDeposit(payment));
                }
                // Another key's confirm is in flight: maybe a stranger's. Toss's record of it
                // settles it first; only an attempt Toss knows for this order still blocks
                // (one approval per payment).
                PaymentStatus::InProgress
                    if !settled_other_key && payment.payment_key.is_some() =>
                {
                    settled_other_key = true;
                    if !self.life.settle_other_key(&payment).await? {
                        return Err(not_confirmable(PaymentStatus::InProgress));
                    }
                }
                status => return Err(not_confirmable(status)),
            }
            payment = find(&self.store, payment.id).await?;
        }
        Err(AppError::RequestInProgress)
    }

    /// Commits the intent to confirm `payment` (still `PENDING`, and of `amount_krw` when given)
    /// with `payment_key`. Only one request can win it; the winner gets the payment as claimed.
    async fn claim(
        &self,
        payment: PaymentRef,
        amount_krw: Option<i64>,
        payment_key: &PaymentKey,
        provider: &'static str,
    ) -> Result<Option<Payment>, AppError> {
        let claim = PaymentUpdate::Claim {
            payment_key: payment_key.clone(),
            provider: provider.to_owned(),
            at: Utc::now(),
            lease_until: self.settings.claim_expiry(),
        };
        let target = Target {
            payment,
            amount_krw,
            payment_key: None,
            status: None,
            attempt: None,
        };
        let claimed = self.store.update_payment(target, &claim, None).await?;
        if let Some(payment) = &claimed {
            annotate(payment);
        }
        Ok(claimed)
    }
}

/// The amount a client or a redirect states must be the one we stored; refused before any PG
/// call otherwise.
fn check_amount(payment: &Payment, amount_krw: Option<i64>) -> Result<(), AppError> {
    if amount_krw.is_some_and(|amount| amount != payment.amount_krw) {
        tracing::warn!(payment_id = %payment.id, "confirm refused: amount differs from the stored amount");
        return Err(AppError::AmountMismatch);
    }
    Ok(())
}

fn not_confirmable(status: PaymentStatus) -> AppError {
    AppError::InvalidState(format!("a payment in status {status} cannot be confirmed"))
}
