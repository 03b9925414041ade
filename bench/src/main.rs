//! Load test of the payment flow, with its limits measured in the same run.
//!
//! Starts a fake Toss on loopback (answering after `--toss-delay-ms`), runs the baselines
//! ((a) the fake Toss alone, (b) the database alone doing through the service's own store what
//! the service does for a flow), then starts `payment-service` as a child process against a
//! fresh database and drives create -> confirm (-> refund) flows at a fixed concurrency. Prints
//! throughput, latency percentiles, errors by status and the service's peak RSS, and the
//! service's throughput as a fraction of each baseline.
//!
//! ```sh
//! cargo build --release -p payment-service -p payment-bench
//! target/release/loadtest --database postgres --concurrency 16 --duration 20 --toss-delay-ms 0
//! target/release/loadtest --database postgres --scenario confirm-burst --flows 1000 \
//!     --toss-delay-ms 300 --pool 10
//! target/release/loadtest --database postgres --scenario reconcile --transactions 100000
//! target/release/loadtest --database postgres --scenario renewal-day --charges 100000 \
//!     --instances 2
//! target/release/loadtest --database postgres --scenario side-by-side --toss-bind 127.0.0.1:4100 \
//!     --peer-url http://127.0.0.1:4000/confirm/payment --rounds 4
//! ```
//!
//! See `docs/benchmarks.md` for what each number means and the results.

mod args;
mod db;
mod flows;
mod reconcile;
mod renewal;
mod service;
mod side;
mod stats;
mod toss_server;

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};

use args::{Amount, Baseline, Options, Scenario};
use flows::{ServiceFlow, TossFlow};
use service::{BenchDatabase, CpuMeter, CpuUse, DbStats, RssSampler, ServiceProcess};
use stats::Phase;
use toss_server::TossServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::from_env();
    // reqwest and sqlx are built without a default crypto provider (plain HTTP needs none, but
    // building a client looks for one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if options.scenario == Scenario::SideBySide {
        if !side::run(&options).await? {
            std::process::exit(1);
        }
        return Ok(());
    }

    let mut rounds = Vec::new();
    for round in 1..=options.rounds {
        if options.rounds > 1 {
            println!("\n##### round {round} of {}", options.rounds);
        }
        rounds.push(run_round(&options).await?);
    }
    if rounds.len() > 1 {
        print_rounds(&rounds);
    }
    if rounds.iter().any(|round| round.errors > 0) {
        std::process::exit(1);
    }
    Ok(())
}

/// One complete run (baselines, then the service) on databases of its own.
async fn run_round(options: &Options) -> anyhow::Result<RoundResult> {
    let run_id = format!("{:08x}", rand::random::<u32>());
    let work_dir = std::env::temp_dir().join(format!("ps_bench_{run_id}"));
    std::fs::create_dir_all(&work_dir)?;
    let mut databases = Vec::new();
    let result = run(options, &run_id, &work_dir, &mut databases).await;
    if options.keep_db {
        for db in &databases {
            println!("kept database {}", db.url);
        }
    } else {
        for db in databases {
            db.drop_now().await;
        }
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    result
}

/// What a round contributes to the comparison of rounds.
struct RoundResult {
    errors: u64,
    flows_per_s: f64,
    /// `(label, service ÷ baseline)`.
    ratios: Vec<(&'static str, f64)>,
    /// `(request kind or "flow", p99 in ms)`.
    p99_ms: Vec<(String, f64)>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Each round's figures side by side, and their medians.
fn print_rounds(rounds: &[RoundResult]) {
    let column = |pick: &dyn Fn(&RoundResult) -> Option<f64>, name: &str, unit: &str| {
        let values: Vec<f64> = rounds.iter().filter_map(pick).collect();
        let each = values
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {name:<34} median {:>8.1}{unit}   (rounds: {each})",
            median(values.clone())
        );
    };
    println!("\n== {} rounds", rounds.len());
    column(&|r| Some(r.flows_per_s), "service flows/s", "");
    for (label, _) in &rounds[0].ratios {
        column(
            &|r| {
                r.ratios
                    .iter()
                    .find(|(l, _)| l == label)
                    .map(|(_, ratio)| ratio * 100.0)
            },
            &format!("service ÷ {label}"),
            " %",
        );
    }
    for (kind, _) in &rounds[0].p99_ms {
        column(
            &|r| r.p99_ms.iter().find(|(k, _)| k == kind).map(|(_, v)| *v),
            &format!("{kind} p99"),
            " ms",
        );
    }
    let errors: u64 = rounds.iter().map(|r| r.errors).sum();
    println!("  errors in all rounds: {errors}");
}

/// A measured phase with the CPU it used.
struct Measured {
    baseline: Option<Baseline>,
    phase: Phase,
    cpu: CpuUse,
    /// PostgreSQL's counters for the phase's database, warm-up included.
    db: Option<DbStats>,
}

/// The database's counters since `before`, once its connections are closed (backends report
/// their counters when they exit).
async fn db_stats_after(db: &BenchDatabase, before: DbStats) -> Option<DbStats> {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    db.stats().await.map(|after| after.since(before))
}

async fn run(
    options: &Options,
    run_id: &str,
    work_dir: &std::path::Path,
    databases: &mut Vec<BenchDatabase>,
) -> anyhow::Result<RoundResult> {
    let load_before = service::load_average();
    print_header(options, run_id, &load_before);

    let (toss, toss_url) = TossServer::start(&options.toss_bind, options.toss_delay)
        .await
        .context("starting the fake Toss")?;
    println!("fake Toss on {toss_url}");
    if options.scenario == Scenario::Reconcile {
        let done = reconcile::run(options, run_id, work_dir, databases, &toss, &toss_url).await?;
        return Ok(RoundResult {
            errors: done.errors,
            flows_per_s: done.transactions as f64 / done.seconds,
            ratios: Vec::new(),
            p99_ms: Vec::new(),
        });
    }
    if options.scenario == Scenario::SideBySide {
        unreachable!("measured by side::run");
    }
    if options.scenario == Scenario::RenewalDay {
        let done = renewal::run(options, run_id, work_dir, databases, &toss, &toss_url).await?;
        return Ok(RoundResult {
            errors: done.errors,
            flows_per_s: done.charges as f64 / done.seconds,
            ratios: Vec::new(),
            p99_ms: Vec::new(),
        });
    }
    let client = flows::http_client();
    let mut measured: Vec<Measured> = Vec::new();

    if options.scenario == Scenario::Flows {
        for &baseline in &options.baselines {
            let m = run_baseline(
                options, run_id, baseline, &toss, &toss_url, &client, databases,
            )
            .await?;
            print_phase(&m);
            measured.push(m);
            toss.forget_all();
        }
    }

    // The service.
    let api_key = options
        .api_key
        .clone()
        .unwrap_or_else(|| format!("bench_{run_id}"));
    let (service, base_url, service_db) = match &options.target {
        Some(url) => (None, url.clone(), None),
        None => {
            let db = BenchDatabase::create(options, run_id, "svc").await?;
            let url = db.url.clone();
            databases.push(db);
            let service =
                ServiceProcess::start(options, &url, &toss_url, &api_key, work_dir).await?;
            databases.last().expect("just pushed").settle().await;
            let base = service.base_url.clone();
            println!(
                "service pid {} on {base} (log: {})",
                service.pid,
                service.log.display()
            );
            (Some(service), base, databases.last())
        }
    };
    let db_before = match service_db {
        Some(db) => db.stats().await,
        None => None,
    };
    let pid = service.as_ref().map(|s| s.pid).or(options.service_pid);
    let rss_idle = pid.and_then(service::memory_kib).map(|(rss, _)| rss);
    let sampler = pid.map(RssSampler::start);

    let flow = Arc::new(ServiceFlow {
        client: client.clone(),
        base: base_url,
        bearer: format!("Bearer {api_key}"),
        run_id: run_id.to_owned(),
        refund_share: options.refund_share,
    });
    let (phase, cpu) = match options.scenario {
        Scenario::Flows => {
            let mut meter = None;
            let phase = flows::drive(
                "service",
                flow,
                options.concurrency,
                options.amount,
                options.warmup,
                options.rate,
                || meter = Some(CpuMeter::start(pid)),
            )
            .await;
            (phase, meter.map(|m| m.stop()).unwrap_or_default())
        }
        Scenario::Reconcile => unreachable!("measured by reconcile::run"),
        Scenario::RenewalDay => unreachable!("measured by renewal::run"),
        Scenario::SideBySide => unreachable!("measured by side::run"),
        Scenario::ConfirmBurst => {
            let count = match options.amount {
                Amount::Flows(n) => n,
                Amount::Duration(_) => 1000,
            };
            let meter = CpuMeter::start(pid);
            let phase = flows::confirm_burst(flow, options.concurrency, count).await;
            (phase, meter.stop())
        }
    };

    let memory = pid.and_then(service::memory_kib);
    let rss_peak_sampled = sampler.as_ref().map(RssSampler::peak_kib);
    drop(sampler);
    let log_lines = if let Some(service) = service {
        let log = service.log.clone();
        service.stop().await;
        std::fs::read_to_string(&log)
            .map(|text| text.lines().filter(|l| !l.trim().is_empty()).count())
            .unwrap_or(0)
    } else {
        0
    };
    let db = match (service_db, db_before) {
        (Some(db), Some(before)) => db_stats_after(db, before).await,
        _ => None,
    };
    let service_phase = Measured {
        baseline: None,
        phase,
        cpu,
        db,
    };
    print_phase(&service_phase);

    let load_after = service::load_average();
    let summary = Summary {
        options,
        measured: &measured,
        service: &service_phase,
        rss_idle,
        rss_hwm: memory.map(|(_, hwm)| hwm),
        rss_peak_sampled,
        log_lines,
        load_before: &load_before,
        load_after: &load_after,
    };
    summary.print();
    if let Some(path) = &options.json {
        append_json_line(path, &summary.to_json(run_id))?;
    }
    let errors = service_phase.phase.recorder.error_count()
        + measured
            .iter()
            .map(|m| m.phase.recorder.error_count())
            .sum::<u64>();
    Ok(RoundResult {
        errors,
        flows_per_s: service_phase.phase.flows_per_sec(),
        ratios: summary
            .ratios()
            .into_iter()
            .map(|(baseline, _, ratio)| (baseline.label(), ratio))
            .collect(),
        p99_ms: service_phase.phase.p99_ms(),
    })
}

async fn run_baseline(
    options: &Options,
    run_id: &str,
    baseline: Baseline,
    toss: &TossServer,
    toss_url: &str,
    client: &reqwest::Client,
    databases: &mut Vec<BenchDatabase>,
) -> anyhow::Result<Measured> {
    let mut meter = None;
    let phase = match baseline {
        Baseline::Toss => {
            let flow = Arc::new(TossFlow {
                client: client.clone(),
                base: toss_url.to_owned(),
                authorization: toss.authorization().to_owned(),
                run_id: run_id.to_owned(),
                refund_share: options.refund_share,
            });
            flows::drive(
                baseline.label(),
                flow,
                options.concurrency,
                options.amount,
                options.warmup,
                options.rate,
                || meter = Some(CpuMeter::start(None)),
            )
            .await
        }
        Baseline::Database => {
            let db = BenchDatabase::create(options, run_id, baseline.key()).await?;
            let store = db::connect(&db.url, options.store_pool())
                .await
                .with_context(|| format!("connecting to {}", db.url))?;
            db.settle().await;
            let before = db.stats().await;
            let flow = Arc::new(db::DbFlow {
                store: store.clone(),
                run_id: run_id.to_owned(),
                refund_share: options.refund_share,
            });
            let phase = flows::drive(
                baseline.label(),
                flow,
                options.concurrency,
                options.amount,
                options.warmup,
                options.rate,
                || meter = Some(CpuMeter::start(None)),
            )
            .await;
            // CPU before closing: the backends' time is counted while they are alive.
            let cpu = meter.take().map(|m| m.stop()).unwrap_or_default();
            store.close().await;
            let stats = match before {
                Some(before) => db_stats_after(&db, before).await,
                None => None,
            };
            databases.push(db);
            return Ok(Measured {
                baseline: Some(baseline),
                phase,
                cpu,
                db: stats,
            });
        }
    };
    Ok(Measured {
        baseline: Some(baseline),
        phase,
        cpu: meter.map(|m| m.stop()).unwrap_or_default(),
        db: None,
    })
}

fn print_header(options: &Options, run_id: &str, load: &str) {
    let amount = match options.amount {
        _ if options.scenario == Scenario::RenewalDay => format!(
            "{} charges on {} instances",
            options.charges, options.instances
        ),
        Amount::Duration(d) => format!(
            "{} s (+{} s warm-up)",
            d.as_secs_f64(),
            options.warmup.as_secs_f64()
        ),
        Amount::Flows(n) => format!("{n} flows"),
    };
    println!(
        "loadtest run {run_id}: {} {:?}, concurrency {}, {amount}, toss delay {} ms, refund share {}, pool {}, service log filter {:?}, load average {load}",
        options.backend.name(),
        options.scenario,
        options.concurrency,
        options.toss_delay.as_millis(),
        options.refund_share,
        options.pool_label(),
        options.log_filter,
    );
    if let Some(rate) = options.rate {
        println!("paced: {rate} flows/s in all (latency counted from each flow's due time)");
    }
    for (key, value) in &options.service_env {
        println!("service environment: {key}={value}");
    }
}

fn print_phase(m: &Measured) {
    m.phase.print();
    let flows = m.phase.recorder.flows_ok.max(1) as f64;
    let per_flow = |seconds: f64| seconds * 1e6 / flows;
    let service = m
        .cpu
        .service
        .map(|s| format!("service {:.0} µs, ", per_flow(s)))
        .unwrap_or_default();
    println!(
        "    CPU per flow: {service}loadtest (load + fake Toss) {:.0} µs, postgres {:.0} µs; machine busy {:.0}%",
        per_flow(m.cpu.loadgen),
        per_flow(m.cpu.postgres),
        m.cpu.machine_busy * 100.0
    );
    if let Some(db) = m.db {
        let attempted = m.phase.attempted.max(1) as f64;
        let per = |n: i64| n as f64 / attempted;
        println!(
            "    PostgreSQL per flow ({} flows, warm-up included): {:.2} transactions committed, {:.2} rolled back, rows {:.2} inserted, {:.2} updated",
            m.phase.attempted,
            per(db.commits),
            per(db.rollbacks),
            per(db.inserted),
            per(db.updated)
        );
    }
}

struct Summary<'a> {
    options: &'a Options,
    measured: &'a [Measured],
    service: &'a Measured,
    rss_idle: Option<u64>,
    rss_hwm: Option<u64>,
    rss_peak_sampled: Option<u64>,
    log_lines: usize,
    load_before: &'a str,
    load_after: &'a str,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Summary<'_> {
    fn ratios(&self) -> Vec<(Baseline, f64, f64)> {
        let service = self.service.phase.flows_per_sec();
        self.measured
            .iter()
            .filter_map(|m| {
                let baseline = m.baseline?;
                let rate = m.phase.flows_per_sec();
                Some((baseline, rate, service / rate.max(1e-9)))
            })
            .collect()
    }

    fn print(&self) {
        let service = &self.service.phase;
        let flow = service.recorder.flow.summary();
        println!();
        println!(
            "== summary: {} {:?}, concurrency {}, toss delay {} ms, refund share {}, pool {}",
            self.options.backend.name(),
            self.options.scenario,
            self.options.concurrency,
            self.options.toss_delay.as_millis(),
            self.options.refund_share,
            self.options.pool_label()
        );
        println!(
            "  service: {:.1} flows/s ({:.1} requests/s) in {:.2} s; flow p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            service.flows_per_sec(),
            service.requests_per_sec(),
            service.elapsed.as_secs_f64(),
            stats::ms(flow.p50),
            stats::ms(flow.p90),
            stats::ms(flow.p99),
            stats::ms(flow.max)
        );
        for (baseline, rate, ratio) in self.ratios() {
            println!(
                "  {:<24} {:>9.1} flows/s; service = {:>5.1}% of it",
                baseline.label(),
                rate,
                ratio * 100.0
            );
        }
        match (self.rss_hwm, self.rss_peak_sampled, self.rss_idle) {
            (Some(hwm), sampled, idle) => println!(
                "  service memory: peak RSS (VmHWM) {:.1} MiB, highest sampled VmRSS {:.1} MiB, after start {:.1} MiB",
                mib(hwm),
                mib(sampled.unwrap_or(0)),
                mib(idle.unwrap_or(0))
            ),
            _ => println!("  service memory: not measured (no pid)"),
        }
        let errors = service.recorder.error_count()
            + self
                .measured
                .iter()
                .map(|m| m.phase.recorder.error_count())
                .sum::<u64>();
        println!(
            "  errors: {errors}; service log lines (filter {:?}): {}; load average {} -> {}",
            self.options.log_filter, self.log_lines, self.load_before, self.load_after
        );
    }

    fn to_json(&self, run_id: &str) -> Value {
        let phase = |m: &Measured| {
            let mut value = m.phase.to_json();
            if let Some(db) = m.db {
                value["postgres_stats"] = json!({
                    "flows_attempted": m.phase.attempted,
                    "commits": db.commits,
                    "rollbacks": db.rollbacks,
                    "inserted": db.inserted,
                    "updated": db.updated,
                    "fetched": db.fetched,
                });
            }
            value["cpu_s"] = json!({
                "service": m.cpu.service,
                "loadtest": m.cpu.loadgen,
                "postgres": m.cpu.postgres,
                "machine_busy": m.cpu.machine_busy,
            });
            value
        };
        let ratios: serde_json::Map<String, Value> = self
            .ratios()
            .into_iter()
            .map(|(b, _, ratio)| (b.key().to_owned(), json!(ratio)))
            .collect();
        let amount = match self.options.amount {
            Amount::Duration(d) => json!({"duration_s": d.as_secs_f64()}),
            Amount::Flows(n) => json!({"flows": n}),
        };
        json!({
            "run_id": run_id,
            "at": chrono::Utc::now().to_rfc3339(),
            "database": self.options.backend.name(),
            "scenario": format!("{:?}", self.options.scenario),
            "concurrency": self.options.concurrency,
            "amount": amount,
            "warmup_s": self.options.warmup.as_secs_f64(),
            "rate": self.options.rate,
            "toss_delay_ms": self.options.toss_delay.as_millis() as u64,
            "refund_share": self.options.refund_share,
            "pool": self.options.pool,
            "log_filter": self.options.log_filter,
            "service_bin": self.options.service_bin.as_ref().map(|p| p.display().to_string()),
            "service_env": self.options.service_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "load_before": self.load_before,
            "load_after": self.load_after,
            "baselines": self.measured.iter().map(phase).collect::<Vec<_>>(),
            "service": phase(self.service),
            "ratios": ratios,
            "rss_kib": {"hwm": self.rss_hwm, "sampled_peak": self.rss_peak_sampled, "after_start": self.rss_idle},
            "service_log_lines": self.log_lines,
        })
    }
}

/// `--json FILE`: one result appended as one line.
fn append_json_line(path: &std::path::Path, value: &Value) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{value}")?;
    Ok(())
}
