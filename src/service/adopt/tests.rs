//! [`decide`] over every (our status × Toss status) pair, and the cases that once lost money.

use chrono::{Duration as Days, Utc};

use super::*;
use crate::domain::{OrderId, PaymentKey, PaymentType, PgDetails};
use crate::gateway::PgFailure;

const AMOUNT: i64 = 10_000;

fn ctx() -> Context {
    let now = Utc::now();
    Context {
        now,
        provider: "toss",
        window: Duration::from_secs(660),
        send_lease: Duration::from_secs(70),
        retry_at: now + Days::seconds(2),
        deposit_check_at: now + Days::seconds(600),
        cancel_of: None,
        actor: Actor::toss(),
    }
}

fn key(value: &str) -> PaymentKey {
    PaymentKey::parse(value).unwrap()
}

fn payment(status: PaymentStatus) -> Payment {
    let now = Utc::now();
    let key = Some(key("pk_ours"));
    let (payment_key, approved) = match status {
        PaymentStatus::InProgress | PaymentStatus::WaitingForDeposit => (key, None),
        PaymentStatus::Completed | PaymentStatus::PartialRefund | PaymentStatus::Refunded => {
            (key.clone(), key.map(String::from))
        }
        PaymentStatus::Pending | PaymentStatus::Failed | PaymentStatus::Cancelled => (None, None),
    };
    let refunded = match status {
        PaymentStatus::PartialRefund => 3_000,
        PaymentStatus::Refunded => AMOUNT,
        _ => 0,
    };
    Payment {
        id: PaymentId::new(),
        user_id: "u-1".into(),
        order_id: OrderId::parse("order_adopt_0001").unwrap(),
        order_name: None,
        subscription_id: None,
        payment_type: PaymentType::OneTime,
        payment_method: "card".into(),
        amount_krw: AMOUNT,
        refunded_amount_krw: refunded,
        refund_reserved_krw: 0,
        currency: "KRW".into(),
        status,
        pg_provider: payment_key.as_ref().map(|_| "toss".to_owned()),
        pg_transaction_id: approved,
        payment_key,
        billing_key_id: None,
        pg_approval_key: None,
        settlement: None,
        idempotency_key: None,
        confirm_attempt: 1,
        confirm_sends: 1,
        annotated_attempt: None,
        cancel_slot: None,
        cancel_slot_until: None,
        confirm_started_at: Some(now),
        pg_secret: None,
        failure: None,
        needs_review: false,
        review_reason: None,
        reconcile_attempts: 0,
        next_reconcile_at: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
        tax_free_amount_krw: 0,
        pg_method: None,
        receipt_url: None,
        card: None,
        virtual_account: None,
        cancel_reason: None,
        cancel_requested_by: None,
    }
}

/// Our completed refunds of `payment` (its refunded total as cancels `cx1` 3000, `cx2` 7000).
fn refunds_of(payment: &Payment) -> Vec<Refund> {
    let make = |key: &str, amount: i64| Refund {
        id: RefundId::new(),
        payment_id: payment.id,
        amount_krw: amount,
        reason: "r".into(),
        status: RefundStatus::Completed,
        pg_cancel_key: Some(key.to_owned()),
        idempotency_key: None,
        origin: RefundOrigin::Service,
        sends: 1,
        last_sent_at: Some(Utc::now()),
        failure: None,
        reconcile_attempts: 0,
        next_reconcile_at: None,
        created_at: Utc::now(),
        refunded_at: Some(Utc::now()),
        tax_free_amount_krw: 0,
        refund_account: None,
        requested_by: Actor::api_key("key-1"),
    };
    match payment.refunded_amount_krw {
        3_000 => vec![make("cx1", 3_000)],
        AMOUNT => vec![make("cx1", 3_000), make("cx2", 7_000)],
        _ => Vec::new(),
    }
}

fn cancel(key: &str, amount: i64) -> PgCancel {
    PgCancel {
        transaction_key: key.to_owned(),
        amount,
        reason: Some("dashboard".into()),
        status: Some("DONE".into()),
        canceled_at: Some(Utc::now()),
        tax_free_amount: 0,
    }
}

/// Toss's record of `pk_ours` in `status`; `"CANCELED_UNPAID"` is a virtual account cancelled
/// before its deposit: its cancel listed like any other, `approvedAt` null (§4).
fn record(status: &str) -> PgPayment {
    let (pg_status, cancels) = match status {
        "READY" => (PgStatus::Ready, vec![]),
        "IN_PROGRESS" => (PgStatus::InProgress, vec![]),
        "WAITING_FOR_DEPOSIT" => (PgStatus::WaitingForDeposit, vec![]),
        "DONE" => (PgStatus::Done, vec![]),
        "PARTIAL_CANCELED" => (PgStatus::PartialCanceled, vec![cancel("cx1", 3_000)]),
        "CANCELED" => (
            PgStatus::Canceled,
            vec![cancel("cx1", 3_000), cancel("cx2", 7_000)],
        ),
        "CANCELED_UNPAID" => (PgStatus::Canceled, vec![cancel("cx_unpaid", AMOUNT)]),
        "ABORTED" => (PgStatus::Aborted, vec![]),
        "EXPIRED" => (PgStatus::Expired, vec![]),
        other => (PgStatus::Other(other.to_owned()), vec![]),
    };
    let cancelled: i64 = cancels.iter().map(|c| c.amount).sum();
    PgPayment {
        payment_key: key("pk_ours"),
        order_id: "order_adopt_0001".into(),
        status: pg_status.clone(),
        total_amount: Some(AMOUNT),
        balance_amount: Some(AMOUNT - cancelled),
        currency: Some("KRW".into()),
        method: Some("카드".into()),
        secret: Some("ps_secret".into()),
        last_transaction_key: cancels
            .last()
            .map(|c| c.transaction_key.clone())
            .or_else(|| Some("tx_approval".into())),
        approved_at: (matches!(
            pg_status,
            PgStatus::Done | PgStatus::PartialCanceled | PgStatus::Canceled
        ) && status != "CANCELED_UNPAID")
            .then(Utc::now),
        tax_free_amount: Some(0),
        deposit_expired: false,
        cancels,
        failure: matches!(pg_status, PgStatus::Aborted).then(|| PgFailure {
            code: "REJECT_CARD_COMPANY".into(),
            message: "declined".into(),
        }),
        details: PgDetails {
            method: Some("카드".into()),
            receipt_url: Some("https://dashboard.tosspayments.com/receipt".into()),
            card: None,
            virtual_account: None,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Settled,
    Undecided(bool),
    Contradiction,
    Ignored,
}

/// The types of the events `decision` plans, in order.
fn event_types(decision: &Decision) -> Vec<&'static str> {
    decision
        .plan
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.event_type))
        .collect()
}

fn kind(verdict: &Verdict) -> Kind {
    match verdict {
        Verdict::Settled => Kind::Settled,
        Verdict::Undecided { resend } => Kind::Undecided(*resend),
        Verdict::Contradiction(_) => Kind::Contradiction,
        Verdict::Ignored(_) => Kind::Ignored,
        Verdict::Foreign => panic!("no foreign record in the matrix"),
    }
}

const TOSS: [&str; 10] = [
    "READY",
    "IN_PROGRESS",
    "WAITING_FOR_DEPOSIT",
    "DONE",
    "PARTIAL_CANCELED",
    "CANCELED",
    "CANCELED_UNPAID",
    "ABORTED",
    "EXPIRED",
    "SOMETHING_NEW",
];

/// Per our status, per Toss status (in `TOSS`'s order): the verdict and our status after.
fn expected(ours: PaymentStatus) -> [(Kind, PaymentStatus); 10] {
    use Kind::*;
    use PaymentStatus::*;
    let contradiction = (Contradiction, ours);
    match ours {
        Pending => [
            (Ignored, Pending),
            (Ignored, Pending),
            (Settled, WaitingForDeposit),
            (Settled, Completed),
            (Settled, PartialRefund),
            (Settled, Refunded),
            (Ignored, Pending),
            (Ignored, Pending),
            (Ignored, Pending),
            (Ignored, Pending),
        ],
        InProgress => [
            (Undecided(true), InProgress),
            (Undecided(true), InProgress),
            (Settled, WaitingForDeposit),
            (Settled, Completed),
            (Settled, PartialRefund),
            (Settled, Refunded),
            (Settled, Pending),
            (Settled, Pending),
            (Settled, Pending),
            (Undecided(false), InProgress),
        ],
        WaitingForDeposit => [
            (Undecided(false), WaitingForDeposit),
            (Undecided(false), WaitingForDeposit),
            (Settled, WaitingForDeposit),
            (Settled, Completed),
            (Settled, PartialRefund),
            (Settled, Refunded),
            (Settled, Pending),
            (Settled, Pending),
            (Settled, Pending),
            (Undecided(false), WaitingForDeposit),
        ],
        Completed => [
            contradiction,
            contradiction,
            contradiction,
            (Settled, Completed),
            (Settled, PartialRefund),
            (Settled, Refunded),
            contradiction,
            contradiction,
            contradiction,
            contradiction,
        ],
        PartialRefund => [
            contradiction,
            contradiction,
            contradiction,
            // Toss shows no cancel, we hold a completed one: books differ.
            contradiction,
            (Settled, PartialRefund),
            (Settled, Refunded),
            contradiction,
            contradiction,
            contradiction,
            contradiction,
        ],
        Refunded => [
            contradiction,
            contradiction,
            contradiction,
            contradiction,
            contradiction,
            (Settled, Refunded),
            contradiction,
            contradiction,
            contradiction,
            contradiction,
        ],
        Failed | Cancelled => [
            (Ignored, ours),
            (Ignored, ours),
            (Ignored, ours),
            contradiction,
            contradiction,
            contradiction,
            (Ignored, ours),
            (Ignored, ours),
            (Ignored, ours),
            (Ignored, ours),
        ],
    }
}

#[test]
fn every_pair_of_our_status_and_tosss_status() {
    for ours in PaymentStatus::ALL {
        for (toss, (want_kind, want_status)) in TOSS.iter().zip(expected(ours)) {
            let payment = payment(ours);
            let refunds = refunds_of(&payment);
            let decision = decide(&payment, &refunds, &record(toss), &ctx());
            let after = decision
                .plan
                .as_ref()
                .map_or(payment.clone(), |plan| plan.payment.clone());
            let case = format!("ours {ours} × Toss {toss}");
            assert_eq!(kind(&decision.verdict), want_kind, "{case}");
            assert_eq!(after.status, want_status, "{case}");
            assert_eq!(
                after.needs_review,
                want_kind == Kind::Contradiction,
                "{case}: flagged exactly when contradicted"
            );
            // Money invariants of every outcome.
            assert!(after.refunded_amount_krw + after.refund_reserved_krw <= after.amount_krw);
            if matches!(
                after.status,
                PaymentStatus::Completed | PaymentStatus::PartialRefund | PaymentStatus::Refunded
            ) && want_kind == Kind::Settled
            {
                let cancelled: i64 = record(toss).cancels.iter().map(|c| c.amount).sum();
                assert_eq!(after.refunded_amount_krw, cancelled, "{case}: books match");
                assert_eq!(
                    after.pg_transaction_id.as_deref(),
                    Some("pk_ours"),
                    "{case}"
                );
            }
            // Every change of status has exactly one event for it.
            let events = event_types(&decision);
            let completed = events.iter().filter(|e| **e == "payment.completed").count();
            let became_paid = !matches!(
                ours,
                PaymentStatus::Completed | PaymentStatus::PartialRefund | PaymentStatus::Refunded
            ) && matches!(
                after.status,
                PaymentStatus::Completed | PaymentStatus::PartialRefund | PaymentStatus::Refunded
            );
            assert_eq!(completed, usize::from(became_paid), "{case}: {events:?}");
            let refunded = events.iter().filter(|e| **e == "payment.refunded").count() as i64;
            let new_refunds = (after.refunded_amount_krw - payment.refunded_amount_krw) / 1000;
            assert_eq!(
                refunded > 0,
                new_refunds > 0,
                "{case}: a refund event per adopted cancel"
            );
        }
    }
}

#[test]
fn a_record_of_another_order_releases_our_claim_and_touches_nothing_else() {
    let ours = payment(PaymentStatus::InProgress);
    let mut other = record("DONE");
    other.order_id = "order_victim_0001".into();
    let decision = decide(&ours, &[], &other, &ctx());
    assert_eq!(decision.verdict, Verdict::Foreign);
    let plan = decision.plan.expect("the claim is released");
    assert_eq!(plan.payment.status, PaymentStatus::Pending);
    assert_eq!(plan.payment.payment_key, None);
    assert!(!plan.payment.needs_review, "not parked for review");
    assert!(plan.events.is_empty() && plan.refunds.is_empty());
    assert_eq!(decision.alert.unwrap().0, "pg_record_foreign");
    // Not in flight: nothing at all.
    let pending = payment(PaymentStatus::Pending);
    let decision = decide(&pending, &[], &other, &ctx());
    assert!(decision.plan.is_none());
}

#[test]
fn a_record_of_another_amount_is_set_aside() {
    let ours = payment(PaymentStatus::InProgress);
    let mut wrong = record("DONE");
    wrong.total_amount = Some(100);
    let decision = decide(&ours, &[], &wrong, &ctx());
    assert!(matches!(decision.verdict, Verdict::Contradiction(_)));
    let after = decision.plan.unwrap().payment;
    assert_eq!(after.status, PaymentStatus::InProgress);
    assert!(after.needs_review);
}

#[test]
fn a_dashboard_cancel_becomes_a_refund_made_outside() {
    let ours = payment(PaymentStatus::Completed);
    let decision = decide(&ours, &[], &record("PARTIAL_CANCELED"), &ctx());
    let plan = decision.plan.unwrap();
    assert_eq!(plan.payment.status, PaymentStatus::PartialRefund);
    assert_eq!(plan.payment.refunded_amount_krw, 3_000);
    let [RefundWrite::Insert(refund)] = plan.refunds.as_slice() else {
        panic!("one new refund: {:?}", plan.refunds);
    };
    assert_eq!(refund.origin, RefundOrigin::Pg);
    assert_eq!(refund.pg_cancel_key.as_deref(), Some("cx1"));
    assert_eq!(plan.events.len(), 1);
    assert_eq!(plan.events[0].event_type, "payment.refunded");
    // Adopting the same record again changes nothing.
    let refunds = vec![refund.clone()];
    let again = decide(&plan.payment, &refunds, &record("PARTIAL_CANCELED"), &ctx());
    assert!(again.plan.is_none());
    assert_eq!(again.verdict, Verdict::Settled);
}

fn pending_refund(payment: &Payment, amount: i64, sends: i32) -> Refund {
    Refund {
        id: RefundId::new(),
        payment_id: payment.id,
        amount_krw: amount,
        reason: "ours".into(),
        status: RefundStatus::Pending,
        pg_cancel_key: None,
        idempotency_key: None,
        origin: RefundOrigin::Service,
        sends,
        last_sent_at: (sends > 0).then(Utc::now),
        failure: None,
        tax_free_amount_krw: 0,
        refund_account: None,
        reconcile_attempts: 0,
        next_reconcile_at: None,
        created_at: Utc::now(),
        refunded_at: None,
        requested_by: Actor::api_key("key-1"),
    }
}

#[test]
fn a_cancel_matches_our_oldest_sent_pending_refund_of_its_amount() {
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 6_000;
    let queued = pending_refund(&ours, 3_000, 0);
    let sent = pending_refund(&ours, 3_000, 1);
    let decision = decide(
        &ours,
        &[queued.clone(), sent.clone()],
        &record("PARTIAL_CANCELED"),
        &ctx(),
    );
    let plan = decision.plan.unwrap();
    assert_eq!(plan.payment.refunded_amount_krw, 3_000);
    assert_eq!(plan.payment.refund_reserved_krw, 3_000);
    let [RefundWrite::Update(done)] = plan.refunds.as_slice() else {
        panic!("{:?}", plan.refunds);
    };
    assert_eq!(done.id, sent.id, "the queued refund was never sent");
    assert_eq!(done.status, RefundStatus::Completed);
}

#[test]
fn a_cancel_reply_binds_its_cancel_to_the_refund_sent() {
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 3_000;
    let mut sent = pending_refund(&ours, 3_000, 1);
    sent.sends = 1;
    ours.cancel_slot = Some(sent.id);
    let mut context = ctx();
    context.cancel_of = Some(sent.id);
    let decision = decide(
        &ours,
        &[sent.clone()],
        &record("PARTIAL_CANCELED"),
        &context,
    );
    let plan = decision.plan.unwrap();
    assert_eq!(plan.payment.cancel_slot, None, "the slot is given back");
    assert!(matches!(&plan.refunds[0], RefundWrite::Update(r) if r.id == sent.id));
}

#[test]
fn a_sent_refund_toss_never_shows_fails_after_the_window() {
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 4_000;
    let mut lost = pending_refund(&ours, 4_000, 1);
    let decision = decide(&ours, &[lost.clone()], &record("DONE"), &ctx());
    assert!(decision.plan.is_none(), "within the window: wait");
    lost.created_at -= Days::seconds(700);
    lost.last_sent_at = Some(Utc::now() - Days::seconds(100));
    let decision = decide(&ours, &[lost.clone()], &record("DONE"), &ctx());
    let plan = decision.plan.unwrap();
    assert_eq!(plan.payment.refund_reserved_krw, 0, "balance released");
    assert_eq!(plan.payment.status, PaymentStatus::Completed);
    assert!(matches!(&plan.refunds[0], RefundWrite::Update(r) if r.status == RefundStatus::Failed));
    assert_eq!(plan.events[0].event_type, "refund.failed");
}

#[test]
fn a_late_done_for_a_released_attempt_is_adopted_with_an_alert() {
    let ours = payment(PaymentStatus::Pending);
    let decision = decide(&ours, &[], &record("DONE"), &ctx());
    assert_eq!(
        decision.alert.as_ref().unwrap().0,
        "pg_done_unknown_attempt"
    );
    let plan = decision.plan.unwrap();
    assert_eq!(plan.payment.status, PaymentStatus::Completed);
    assert_eq!(plan.payment.pg_transaction_id.as_deref(), Some("pk_ours"));
    assert_eq!(plan.events[0].event_type, "payment.completed");
}

#[test]
fn an_approval_keeps_its_transaction_key_unless_a_cancel_followed_it() {
    for ours in [PaymentStatus::InProgress, PaymentStatus::Pending] {
        let approved = decide(&payment(ours), &[], &record("DONE"), &ctx())
            .plan
            .unwrap()
            .payment;
        assert_eq!(approved.pg_approval_key.as_deref(), Some("tx_approval"));
        // After a cancel, lastTransactionKey is the cancel's: no approval key is guessed.
        let cancelled = decide(&payment(ours), &[], &record("PARTIAL_CANCELED"), &ctx())
            .plan
            .unwrap()
            .payment;
        assert_eq!(cancelled.status, PaymentStatus::PartialRefund);
        assert_eq!(cancelled.pg_approval_key, None);
    }
}

#[test]
fn a_second_approved_attempt_of_a_completed_order_is_set_aside() {
    let ours = payment(PaymentStatus::Completed);
    let mut second = record("DONE");
    second.payment_key = key("pk_second");
    let decision = decide(&ours, &[], &second, &ctx());
    assert!(matches!(decision.verdict, Verdict::Contradiction(_)));
    assert_eq!(decision.alert.unwrap().0, "pg_double_charge");
}

#[test]
fn the_secret_belongs_to_the_attempt() {
    let ours = payment(PaymentStatus::InProgress);
    let decision = decide(&ours, &[], &record("IN_PROGRESS"), &ctx());
    assert_eq!(
        decision.plan.unwrap().payment.pg_secret.as_deref(),
        Some("ps_secret")
    );
}

#[test]
fn no_resend_after_the_window() {
    let mut ours = payment(PaymentStatus::InProgress);
    ours.confirm_started_at = Some(Utc::now() - Days::seconds(700));
    let decision = decide(&ours, &[], &record("IN_PROGRESS"), &ctx());
    assert_eq!(decision.verdict, Verdict::Undecided { resend: false });
}

#[test]
fn a_refund_that_no_longer_fits_tosss_balance_fails() {
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 8_000;
    let reserved = pending_refund(&ours, 8_000, 1);
    let decision = decide(
        &ours,
        std::slice::from_ref(&reserved),
        &record("PARTIAL_CANCELED"),
        &ctx(),
    );
    assert_eq!(decision.verdict, Verdict::Settled);
    let plan = decision.plan.unwrap();
    assert_eq!(
        plan.payment.refunded_amount_krw, 3_000,
        "the dashboard cancel"
    );
    assert_eq!(plan.payment.refund_reserved_krw, 0, "ours released");
    assert!(plan.refunds.iter().any(|w| matches!(w,
        RefundWrite::Update(r) if r.id == reserved.id && r.status == RefundStatus::Failed)));
    assert!(plan.events.iter().any(|e| e.event_type == "refund.failed"));
}

#[test]
fn cancels_beyond_the_amount_are_set_aside() {
    let ours = payment(PaymentStatus::Completed);
    let mut record = record("PARTIAL_CANCELED");
    record.cancels = vec![cancel("cx1", 6_000), cancel("cx2", 6_000)];
    record.balance_amount = Some(0);
    let decision = decide(&ours, &[], &record, &ctx());
    assert!(matches!(decision.verdict, Verdict::Contradiction(_)));
}

/// A charge of a billing key in flight names no `paymentKey` until Toss answers: Toss's paid
/// record of its order (read back by order id) is its record. An unpaid end of the order may be
/// an earlier attempt's: it proves nothing and never releases the charge (it is sent again).
#[test]
fn a_charge_in_flight_adopts_the_record_of_its_order() {
    let mut ours = payment(PaymentStatus::InProgress);
    ours.payment_key = None;
    ours.billing_key_id = Some(crate::domain::BillingKeyId::new());
    let done = decide(&ours, &[], &record("DONE"), &ctx());
    assert_eq!(done.verdict, Verdict::Settled);
    assert!(done.alert.is_none(), "{:?}", done.alert);
    let plan = done.plan.expect("completes");
    assert_eq!(plan.payment.status, PaymentStatus::Completed);
    assert_eq!(plan.payment.payment_key, Some(key("pk_ours")));
    assert_eq!(plan.payment.pg_transaction_id.as_deref(), Some("pk_ours"));
    assert_eq!(plan.events.len(), 1);

    for unpaid in ["ABORTED", "EXPIRED", "CANCELED_UNPAID"] {
        let decision = decide(&ours, &[], &record(unpaid), &ctx());
        assert_eq!(
            decision.verdict,
            Verdict::Undecided { resend: true },
            "{unpaid}"
        );
        let after = decision.plan.map_or(ours.clone(), |plan| plan.payment);
        assert_eq!(after.status, PaymentStatus::InProgress, "{unpaid}");
        assert_eq!(after.failure, None, "{unpaid}");
        assert!(
            after.next_reconcile_at.is_some(),
            "{unpaid}: looked at again"
        );
    }

    // Without a billing key the same row has no attempt of ours in flight.
    ours.billing_key_id = None;
    let stranger = decide(&ours, &[], &record("DONE"), &ctx());
    assert!(stranger.alert.is_some());
}

#[test]
fn a_virtual_account_we_asked_to_cancel_ends_cancelled_whoever_adopts_it() {
    let mut ours = payment(PaymentStatus::WaitingForDeposit);
    ours.cancel_reason = Some("order withdrawn".into());
    for toss in ["CANCELED_UNPAID", "EXPIRED"] {
        let decision = decide(&ours, &[], &record(toss), &ctx());
        let plan = decision.plan.expect("a change");
        assert_eq!(plan.payment.status, PaymentStatus::Cancelled, "{toss}");
        assert_eq!(plan.events.len(), 1);
        assert_eq!(plan.events[0].event_type, "payment.cancelled");
        assert_eq!(plan.events[0].payload["reason"], "order withdrawn");
    }
    // Toss has not cancelled it yet: looked at again soon (and the cancel sent again), not at
    // the slow pace of deposits.
    let now = ctx();
    let waiting = decide(&ours, &[], &record("WAITING_FOR_DEPOSIT"), &now);
    assert_eq!(
        waiting.plan.unwrap().payment.next_reconcile_at,
        Some(now.retry_at)
    );
    // The deposit came first: paid, the cancel forgotten.
    let paid = decide(&ours, &[], &record("DONE"), &ctx()).plan.unwrap();
    assert_eq!(paid.payment.status, PaymentStatus::Completed);
    assert_eq!(paid.payment.cancel_reason, None);
    assert_eq!(paid.events[0].event_type, "payment.completed");
}

#[test]
fn a_virtual_account_that_ends_unpaid_goes_back_to_pending_with_why() {
    let ours = payment(PaymentStatus::WaitingForDeposit);
    let expired = decide(&ours, &[], &record("EXPIRED"), &ctx()).plan.unwrap();
    assert_eq!(expired.payment.status, PaymentStatus::Pending);
    assert_eq!(
        expired.payment.failure.as_ref().map(|f| f.code.as_str()),
        Some("VIRTUAL_ACCOUNT_EXPIRED")
    );
    assert_eq!(expired.events[0].event_type, "payment.failed");
    let cancelled = decide(&ours, &[], &record("CANCELED_UNPAID"), &ctx())
        .plan
        .unwrap();
    assert_eq!(cancelled.payment.status, PaymentStatus::Pending);
    assert_eq!(
        cancelled.payment.failure.as_ref().map(|f| f.code.as_str()),
        Some("VIRTUAL_ACCOUNT_CANCELLED")
    );
}

#[test]
fn what_toss_reports_about_the_method_is_kept() {
    let ours = payment(PaymentStatus::InProgress);
    let mut issued = record("WAITING_FOR_DEPOSIT");
    let due = Utc::now() + Days::minutes(3);
    issued.details = PgDetails {
        method: Some("가상계좌".into()),
        receipt_url: None,
        card: None,
        virtual_account: Some(crate::domain::VirtualAccount {
            bank_code: "20".into(),
            account_number: "X6516521381011".into(),
            customer_name: Some("박토스".into()),
            due_date: Some(due),
        }),
    };
    let waiting = decide(&ours, &[], &issued, &ctx()).plan.unwrap().payment;
    assert_eq!(waiting.status, PaymentStatus::WaitingForDeposit);
    assert_eq!(waiting.pg_method.as_deref(), Some("가상계좌"));
    assert_eq!(
        waiting
            .virtual_account
            .as_ref()
            .map(|a| a.bank_code.as_str()),
        Some("20")
    );
    // Looked at again just after the due date (Toss sends nothing then), sooner than the slow
    // pace.
    assert_eq!(
        waiting.next_reconcile_at,
        Some(due + chrono::Duration::seconds(1))
    );
    let mut deposited = record("DONE");
    deposited.details.method = Some("가상계좌".into());
    let paid = decide(&waiting, &[], &deposited, &ctx())
        .plan
        .unwrap()
        .payment;
    assert_eq!(paid.status, PaymentStatus::Completed);
    assert!(paid.virtual_account.is_some(), "kept after the deposit");
    assert_eq!(
        paid.receipt_url.as_deref(),
        Some("https://dashboard.tosspayments.com/receipt")
    );
}

/// Defect 9: a virtual account cancelled before its deposit lists the cancel in `cancels[]`,
/// but `approvedAt` is null: nothing was paid, so nothing is refunded.
#[test]
fn a_virtual_account_cancelled_before_its_deposit_was_never_paid() {
    let unpaid = record("CANCELED_UNPAID");
    assert_eq!(unpaid.cancels.len(), 1, "the cancel is listed");
    assert_eq!(unpaid.approved_at, None);
    for ours in PaymentStatus::ALL {
        let payment = payment(ours);
        let decision = decide(&payment, &refunds_of(&payment), &unpaid, &ctx());
        let after = decision
            .plan
            .as_ref()
            .map_or(&payment, |plan| &plan.payment);
        let case = format!("ours {ours}");
        if ours != PaymentStatus::Refunded {
            assert_ne!(after.status, PaymentStatus::Refunded, "{case}");
        }
        assert_eq!(
            after.refunded_amount_krw, payment.refunded_amount_krw,
            "{case}"
        );
        let events = event_types(&decision);
        assert!(
            !events.contains(&"payment.completed") && !events.contains(&"payment.refunded"),
            "{case}: {events:?}"
        );
        assert!(decision.plan.iter().all(|p| p.refunds.is_empty()), "{case}");
    }
    // Our cancel: CANCELLED as asked. Someone else's: back to PENDING with why.
    let mut asked = payment(PaymentStatus::WaitingForDeposit);
    asked.cancel_reason = Some("order withdrawn".into());
    let plan = decide(&asked, &[], &unpaid, &ctx()).plan.unwrap();
    assert_eq!(plan.payment.status, PaymentStatus::Cancelled);
    assert_eq!(plan.events[0].event_type, "payment.cancelled");
    let plan = decide(
        &payment(PaymentStatus::WaitingForDeposit),
        &[],
        &unpaid,
        &ctx(),
    )
    .plan
    .unwrap();
    assert_eq!(plan.payment.status, PaymentStatus::Pending);
    assert_eq!(
        plan.payment.failure.map(|f| f.code),
        Some("VIRTUAL_ACCOUNT_CANCELLED".to_owned())
    );
    assert_eq!(plan.events[0].event_type, "payment.failed");
}

/// Defect 10: past its due date a virtual account stays `WAITING_FOR_DEPOSIT` at Toss with
/// `virtualAccount.expired`; no webhook and no `EXPIRED` ever come.
#[test]
fn a_virtual_account_past_its_due_date_goes_back_to_pending() {
    let mut expired = record("WAITING_FOR_DEPOSIT");
    expired.deposit_expired = true;
    for ours in [PaymentStatus::WaitingForDeposit, PaymentStatus::InProgress] {
        let decision = decide(&payment(ours), &[], &expired, &ctx());
        assert_eq!(decision.verdict, Verdict::Settled, "{ours}");
        let plan = decision.plan.expect("a change");
        assert_eq!(plan.payment.status, PaymentStatus::Pending, "{ours}");
        assert_eq!(
            plan.payment.failure.as_ref().map(|f| f.code.as_str()),
            Some("VIRTUAL_ACCOUNT_EXPIRED")
        );
        assert_eq!(plan.payment.next_reconcile_at, None);
        assert_eq!(plan.events.len(), 1);
        assert_eq!(plan.events[0].event_type, "payment.failed");
    }
    // A cancel we asked for: it ends as asked.
    let mut asked = payment(PaymentStatus::WaitingForDeposit);
    asked.cancel_reason = Some("order withdrawn".into());
    let plan = decide(&asked, &[], &expired, &ctx()).plan.unwrap();
    assert_eq!(plan.payment.status, PaymentStatus::Cancelled);
    // An attempt we let go: nothing to wait for.
    let pending = decide(&payment(PaymentStatus::Pending), &[], &expired, &ctx());
    assert!(pending.plan.is_none());
    // Due, but Toss does not show it expired yet: looked at again within seconds.
    let mut late = payment(PaymentStatus::WaitingForDeposit);
    let now = ctx();
    late.virtual_account = Some(crate::domain::VirtualAccount {
        bank_code: "20".into(),
        account_number: "X6516521381011".into(),
        customer_name: None,
        due_date: Some(now.now - Days::seconds(3)),
    });
    let waiting = decide(&late, &[], &record("WAITING_FOR_DEPOSIT"), &now)
        .plan
        .unwrap()
        .payment;
    assert_eq!(waiting.status, PaymentStatus::WaitingForDeposit);
    let next = waiting.next_reconcile_at.unwrap();
    assert!(next <= now.now + Days::seconds(5), "{next} vs {}", now.now);
}

/// Defect 8: Toss's `taxFreeAmount` is fixed by the payment window; when the approved record's
/// differs from ours, the payment takes Toss's and is flagged with why.
#[test]
fn tosss_tax_free_amount_is_taken_and_flagged() {
    let mut approved = record("DONE");
    approved.tax_free_amount = Some(3_000);
    for ours in [
        PaymentStatus::InProgress,
        PaymentStatus::WaitingForDeposit,
        PaymentStatus::Pending,
        PaymentStatus::Completed,
    ] {
        let decision = decide(&payment(ours), &[], &approved, &ctx());
        assert_eq!(decision.verdict, Verdict::Settled, "{ours}");
        let after = decision.plan.expect("a change").payment;
        assert_eq!(after.status, PaymentStatus::Completed, "{ours}");
        assert_eq!(after.tax_free_amount_krw, 3_000, "{ours}");
        assert!(after.needs_review, "{ours}");
        assert!(
            after
                .review_reason
                .as_deref()
                .is_some_and(|r| r.contains("taxFreeAmount 3000")),
            "{:?}",
            after.review_reason
        );
        assert!(decision.update.is_none(), "not the plain approval");
        assert!(decision.alert.is_some());
    }
    // After cancels Toss shows what is left: the cancels' tax-free parts count too.
    let mut cancelled = record("PARTIAL_CANCELED");
    cancelled.tax_free_amount = Some(2_000);
    cancelled.cancels[0].tax_free_amount = 1_000;
    let after = decide(&payment(PaymentStatus::InProgress), &[], &cancelled, &ctx())
        .plan
        .unwrap()
        .payment;
    assert_eq!(after.tax_free_amount_krw, 3_000);
    // Agreeing (or silent) records change nothing of it.
    let mut ours = payment(PaymentStatus::InProgress);
    ours.tax_free_amount_krw = 3_000;
    let same = decide(&ours, &[], &approved, &ctx());
    assert!(!same.plan.unwrap().payment.needs_review);
    assert!(same.update.is_some(), "the plain approval");
    let mut silent = record("DONE");
    silent.tax_free_amount = None;
    let after = decide(&ours, &[], &silent, &ctx()).plan.unwrap().payment;
    assert_eq!(
        (after.tax_free_amount_krw, after.needs_review),
        (3_000, false)
    );
}

/// Defect 1: a flag is a note for a person, never a stop sign. A contradiction about a payment
/// in flight keeps it looked at; a flagged payment in flight is settled like any other.
#[test]
fn a_flag_never_stops_a_payment_in_flight() {
    let mut wrong = record("DONE");
    wrong.total_amount = Some(100);
    let context = ctx();
    for ours in [PaymentStatus::InProgress, PaymentStatus::WaitingForDeposit] {
        let decision = decide(&payment(ours), &[], &wrong, &context);
        assert!(matches!(decision.verdict, Verdict::Contradiction(_)));
        let after = decision.plan.unwrap().payment;
        assert!(after.needs_review);
        assert!(
            after.next_reconcile_at.is_some(),
            "{ours}: still looked at again"
        );
    }
    for (ours, toss, settled) in [
        (PaymentStatus::InProgress, "DONE", PaymentStatus::Completed),
        (PaymentStatus::InProgress, "ABORTED", PaymentStatus::Pending),
        (
            PaymentStatus::WaitingForDeposit,
            "DONE",
            PaymentStatus::Completed,
        ),
        (
            PaymentStatus::WaitingForDeposit,
            "CANCELED_UNPAID",
            PaymentStatus::Pending,
        ),
    ] {
        let mut flagged = payment(ours);
        flagged.needs_review = true;
        flagged.review_reason = Some("reconciliation of 2026-12-05: STATUS_MISMATCH".into());
        let decision = decide(&flagged, &[], &record(toss), &ctx());
        assert_eq!(decision.verdict, Verdict::Settled, "{ours} × {toss}");
        assert_eq!(
            decision.plan.unwrap().payment.status,
            settled,
            "{ours} × {toss}"
        );
    }
}

/// A refused cancel of an unpaid virtual account is forgotten: the account keeps waiting for
/// its deposit, looked at at the slow pace, and the request is never sent again.
#[test]
fn a_refused_cancel_request_is_forgotten() {
    let ctx = ctx();
    let mut ours = payment(PaymentStatus::WaitingForDeposit);
    assert!(forget_cancel(&ours, &ctx).is_none(), "nothing to forget");
    ours.cancel_reason = Some("order withdrawn".into());
    let plan = forget_cancel(&ours, &ctx).expect("forgotten");
    assert_eq!(plan.payment.status, PaymentStatus::WaitingForDeposit);
    assert_eq!(plan.payment.cancel_reason, None);
    assert_eq!(plan.payment.next_reconcile_at, Some(ctx.deposit_check_at));
    assert!(plan.events.is_empty() && plan.refunds.is_empty());
    // Once forgotten, a read-back of the waiting account keeps the slow pace.
    let later = decide(&plan.payment, &[], &record("WAITING_FOR_DEPOSIT"), &ctx);
    assert_eq!(
        later.plan.expect("rescheduled").payment.next_reconcile_at,
        Some(ctx.deposit_check_at)
    );
    let mut paid = payment(PaymentStatus::Completed);
    paid.cancel_reason = Some("r".into());
    assert!(forget_cancel(&paid, &ctx).is_none());
}

/// The context of a reply adopted for `actor` (the caller of a request).
fn ctx_for(actor: Actor) -> Context {
    Context { actor, ..ctx() }
}

#[test]
fn a_reply_is_adopted_as_its_callers_change_a_read_back_as_tosss() {
    let ours = payment(PaymentStatus::InProgress);
    for actor in [Actor::buyer(), Actor::api_key("key-2"), Actor::toss()] {
        let plan = decide(&ours, &[], &record("DONE"), &ctx_for(actor.clone()))
            .plan
            .unwrap();
        assert_eq!(plan.events[0].event_type, "payment.completed");
        assert_eq!(plan.events[0].actor, actor);
    }
    let plan = decide(&ours, &[], &record("ABORTED"), &ctx_for(Actor::buyer()))
        .plan
        .unwrap();
    assert_eq!(plan.events[0].event_type, "payment.failed");
    assert_eq!(plan.events[0].actor, Actor::buyer());
}

#[test]
fn a_cancel_made_at_toss_is_tosss_whoever_reads_it() {
    let ours = payment(PaymentStatus::Completed);
    let plan = decide(
        &ours,
        &[],
        &record("PARTIAL_CANCELED"),
        &ctx_for(Actor::api_key("key-1")),
    )
    .plan
    .unwrap();
    let [RefundWrite::Insert(refund)] = plan.refunds.as_slice() else {
        panic!("one new refund: {:?}", plan.refunds);
    };
    assert_eq!(refund.requested_by, Actor::toss());
    assert_eq!(plan.events[0].actor, Actor::toss());
    assert_eq!(
        plan.events[0].payload["requested_by"],
        serde_json::json!({"type": "toss", "name": null})
    );
}

#[test]
fn our_refund_settled_by_tosss_record_keeps_who_asked_for_it() {
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 3_000;
    let sent = pending_refund(&ours, 3_000, 1);
    let plan = decide(&ours, &[sent], &record("PARTIAL_CANCELED"), &ctx())
        .plan
        .unwrap();
    let [RefundWrite::Update(refund)] = plan.refunds.as_slice() else {
        panic!("our refund completed: {:?}", plan.refunds);
    };
    assert_eq!(refund.requested_by, Actor::api_key("key-1"));
    // Toss's read-back made the change; the key asked for it.
    assert_eq!(plan.events[0].actor, Actor::toss());
    assert_eq!(
        plan.events[0].payload["requested_by"],
        serde_json::json!({"type": "api_key", "name": "key-1"})
    );
}

#[test]
fn a_refund_failed_by_the_window_passing_is_the_systems() {
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 4_000;
    let mut lost = pending_refund(&ours, 4_000, 1);
    lost.created_at -= Days::seconds(700);
    lost.last_sent_at = Some(Utc::now() - Days::seconds(100));
    let plan = decide(&ours, &[lost], &record("DONE"), &ctx())
        .plan
        .unwrap();
    assert_eq!(plan.events[0].event_type, "refund.failed");
    assert_eq!(plan.events[0].actor, Actor::system());
    // Toss's balance is Toss's record: that failure is the record's actor's.
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 8_000;
    let reserved = pending_refund(&ours, 8_000, 1);
    let plan = decide(&ours, &[reserved], &record("PARTIAL_CANCELED"), &ctx())
        .plan
        .unwrap();
    let failed = plan
        .events
        .iter()
        .find(|e| e.event_type == "refund.failed")
        .unwrap();
    assert_eq!(failed.actor, Actor::toss());
}

#[test]
fn a_cancel_shows_who_asked_for_it_whoever_adopts_it() {
    let mut ours = payment(PaymentStatus::WaitingForDeposit);
    ours.cancel_reason = Some("order withdrawn".into());
    ours.cancel_requested_by = Some(Actor::api_key("key-3"));
    let plan = decide(&ours, &[], &record("CANCELED_UNPAID"), &ctx())
        .plan
        .unwrap();
    assert_eq!(
        plan.payment.cancel_requested_by,
        Some(Actor::api_key("key-3"))
    );
    assert_eq!(plan.events[0].event_type, "payment.cancelled");
    assert_eq!(plan.events[0].actor, Actor::toss());
    assert_eq!(
        plan.events[0].payload["requested_by"],
        serde_json::json!({"type": "api_key", "name": "key-3"})
    );
}
