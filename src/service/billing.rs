//! Toss billing (자동결제): customer keys, issuing billing keys from a card registration's
//! `authKey`, listing and disabling them, and charging a payment with one. The charge is an
//! attempt like a confirm (`attempt.rs`): claimed by `PaymentUpdate::Charge`, sent with no
//! transaction open, settled by reading the order back, adopted through `decide`.

use std::sync::Arc;

use chrono::Utc;

use super::attempt::{Attempt, AttemptLife};
use super::codes::declined;
use super::consents::check_consent;
use super::{ConfirmOutcome, PaymentService, RACE_RETRIES, ServiceSettings, find};
use crate::crypto;
use crate::domain::{
    AuthKey, BillingCustomer, BillingKey, BillingKeyId, BillingKeyStatus, CustomerKey, Failure,
    PaymentId, PaymentStatus, PaymentUpdate,
};
use crate::error::AppError;
use crate::gateway::{GatewayError, IssueRequest};
use crate::store::{IssueClaim, IssuedKey, KeyRef, Store, Target};

/// `POST /billing/customers`: a new key (201) or the user's existing one (200).
#[derive(Debug, Clone)]
pub enum CustomerOutcome {
    Created(BillingCustomer),
    Existing(BillingCustomer),
}

/// An issued billing key: issued now, or found (a reload of the same `authKey`).
#[derive(Debug, Clone)]
pub struct IssueOutcome {
    pub key: BillingKey,
}

impl PaymentService {
    /// The user's customer key, created at random on first use. Two requests racing end with
    /// one key: the user id is the primary key, the loser reads the winner's.
    pub async fn billing_customer(&self, user_id: &str) -> Result<CustomerOutcome, AppError> {
        if let Some(existing) = self.store.billing_customer_of(user_id).await? {
            return Ok(CustomerOutcome::Existing(existing));
        }
        let customer = BillingCustomer {
            user_id: user_id.to_owned(),
            customer_key: CustomerKey::random(),
            created_at: Utc::now(),
        };
        if self.store.insert_billing_customer(&customer).await? {
            tracing::info!(user_id, "billing customer key created");
            return Ok(CustomerOutcome::Created(customer));
        }
        let existing = self
            .store
            .billing_customer_of(user_id)
            .await?
            .ok_or_else(|| AppError::Internal("billing customer vanished".to_owned()))?;
        Ok(CustomerOutcome::Existing(existing))
    }

    /// Issues a billing key from a card registration (`authKey`, single-use) of `customer_key`.
    /// The `authKey` is claimed (by its hash) before Toss is called, so a reload or a
    /// concurrent request gets the same key and Toss is called once.
    pub async fn issue_billing_key(
        &self,
        customer_key: CustomerKey,
        auth_key: AuthKey,
    ) -> Result<IssueOutcome, AppError> {
        let Some(customer) = self.store.billing_customer_by_key(&customer_key).await? else {
            return Err(AppError::NotFound("unknown customerKey".to_owned()));
        };
        let Some(gateway) = self.pg.billing.clone() else {
            return Err(AppError::PgNotConfigured);
        };
        let hash = crypto::auth_key_hash(auth_key.expose());
        let now = Utc::now();
        let fresh = BillingKey {
            id: BillingKeyId::new(),
            user_id: customer.user_id.clone(),
            customer_key: customer_key.clone(),
            status: BillingKeyStatus::Issuing,
            method: None,
            card: None,
            ciphertext: None,
            issue_lease_until: Some(self.settings.claim_expiry()),
            created_at: now,
            deleted_at: None,
        };
        let claimed = match self.store.claim_issue(&fresh, &hash).await? {
            IssueClaim::Claimed(row) => row,
            IssueClaim::Existing(row) if row.customer_key != customer_key => {
                // An authKey belongs to the customer that registered the card.
                return Err(AppError::NotFound(
                    "unknown authKey for this customerKey".to_owned(),
                ));
            }
            IssueClaim::Existing(row) => match row.status {
                BillingKeyStatus::Active | BillingKeyStatus::Deleted => {
                    return Ok(IssueOutcome { key: row });
                }
                BillingKeyStatus::Issuing => {
                    // Claimed before: once its lease passed (the request that claimed it died, or
                    // Toss did not answer it), this one asks Toss again with the same
                    // Idempotency-Key; until then it is still someone's.
                    match self
                        .store
                        .take_over_issue(row.id, now, self.settings.claim_expiry())
                        .await?
                    {
                        Some(row) => row,
                        None => return Err(AppError::RequestInProgress),
                    }
                }
            },
        };
        let request = IssueRequest {
            auth_key,
            customer_key,
            idempotency_key: format!("billing-issue-{}", &hash[..40]),
        };
        match gateway.issue_billing_key(&request).await {
            Ok(issued) => {
                if !issued.customer_key.is_empty()
                    && issued.customer_key != request.customer_key.as_str()
                {
                    tracing::error!(alert = "pg_billing_foreign", billing_key_id = %claimed.id, "Toss issued a billing key for another customerKey; not stored");
                    self.store.drop_issue_claim(claimed.id).await?;
                    return Err(AppError::PgResponseMismatch);
                }
                let stored = IssuedKey {
                    ciphertext: self.cipher.encrypt(claimed.id, &issued.billing_key),
                    fingerprint: crypto::fingerprint(issued.billing_key.expose()),
                    method: issued.method,
                    card: issued.card,
                };
                let key = self
                    .store
                    .activate_billing_key(claimed.id, stored)
                    .await?
                    .ok_or(AppError::RequestInProgress)?;
                tracing::info!(billing_key_id = %key.id, user_id = %key.user_id, "billing key issued");
                Ok(IssueOutcome { key })
            }
            Err(GatewayError::Declined { code, message }) => {
                self.store.drop_issue_claim(claimed.id).await?;
                tracing::info!(pg_code = %code, "Toss refused to issue a billing key");
                Err(declined(Failure::new(code, message)))
            }
            Err(GatewayError::Misconfigured { code, message }) => {
                self.store.drop_issue_claim(claimed.id).await?;
                tracing::error!(pg_code = %code, "Toss rejected our billing configuration");
                Err(AppError::PgMisconfigured { code, message })
            }
            Err(GatewayError::Unknown { reason, .. }) => {
                // Toss may have issued it: the claim stays, and a retry after its lease asks
                // again with the same Idempotency-Key (Toss replays its first answer).
                tracing::warn!(billing_key_id = %claimed.id, %reason, "billing key issue outcome unknown; a retry will ask Toss again");
                Err(AppError::RequestInProgress)
            }
        }
    }

    pub async fn billing_key(&self, id: BillingKeyId) -> Result<BillingKey, AppError> {
        active_or_deleted(&self.store, id).await
    }

    pub async fn billing_keys_of(&self, user_id: &str) -> Result<Vec<BillingKey>, AppError> {
        Ok(self.store.billing_keys_of(user_id).await?)
    }

    /// Disables a key here (Toss is not called). Deleting a deleted key answers it as it is.
    pub async fn delete_billing_key(&self, id: BillingKeyId) -> Result<BillingKey, AppError> {
        let key = self.billing_key(id).await?;
        if key.status == BillingKeyStatus::Active {
            self.store
                .delete_billing_key(KeyRef::Id(id), Utc::now())
                .await?;
            tracing::info!(billing_key_id = %id, "billing key deleted");
        }
        self.billing_key(id).await
    }

    /// Toss's `BILLING_DELETED`: applied whatever its source (only Toss and we know billing
    /// keys, and it can only disable one). `false` when no active key of ours matched.
    pub async fn billing_key_deleted_at_toss(&self, fingerprint: &str) -> Result<bool, AppError> {
        let deleted = self
            .store
            .delete_billing_key(KeyRef::Fingerprint(fingerprint), Utc::now())
            .await?;
        for key in &deleted {
            tracing::info!(billing_key_id = %key.id, "billing key deleted at Toss (webhook)");
        }
        Ok(!deleted.is_empty())
    }
}

/// The charge use case: a `PENDING` payment charged with one of the buyer's billing keys.
pub struct Charging {
    pub(super) store: Store,
    pub(super) billing_configured: bool,
    pub(super) settings: Arc<ServiceSettings>,
    pub(super) life: AttemptLife,
}

impl Charging {
    /// Charges `PENDING` payment `payment_id` with billing key `billing_key_id`: the amount,
    /// order id and name are ours. Answers as a confirm does; a retry of the same charge
    /// (same key) gets the payment as the first made it, never a second charge.
    pub async fn charge(
        &self,
        payment_id: PaymentId,
        billing_key_id: BillingKeyId,
    ) -> Result<ConfirmOutcome, AppError> {
        let mut payment = find(&self.store, payment_id).await?;
        let key = active_or_deleted(&self.store, billing_key_id).await?;
        if key.user_id != payment.user_id {
            return Err(AppError::BillingKeyMismatch);
        }
        for _ in 0..RACE_RETRIES {
            match payment.status {
                PaymentStatus::Pending => {
                    if key.status != BillingKeyStatus::Active {
                        return Err(inactive());
                    }
                    if !self.billing_configured {
                        return Err(AppError::PgNotConfigured);
                    }
                    // The buyer's consent to the amount, before Toss is called (§13⑥).
                    check_consent(&self.store, &payment).await?;
                    let claim = PaymentUpdate::Charge {
                        billing_key_id,
                        provider: "toss".to_owned(),
                        at: Utc::now(),
                        lease_until: self.settings.claim_expiry(),
                    };
                    let target = Target {
                        status: Some(PaymentStatus::Pending),
                        attempt: Some(payment.confirm_attempt),
                        ..Target::from(payment.id)
                    };
                    if let Some(claimed) = self.store.update_payment(target, &claim, None).await? {
                        let attempt = Attempt::Charge(billing_key_id);
                        return self.life.send_with(claimed, attempt, Some(key)).await;
                    }
                }
                PaymentStatus::Completed
                | PaymentStatus::PartialRefund
                | PaymentStatus::Refunded
                    if payment.billing_key_id == Some(billing_key_id)
                        && payment.pg_ref().paid_by().is_some() =>
                {
                    return Ok(ConfirmOutcome::Completed(payment));
                }
                PaymentStatus::InProgress if payment.charge_in_flight() => {
                    if payment.billing_key_id != Some(billing_key_id) {
                        return Err(AppError::InvalidState(
                            "the payment is being charged with another billing key".to_owned(),
                        ));
                    }
                    return self.life.settle_if_due(payment).await;
                }
                status @ (PaymentStatus::InProgress
                | PaymentStatus::WaitingForDeposit
                | PaymentStatus::Completed
                | PaymentStatus::PartialRefund
                | PaymentStatus::Refunded
                | PaymentStatus::Failed
                | PaymentStatus::Cancelled) => {
                    return Err(AppError::InvalidState(format!(
                        "a payment in status {status} cannot be charged"
                    )));
                }
            }
            payment = find(&self.store, payment.id).await?;
        }
        Err(AppError::RequestInProgress)
    }
}

/// A billing key that was issued (active or deleted since).
pub(super) async fn active_or_deleted(
    store: &Store,
    id: BillingKeyId,
) -> Result<BillingKey, AppError> {
    store
        .billing_key(id)
        .await?
        .filter(|key| key.status != BillingKeyStatus::Issuing)
        .ok_or_else(|| AppError::NotFound(format!("billing key {id} not found")))
}

pub(super) fn inactive() -> AppError {
    AppError::BillingKeyInactive("the billing key is not ACTIVE (it was deleted)".to_owned())
}
