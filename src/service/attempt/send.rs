//! One send of a claimed attempt to Toss (a confirm, or a charge of a billing key) and what its
//! answer does: an answer is adopted, a decline releases the attempt (with a failure when Toss
//! knows the attempt), our own misconfiguration releases it without one, an unknown outcome is
//! settled by reading Toss's record back.

use sha2::{Digest, Sha256};

use super::{Attempt, AttemptLife, no_billing};
use crate::crypto::CipherError;
use crate::domain::{
    Actor, BillingKey, BillingKeyId, BillingKeySecret, BillingKeyStatus, CustomerKey, Failure,
    Payment, PaymentId, PaymentKey, PaymentUpdate,
};
use crate::error::AppError;
use crate::gateway::{ChargeRequest, ConfirmRequest, GatewayError};
use crate::service::codes::{Code, declined};
use crate::service::{ConfirmOutcome, change, key_of_send};
use crate::store::Target;

/// Toss's confirm codes for "no session of this key for this order" (§8.2, §17.6).
const SESSION_NOT_FOUND: &[&str] = &["NOT_FOUND_PAYMENT_SESSION", Code::NotFoundPayment.as_str()];

impl AttemptLife {
    /// Sends the attempt `payment` holds (as the claim or resend committed it) and adopts what
    /// comes back.
    pub(in crate::service) async fn send(
        &self,
        payment: Payment,
        attempt: Attempt,
    ) -> Result<ConfirmOutcome, AppError> {
        self.send_with(payment, attempt, None).await
    }

    /// [`AttemptLife::send`] of a charge whose billing key the caller has just read (`key`):
    /// not read again.
    pub(in crate::service) async fn send_with(
        &self,
        payment: Payment,
        attempt: Attempt,
        key: Option<BillingKey>,
    ) -> Result<ConfirmOutcome, AppError> {
        let answer = match &attempt {
            Attempt::Confirm(key) => {
                let request = ConfirmRequest {
                    idempotency_key: confirm_idempotency_key(
                        payment.id,
                        key,
                        payment.confirm_sends,
                    ),
                    payment_key: key.clone(),
                    order_id: payment.order_id.clone(),
                    amount: payment.amount_krw,
                };
                tracing::info!(payment_id = %payment.id, order_id = %payment.order_id, "confirming at the PG");
                self.pg.payments.confirm(&request).await
            }
            Attempt::Charge(id) => match &self.pg.billing {
                Some(gateway) => {
                    let request = self.charge_request(&payment, *id, key).await?;
                    tracing::info!(payment_id = %payment.id, order_id = %payment.order_id, send = payment.confirm_sends, "charging a billing key at the PG");
                    gateway.charge(&request).await
                }
                None => Err(no_billing()),
            },
        };
        match answer {
            Ok(record) => {
                let adopted = self.adoption.reply(&payment, &record).await?;
                self.outcome(adopted.payment, &adopted.verdict, &attempt)
            }
            Err(GatewayError::Declined { code, message }) => {
                let failure = Failure::new(code, message);
                self.declined(payment, attempt, failure).await
            }
            Err(GatewayError::Misconfigured { code, message }) => {
                self.release(&payment, None, &self.actor.adopting()).await?;
                tracing::error!(payment_id = %payment.id, pg_code = %code, "PG rejected our configuration; payment left PENDING");
                Err(AppError::PgMisconfigured { code, message })
            }
            Err(GatewayError::Unknown { reason, code, .. }) => {
                tracing::warn!(payment_id = %payment.id, %reason, pg_code = ?code, "outcome unknown; reading Toss's record back");
                self.settle(payment, false).await
            }
        }
    }

    /// Toss declined the attempt. A charge's failure says whether the card may pass later. A
    /// confirm's "no session" (`NOT_FOUND_PAYMENT(_SESSION)`) is the same code for an expired
    /// attempt of the order and for a key that is random or another order's (§17.6): only a
    /// key Toss knows for this order records the failure (a stranger's keys cannot fail an
    /// order), and one Toss shows approved is adopted, never released over.
    async fn declined(
        &self,
        payment: Payment,
        attempt: Attempt,
        mut failure: Failure,
    ) -> Result<ConfirmOutcome, AppError> {
        let told = failure.clone();
        let recorded = match &attempt {
            Attempt::Charge(_) => {
                if let Some(gateway) = &self.pg.billing {
                    failure.retryable = Some(gateway.decline_is_retryable(&failure.code));
                }
                Some(failure)
            }
            Attempt::Confirm(key) if SESSION_NOT_FOUND.contains(&failure.code.as_str()) => {
                match self.pg.payments.payment_by_key(key).await {
                    Ok(Some(record)) if record.order_id == payment.order_id.as_str() => {
                        if record.approved_at.is_some() {
                            let adopted = self.adoption.record(payment.id, &record, None).await?;
                            return self.outcome(adopted.payment, &adopted.verdict, &attempt);
                        }
                        Some(failure)
                    }
                    other => {
                        let error = other.err().map(|error| error.to_string());
                        tracing::warn!(payment_id = %payment.id, ?error, "the declined payment key is not one Toss knows for this order; nothing recorded");
                        None
                    }
                }
            }
            Attempt::Confirm(_) => Some(failure),
        };
        tracing::info!(payment_id = %payment.id, pg_code = %told.code, recorded = recorded.is_some(), "PG declined the attempt");
        let retryable = recorded.as_ref().and_then(|f| f.retryable);
        self.release(&payment, recorded, &self.actor.adopting())
            .await?;
        Err(declined(Failure { retryable, ..told }))
    }

    /// The charge of `payment` with billing key `id`: our amount, order id and name, the key
    /// decrypted. When the key cannot be used, an attempt never sent is released; one sent
    /// before is looked at again later (its earlier send may have landed).
    async fn charge_request(
        &self,
        payment: &Payment,
        id: BillingKeyId,
        key: Option<BillingKey>,
    ) -> Result<ChargeRequest, AppError> {
        let (billing_key, customer_key) = match self.billing_secret(id, key).await {
            Ok(found) => found,
            Err(error) => {
                if payment.confirm_sends <= 1 {
                    self.release(payment, None, &self.actor.adopting()).await?;
                } else {
                    self.retry_later(payment, &Attempt::Charge(id)).await?;
                }
                return Err(error);
            }
        };
        Ok(ChargeRequest {
            billing_key,
            customer_key,
            order_id: payment.order_id.clone(),
            order_name: payment
                .order_name
                .clone()
                .unwrap_or_else(|| payment.order_id.to_string()),
            amount: payment.amount_krw,
            tax_free_amount: payment.tax_free_amount_krw,
            idempotency_key: charge_idempotency_key(payment.id, payment.confirm_attempt),
        })
    }

    /// The billing key (`known`, or read) and its customer key, decrypted for a charge.
    async fn billing_secret(
        &self,
        id: BillingKeyId,
        known: Option<BillingKey>,
    ) -> Result<(BillingKeySecret, CustomerKey), AppError> {
        let key = match known {
            Some(key) => Some(key),
            None => self.store.billing_key(id).await?,
        }
        .filter(|key| key.id == id && key.status != BillingKeyStatus::Issuing)
        .ok_or_else(|| AppError::NotFound(format!("billing key {id} not found")))?;
        let Some(ciphertext) = key.ciphertext.as_deref() else {
            return Err(AppError::BillingKeyInactive(
                "the billing key has not been issued".to_owned(),
            ));
        };
        match self.cipher.decrypt(id, ciphertext) {
            Ok(secret) => Ok((secret, key.customer_key)),
            Err(error @ CipherError::Undecryptable) | Err(error @ CipherError::BadKey(_)) => {
                tracing::error!(alert = "billing_key_undecryptable", billing_key_id = %id, %error, "stored billing key cannot be decrypted");
                Err(AppError::BillingKeyInactive(format!(
                    "{error}; the buyer must register the card again"
                )))
            }
        }
    }

    /// Settles the attempt `payment` has in flight with another confirm's key, so that a key a
    /// stranger posted cannot block the buyer's: a key Toss has no record of, or whose record
    /// is another order's, is released (nothing recorded); a record of this order is adopted
    /// (an attempt Toss knows and has in flight stays, and still blocks). Returns whether the
    /// payment may have changed.
    pub(in crate::service) async fn settle_other_key(
        &self,
        payment: &Payment,
    ) -> Result<bool, AppError> {
        let Some(other) = payment.payment_key.as_ref() else {
            return Ok(false);
        };
        match self.pg.payments.payment_by_key(other).await {
            // Adopted through `decide`, which also releases an attempt in flight whose record
            // is another order's.
            Ok(Some(record)) => {
                self.adoption.record(payment.id, &record, None).await?;
                Ok(true)
            }
            Ok(None) => {
                tracing::warn!(payment_id = %payment.id, "the attempt in flight is of a payment key Toss has no record of; released");
                self.release(payment, None, &self.actor.adopting()).await?;
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "read-back of the attempt in flight failed");
                Ok(false)
            }
        }
    }

    /// An attempt that did not happen at the PG: back to `PENDING` (the buyer may try again),
    /// with the failure and a `payment.failed` event when there is one to tell.
    pub(in crate::service) async fn release(
        &self,
        payment: &Payment,
        failure: Option<Failure>,
        actor: &Actor,
    ) -> Result<Option<Payment>, AppError> {
        let update = PaymentUpdate::Release { failure };
        change(
            &self.store,
            payment,
            Target::attempt(payment),
            &update,
            actor,
        )
        .await
    }
}

/// Toss scopes idempotency keys by URL (the billing key's), not body: one key per charge
/// attempt, the same for every send of it, so a resend after an unknown outcome is replayed by
/// Toss rather than charged again. A new attempt (after a decline Toss answered) gets a new one.
fn charge_idempotency_key(payment_id: PaymentId, attempt: i32) -> String {
    format!("charge-{payment_id}-{attempt}")
}

/// Toss scopes idempotency keys by URL, not body, and every confirm shares one URL: the key must
/// be unique per attempt, so it is derived from the attempt's `paymentKey`. Toss replays a
/// reused key's answer, errors included, so every resend (`send` > 1) gets a fresh one.
fn confirm_idempotency_key(payment_id: PaymentId, payment_key: &PaymentKey, send: i32) -> String {
    let digest = Sha256::digest(payment_key.as_str().as_bytes());
    let short = hex::encode(&digest[..12]);
    key_of_send(format!("confirm-{payment_id}-{short}"), send)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_keys_differ_per_attempt_and_repeat_per_retry() {
        let payment = PaymentId::new();
        let (key_a, key_b) = (
            PaymentKey::parse("key-a").unwrap(),
            PaymentKey::parse("key-b").unwrap(),
        );
        let first = confirm_idempotency_key(payment, &key_a, 1);
        assert_eq!(first, confirm_idempotency_key(payment, &key_a, 1));
        assert_ne!(first, confirm_idempotency_key(payment, &key_b, 1));
        assert_ne!(first, confirm_idempotency_key(PaymentId::new(), &key_a, 1));
        assert!(first.len() <= 300);
        let resend = confirm_idempotency_key(payment, &key_a, 2);
        assert_ne!(
            first, resend,
            "a resend never replays the first send's answer"
        );
        assert_ne!(resend, confirm_idempotency_key(payment, &key_a, 3));
    }

    #[test]
    fn charge_keys_differ_per_attempt_only() {
        let payment = PaymentId::new();
        assert_eq!(
            charge_idempotency_key(payment, 1),
            charge_idempotency_key(payment, 1)
        );
        assert_ne!(
            charge_idempotency_key(payment, 1),
            charge_idempotency_key(payment, 2)
        );
        assert_ne!(
            charge_idempotency_key(payment, 1),
            charge_idempotency_key(PaymentId::new(), 1)
        );
    }
}
