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
use crate::domain::{Actor, Payment, PaymentId, PaymentUpdate};
use crate::error::AppError;
use crate::gateway::{BillingGateway, GatewayError, PaymentGateway, PgPayment};
use crate::store::{Store, Target};

pub use crate::domain::PaymentRef;
use adopt::Adoption;
use attempt::AttemptLife;
pub use billing::{Charging, CustomerOutcome, IssueOutcome};
pub use cancel::{CancelCommand, CancelOutcome, Cancelling};
pub use confirm::{ConfirmCommand, ConfirmOutcome, Confirming};
pub use consents::NewConsent;
pub use health::{Backlog, UnsettledStats};
pub use payments::NewPayment;
pub use reconciliation::{Reconciliation, ReconciliationOptions};
pub use refunds::{RefundCommand, RefundOutcome, Refunding};
pub use review::{ReviewAction, ReviewCommand, Reviewing};
pub use scheduler::{Scheduler, SchedulerSettings};
pub use schedules::{ScheduleCommand, Schedules};
pub use settler::Settler;
use settler::Settling;
pub use webhooks::{HintedPayment, WebhookOutcome, Webhooks, read_webhook};

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

/// The PG clients: Toss's payments, and (when configured) Toss billing under its own key.
#[derive(Clone)]
pub(super) struct Pg {
    payments: Arc<dyn PaymentGateway>,
    billing: Option<Arc<dyn BillingGateway>>,
}

impl Pg {
    /// The client `payment`'s records live under: a billing charge's under the billing
    /// contract's key (its own MID at Toss), everything else under the payment gateway's.
    fn of(&self, payment: &Payment) -> Arc<dyn PaymentGateway> {
        match (&self.billing, payment.billing_key_id) {
            (Some(billing), Some(_)) => billing.clone(),
            _ => self.payments.clone(),
        }
    }

    /// Toss's record of `payment`: under the key we know it by, else (`or_by_order`) by its
    /// order id. A recorded transaction id that is not a `paymentKey` names no record.
    async fn record_of(
        &self,
        payment: &Payment,
        or_by_order: bool,
    ) -> Result<Option<PgPayment>, GatewayError> {
        let pg = self.of(payment);
        match payment.pg_ref().lookup_key() {
            Some(Ok(key)) => pg.payment_by_key(&key).await,
            None if or_by_order => pg.payment_by_order(&payment.order_id).await,
            Some(Err(_)) | None => Ok(None),
        }
    }
}

impl ServiceSettings {
    /// When an unsettled row should be looked at again after `attempts` looks.
    fn backoff(&self, attempts: i32) -> DateTime<Utc> {
        let exponent = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
        let delay = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.max_backoff);
        Utc::now() + delay
    }

    /// How long a row claimed for a PG call (an attempt, a refund's send, the cancel slot) stays
    /// its claimant's: past the PG client's read timeout, no live request waits for the answer.
    fn claim_lease(&self) -> Duration {
        self.pg_read_timeout + Duration::from_secs(5)
    }

    /// When a row claimed for a PG call becomes the settler's, if the request that claimed it
    /// has not settled it by then (it died, or the PG never answered).
    fn claim_expiry(&self) -> DateTime<Utc> {
        Utc::now() + self.claim_lease()
    }
}

/// The HTTP layer's one handle: the reads, billing keys, and the use cases it hands out, each a
/// type holding only what it uses.
#[derive(Clone)]
pub struct PaymentService {
    store: Store,
    pg: Pg,
    cipher: Arc<BillingKeyCipher>,
    settings: Arc<ServiceSettings>,
    /// Wakes the settler early (a GET found an unsettled payment that is due).
    settle_now: Arc<Notify>,
    /// On whose behalf this service acts: the caller of a request, `system` for the service's
    /// own schedules.
    actor: Actor,
    /// The delays of a scheduled charge's retries when its schedule names none.
    retry_delays: Arc<[u32]>,
}

impl PaymentService {
    pub fn new(store: Store, gateway: Arc<dyn PaymentGateway>, settings: ServiceSettings) -> Self {
        Self {
            store,
            pg: Pg {
                payments: gateway,
                billing: None,
            },
            cipher: Arc::new(BillingKeyCipher::generate()),
            settings: Arc::new(settings),
            settle_now: Arc::new(Notify::new()),
            actor: Actor::system(),
            retry_delays: Arc::from(DEFAULT_RETRY_DELAYS.as_slice()),
        }
    }

    pub fn with_retry_delays(mut self, delays: Vec<u32>) -> Self {
        self.retry_delays = Arc::from(delays);
        self
    }

    /// This service, acting for `actor`: every change it makes records it.
    pub fn acting_for(&self, actor: Actor) -> Self {
        Self {
            actor,
            ..self.clone()
        }
    }

    /// Toss billing: the gateway under the billing contract's key (`None`: billing routes that
    /// need Toss answer `PG_NOT_CONFIGURED`), and the cipher of stored billing keys.
    pub fn with_billing(
        mut self,
        gateway: Option<Arc<dyn BillingGateway>>,
        cipher: BillingKeyCipher,
    ) -> Self {
        self.pg.billing = gateway;
        self.cipher = Arc::new(cipher);
        self
    }

    /// `Some("toss")` when a real PG verifies confirms, `None` with the no-op gateway.
    pub fn pg_provider(&self) -> Option<&'static str> {
        self.pg.payments.provider()
    }

    fn adoption(&self) -> Adoption {
        Adoption {
            store: self.store.clone(),
            settings: self.settings.clone(),
            provider: self.pg.payments.provider().unwrap_or("toss"),
            actor: self.actor.clone(),
        }
    }

    fn life(&self) -> AttemptLife {
        AttemptLife {
            store: self.store.clone(),
            pg: self.pg.clone(),
            cipher: self.cipher.clone(),
            settings: self.settings.clone(),
            actor: self.actor.clone(),
            adoption: self.adoption(),
        }
    }

    pub fn confirms(&self) -> Confirming {
        Confirming {
            store: self.store.clone(),
            provider: self.pg.payments.provider(),
            settings: self.settings.clone(),
            actor: self.actor.clone(),
            life: self.life(),
        }
    }

    pub fn charges(&self) -> Charging {
        Charging {
            store: self.store.clone(),
            billing_configured: self.pg.billing.is_some(),
            settings: self.settings.clone(),
            life: self.life(),
        }
    }

    pub fn cancels(&self) -> Cancelling {
        Cancelling {
            store: self.store.clone(),
            pg: self.pg.clone(),
            settings: self.settings.clone(),
            actor: self.actor.clone(),
            adoption: self.adoption(),
        }
    }

    pub fn refunding(&self) -> Refunding {
        Refunding {
            store: self.store.clone(),
            pg: self.pg.clone(),
            settings: self.settings.clone(),
            actor: self.actor.clone(),
            adoption: self.adoption(),
        }
    }

    pub fn webhooks(&self) -> Webhooks {
        Webhooks {
            store: self.store.clone(),
            pg: self.pg.clone(),
            adoption: self.adoption(),
        }
    }

    pub fn reviewing(&self) -> Reviewing {
        Reviewing {
            store: self.store.clone(),
            pg: self.pg.clone(),
            actor: self.actor.clone(),
            adoption: self.adoption(),
        }
    }

    pub fn schedules(&self) -> Schedules {
        Schedules {
            store: self.store.clone(),
            retry_delays: self.retry_delays.clone(),
        }
    }

    fn settling(&self) -> Settling {
        Settling {
            store: self.store.clone(),
            settings: self.settings.clone(),
            life: self.life(),
            cancels: self.cancels(),
            refunds: self.refunding(),
        }
    }

    /// One settler pass over everything due; how many rows it looked at.
    pub async fn settle_due(&self) -> Result<usize, AppError> {
        self.settling().settle_due().await
    }
}

/// Names the payment in the current span (the request's, or the settler's), so every log line
/// of the operation carries it.
fn annotate(payment: &Payment) {
    let span = tracing::Span::current();
    span.record("payment_id", tracing::field::display(payment.id));
    span.record("order_id", tracing::field::display(&payment.order_id));
}

async fn find(store: &Store, id: PaymentId) -> Result<Payment, AppError> {
    find_ref(store, &PaymentRef::Id(id)).await
}

async fn find_ref(store: &Store, payment: &PaymentRef) -> Result<Payment, AppError> {
    let found = match payment {
        PaymentRef::Id(id) => store.payment(*id).await?,
        PaymentRef::OrderId(order_id) => store.payment_by_order(order_id).await?,
    };
    let payment = found.ok_or_else(|| {
        AppError::NotFound(match payment {
            PaymentRef::Id(id) => format!("payment {id} not found"),
            PaymentRef::OrderId(order_id) => format!("no payment with order_id {order_id}"),
        })
    })?;
    annotate(&payment);
    Ok(payment)
}

/// Applies the named change `update` to `payment` where `target` still holds, with the event it
/// records as `actor`'s; the payment as changed, `None` if the row moved.
async fn change(
    store: &Store,
    payment: &Payment,
    target: Target<'_>,
    update: &PaymentUpdate,
    actor: &Actor,
) -> Result<Option<Payment>, AppError> {
    let event = events::of_update(update, &update.applied_to(payment, Utc::now()), actor);
    Ok(store.update_payment(target, update, event).await?)
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
