//! [`adopt_cancels`]: Toss's cancels matched to our refunds, and the refunds Toss never shows.

use chrono::{Duration as Days, Utc};

use super::*;
use crate::domain::{PaymentStatus, RefundStatus};
use crate::service::decide::Verdict;
use crate::service::decide::tests::*;
use crate::store::RefundWrite;

/// A cancel made at Toss (its dashboard, its API under our key) is Toss's, whoever reads it.
#[test]
fn a_dashboard_cancel_becomes_a_refund_made_outside() {
    let ours = payment(PaymentStatus::Completed);
    let reader = ctx_for(Actor::api_key("key-1"));
    let decision = judge(&ours, &[], &record("PARTIAL_CANCELED"), &reader);
    let plan = decision.plan.unwrap();
    assert_eq!(plan.payment.status, PaymentStatus::PartialRefund);
    assert_eq!(plan.payment.refunded_amount_krw, 3_000);
    let [RefundWrite::Insert(refund)] = plan.refunds.as_slice() else {
        panic!("one new refund: {:?}", plan.refunds);
    };
    assert_eq!(refund.origin, RefundOrigin::Pg);
    assert_eq!(refund.pg_cancel_key.as_deref(), Some("cx1"));
    assert_eq!(refund.requested_by, Actor::toss());
    assert_eq!(plan.events.len(), 1);
    assert_eq!(plan.events[0].event_type, "payment.refunded");
    assert_eq!(plan.events[0].actor, Actor::toss());
    assert_eq!(
        plan.events[0].payload["requested_by"],
        serde_json::json!({"type": "toss", "name": null})
    );
    // Adopting the same record again changes nothing.
    let refunds = vec![refund.clone()];
    let again = judge(&plan.payment, &refunds, &record("PARTIAL_CANCELED"), &ctx());
    assert!(again.plan.is_none());
    assert_eq!(again.verdict, Verdict::Settled);
}

fn pending_refund(payment: &Payment, amount: i64, sends: i32) -> Refund {
    Refund {
        sends,
        last_sent_at: (sends > 0).then(Utc::now),
        ..Refund::new(
            payment.id,
            amount,
            "ours".into(),
            RefundStatus::Pending,
            RefundOrigin::Service,
            Actor::api_key("key-1"),
            Utc::now(),
        )
    }
}

#[test]
fn a_cancel_matches_our_oldest_sent_pending_refund_of_its_amount() {
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 6_000;
    let queued = pending_refund(&ours, 3_000, 0);
    let sent = pending_refund(&ours, 3_000, 1);
    let decision = judge(
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
    let sent = pending_refund(&ours, 3_000, 1);
    ours.cancel_slot = Some(sent.id);
    let mut context = ctx();
    context.cancel_of = Some(sent.id);
    let decision = judge(
        &ours,
        std::slice::from_ref(&sent),
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
    let decision = judge(&ours, &[lost.clone()], &record("DONE"), &ctx());
    assert!(decision.plan.is_none(), "within the window: wait");
    lost.created_at -= Days::seconds(700);
    lost.last_sent_at = Some(Utc::now() - Days::seconds(100));
    let decision = judge(&ours, &[lost.clone()], &record("DONE"), &ctx());
    let plan = decision.plan.unwrap();
    assert_eq!(plan.payment.refund_reserved_krw, 0, "balance released");
    assert_eq!(plan.payment.status, PaymentStatus::Completed);
    assert!(matches!(&plan.refunds[0], RefundWrite::Update(r) if r.status == RefundStatus::Failed));
    assert_eq!(plan.events[0].event_type, "refund.failed");
    // The window passing is the service's rule: that failure is the system's.
    assert_eq!(plan.events[0].actor, Actor::system());
}

#[test]
fn a_refund_that_no_longer_fits_tosss_balance_fails() {
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 8_000;
    let reserved = pending_refund(&ours, 8_000, 1);
    let decision = judge(
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
    // Toss's balance is Toss's record: that failure is the record's actor's.
    let failed = plan
        .events
        .iter()
        .find(|e| e.event_type == "refund.failed")
        .expect("refund.failed");
    assert_eq!(failed.actor, Actor::toss());
}

#[test]
fn cancels_beyond_the_amount_are_set_aside() {
    let ours = payment(PaymentStatus::Completed);
    let mut record = record("PARTIAL_CANCELED");
    record.cancels = vec![cancel("cx1", 6_000), cancel("cx2", 6_000)];
    record.balance_amount = Some(0);
    let decision = judge(&ours, &[], &record, &ctx());
    assert!(matches!(decision.verdict, Verdict::Contradiction(_)));
}

#[test]
fn our_refund_settled_by_tosss_record_keeps_who_asked_for_it() {
    let mut ours = payment(PaymentStatus::Completed);
    ours.refund_reserved_krw = 3_000;
    let sent = pending_refund(&ours, 3_000, 1);
    let plan = judge(&ours, &[sent], &record("PARTIAL_CANCELED"), &ctx())
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
