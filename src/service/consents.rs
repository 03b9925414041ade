//! Consents to a subscription's amount (전자상거래법 §13⑥): recorded as the buyer gave them,
//! and the guard every charge passes before Toss is called.

use chrono::{DateTime, Utc};

use super::Schedules;
use crate::domain::{Consent, Payment};
use crate::error::AppError;
use crate::store::Store;

/// What `POST /billing/consents` records.
#[derive(Debug, Clone)]
pub struct NewConsent {
    pub user_id: String,
    pub subscription_id: String,
    pub max_amount_krw: i64,
    pub consented_at: DateTime<Utc>,
    pub evidence: String,
}

impl Schedules {
    pub async fn record_consent(&self, new: NewConsent) -> Result<Consent, AppError> {
        let now = Utc::now();
        if new.consented_at > now {
            return Err(AppError::unprocessable(
                "consented_at: must not be in the future",
            ));
        }
        let consent = Consent {
            consent_id: uuid::Uuid::now_v7(),
            user_id: new.user_id,
            subscription_id: new.subscription_id,
            max_amount_krw: new.max_amount_krw,
            consented_at: new.consented_at,
            evidence: new.evidence,
            created_at: now,
        };
        self.store.insert_consent(&consent).await?;
        tracing::info!(consent_id = %consent.consent_id, subscription_id = %consent.subscription_id, max_amount_krw = consent.max_amount_krw, "consent recorded");
        Ok(consent)
    }

    /// A subscription's consents, newest first.
    pub async fn consents(&self, subscription_id: &str) -> Result<Vec<Consent>, AppError> {
        Ok(self.store.consents_of(subscription_id, None, None).await?)
    }
}

/// The amount the buyer agreed to for `payment`'s subscription: the newest consent's
/// `max_amount_krw`, or with none the amount of the subscription's first approved charge;
/// `None` when neither exists (the first charge is not limited) or it has no subscription.
async fn consented_amount(store: &Store, payment: &Payment) -> Result<Option<i64>, AppError> {
    let Some(subscription_id) = payment.subscription_id.as_deref() else {
        return Ok(None);
    };
    let newest = store
        .consents_of(subscription_id, Some(&payment.user_id), Some(1))
        .await?;
    if let Some(consent) = newest.first() {
        return Ok(Some(consent.max_amount_krw));
    }
    Ok(store
        .first_charged_amount(subscription_id, &payment.user_id, payment.id)
        .await?)
}

/// 409 `CONSENT_REQUIRED` when `payment`'s amount is above what the buyer consented to.
pub(super) async fn check_consent(store: &Store, payment: &Payment) -> Result<(), AppError> {
    match consented_amount(store, payment).await? {
        Some(max) if payment.amount_krw > max => {
            tracing::info!(payment_id = %payment.id, amount_krw = payment.amount_krw, consented_krw = max, "charge refused: above the consented amount");
            Err(AppError::ConsentRequired(format!(
                "the payment's amount ({} KRW) is above the {max} KRW the buyer consented to for this subscription; record a new consent first",
                payment.amount_krw
            )))
        }
        _ => Ok(()),
    }
}
