//! [`decide`] over every (our status × Toss status) pair, and the cases that once lost money.

use chrono::{Duration as Days, Utc};

use super::*;
use crate::domain::{PaymentKey, PgDetails};
use crate::gateway::{PgCancel, PgFailure};
pub(super) const AMOUNT: i64 = 10_000;

/// [`decide`] over the attempt the payment's row names, as the service calls it.
pub(super) fn judge(
    ours: &Payment,
    refunds: &[Refund],
    record: &PgPayment,
    ctx: &Context,
) -> Decision {
    decide(ours, Attempt::of(ours).as_ref(), refunds, record, ctx)
}

/// The plan [`judge`] makes of `record` for `ours` without refunds, read by Toss; it must
/// change something.
pub(super) fn plan_of(ours: &Payment, record: &PgPayment) -> Plan {
    judge(ours, &[], record, &ctx()).plan.expect("a change")
}

pub(crate) fn ctx() -> Context {
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

pub(super) fn key(value: &str) -> PaymentKey {
    PaymentKey::parse(value).unwrap()
}

pub(super) fn payment(status: PaymentStatus) -> Payment {
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
        refunded_amount_krw: refunded,
        status,
        pg_provider: payment_key.as_ref().map(|_| "toss".to_owned()),
        pg_transaction_id: approved,
        payment_key,
        confirm_attempt: 1,
        confirm_sends: 1,
        confirm_started_at: Some(now),
        ..Payment::sample("order_adopt_0001", AMOUNT, now)
    }
}

/// Our completed refunds of `payment` (its refunded total as cancels `cx1` 3000, `cx2` 7000).
pub(super) fn refunds_of(payment: &Payment) -> Vec<Refund> {
    let make = |key: &str, amount: i64| Refund {
        pg_cancel_key: Some(key.to_owned()),
        ..Refund::sample(payment.id, amount, Utc::now())
    };
    match payment.refunded_amount_krw {
        3_000 => vec![make("cx1", 3_000)],
        AMOUNT => vec![make("cx1", 3_000), make("cx2", 7_000)],
        _ => Vec::new(),
    }
}

pub(super) fn cancel(key: &str, amount: i64) -> PgCancel {
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
pub(crate) fn record(status: &str) -> PgPayment {
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
pub(super) fn event_types(decision: &Decision) -> Vec<&'static str> {
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

/// Per our status, per Toss status (in `TOSS`'s order): the verdict (`S` settled, `U`/`u`
/// undecided and may / may not resend, `C` contradiction, `I` ignored), then our status after
/// (`P`ending, `I`n progress, `W`aiting for deposit, `C`ompleted, `p`artial refund, `R`efunded,
/// `-` unchanged).
fn expected(ours: PaymentStatus) -> Vec<(Kind, PaymentStatus)> {
    use PaymentStatus::*;
    let row = match ours {
        //                READY IN_P WFD  DONE PART CANC UNPD ABRT EXPD NEW
        Pending => "       I-   I-   SW   SC   Sp   SR   I-   I-   I-   I-",
        InProgress => "    U-   U-   SW   SC   Sp   SR   SP   SP   SP   u-",
        WaitingForDeposit => "u- u-   S-   SC   Sp   SR   SP   SP   SP   u-",
        Completed => "     C-   C-   C-   S-   Sp   SR   C-   C-   C-   C-",
        // DONE: Toss shows no cancel, we hold a completed one: books differ.
        PartialRefund => " C-   C-   C-   C-   S-   SR   C-   C-   C-   C-",
        Refunded => "      C-   C-   C-   C-   C-   S-   C-   C-   C-   C-",
        Failed | Cancelled => "I- I- I-   C-   C-   C-   I-   I-   I-   I-",
    };
    row.split_whitespace()
        .map(|cell| {
            let mut chars = cell.chars();
            let kind = match chars.next() {
                Some('S') => Kind::Settled,
                Some('U') => Kind::Undecided(true),
                Some('u') => Kind::Undecided(false),
                Some('C') => Kind::Contradiction,
                _ => Kind::Ignored,
            };
            let status = match chars.next() {
                Some('P') => Pending,
                Some('I') => InProgress,
                Some('W') => WaitingForDeposit,
                Some('C') => Completed,
                Some('p') => PartialRefund,
                Some('R') => Refunded,
                _ => ours,
            };
            (kind, status)
        })
        .collect()
}

#[test]
fn every_pair_of_our_status_and_tosss_status() {
    for ours in PaymentStatus::ALL {
        assert_eq!(expected(ours).len(), TOSS.len(), "{ours}");
        for (toss, (want_kind, want_status)) in TOSS.iter().zip(expected(ours)) {
            let payment = payment(ours);
            let refunds = refunds_of(&payment);
            let decision = judge(&payment, &refunds, &record(toss), &ctx());
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
            if after.status.is_paid() && want_kind == Kind::Settled {
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
            let became_paid = !ours.is_paid() && after.status.is_paid();
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
    let decision = judge(&ours, &[], &other, &ctx());
    assert_eq!(decision.verdict, Verdict::Foreign);
    let plan = decision.plan.expect("the claim is released");
    assert_eq!(plan.payment.status, PaymentStatus::Pending);
    assert_eq!(plan.payment.payment_key, None);
    assert!(!plan.payment.needs_review, "not parked for review");
    assert!(plan.events.is_empty() && plan.refunds.is_empty());
    assert_eq!(decision.alert.unwrap().0, "pg_record_foreign");
    // Not in flight: nothing at all.
    let pending = payment(PaymentStatus::Pending);
    let decision = judge(&pending, &[], &other, &ctx());
    assert!(decision.plan.is_none());
}

/// `decide` judges the attempt it is given: Toss's unapproved end of the key in flight ends that
/// attempt; the same record judged against a charge in flight (read back by order, so maybe an
/// earlier attempt's) or against no attempt of ours ends nothing.
#[test]
fn the_attempt_decides_whose_record_it_is() {
    let ours = payment(PaymentStatus::InProgress);
    let aborted = record("ABORTED");
    let of_key = decide(
        &ours,
        Some(&Attempt::Confirm(key("pk_ours"))),
        &[],
        &aborted,
        &ctx(),
    );
    assert_eq!(of_key.plan.unwrap().payment.status, PaymentStatus::Pending);
    let charge = Attempt::Charge(crate::domain::BillingKeyId::new());
    let of_charge = decide(&ours, Some(&charge), &[], &aborted, &ctx());
    assert_eq!(of_charge.verdict, Verdict::Undecided { resend: true });
    assert_eq!(
        of_charge.plan.unwrap().payment.status,
        PaymentStatus::InProgress
    );
    let of_none = decide(&ours, None, &[], &aborted, &ctx());
    assert!(of_none.plan.is_none(), "{:?}", of_none.verdict);
}

#[test]
fn a_late_done_for_a_released_attempt_is_adopted_with_an_alert() {
    let ours = payment(PaymentStatus::Pending);
    let decision = judge(&ours, &[], &record("DONE"), &ctx());
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
        let approved = plan_of(&payment(ours), &record("DONE")).payment;
        assert_eq!(approved.pg_approval_key.as_deref(), Some("tx_approval"));
        // After a cancel, lastTransactionKey is the cancel's: no approval key is guessed.
        let cancelled = plan_of(&payment(ours), &record("PARTIAL_CANCELED")).payment;
        assert_eq!(cancelled.status, PaymentStatus::PartialRefund);
        assert_eq!(cancelled.pg_approval_key, None);
    }
}

#[test]
fn a_second_approved_attempt_of_a_completed_order_is_set_aside() {
    let ours = payment(PaymentStatus::Completed);
    let mut second = record("DONE");
    second.payment_key = key("pk_second");
    let decision = judge(&ours, &[], &second, &ctx());
    assert!(matches!(decision.verdict, Verdict::Contradiction(_)));
    assert_eq!(decision.alert.unwrap().0, "pg_double_charge");
}

#[test]
fn the_secret_belongs_to_the_attempt() {
    let ours = payment(PaymentStatus::InProgress);
    let after = plan_of(&ours, &record("IN_PROGRESS")).payment;
    assert_eq!(after.pg_secret.as_deref(), Some("ps_secret"));
}

#[test]
fn no_resend_after_the_window() {
    let mut ours = payment(PaymentStatus::InProgress);
    ours.confirm_started_at = Some(Utc::now() - Days::seconds(700));
    let decision = judge(&ours, &[], &record("IN_PROGRESS"), &ctx());
    assert_eq!(decision.verdict, Verdict::Undecided { resend: false });
}

/// A charge of a billing key in flight names no `paymentKey` until Toss answers: Toss's paid
/// record of its order (read back by order id) is its record. An unpaid end of the order may be
/// an earlier attempt's: it proves nothing and never releases the charge (it is sent again).
#[test]
fn a_charge_in_flight_adopts_the_record_of_its_order() {
    let mut ours = payment(PaymentStatus::InProgress);
    ours.payment_key = None;
    ours.billing_key_id = Some(crate::domain::BillingKeyId::new());
    let done = judge(&ours, &[], &record("DONE"), &ctx());
    assert_eq!(done.verdict, Verdict::Settled);
    assert!(done.alert.is_none(), "{:?}", done.alert);
    let plan = done.plan.expect("completes");
    assert_eq!(plan.payment.status, PaymentStatus::Completed);
    assert_eq!(plan.payment.payment_key, Some(key("pk_ours")));
    assert_eq!(plan.payment.pg_transaction_id.as_deref(), Some("pk_ours"));
    assert_eq!(plan.events.len(), 1);

    for unpaid in ["ABORTED", "EXPIRED", "CANCELED_UNPAID"] {
        let decision = judge(&ours, &[], &record(unpaid), &ctx());
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
    let stranger = judge(&ours, &[], &record("DONE"), &ctx());
    assert!(stranger.alert.is_some());
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
        let decision = judge(&payment(ours), &[], &approved, &ctx());
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
    let after = plan_of(&payment(PaymentStatus::InProgress), &cancelled).payment;
    assert_eq!(after.tax_free_amount_krw, 3_000);
    // Agreeing (or silent) records change nothing of it.
    let mut ours = payment(PaymentStatus::InProgress);
    ours.tax_free_amount_krw = 3_000;
    let same = judge(&ours, &[], &approved, &ctx());
    assert!(!same.plan.unwrap().payment.needs_review);
    assert!(same.update.is_some(), "the plain approval");
    let mut silent = record("DONE");
    silent.tax_free_amount = None;
    let after = plan_of(&ours, &silent).payment;
    assert_eq!(
        (after.tax_free_amount_krw, after.needs_review),
        (3_000, false)
    );
}

/// Defect 1: a flag is a note for a person, never a stop sign. A contradiction about a payment
/// in flight (a record of another amount) sets it aside and keeps it looked at; a flagged
/// payment in flight is settled like any other.
#[test]
fn a_flag_never_stops_a_payment_in_flight() {
    let mut wrong = record("DONE");
    wrong.total_amount = Some(100);
    let context = ctx();
    for ours in [PaymentStatus::InProgress, PaymentStatus::WaitingForDeposit] {
        let decision = judge(&payment(ours), &[], &wrong, &context);
        assert!(matches!(decision.verdict, Verdict::Contradiction(_)));
        let after = decision.plan.unwrap().payment;
        assert_eq!(after.status, ours, "set aside, not moved");
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
        let decision = judge(&flagged, &[], &record(toss), &ctx());
        assert_eq!(decision.verdict, Verdict::Settled, "{ours} × {toss}");
        assert_eq!(
            decision.plan.unwrap().payment.status,
            settled,
            "{ours} × {toss}"
        );
    }
}

/// The context of a reply adopted for `actor` (the caller of a request).
pub(super) fn ctx_for(actor: Actor) -> Context {
    Context { actor, ..ctx() }
}

#[test]
fn a_reply_is_adopted_as_its_callers_change_a_read_back_as_tosss() {
    let ours = payment(PaymentStatus::InProgress);
    for actor in [Actor::buyer(), Actor::api_key("key-2"), Actor::toss()] {
        let plan = judge(&ours, &[], &record("DONE"), &ctx_for(actor.clone()))
            .plan
            .unwrap();
        assert_eq!(plan.events[0].event_type, "payment.completed");
        assert_eq!(plan.events[0].actor, actor);
    }
    let plan = judge(&ours, &[], &record("ABORTED"), &ctx_for(Actor::buyer()))
        .plan
        .unwrap();
    assert_eq!(plan.events[0].event_type, "payment.failed");
    assert_eq!(plan.events[0].actor, Actor::buyer());
}
