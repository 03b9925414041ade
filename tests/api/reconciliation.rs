//! Reconciliation against Toss's books: a run of a KST day reads the fake Toss's transactions and
//! settlements (every page), compares them with our payments and refunds, and sets aside every
//! payment a discrepancy names; `resync` then adopts Toss's record.

use std::time::Duration;

use chrono::{FixedOffset, NaiveDate, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::billing::{charge, issued_key, payment_of};
use crate::helpers::{
    Backend, Options, TestApp, due_now, into_reply, settings_for, spawn_app, spawn_impatient,
    spawn_with,
};
use crate::on_both_databases;

on_both_databases!(
    a_day_where_everything_matches,
    a_dashboard_cancel_is_missing_here_until_resync_adopts_it,
    a_payment_toss_never_approved_is_missing_at_toss,
    an_amount_toss_disagrees_with_is_a_mismatch,
    a_flag_goes_when_the_day_run_again_no_longer_finds_its_discrepancy,
    a_settlement_of_no_payment_of_ours_is_missing_here,
    every_page_of_both_lists_is_read,
    a_429_is_retried_and_the_run_completes,
    toss_unreadable_fails_the_run,
    two_instances_with_the_schedule_run_the_day_once,
    running_a_day_again_gives_the_same_result_and_flags_nothing_twice,
    the_command_exits_non_zero_on_discrepancies,
    bad_dates_and_missing_toss_are_refused,
    a_day_reads_the_books_of_both_key_sets,
    a_run_never_freezes_a_payment_in_flight_and_its_flag_goes_once_settled,
    a_flagged_payments_pending_refund_still_settles,
    a_discrepancy_about_a_flagged_payment_flags_it_once_that_flag_is_gone,
);

fn kst_today() -> NaiveDate {
    Utc::now()
        .with_timezone(&FixedOffset::east_opt(9 * 3600).unwrap())
        .date_naive()
}

fn today() -> String {
    kst_today().to_string()
}

/// Starts a run of `date` and waits for it to end; returns the run.
pub(crate) async fn run_day(app: &TestApp, date: &str) -> Value {
    let started = app
        .post("/reconciliation/runs", json!({"date": date}))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
    assert_eq!(started.body["date"], date);
    let id = started.body["run_id"].as_str().unwrap().to_owned();
    wait_for_run(app, &id).await
}

async fn wait_for_run(app: &TestApp, id: &str) -> Value {
    for _ in 0..200 {
        let run = app.get(&format!("/reconciliation/runs/{id}")).await;
        assert_eq!(run.status, StatusCode::OK, "{}", run.text);
        if run.body["status"] != "RUNNING" {
            return run.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the run of {id} did not end");
}

fn id_of(payment: &Value) -> String {
    payment["payment_id"].as_str().unwrap().to_owned()
}

/// The approvals' and cancels' keys at the fake Toss, oldest first.
fn toss_keys(app: &TestApp) -> Vec<String> {
    app.toss
        .transaction_log()
        .into_iter()
        .map(|t| t.transaction_key)
        .collect()
}

async fn refund(app: &TestApp, id: &str, amount: i64) {
    let reply = app
        .post(
            &format!("/payments/{id}/refund"),
            json!({"reason": "고객 변심", "refund_amount_krw": amount}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "COMPLETED", "{}", reply.text);
}

async fn a_day_where_everything_matches(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app
        .completed_payment("order-match-1", 10_000, "pk_match_1")
        .await;
    app.completed_payment("order-match-2", 25_000, "pk_match_2")
        .await;
    refund(&app, &id_of(&first), 3_000).await;

    let run = run_day(&app, &today()).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["discrepancies"], json!([]));
    let (fee_1, vat_1) = ::fake_toss::fee_of(10_000);
    let (fee_2, vat_2) = ::fake_toss::fee_of(25_000);
    let (fee_c, vat_c) = ::fake_toss::fee_of(3_000);
    let fees = (fee_1 + vat_1) + (fee_2 + vat_2) - (fee_c + vat_c);
    assert_eq!(
        run["summary"],
        json!({
            "toss_transactions": 3, "matched": 3, "discrepancies": 0,
            "approved_krw": 35_000, "cancelled_krw": 3_000,
            "fees_krw": fees, "payout_krw": 35_000 - 3_000 - fees,
        })
    );
    assert!(run["finished_at"].is_string());

    // The sale's settlement is on the payment; nothing was set aside.
    let paid = app.payment(&id_of(&first)).await;
    assert_eq!(paid["needs_review"], false);
    let paid_out = (kst_today() + chrono::Duration::days(2)).to_string();
    assert_eq!(
        paid["settlement"],
        json!({"fee_krw": fee_1 + vat_1, "payout_krw": 10_000 - fee_1 - vat_1,
               "sold_date": today(), "paid_out_date": paid_out})
    );
    let listed = app
        .get(&format!("/reconciliation/runs?date={}", today()))
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["runs"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["runs"][0]["run_id"], run["run_id"]);
    let all = app.get("/reconciliation/runs").await;
    assert_eq!(all.body["runs"][0]["run_id"], run["run_id"]);
    let other_day = app.get("/reconciliation/runs?date=2020-01-01").await;
    assert_eq!(other_day.body, json!({"runs": []}));

    // Runs, their duration and Toss's list calls are measured.
    let metrics = app.get_public("/metrics").await.text;
    for expected in [
        r#"reconciliation_runs_total{status="completed"}"#,
        "reconciliation_run_duration_seconds",
        r#"toss_requests_total{operation="transactions",outcome="ok"}"#,
        r#"toss_requests_total{operation="settlements",outcome="ok"}"#,
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
    app.stop().await;
}

async fn a_dashboard_cancel_is_missing_here_until_resync_adopts_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order-dash-1", 10_000, "pk_dash_1")
        .await;
    let id = id_of(&paid);
    app.toss.cancel_in_dashboard("pk_dash_1", 4_000);
    let cancel_key = toss_keys(&app).pop().unwrap();

    let run = run_day(&app, &today()).await;
    assert_eq!(run["status"], "COMPLETED");
    assert_eq!(
        run["discrepancies"],
        json!([{
            "kind": "MISSING_HERE", "order_id": "order-dash-1", "payment_key": "pk_dash_1",
            "transaction_key": cancel_key, "ours": null,
            "theirs": {"status": "PARTIAL_CANCELED", "amount_krw": 4_000},
        }])
    );
    assert_eq!(run["summary"]["matched"], 1);
    assert_eq!(run["summary"]["discrepancies"], 1);
    let flagged = app.payment(&id).await;
    assert_eq!(flagged["needs_review"], true);
    assert!(
        flagged["review_reason"]
            .as_str()
            .unwrap()
            .contains("MISSING_HERE"),
        "{flagged}"
    );
    let listed = app.get("/payments?needs_review=true").await;
    assert_eq!(listed.body["payments"][0]["payment_id"], id.as_str());
    let metrics = app.get_public("/metrics").await.text;
    assert!(metrics.contains(r#"reconciliation_discrepancies_total{kind="MISSING_HERE"}"#));

    // A person resyncs: Toss's cancel becomes a refund made outside the service.
    let resynced = app
        .post(
            &format!("/payments/{id}/review"),
            json!({"action": "resync", "note": "cancelled in Toss's dashboard"}),
        )
        .await;
    assert_eq!(resynced.status, StatusCode::OK, "{}", resynced.text);
    assert_eq!(resynced.body["status"], "PARTIAL_REFUND");
    assert_eq!(resynced.body["refunded_amount_krw"], 4_000);
    assert_eq!(resynced.body["needs_review"], false);
    let refunds = app.get(&format!("/payments/{id}/refunds")).await;
    assert_eq!(refunds.body["refunds"].as_array().unwrap().len(), 1);

    // The day now reconciles.
    let again = run_day(&app, &today()).await;
    assert_eq!(again["discrepancies"], json!([]), "{again}");
    assert_eq!(again["summary"]["matched"], 2);
    assert_eq!(again["run_id"], run["run_id"]);
    app.stop().await;
}

async fn a_payment_toss_never_approved_is_missing_at_toss(backend: Backend) {
    let app = spawn_app(backend).await;
    app.completed_payment("order-kept-1", 5_000, "pk_kept_1")
        .await;
    let lost = app
        .completed_payment("order-lost-1", 7_000, "pk_lost_1")
        .await;
    // Toss's books do not have the approval our payment records.
    let approval = toss_keys(&app).pop().unwrap();
    app.toss.forget_transaction(&approval);

    let run = run_day(&app, &today()).await;
    assert_eq!(
        run["discrepancies"],
        json!([{
            "kind": "MISSING_AT_TOSS", "order_id": "order-lost-1", "payment_key": "pk_lost_1",
            // The approval's transactionKey, as the payment recorded it.
            "transaction_key": approval,
            "ours": {"payment_id": id_of(&lost), "status": "COMPLETED", "amount_krw": 7_000},
            "theirs": null,
        }])
    );
    assert_eq!(run["summary"]["toss_transactions"], 1);
    assert_eq!(run["summary"]["matched"], 1);
    assert_eq!(app.payment(&id_of(&lost)).await["needs_review"], true);
    app.stop().await;
}

async fn an_amount_toss_disagrees_with_is_a_mismatch(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order-amount-1", 9_000, "pk_amount_1")
        .await;
    let approval = toss_keys(&app).pop().unwrap();
    app.toss.set_transaction_amount(&approval, 9_900);

    let run = run_day(&app, &today()).await;
    assert_eq!(
        run["discrepancies"],
        json!([{
            "kind": "AMOUNT_MISMATCH", "order_id": "order-amount-1", "payment_key": "pk_amount_1",
            "transaction_key": approval,
            "ours": {"payment_id": id_of(&paid), "status": "COMPLETED", "amount_krw": 9_000},
            "theirs": {"status": "DONE", "amount_krw": 9_900},
        }])
    );
    assert_eq!(run["summary"]["matched"], 0);
    assert_eq!(run["summary"]["approved_krw"], 9_900);
    assert_eq!(app.payment(&id_of(&paid)).await["needs_review"], true);
    app.stop().await;
}

/// Toss's books disagreed, then were put right (a data fix on Toss's side): a run of the day
/// again finds nothing, and the flag the first run set goes, kept as a review by the system.
async fn a_flag_goes_when_the_day_run_again_no_longer_finds_its_discrepancy(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order-fixed-1", 9_000, "pk_fixed_1")
        .await;
    let id = id_of(&paid);
    let approval = toss_keys(&app).pop().unwrap();
    app.toss.set_transaction_amount(&approval, 9_900);
    let first = run_day(&app, &today()).await;
    assert_eq!(
        first["discrepancies"][0]["kind"], "AMOUNT_MISMATCH",
        "{first}"
    );
    assert_eq!(app.payment(&id).await["needs_review"], true);

    app.toss.set_transaction_amount(&approval, 9_000);
    let again = run_day(&app, &today()).await;
    assert_eq!(again["discrepancies"], json!([]), "{again}");
    let payment = app.payment(&id).await;
    assert_eq!(payment["needs_review"], false, "{payment}");
    assert_eq!(payment["review_reason"], Value::Null);
    let reviews = app.get(&format!("/payments/{id}/reviews")).await.body;
    let reviews = reviews["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["reviewer"], "system", "{reviews:?}");
    assert!(
        reviews[0]["note"]
            .as_str()
            .unwrap()
            .contains("no longer finds"),
        "{reviews:?}"
    );
    // Nothing else moved.
    assert_eq!(payment["status"], "COMPLETED");
    app.stop().await;
}

async fn a_settlement_of_no_payment_of_ours_is_missing_here(backend: Backend) {
    let app = spawn_app(backend).await;
    app.completed_payment("order-settled-1", 6_000, "pk_settled_1")
        .await;
    // Toss settles a sale of the day that is in neither its transactions nor our books.
    let stranger = json!([{
        "mId": "tosspayments", "paymentKey": "pk_stranger", "transactionKey": "tx_stranger",
        "orderId": "order-stranger", "currency": "KRW", "method": "카드", "amount": 2_000,
        "fees": [{"type": "BASE", "fee": 60}], "vat": 6, "payOutAmount": 1_934,
        "soldDate": today(), "paidOutDate": today(), "cancel": null,
    }]);
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/v1/settlements"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(stranger))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.toss_server)
        .await;

    let run = run_day(&app, &today()).await;
    assert_eq!(
        run["discrepancies"],
        json!([{
            "kind": "MISSING_HERE", "order_id": "order-stranger", "payment_key": "pk_stranger",
            "transaction_key": "tx_stranger", "ours": null,
            "theirs": {"status": "SETTLED", "amount_krw": 2_000},
        }])
    );
    assert_eq!(run["summary"]["matched"], 1);
    assert_eq!(run["summary"]["fees_krw"], 66);
    assert_eq!(run["summary"]["payout_krw"], 1_934);
    app.stop().await;
}

async fn every_page_of_both_lists_is_read(backend: Backend) {
    let app = spawn_with(
        backend,
        Options {
            reconciliation_page_size: 2,
            ..Options::default()
        },
    )
    .await;
    for n in 1..=4 {
        app.completed_payment(
            &format!("order-page-{n}"),
            1_000 * n,
            &format!("pk_page_{n}"),
        )
        .await;
    }
    let extra = app
        .completed_payment("order-page-5", 5_000, "pk_page_5")
        .await;
    refund(&app, &id_of(&extra), 5_000).await;

    let run = run_day(&app, &today()).await;
    assert_eq!(run["discrepancies"], json!([]), "{run}");
    assert_eq!(run["summary"]["toss_transactions"], 6);
    assert_eq!(run["summary"]["matched"], 6);
    assert_eq!(run["summary"]["approved_krw"], 15_000);
    assert_eq!(run["summary"]["cancelled_krw"], 5_000);

    // 6 transactions in pages of 2: three full pages, then an empty one.
    let lists = app.toss_requests("GET", "/v1/transactions").await;
    assert_eq!(lists.len(), 4);
    let keys = toss_keys(&app);
    let after: Vec<Option<String>> = lists
        .iter()
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "startingAfter")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(
        after,
        vec![
            None,
            Some(keys[1].clone()),
            Some(keys[3].clone()),
            Some(keys[5].clone())
        ]
    );
    assert!(
        lists
            .iter()
            .all(|r| r.url.query().unwrap().contains("limit=2"))
    );
    let pages: Vec<String> = app
        .toss_requests("GET", "/v1/settlements")
        .await
        .iter()
        .map(|r| {
            let q = r.url.query().unwrap().to_owned();
            assert!(
                q.contains("dateType=soldDate") && q.contains("size=2"),
                "{q}"
            );
            r.url
                .query_pairs()
                .find(|(k, _)| k == "page")
                .unwrap()
                .1
                .into_owned()
        })
        .collect();
    assert_eq!(pages, ["1", "2", "3", "4"]);
    // Settlements of every page reached the payments.
    let listed = app.get("/payments?limit=100").await.body["payments"].clone();
    let payments = listed.as_array().unwrap();
    assert_eq!(payments.len(), 5);
    for payment in payments {
        assert_eq!(
            payment["settlement"]["sold_date"],
            today().as_str(),
            "{payment}"
        );
    }
    app.stop().await;
}

async fn a_429_is_retried_and_the_run_completes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.completed_payment("order-busy-1", 2_000, "pk_busy_1")
        .await;
    app.toss.throttle_lists(1);
    let run = run_day(&app, &today()).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["summary"]["matched"], 1);
    assert_eq!(app.toss_requests("GET", "/v1/transactions").await.len(), 2);
    app.stop().await;
}

async fn toss_unreadable_fails_the_run(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order-fail-1", 2_000, "pk_fail_1")
        .await;
    app.toss_fails("GET", "^/v1/settlements$", 401, "UNAUTHORIZED_KEY", Some(1))
        .await;
    let run = run_day(&app, &today()).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    assert_eq!(run["summary"], Value::Null);
    assert_eq!(run["discrepancies"], json!([]));
    assert_eq!(app.payment(&id_of(&paid)).await["needs_review"], false);
    // Started again, the date completes.
    let again = run_day(&app, &today()).await;
    assert_eq!(again["status"], "COMPLETED");
    app.stop().await;
}

async fn two_instances_with_the_schedule_run_the_day_once(backend: Backend) {
    let mut app = spawn_with(
        backend,
        Options {
            // From midnight KST on, the previous day is due.
            reconciliation_daily_at: Some("00:00".to_owned()),
            ..Options::default()
        },
    )
    .await;
    app.spawn_instance().await;
    let yesterday = kst_today().pred_opt().unwrap().to_string();
    let mut run = Value::Null;
    for _ in 0..100 {
        let listed = app
            .get(&format!("/reconciliation/runs?date={yesterday}"))
            .await;
        if let Some(found) = listed.body["runs"].as_array().and_then(|r| r.first())
            && found["status"] == "COMPLETED"
        {
            run = found.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        run["status"], "COMPLETED",
        "the scheduled run did not complete"
    );
    // Both instances look every second; give them a few looks.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.toss_requests("GET", "/v1/transactions").await.len(), 1);
    assert_eq!(app.toss_requests("GET", "/v1/settlements").await.len(), 1);
    let listed = app
        .get(&format!("/reconciliation/runs?date={yesterday}"))
        .await;
    assert_eq!(listed.body["runs"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["runs"][0]["finished_at"], run["finished_at"]);
    app.stop().await;
}

async fn running_a_day_again_gives_the_same_result_and_flags_nothing_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order-again-1", 10_000, "pk_again_1")
        .await;
    let id = id_of(&paid);
    app.completed_payment("order-again-2", 3_000, "pk_again_2")
        .await;
    app.toss.cancel_in_dashboard("pk_again_1", 1_000);

    let first = run_day(&app, &today()).await;
    assert_eq!(first["discrepancies"].as_array().unwrap().len(), 1);
    let events = app.events().await.len();
    // A person looked and dismissed it.
    let dismissed = app
        .post(
            &format!("/payments/{id}/review"),
            json!({"action": "dismiss", "note": "known dashboard cancel"}),
        )
        .await;
    assert_eq!(dismissed.status, StatusCode::OK, "{}", dismissed.text);

    let second = run_day(&app, &today()).await;
    assert_eq!(second["run_id"], first["run_id"]);
    assert_eq!(second["summary"], first["summary"]);
    assert_eq!(second["discrepancies"], first["discrepancies"]);
    // The same discrepancy does not set the payment aside again, and nothing was recorded twice.
    assert_eq!(app.payment(&id).await["needs_review"], false);
    assert_eq!(app.events().await.len(), events);
    let reviews = app.get(&format!("/payments/{id}/reviews")).await;
    assert_eq!(reviews.body["reviews"].as_array().unwrap().len(), 1);
    let listed = app
        .get(&format!("/reconciliation/runs?date={}", today()))
        .await;
    assert_eq!(listed.body["runs"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn the_command_exits_non_zero_on_discrepancies(backend: Backend) {
    let app = spawn_app(backend).await;
    app.completed_payment("order-cli-1", 4_000, "pk_cli_1")
        .await;
    let settings = || {
        settings_for(
            &app.database_url,
            &app.toss_server.uri(),
            &Options::default(),
        )
    };

    let mut out = Vec::new();
    let code = payment_service::startup::reconcile_command(settings(), &today(), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("COMPLETED") && text.contains("matched=1"),
        "{text}"
    );

    app.toss.cancel_in_dashboard("pk_cli_1", 4_000);
    let mut out = Vec::new();
    let code = payment_service::startup::reconcile_command(settings(), &today(), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("MISSING_HERE order_id=order-cli-1"), "{text}");

    // The command's run is the date's run, as the API shows it.
    let listed = app
        .get(&format!("/reconciliation/runs?date={}", today()))
        .await;
    assert_eq!(listed.body["runs"][0]["summary"]["discrepancies"], 1);
    let bad =
        payment_service::startup::reconcile_command(settings(), "29-11-2026", &mut Vec::new())
            .await;
    assert!(bad.is_err());
    app.stop().await;
}

async fn bad_dates_and_missing_toss_are_refused(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let tomorrow = (kst_today() + chrono::Duration::days(1)).to_string();
    for date in [
        tomorrow.as_str(),
        "2026-02-30",
        "2026-1-01",
        "yesterday",
        "",
    ] {
        app.post("/reconciliation/runs", json!({"date": date}))
            .await
            .problem(422, "VALIDATION_ERROR");
    }
    app.post("/reconciliation/runs", json!({"date": 20261129}))
        .await
        .problem(422, "VALIDATION_ERROR");
    app.get("/reconciliation/runs?date=2026-13-01")
        .await
        .problem(400, "VALIDATION_ERROR");
    app.get("/reconciliation/runs/00000000-0000-0000-0000-000000000000")
        .await
        .problem(404, "NOT_FOUND");
    let unauthorized = app
        .request(
            reqwest::Method::POST,
            "/reconciliation/runs",
            Some(json!({"date": today()})),
            false,
        )
        .await;
    unauthorized.problem(401, "UNAUTHORIZED");
    assert!(
        app.toss_requests("GET", "/v1/transactions")
            .await
            .is_empty()
    );

    // An instance without Toss has no books to read.
    let noop = app
        .spawn_instance_with(Options {
            toss: false,
            ..Options::default()
        })
        .await;
    let reply = app
        .client
        .post(format!("{noop}/reconciliation/runs"))
        .bearer_auth(crate::helpers::API_KEY)
        .json(&json!({"date": today()}))
        .send()
        .await
        .unwrap();
    let reply = crate::helpers::into_reply(reply).await;
    reply.problem(503, "PG_NOT_CONFIGURED");
    app.stop().await;
}

/// Billing under a key set of its own (`TOSS_BILLING_SECRET_KEY`): Toss keeps that MID's
/// transactions and settlements apart, so a run reads the books of both key sets; a charge is
/// not "missing at Toss" because the payments key's books do not list it.
async fn a_day_reads_the_books_of_both_key_sets(backend: Backend) {
    const BILLING_SECRET: &str = "test_sk_billing_contract_0123";
    let app = spawn_with(
        backend,
        Options {
            toss_billing_secret_key: Some(BILLING_SECRET.to_owned()),
            ..Options::default()
        },
    )
    .await;
    app.completed_payment("order-mid-one", 10_000, "pk_mid_recon")
        .await;
    let (key, _) = issued_key(&app, "u-1").await;
    let id = payment_of(&app, "u-1", "order-mid-bill", 20_000).await;
    let charged = charge(&app, &id, &key).await;
    assert_eq!(charged.body["status"], "COMPLETED", "{}", charged.text);

    let run = run_day(&app, &today()).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["discrepancies"], json!([]), "{run}");
    assert_eq!(run["summary"]["toss_transactions"], 2, "{run}");
    assert_eq!(run["summary"]["matched"], 2, "{run}");
    assert_eq!(run["summary"]["approved_krw"], 30_000, "{run}");
    for list in ["/v1/transactions", "/v1/settlements"] {
        let mut keys: Vec<String> = app
            .toss_requests("GET", list)
            .await
            .iter()
            .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
            .collect();
        keys.sort();
        keys.dedup();
        let mut expected = vec![
            crate::fake_toss::BASIC_AUTH.to_owned(),
            ::fake_toss::basic_auth(BILLING_SECRET),
        ];
        expected.sort();
        assert_eq!(keys, expected, "{list} read under both key sets");
    }
    assert_eq!(app.payment(&id).await["needs_review"], false);
    app.stop().await;
}

/// A flag is a note for a person, never a stop sign (defect 1). A run finds Toss's approval
/// of a card confirm whose reply and read-back were lost (ours `IN_PROGRESS`) and of a deposit
/// whose callback was lost (ours `WAITING_FOR_DEPOSIT`): both are flagged, neither is frozen.
/// The confirm's retry answers as for any payment and settles it; the reconciler settles the
/// deposit; once settled, neither disagrees with the run any more and the flag is cleared, kept
/// as a review by the system.
async fn a_run_never_freezes_a_payment_in_flight_and_its_flag_goes_once_settled(backend: Backend) {
    let app = spawn_app(backend).await;
    // A card confirm whose outcome is unknown: Toss answered 500 and shows it unapproved.
    let card = app.create_payment("order-inflight-1", 12_000).await;
    let card_id = id_of(&card);
    app.toss
        .authenticate("pk_inflight_1", "order-inflight-1", 12_000);
    app.fail_next_confirm(500, "UNKNOWN_PAYMENT_ERROR").await;
    let confirm = json!({"payment_id": card_id, "payment_key": "pk_inflight_1"});
    let reply = app.post_public("/payments/confirm", confirm.clone()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    // Toss approved it since (a confirm that got there after all).
    app.toss
        .approve("pk_inflight_1", "order-inflight-1", 12_000);
    // A virtual account deposited at Toss; its callback was lost.
    let va = app
        .post(
            "/payments",
            json!({"user_id": "u-1", "order_id": "order-inflight-2", "amount_krw": 30_000,
                   "payment_method": "virtual_account"}),
        )
        .await;
    let va_id = id_of(&va.body);
    app.toss
        .authenticate_virtual_account("pk_inflight_2", "order-inflight-2", 30_000);
    let issued = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": va_id, "payment_key": "pk_inflight_2"}),
        )
        .await;
    assert_eq!(
        issued.body["status"], "WAITING_FOR_DEPOSIT",
        "{}",
        issued.text
    );
    assert!(app.toss.deposit("pk_inflight_2"));

    let run = run_day(&app, &today()).await;
    let found = run["discrepancies"].as_array().unwrap();
    assert_eq!(found.len(), 2, "{run}");
    assert!(
        found.iter().all(|d| d["kind"] == "STATUS_MISMATCH"),
        "{run}"
    );
    for id in [&card_id, &va_id] {
        let flagged = app.payment(id).await;
        assert_eq!(flagged["needs_review"], true, "{flagged}");
        assert!(
            flagged["review_reason"]
                .as_str()
                .unwrap()
                .contains("STATUS_MISMATCH")
        );
    }

    // The buyer's retry answers as for any payment in flight: it reads Toss back and settles.
    due_now(&app, &card_id).await;
    let retried = app.post_public("/payments/confirm", confirm).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(retried.body["status"], "COMPLETED");
    // The reconciler settles the deposit: the run made it due at once.
    app.service.settle_due().await.unwrap();
    for (id, key) in [(&card_id, "pk_inflight_1"), (&va_id, "pk_inflight_2")] {
        let settled = app.payment(id).await;
        assert_eq!(settled["status"], "COMPLETED", "{settled}");
        assert_eq!(settled["pg_transaction_id"], key);
        assert_eq!(settled["needs_review"], false, "{settled}");
        assert_eq!(settled["review_reason"], Value::Null);
        let events = app.events_of(id).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e["event_type"] == "payment.completed")
                .count(),
            1
        );
        // How the flag went: a review by the system, kept with the payment's reviews.
        let reviews = app.get(&format!("/payments/{id}/reviews")).await;
        let list = reviews.body["reviews"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{}", reviews.text);
        assert_eq!(list[0]["reviewer"], "system");
        assert_eq!(list[0]["action"], "resync");
        assert!(
            list[0]["note"]
                .as_str()
                .unwrap()
                .contains("STATUS_MISMATCH")
        );
    }
    // The day now reconciles, and nothing is flagged again.
    let again = run_day(&app, &today()).await;
    assert_eq!(again["discrepancies"], json!([]), "{again}");
    let flagged = app.get("/payments?needs_review=true").await;
    assert_eq!(flagged.body["total_count"], 0, "{}", flagged.text);
    app.stop().await;
}

/// A flagged payment's refund whose outcome is unknown is answered 202 like any other and is
/// settled by the reconciler (defect 1: a `PENDING` refund in flight).
async fn a_flagged_payments_pending_refund_still_settles(backend: Backend) {
    let app = spawn_impatient(backend).await;
    let paid = app
        .completed_payment("order-flagref-1", 10_000, "pk_flagref_1")
        .await;
    let id = id_of(&paid);
    // Toss's books lack the approval: the run flags the payment.
    let approval = toss_keys(&app).pop().unwrap();
    app.toss.forget_transaction(&approval);
    let run = run_day(&app, &today()).await;
    assert_eq!(run["discrepancies"][0]["kind"], "MISSING_AT_TOSS", "{run}");
    assert_eq!(app.payment(&id).await["needs_review"], true);

    // The first cancel gets no answer in time (and never reaches Toss): outcome unknown.
    app.toss_hangs("POST", "/cancel$", Some(1)).await;
    let send = || {
        app.client
            .post(format!("{}/payments/{id}/refund", app.address))
            .bearer_auth(crate::helpers::API_KEY)
            .header("Idempotency-Key", "flagged-refund-1")
            .json(&json!({"reason": "고객 변심", "refund_amount_krw": 4_000}))
            .send()
    };
    let first = into_reply(send().await.unwrap()).await;
    assert_eq!(
        first.status,
        StatusCode::ACCEPTED,
        "answered like any refund in flight, not 502: {}",
        first.text
    );
    assert_eq!(first.body["status"], "PENDING");
    // Retried with its key: its state, whatever the flag.
    let retried = into_reply(send().await.unwrap()).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.text);
    let mut status = Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        app.execute_sql(
            "UPDATE refunds SET next_reconcile_at = $1 WHERE payment_id = $2 AND status = 'PENDING'",
            vec![Utc::now().into(), id.clone().into()],
        )
        .await;
        app.service.settle_due().await.unwrap();
        let refunds = app.get(&format!("/payments/{id}/refunds")).await;
        status = refunds.body["refunds"][0]["status"].clone();
        if status == "COMPLETED" {
            break;
        }
    }
    assert_eq!(status, "COMPLETED");
    let after = app.payment(&id).await;
    assert_eq!(after["refunded_amount_krw"], 4_000);
    assert_eq!(app.toss.payment("pk_flagref_1").unwrap().balance, 6_000);
    assert_eq!(
        after["needs_review"], true,
        "Toss's books still lack it: a person looks"
    );
    app.stop().await;
}

/// A run that finds a discrepancy about a payment flagged already (a note of something else)
/// leaves that flag as it is, and does not spend its own: once the person dismisses the earlier
/// flag, a run of the day again sets the payment aside for what it found.
async fn a_discrepancy_about_a_flagged_payment_flags_it_once_that_flag_is_gone(backend: Backend) {
    let app = spawn_app(backend).await;
    let paid = app
        .completed_payment("order-flagged-1", 9_000, "pk_flagged_1")
        .await;
    let id = id_of(&paid);
    app.execute_sql(
        "UPDATE payments SET needs_review = $1, review_reason = $2 WHERE id = $3",
        vec![true.into(), "an earlier note".into(), id.clone().into()],
    )
    .await;
    let approval = toss_keys(&app).pop().unwrap();
    app.toss.set_transaction_amount(&approval, 9_900);
    let first = run_day(&app, &today()).await;
    assert_eq!(
        first["discrepancies"][0]["kind"], "AMOUNT_MISMATCH",
        "{first}"
    );
    assert_eq!(app.payment(&id).await["review_reason"], "an earlier note");

    let dismissed = app
        .post(
            &format!("/payments/{id}/review"),
            json!({"action": "dismiss", "note": "the earlier note is handled"}),
        )
        .await;
    assert_eq!(dismissed.status, StatusCode::OK, "{}", dismissed.text);
    run_day(&app, &today()).await;
    let payment = app.payment(&id).await;
    assert_eq!(payment["needs_review"], true, "{payment}");
    assert!(
        payment["review_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("AMOUNT_MISMATCH")),
        "{payment}"
    );
    app.stop().await;
}
