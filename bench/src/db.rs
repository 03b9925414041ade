//! Baseline (b): the database alone, doing per flow what the service asks of it, through the
//! service's own store (`payment_service::store::Store`, the same SQL, driver and pool settings)
//! on a fresh database it migrated. Nothing here writes SQL: the calls are those the service
//! makes for create -> confirm (-> refund) when Toss approves and cancels at once, in the same
//! order (`src/service/payments.rs`, `confirm.rs`, `refunds.rs`, `adopt.rs`):
//!
//! | step    | store calls                                                                  |
//! |---------|------------------------------------------------------------------------------|
//! | create  | `insert_payment`                                                              |
//! | confirm | `update_payment` with `PaymentUpdate::Claim` (by order id and amount); Toss   |
//! |         | approves; `update_payment` with `PaymentUpdate::Complete` and its event       |
//! | refund  | `payment`; `reserve_refund` with the cancel slot and the send (one statement) |
//! |         | Toss cancels; `adopt_seen` from the rows it read (the refund completed, the   |
//! |         | amounts moved, the slot freed, `payment.refunded`: one statement)             |
//!
//! What the service adds on top is HTTP, JSON, the Toss client and its own bookkeeping.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use payment_service::domain::{
    Actor, OrderId, Payment, PaymentId, PaymentKey, PaymentRef, PaymentUpdate, Refund, RefundId,
    RefundOrigin, RefundStatus, status_after_refunds,
};
use payment_service::service::events;
use payment_service::store::{
    DatabaseOptions, Plan, RefundWrite, Reservation, SendNow, Store, StoreError, Target,
};

use crate::flows::{AMOUNT_KRW, Flow};
use crate::stats::Recorder;

/// The service's default `toss.read_timeout_secs` plus its margin: how long a claim or a cancel
/// slot is leased to the request that took it.
const LEASE: Duration = Duration::from_secs(65 + 5);

/// Connects as the service does: its pool settings, its migrations.
pub async fn connect(url: &str, pool: u32) -> anyhow::Result<Store> {
    let options = DatabaseOptions {
        url: url.to_owned(),
        max_connections: pool,
        acquire_timeout: Duration::from_secs(5),
    };
    // Migrating creates the schema: hundreds of catalog rows, which PostgreSQL counts for the
    // database whenever the backend that wrote them reports. Its connections are closed, so it
    // reports now, not during the measured phase; connecting again finds the schema up to date.
    Store::connect(&options).await?.close().await;
    Ok(Store::connect(&options).await?)
}

pub struct DbFlow {
    pub store: Store,
    pub run_id: String,
    pub refund_share: f64,
}

/// Why a step of the flow did not go through.
enum Failed {
    Store(StoreError),
    /// A conditional write found nothing to change.
    Refused(&'static str),
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl Failed {
    /// A short, countable name.
    fn name(&self) -> String {
        match self {
            Self::Store(error) => error.to_string().chars().take(80).collect(),
            Self::Refused(what) => format!("{what}: no row changed"),
        }
    }
}

fn lease(now: DateTime<Utc>) -> DateTime<Utc> {
    now + LEASE
}

impl DbFlow {
    async fn create(&self, order_id: &str) -> Result<Payment, Failed> {
        let now = Utc::now();
        let payment = Payment {
            order_name: Some("bench order".to_owned()),
            ..Payment::new_pending(
                "bench-user".to_owned(),
                OrderId::parse(order_id).map_err(|_| Failed::Refused("order id"))?,
                AMOUNT_KRW,
                "card".to_owned(),
                now,
            )
        };
        self.store.insert_payment(&payment).await?;
        Ok(payment)
    }

    /// The claim (the first attempt, by order id and the amount given), then Toss's approval
    /// adopted as the confirm reply is: one named change with its event.
    async fn confirm(&self, order_id: &str) -> Result<(), Failed> {
        let payment_key =
            PaymentKey::parse(&format!("pk_{order_id}")).map_err(|_| Failed::Refused("key"))?;
        let order = OrderId::parse(order_id).map_err(|_| Failed::Refused("order id"))?;
        let now = Utc::now();
        let claim = PaymentUpdate::Claim {
            payment_key: payment_key.clone(),
            provider: "toss".to_owned(),
            at: now,
            lease_until: lease(now),
        };
        let target = Target {
            payment: PaymentRef::OrderId(order),
            amount_krw: Some(AMOUNT_KRW),
            payment_key: None,
            status: None,
            attempt: None,
        };
        let claimed = self
            .store
            .update_payment(target, &claim, None)
            .await?
            .ok_or(Failed::Refused("claim"))?;

        let now = Utc::now();
        let complete = PaymentUpdate::Complete {
            secret: Some(fake_toss::secret_of(payment_key.as_str())),
            payment_key,
            provider: "toss".to_owned(),
            approved_at: now,
            details: Default::default(),
            approval_key: Some(format!("tx_{}", uuid::Uuid::new_v4().simple())),
        };
        // The buyer's confirm, its reply adopted.
        let event = events::of_update(
            &complete,
            &complete.applied_to(&claimed, now),
            &Actor::buyer(),
        );
        self.store
            .update_payment(Target::attempt(&claimed), &complete, event)
            .await?
            .ok_or(Failed::Refused("complete"))?;
        Ok(())
    }

    /// A full refund through Toss, as the refund request drives it when Toss cancels at once.
    async fn refund(&self, payment_id: PaymentId) -> Result<(), Failed> {
        let payment = self
            .store
            .payment(payment_id)
            .await?
            .ok_or(Failed::Refused("read payment"))?;
        let now = Utc::now();
        let refund = Refund {
            id: RefundId::new(),
            payment_id: payment.id,
            amount_krw: payment.refundable_krw(),
            reason: "bench refund".to_owned(),
            status: RefundStatus::Pending,
            pg_cancel_key: None,
            idempotency_key: None,
            origin: RefundOrigin::Service,
            sends: 0,
            last_sent_at: None,
            failure: None,
            reconcile_attempts: 0,
            next_reconcile_at: Some(lease(now)),
            created_at: now,
            refunded_at: None,
            tax_free_amount_krw: 0,
            refund_account: None,
            requested_by: Actor::api_key("key-1"),
        };
        let now = Utc::now();
        let send = SendNow {
            now,
            slot_until: lease(now),
            lease_until: lease(now),
        };
        let Reservation::Sending(sending) =
            self.store.reserve_refund(&refund, None, Some(send)).await?
        else {
            return Err(Failed::Refused("reserve, take the cancel slot, mark sent"));
        };

        let cancel_key = format!("cx_{}", uuid::Uuid::new_v4().simple());
        let now = Utc::now();
        let adopted = self
            .store
            .adopt_seen(sending.seen, |payment, refunds| {
                let plan = cancelled(payment, refunds, refund.id, &cancel_key, now);
                let done = plan.is_some();
                (plan, done)
            })
            .await?;
        if !matches!(adopted, Some((_, _, true))) {
            return Err(Failed::Refused("adopt the cancel"));
        }
        Ok(())
    }
}

/// What adopting Toss's cancel reply plans for a refund Toss just made: the refund completed
/// with Toss's key, its amount moved from the reserve to the refunded total, the status after
/// it, the cancel slot freed, and `payment.refunded`. `None` if the refund is not pending.
fn cancelled(
    payment: &Payment,
    refunds: &[Refund],
    refund_id: RefundId,
    cancel_key: &str,
    now: DateTime<Utc>,
) -> Option<Plan> {
    let mut refund = refunds
        .iter()
        .find(|r| r.id == refund_id && r.status == RefundStatus::Pending)?
        .clone();
    refund.status = RefundStatus::Completed;
    refund.pg_cancel_key = Some(cancel_key.to_owned());
    refund.refunded_at = Some(now);
    refund.next_reconcile_at = None;
    let mut after = payment.clone();
    after.refund_reserved_krw -= refund.amount_krw;
    after.refunded_amount_krw += refund.amount_krw;
    if after.cancel_slot == Some(refund_id) {
        after.cancel_slot = None;
        after.cancel_slot_until = None;
    }
    after.status = status_after_refunds(&after);
    after.updated_at = now;
    let event = events::refunded(&after, &refund, &refund.requested_by);
    Some(Plan {
        payment: after,
        refunds: vec![RefundWrite::Update(refund)],
        events: vec![event],
    })
}

impl Flow for DbFlow {
    async fn run(&self, worker: usize, seq: u64, recorder: &mut Recorder) -> bool {
        let order_id = format!("d{}-{worker}-{seq}", self.run_id);

        let t = Instant::now();
        let payment = match self.create(&order_id).await {
            Ok(payment) => payment,
            Err(error) => {
                recorder.error(format!("db create {}", error.name()));
                return false;
            }
        };
        recorder.step("create", t.elapsed());

        let t = Instant::now();
        if let Err(error) = self.confirm(&order_id).await {
            recorder.error(format!("db confirm {}", error.name()));
            return false;
        }
        recorder.step("confirm", t.elapsed());

        if rand::random::<f64>() < self.refund_share {
            let t = Instant::now();
            if let Err(error) = self.refund(payment.id).await {
                recorder.error(format!("db refund {}", error.name()));
                return false;
            }
            recorder.step("refund", t.elapsed());
        }
        true
    }
}
