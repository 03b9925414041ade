//! What the console's pages show, value by value: scheduled charges due soon and exhausted,
//! reconciliation runs with their discrepancies and a failed run's error, and a flagged payment
//! in the review queue beside Toss's record. Each value is checked as the page formats it
//! (`15,000원`, times in KST), in its row, so a wrong filter or field in a template fails here.

use chrono::{DateTime, FixedOffset, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::billing::issued_key;
use crate::consents::subscription_payment;
use crate::console::{Browser, Page, with_operators};
use crate::helpers::{Backend, TestApp, spawn_with};
use crate::on_both_databases;
use crate::reconciliation::run_day;
use crate::schedules::{schedule, wait_for};

on_both_databases!(
    schedules_show_the_due_and_the_exhausted_row_by_row,
    reconciliation_shows_discrepancies_the_summary_and_a_failed_runs_error,
    the_queue_shows_a_flagged_payment_beside_tosss_record,
);

/// An API time as the pages show it: `2026-12-06 18:30:00 KST`.
fn kst(at: &Value) -> String {
    let at: DateTime<Utc> = at.as_str().expect("a time").parse().unwrap();
    at.with_timezone(&FixedOffset::east_opt(9 * 3600).unwrap())
        .format("%Y-%m-%d %H:%M:%S KST")
        .to_string()
}

/// The page without the templates' line breaks and indentation: a table row reads as one line.
fn flat(page: &Page) -> String {
    page.text.lines().map(str::trim).collect()
}

async fn signed_in_page(app: &TestApp, path: &str) -> String {
    let mut browser = Browser::new(&app.address);
    browser.sign_in().await;
    let page = browser.get(path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    flat(&page)
}

fn assert_shows(page: &str, expected: &str) {
    assert!(page.contains(expected), "{expected}\nnot in:\n{page}");
}

async fn schedules_show_the_due_and_the_exhausted_row_by_row(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let (key, _) = issued_key(&app, "u-1").await;
    let soon = subscription_payment(&app, "u-1", "sub-c1", "order_console_soon", 15_000).await;
    let in_three_hours = (Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let scheduled = schedule(
        &app,
        &soon,
        json!({"billing_key_id": key, "charge_at": in_three_hours}),
    )
    .await;
    assert_eq!(scheduled.status, StatusCode::OK, "{}", scheduled.text);
    let due = &scheduled.body["schedule"];
    assert_eq!(due["status"], "SCHEDULED");

    let declined = subscription_payment(&app, "u-1", "sub-c2", "order_console_gone", 9_900).await;
    app.toss
        .decline_next_charge("INVALID_STOPPED_CARD", "정지된 카드 입니다.");
    let reply = schedule(
        &app,
        &declined,
        json!({"billing_key_id": key, "charge_at": Utc::now().to_rfc3339()}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let exhausted = wait_for(&app, &declined, 10, |p| {
        p["schedule"]["status"] == "EXHAUSTED"
    })
    .await;
    // Its last change at a known time, unlike its charge time.
    let changed: DateTime<Utc> = "2026-12-06T09:30:00Z".parse().unwrap();
    app.execute_sql(
        "UPDATE payment_schedules SET updated_at = $1 WHERE payment_id = $2",
        vec![changed.into(), declined.clone().into()],
    )
    .await;

    let page = signed_in_page(&app, "/console/schedules").await;
    assert_shows(&page, "Due within 24 hours (1)");
    assert_shows(
        &page,
        &format!(
            r#"<tr><td><a href="/console/payments/{soon}"><code>{soon}</code></a></td><td>{}</td><td>0</td><td><code>{key}</code></td></tr>"#,
            kst(&due["next_attempt_at"]),
        ),
    );
    assert_shows(&page, "Exhausted (1)");
    assert_shows(
        &page,
        &format!(
            r#"<tr><td><a href="/console/payments/{declined}"><code>{declined}</code></a></td><td>{}</td><td>1</td><td>2026-12-06 18:30:00 KST</td></tr>"#,
            kst(&exhausted["schedule"]["charge_at"]),
        ),
    );
    app.stop().await;
}

async fn reconciliation_shows_discrepancies_the_summary_and_a_failed_runs_error(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let mismatched = app
        .completed_payment("order_console_amount", 9_000, "pk_console_amount")
        .await;
    let approval = app.toss.transaction_log().pop().unwrap().transaction_key;
    app.toss.set_transaction_amount(&approval, 9_900);
    let dashboard = app
        .completed_payment("order_console_dash", 15_000, "pk_console_dash")
        .await;
    app.toss.cancel_in_dashboard("pk_console_dash", 4_000);
    let today = Utc::now()
        .with_timezone(&FixedOffset::east_opt(9 * 3600).unwrap())
        .date_naive();
    let run = run_day(&app, &today.to_string()).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let yesterday = (today - chrono::Days::new(1)).to_string();
    app.toss_fails("GET", "^/v1/settlements$", 401, "UNAUTHORIZED_KEY", Some(1))
        .await;
    let failed = run_day(&app, &yesterday).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");

    let page = signed_in_page(&app, "/console/reconciliation").await;
    let id_of = |payment: &Value| payment["payment_id"].as_str().unwrap().to_owned();
    for expected in [
        format!(
            r#"<section class="card run-COMPLETED" aria-label="{today}"><h3>{today} <span class="status">COMPLETED</span></h3>"#
        ),
        format!(
            "시작 / Started {} · 종료 / Finished {}",
            kst(&run["started_at"]),
            kst(&run["finished_at"])
        ),
        "<p>Toss 3 · matched 1 · discrepancies 2 · approved 24,900원 · refunded 4,000원 \
         · fees 689원 · payout 20,211원</p>"
            .to_owned(),
        format!(
            r#"<tr><td>AMOUNT_MISMATCH</td><td><a href="/console/payments/{}">order_console_amount</a></td><td>COMPLETED 9,000원</td><td>DONE 9,900원</td></tr>"#,
            id_of(&mismatched)
        ),
        format!(
            r#"<tr><td>MISSING_HERE</td><td><a href="/console/payments/{}">order_console_dash</a></td><td>-</td><td>PARTIAL_CANCELED 4,000원</td></tr>"#,
            id_of(&dashboard)
        ),
        format!(
            r#"<section class="card run-FAILED" aria-label="{yesterday}"><h3>{yesterday} <span class="status">FAILED</span></h3>"#
        ),
        format!(
            "시작 / Started {} · 종료 / Finished {}</p>\
             <p class=\"error\">Toss&#39;s settlements could not be read: \
             PG misconfigured: UNAUTHORIZED_KEY</p></section>",
            kst(&failed["started_at"]),
            kst(&failed["finished_at"])
        ),
    ] {
        assert_shows(&page, &expected);
    }
    app.stop().await;
}

async fn the_queue_shows_a_flagged_payment_beside_tosss_record(backend: Backend) {
    let app = spawn_with(backend, with_operators()).await;
    let id = app
        .set_aside("order_console_flagged", "pk_console_flagged")
        .await;
    app.toss.cancel_in_dashboard("pk_console_flagged", 2_000);
    let reason = app.payment(&id).await["review_reason"]
        .as_str()
        .unwrap()
        .replace('\'', "&#39;");
    let page = signed_in_page(&app, "/console/").await;
    let differs = r#"<span class="tag">차이 / differs</span>"#;
    for expected in [
        r#"Review queue <span class="count">(1)</span>"#.to_owned(),
        format!(
            r#"<h2 id="q-{id}"><a href="/console/payments/{id}">order_console_flagged</a></h2><p class="reason">사유 / Reason: {reason}</p>"#
        ),
        format!(
            r#"<tr class="differs"><th scope="row">상태 / Status {differs}</th><td><mark>COMPLETED</mark></td><td><mark>PARTIAL_CANCELED</mark></td></tr>"#
        ),
        r#"<tr><th scope="row">주문번호 / Order id</th><td>order_console_flagged</td><td>order_console_flagged</td></tr>"#.to_owned(),
        r#"<tr><th scope="row">결제 키 / Payment key</th><td>pk_console_flagged</td><td>pk_console_flagged</td></tr>"#.to_owned(),
        r#"<tr><th scope="row">결제 금액 / Amount</th><td>10,000원</td><td>10,000원</td></tr>"#.to_owned(),
        format!(
            r#"<tr class="differs"><th scope="row">환불 합계 / Refunded {differs}</th><td><mark>0원</mark></td><td><mark>2,000원</mark></td></tr>"#
        ),
        format!(
            r#"<tr class="differs"><th scope="row">잔액 / Balance {differs}</th><td><mark>10,000원</mark></td><td><mark>8,000원</mark></td></tr>"#
        ),
        format!(r#"<form class="review" method="post" action="/console/payments/{id}/review">"#),
    ] {
        assert_shows(&page, &expected);
    }
    app.stop().await;
}
