//! The payment logic: the state machine, the PG calls around it, events, reconciliation.
//! (`Idempotency-Key`s are `crate::idempotency`'s; the settler purges the expired ones.)
//!
//! Every PG call follows one pattern: commit the intent (a conditional update that only one
//! request can win), call the PG with no transaction open, then commit the outcome together
//! with its event. A crash between any two steps leaves a row the settler can finish.

mod adopt;
mod attempt;
mod billing;
mod cancel;
mod codes;
mod confirm;
mod consents;
mod decide;
pub mod events;
mod health;
mod payments;
mod reconciliation;
mod refunds;
mod review;
mod scheduler;
mod schedules;
mod settler;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::crypto::{AccountSealer, BillingKeyCipher};
use crate::domain::{Actor, Payment, PaymentUpdate};
use crate::error::AppError;
use crate::gateway::{BillingGateway, GatewayError, PaymentGateway, PgPayment};
use crate::store::{Store, Target};

pub use crate::domain::PaymentRef;
pub use billing::{CustomerOutcome, IssueOutcome};
pub use cancel::{CancelCommand, CancelOutcome};
pub use confirm::{ConfirmCommand, ConfirmOutcome};
pub use consents::NewConsent;
pub use health::{Backlog, UnsettledStats};
pub use payments::NewPayment;
pub use reconciliation::{Reconciliation, ReconciliationOptions};
pub use refunds::{RefundCommand, RefundOutcome};
pub use review::{ReviewAction, ReviewCommand};
pub use scheduler::{Scheduler, SchedulerSettings};
pub use schedules::ScheduleCommand;
pub use settler::Settler;
pub use webhooks::{HintedPayment, WebhookOutcome, read_webhook};

/// How often a request re-reads the row after losing a race before giving up.
const RACE_RETRIES: usize = 3;

/// The default delays of scheduled charges' retries: 1, 3 and 7 days.
pub const DEFAULT_RETRY_DELAYS: [u32; 3] = [86_400, 259_200, 604_800];

/// Timing of PG calls and reconciliation.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The PG client's read timeout: a confirm or cancel claimed longer ago than this (plus a
    /// margin) has no live request waiting for it any more.
    pub pg_read_timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// After this long, a payment the PG does not know is given back to `PENDING`.
    pub confirm_window: Duration,
    pub reconcile_batch: u64,
    /// Seals the refund accounts kept for resends of virtual-account refunds.
    pub account_sealer: AccountSealer,
    /// How long a handled webhook delivery is remembered.
    pub webhook_retention: Duration,
}

#[derive(Clone)]
struct Billing {
    gateway: Option<Arc<dyn BillingGateway>>,
    cipher: Arc<BillingKeyCipher>,
}

#[derive(Clone)]
pub struct PaymentService {
    store: Store,
    gateway: Arc<dyn PaymentGateway>,
    settings: Arc<ServiceSettings>,
    billing: Billing,
    /// Wakes the settler early (a GET found an unsettled payment that is due).
    settle_now: Arc<Notify>,
    /// On whose behalf this service acts: the caller of a request
    /// ([`PaymentService::acting_for`]), `system` for the service's own schedules.
    actor: Actor,
    /// The delays between a scheduled charge's retryable decline and its next attempt, when
    /// the schedule names none (`[billing] retry_after_seconds`).
    retry_delays: Arc<[u32]>,
}

impl PaymentService {
    pub fn new(store: Store, gateway: Arc<dyn PaymentGateway>, settings: ServiceSettings) -> Self {
        Self {
            store,
            gateway,
            settings: Arc::new(settings),
            billing: Billing {
                gateway: None,
                cipher: Arc::new(BillingKeyCipher::generate()),
            },
            settle_now: Arc::new(Notify::new()),
            actor: Actor::system(),
            retry_delays: Arc::from(DEFAULT_RETRY_DELAYS.as_slice()),
        }
    }

    /// The default delays of scheduled charges' retries.
    pub fn with_retry_delays(mut self, delays: Vec<u32>) -> Self {
        self.retry_delays = Arc::from(delays);
        self
    }

    /// This service, acting for `actor`: every change it makes records it (events, refunds,
    /// cancels, reviews).
    pub fn acting_for(&self, actor: Actor) -> Self {
        Self {
            actor,
            ..self.clone()
        }
    }

    /// Who a change records when Toss's record drove it: the caller of a request (its reply is
    /// adopted on its behalf), Toss when the service read the record on its own schedule.
    fn record_actor(&self) -> Actor {
        self.actor.adopting()
    }

    /// Toss billing: the gateway under the billing contract's key (`None`: billing routes that
    /// need Toss answer `PG_NOT_CONFIGURED`), and the cipher of stored billing keys.
    pub fn with_billing(
        mut self,
        gateway: Option<Arc<dyn BillingGateway>>,
        cipher: BillingKeyCipher,
    ) -> Self {
        self.billing = Billing {
            gateway,
            cipher: Arc::new(cipher),
        };
        self
    }

    /// `Some("toss")` when a real PG verifies confirms, `None` with the no-op gateway.
    pub fn pg_provider(&self) -> Option<&'static str> {
        self.gateway.provider()
    }

    /// Names the payment in the current span (the request's, or the settler's), so every
    /// log line of the operation carries it.
    fn annotate(payment: &Payment) {
        let span = tracing::Span::current();
        span.record("payment_id", tracing::field::display(payment.id));
        span.record("order_id", tracing::field::display(&payment.order_id));
    }

    /// The PG client `payment`'s records live under: a billing charge's under the billing
    /// contract's key (its own MID at Toss), everything else under the payment gateway's.
    fn pg_for(&self, payment: &Payment) -> Arc<dyn PaymentGateway> {
        match (&self.billing.gateway, payment.billing_key_id) {
            (Some(billing), Some(_)) => billing.clone(),
            _ => self.gateway.clone(),
        }
    }

    /// Toss's record of `payment`: under the key we know it by, else (`or_by_order`) by its
    /// order id. A recorded transaction id that is not a `paymentKey` names no record:
    /// `Ok(None)`, Toss's answer for a key it does not know, without asking.
    async fn record_of(
        &self,
        payment: &Payment,
        or_by_order: bool,
    ) -> Result<Option<PgPayment>, GatewayError> {
        let pg = self.pg_for(payment);
        match payment.pg_ref().lookup_key() {
            Some(Ok(key)) => pg.payment_by_key(&key).await,
            None if or_by_order => pg.payment_by_order(&payment.order_id).await,
            Some(Err(_)) | None => Ok(None),
        }
    }

    /// Applies the named change `update` to `payment` where `target` still holds, with the
    /// event it records as `actor`'s; the payment as changed, `None` if the row moved.
    async fn change(
        &self,
        payment: &Payment,
        target: Target<'_>,
        update: &PaymentUpdate,
        actor: &Actor,
    ) -> Result<Option<Payment>, AppError> {
        let event = events::of_update(update, &update.applied_to(payment, Utc::now()), actor);
        Ok(self.store.update_payment(target, update, event).await?)
    }

    /// When an unsettled row should be looked at again after `attempts` looks.
    fn backoff(&self, attempts: i32) -> DateTime<Utc> {
        let exponent = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
        let delay = self
            .settings
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.settings.max_backoff);
        Utc::now() + delay
    }

    /// When a row claimed for a PG call now becomes the settler's, if the request that
    /// claimed it has not settled it by then (it died, or the PG never answered).
    fn claim_expiry(&self) -> DateTime<Utc> {
        Utc::now() + self.settings.pg_read_timeout + Duration::from_secs(5)
    }
}

/// A Toss `Idempotency-Key` for one send: `base` for the first, `base-{send}` for each resend.
/// Toss replays a reused key's answer, errors included, so a resend needs a fresh one.
fn key_of_send(base: String, send: i32) -> String {
    if send <= 1 {
        base
    } else {
        format!("{base}-{send}")
    }
}
