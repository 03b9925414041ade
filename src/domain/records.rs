use chrono::{DateTime, Utc};

use super::{
    Actor, BillingKeyId, CardSummary, Failure, OrderId, PaymentId, PaymentKey, PaymentStatus,
    PaymentType, PgRef, RefundId, RefundOrigin, RefundStatus, ScopedKey, SealedAccount,
    VirtualAccount,
};

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub user_id: String,
    pub order_id: OrderId,
    pub order_name: Option<String>,
    pub subscription_id: Option<String>,
    pub payment_type: PaymentType,
    pub payment_method: String,
    pub amount_krw: i64,
    /// Sum of completed refunds.
    pub refunded_amount_krw: i64,
    /// Sum of refunds sent to the PG whose outcome is not known yet.
    pub refund_reserved_krw: i64,
    pub currency: String,
    pub status: PaymentStatus,
    pub pg_provider: Option<String>,
    /// The PG's id of the approved payment: the attempt's `payment_key` when the PG approved
    /// it, or whatever a trusted caller recorded (no-op gateway), which need not be a key.
    pub pg_transaction_id: Option<String>,
    /// The PG's key of the confirm attempt in flight (or the last one that succeeded).
    pub payment_key: Option<PaymentKey>,
    /// The billing key of the charge attempt in flight (while `payment_key` is unknown), or of
    /// the charge that paid.
    pub billing_key_id: Option<BillingKeyId>,
    /// The `transactionKey` of the PG's approval (Toss's `lastTransactionKey` at approval).
    pub pg_approval_key: Option<String>,
    /// What Toss settles for the sale, once a reconciliation run read it.
    pub settlement: Option<Settlement>,
    /// Number of confirm attempts (claims) made for this payment.
    pub confirm_attempt: i32,
    /// Sends of the current attempt's confirm; each send has its own PG idempotency key.
    pub confirm_sends: i32,
    /// The attempt whose failure a fail redirect recorded: one `payment.failed` per attempt.
    pub annotated_attempt: Option<i32>,
    /// The refund whose cancel is at the PG now (one at a time per payment), until when.
    pub cancel_slot: Option<RefundId>,
    pub cancel_slot_until: Option<DateTime<Utc>>,
    pub confirm_started_at: Option<DateTime<Utc>>,
    /// The PG's webhook-verification value from the confirm reply.
    pub pg_secret: Option<String>,
    pub failure: Option<Failure>,
    /// Set when the PG's record contradicts ours; a person must look.
    pub needs_review: bool,
    pub review_reason: Option<String>,
    pub reconcile_attempts: i32,
    pub next_reconcile_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The caller's scoped `Idempotency-Key` of the request that created it: a retry of that
    /// request gets this payment instead of a duplicate order id.
    pub idempotency_key: Option<ScopedKey>,
    /// The tax-free part of `amount_krw` (0 unless the goods are partly tax-free).
    pub tax_free_amount_krw: i64,
    /// The method the PG reports (Toss's `method`: `카드`, `가상계좌`, ...).
    pub pg_method: Option<String>,
    pub receipt_url: Option<String>,
    pub card: Option<CardSummary>,
    /// Issued by the PG for the latest attempt's deposit; kept after it (and after its expiry
    /// or cancel) until another attempt starts.
    pub virtual_account: Option<VirtualAccount>,
    /// Why a merchant asked to cancel it: set before the PG is asked, so that whoever adopts
    /// the PG's cancelled record ends it `CANCELLED`.
    pub cancel_reason: Option<String>,
    /// Who asked for that cancel (with `cancel_reason`): shown on `payment.cancelled`.
    pub cancel_requested_by: Option<Actor>,
}

impl Payment {
    /// A new payment waiting to be paid: nothing attempted, nothing refunded. Callers set the
    /// optional parts (order name, subscription, type, idempotency key) over it.
    pub fn new_pending(
        user_id: String,
        order_id: OrderId,
        amount_krw: i64,
        payment_method: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: PaymentId::new(),
            user_id,
            order_id,
            order_name: None,
            subscription_id: None,
            payment_type: PaymentType::OneTime,
            payment_method,
            amount_krw,
            refunded_amount_krw: 0,
            refund_reserved_krw: 0,
            currency: "KRW".to_owned(),
            status: PaymentStatus::Pending,
            pg_provider: None,
            pg_transaction_id: None,
            payment_key: None,
            billing_key_id: None,
            pg_approval_key: None,
            settlement: None,
            confirm_attempt: 0,
            confirm_sends: 0,
            annotated_attempt: None,
            cancel_slot: None,
            cancel_slot_until: None,
            confirm_started_at: None,
            pg_secret: None,
            failure: None,
            needs_review: false,
            review_reason: None,
            reconcile_attempts: 0,
            next_reconcile_at: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            idempotency_key: None,
            tax_free_amount_krw: 0,
            pg_method: None,
            receipt_url: None,
            card: None,
            virtual_account: None,
            cancel_reason: None,
            cancel_requested_by: None,
        }
    }

    /// For tests: a pending payment of user `u-1` by card.
    #[cfg(test)]
    pub(crate) fn sample(order_id: &str, amount_krw: i64, now: DateTime<Utc>) -> Self {
        let order_id = OrderId::parse(order_id).expect("a valid order id");
        Self::new_pending("u-1".into(), order_id, amount_krw, "card".into(), now)
    }

    /// A charge of a billing key is in flight: Toss names its `paymentKey` only in its answer,
    /// so the attempt is known by its billing key and read back by order id.
    pub fn charge_in_flight(&self) -> bool {
        self.status == PaymentStatus::InProgress
            && self.payment_key.is_none()
            && self.billing_key_id.is_some()
    }

    /// What may still be refunded, not counting refunds in flight.
    pub fn refundable_krw(&self) -> i64 {
        self.amount_krw - self.refunded_amount_krw - self.refund_reserved_krw
    }

    /// Whether the buyer paid by a deposit into a virtual account (its refunds need a refund
    /// account): the approved attempt's method is Toss's `가상계좌`. An account an earlier
    /// attempt was issued (expired, cancelled) does not make a later card payment one.
    pub fn paid_by_virtual_account(&self) -> bool {
        self.status.is_paid() && self.pg_method.as_deref() == Some(super::VIRTUAL_ACCOUNT_METHOD)
    }

    /// Its link to the PG's record: an attempt's key, the key adopted from the PG's approval,
    /// or the id a trusted caller recorded.
    pub fn pg_ref(&self) -> PgRef<'_> {
        PgRef::of(self)
    }
}

/// Toss's settlement of a payment's sale (the settlements row of the sale, not of its cancels).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = SettlementDto)]
pub struct Settlement {
    /// What Toss keeps: the sale's amount minus `payout_krw` (its fees and their VAT).
    pub fee_krw: i64,
    /// What Toss pays out for the sale (`payOutAmount`).
    pub payout_krw: i64,
    /// The KST date of the sale (`soldDate`).
    #[schema(format = Date)]
    pub sold_date: String,
    /// The KST date Toss pays it out (`paidOutDate`).
    #[schema(format = Date)]
    pub paid_out_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub payment_id: PaymentId,
    pub amount_krw: i64,
    pub reason: String,
    pub status: RefundStatus,
    /// The PG's `transactionKey` of this cancel.
    pub pg_cancel_key: Option<String>,
    /// The caller's `Idempotency-Key` (scoped): a retry finds this refund instead of making
    /// another, whatever became of the first answer.
    pub idempotency_key: Option<ScopedKey>,
    /// Made here, or found in the PG's record (a cancel made in Toss's dashboard).
    pub origin: RefundOrigin,
    /// How often its cancel was sent to the PG, and when last.
    pub sends: i32,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub failure: Option<Failure>,
    pub reconcile_attempts: i32,
    pub next_reconcile_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub refunded_at: Option<DateTime<Utc>>,
    /// The tax-free part of `amount_krw`, sent to the PG as `taxFreeAmount`.
    pub tax_free_amount_krw: i64,
    /// The account a deposited virtual account is refunded to, sealed; kept for resends.
    pub refund_account: Option<SealedAccount>,
    /// Who asked for it: an API key, or Toss for a cancel made at Toss.
    pub requested_by: Actor,
}

impl Refund {
    /// A new refund of `amount_krw` from `payment_id`, made at `created_at`: never sent, nothing
    /// about it at Toss yet. Callers set what they know besides.
    pub fn new(
        payment_id: PaymentId,
        amount_krw: i64,
        reason: String,
        status: RefundStatus,
        origin: RefundOrigin,
        requested_by: Actor,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: RefundId::new(),
            payment_id,
            amount_krw,
            reason,
            status,
            pg_cancel_key: None,
            idempotency_key: None,
            origin,
            sends: 0,
            last_sent_at: None,
            failure: None,
            reconcile_attempts: 0,
            next_reconcile_at: None,
            created_at,
            refunded_at: None,
            tax_free_amount_krw: 0,
            refund_account: None,
            requested_by,
        }
    }

    /// For tests: a refund of `amount_krw` of payment `payment_id` that an API key asked for,
    /// completed by the service at `now`.
    #[cfg(test)]
    pub(crate) fn sample(payment_id: PaymentId, amount_krw: i64, now: DateTime<Utc>) -> Self {
        Self {
            sends: 1,
            last_sent_at: Some(now),
            refunded_at: Some(now),
            ..Self::new(
                payment_id,
                amount_krw,
                "changed mind".to_owned(),
                RefundStatus::Completed,
                RefundOrigin::Service,
                Actor::api_key("key-1"),
                now,
            )
        }
    }
}

/// An event as kept in the outbox; `seq` is the consumers' cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub version: String,
    pub occurred_at: DateTime<Utc>,
    pub source: String,
    pub user_id: String,
    pub payment_id: String,
    pub payload: serde_json::Value,
    pub actor: Actor,
    /// The W3C `traceparent` of the change that wrote it, for the event's consumers.
    pub trace_context: Option<String>,
}

/// A person's review of a payment set aside: who (an API key's name, never the key), what, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub id: String,
    pub payment_id: PaymentId,
    /// `resync` or `dismiss`.
    pub action: String,
    pub note: String,
    /// The reviewer as version 2 wrote it (`api-key-1`), kept for old clients; new reviews
    /// write the actor's name (or its type when it has none).
    pub reviewer: String,
    /// What the review did.
    pub outcome: String,
    pub created_at: DateTime<Utc>,
    pub requested_by: Actor,
}
