//! `--scenario reconcile`: a day of `--transactions` Toss transactions reconciled by the service.
//!
//! Fills the service's database (through the service's own store, as the service would have
//! written them: completed payments approved through Toss) and the fake Toss's books (the same
//! payments approved, with their transactions and settlements), starts `payment-service`, starts
//! a run of today (`POST /reconciliation/runs`), waits for it, and reports its wall time, the
//! service's peak RSS before and during the run, and the run's summary. Every payment matches,
//! so the run must complete with no discrepancy: anything else is an error.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{FixedOffset, Utc};
use payment_service::domain::{OrderId, Payment, PaymentKey, PaymentStatus};
use serde_json::{Value, json};

use crate::args::Options;
use crate::service::{self, BenchDatabase, RssSampler, ServiceProcess};
use crate::toss_server::TossServer;

pub struct Reconciled {
    pub transactions: u64,
    pub seconds: f64,
    pub errors: u64,
}

pub async fn run(
    options: &Options,
    run_id: &str,
    work_dir: &std::path::Path,
    databases: &mut Vec<BenchDatabase>,
    toss: &TossServer,
    toss_url: &str,
) -> anyhow::Result<Reconciled> {
    let count = options.transactions;
    let db = BenchDatabase::create(options, run_id, "svc").await?;
    let url = db.url.clone();
    databases.push(db);

    let seeding = Instant::now();
    let store = crate::db::connect(&url, options.store_pool()).await?;
    let workers = options.concurrency.max(1) as u64;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let store = store.clone();
        let toss = toss.clone();
        let run_id = run_id.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while n < count {
                let order = format!("rc_{run_id}_{n:07}");
                let key = format!("pk_{order}");
                let amount = 1_000 + i64::try_from(n % 100).unwrap_or(0) * 100;
                let approval = toss.approve(&key, &order, amount);
                let now = Utc::now();
                let mut payment = Payment::new_pending(
                    "u-bench".to_owned(),
                    OrderId::parse(&order)?,
                    amount,
                    "card".to_owned(),
                    now,
                );
                let payment_key = PaymentKey::parse(&key)?;
                payment.status = PaymentStatus::Completed;
                payment.pg_provider = Some("toss".to_owned());
                payment.pg_transaction_id = Some(key.clone());
                payment.payment_key = Some(payment_key);
                payment.pg_approval_key = Some(approval);
                payment.confirm_attempt = 1;
                payment.confirm_sends = 1;
                payment.completed_at = Some(now);
                store.insert_payment(&payment).await?;
                n += workers;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    store.close().await;
    println!(
        "seeded {count} completed payments and Toss approvals in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let api_key = format!("bench_{run_id}");
    let service = ServiceProcess::start(options, &url, toss_url, &api_key, work_dir).await?;
    println!(
        "service pid {} on {} (log: {})",
        service.pid,
        service.base_url,
        service.log.display()
    );
    let rss_idle = service::memory_kib(service.pid).map(|(rss, _)| rss);
    let sampler = RssSampler::start(service.pid);
    let client = crate::flows::http_client();
    let today = Utc::now()
        .with_timezone(&FixedOffset::east_opt(9 * 3600).expect("KST"))
        .date_naive()
        .to_string();

    let started = Instant::now();
    let reply = client
        .post(format!("{}/reconciliation/runs", service.base_url))
        .bearer_auth(&api_key)
        .json(&json!({"date": today}))
        .send()
        .await?;
    if reply.status().as_u16() != 202 {
        bail!("POST /reconciliation/runs answered {}", reply.status());
    }
    let run: Value = reply.json().await?;
    let id = run["run_id"].as_str().context("run_id")?.to_owned();
    let run = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // SQLite's one connection is busy while the run compares: a poll may be answered 503.
        let Ok(reply) = client
            .get(format!("{}/reconciliation/runs/{id}", service.base_url))
            .bearer_auth(&api_key)
            .send()
            .await
        else {
            continue;
        };
        let run: Value = reply.json().await.unwrap_or(Value::Null);
        if run["status"] == "COMPLETED" || run["status"] == "FAILED" {
            break run;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the run did not end within 30 minutes");
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let peak_sampled = sampler.peak_kib();
    let hwm = service::memory_kib(service.pid).map(|(_, hwm)| hwm);
    drop(sampler);
    service.stop().await;

    let summary = &run["summary"];
    let expected = i64::try_from(count).unwrap_or(i64::MAX);
    let clean = run["status"] == "COMPLETED"
        && summary["toss_transactions"] == expected
        && summary["matched"] == expected
        && summary["discrepancies"] == 0;
    let mib = |kib: Option<u64>| {
        kib.map_or("n/a".to_owned(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        })
    };
    println!(
        "\n== reconcile: {count} Toss transactions, database {}",
        options.backend.name()
    );
    println!("  run status            {}", run["status"]);
    println!(
        "  wall time             {seconds:.2} s ({:.0} transactions/s)",
        count as f64 / seconds
    );
    println!("  service RSS idle      {}", mib(rss_idle));
    println!(
        "  service RSS peak      {} (sampled every 100 ms), VmHWM {}",
        mib(Some(peak_sampled)),
        mib(hwm)
    );
    println!("  summary               {summary}");
    if !clean {
        println!("  ERROR: the run did not complete with every transaction matched: {run}");
    }
    Ok(Reconciled {
        transactions: count,
        seconds,
        errors: u64::from(!clean),
    })
}
