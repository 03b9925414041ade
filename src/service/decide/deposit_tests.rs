//! [`decide`] over virtual accounts: issued, expired, cancelled before or after their deposit.

use chrono::{Duration as Days, Utc};

use super::tests::*;
use super::*;
use crate::domain::PgDetails;

#[test]
fn a_virtual_account_we_asked_to_cancel_ends_cancelled_whoever_adopts_it() {
    let mut ours = payment(PaymentStatus::WaitingForDeposit);
    ours.cancel_reason = Some("order withdrawn".into());
    for toss in ["CANCELED_UNPAID", "EXPIRED"] {
        let plan = plan_of(&ours, &record(toss));
        assert_eq!(plan.payment.status, PaymentStatus::Cancelled, "{toss}");
        assert_eq!(plan.events.len(), 1);
        assert_eq!(plan.events[0].event_type, "payment.cancelled");
        assert_eq!(plan.events[0].payload["reason"], "order withdrawn");
    }
    // Toss has not cancelled it yet: looked at again soon (and the cancel sent again), not at
    // the slow pace of deposits.
    let now = ctx();
    let waiting = judge(&ours, &[], &record("WAITING_FOR_DEPOSIT"), &now);
    assert_eq!(
        waiting.plan.unwrap().payment.next_reconcile_at,
        Some(now.retry_at)
    );
    // The deposit came first: paid, the cancel forgotten.
    let paid = plan_of(&ours, &record("DONE"));
    assert_eq!(paid.payment.status, PaymentStatus::Completed);
    assert_eq!(paid.payment.cancel_reason, None);
    assert_eq!(paid.events[0].event_type, "payment.completed");
}

#[test]
fn a_virtual_account_that_ends_unpaid_goes_back_to_pending_with_why() {
    let ours = payment(PaymentStatus::WaitingForDeposit);
    for (toss, code) in [
        ("EXPIRED", "VIRTUAL_ACCOUNT_EXPIRED"),
        ("CANCELED_UNPAID", "VIRTUAL_ACCOUNT_CANCELLED"),
    ] {
        let plan = plan_of(&ours, &record(toss));
        assert_eq!(plan.payment.status, PaymentStatus::Pending, "{toss}");
        let failure = plan.payment.failure.as_ref().map(|f| f.code.as_str());
        assert_eq!(failure, Some(code), "{toss}");
        assert_eq!(plan.events[0].event_type, "payment.failed", "{toss}");
    }
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
    let waiting = plan_of(&ours, &issued).payment;
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
    let paid = plan_of(&waiting, &deposited).payment;
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
        let decision = judge(&payment, &refunds_of(&payment), &unpaid, &ctx());
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
    // Our cancel ends CANCELLED as asked, anyone else's PENDING with why: the tests above.
}

/// Defect 10: past its due date a virtual account stays `WAITING_FOR_DEPOSIT` at Toss with
/// `virtualAccount.expired`; no webhook and no `EXPIRED` ever come.
#[test]
fn a_virtual_account_past_its_due_date_goes_back_to_pending() {
    let mut expired = record("WAITING_FOR_DEPOSIT");
    expired.deposit_expired = true;
    for ours in [PaymentStatus::WaitingForDeposit, PaymentStatus::InProgress] {
        let decision = judge(&payment(ours), &[], &expired, &ctx());
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
    let plan = plan_of(&asked, &expired);
    assert_eq!(plan.payment.status, PaymentStatus::Cancelled);
    // An attempt we let go: nothing to wait for.
    let pending = judge(&payment(PaymentStatus::Pending), &[], &expired, &ctx());
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
    let waiting = judge(&late, &[], &record("WAITING_FOR_DEPOSIT"), &now)
        .plan
        .unwrap()
        .payment;
    assert_eq!(waiting.status, PaymentStatus::WaitingForDeposit);
    let next = waiting.next_reconcile_at.unwrap();
    assert!(next <= now.now + Days::seconds(5), "{next} vs {}", now.now);
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
    let later = judge(&plan.payment, &[], &record("WAITING_FOR_DEPOSIT"), &ctx);
    assert_eq!(
        later.plan.expect("rescheduled").payment.next_reconcile_at,
        Some(ctx.deposit_check_at)
    );
    let mut paid = payment(PaymentStatus::Completed);
    paid.cancel_reason = Some("r".into());
    assert!(forget_cancel(&paid, &ctx).is_none());
}

#[test]
fn a_cancel_shows_who_asked_for_it_whoever_adopts_it() {
    let mut ours = payment(PaymentStatus::WaitingForDeposit);
    ours.cancel_reason = Some("order withdrawn".into());
    ours.cancel_requested_by = Some(Actor::api_key("key-3"));
    let plan = plan_of(&ours, &record("CANCELED_UNPAID"));
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
