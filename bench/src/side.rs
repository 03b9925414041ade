//! The side-by-side scenario: confirms of pre-created orders through payment-service and,
//! given `--peer-url`, through another confirm endpoint (Toss's sample), both calling the same
//! fake Toss, in alternating rounds at the same concurrency; then PostgreSQL's own ceiling
//! (`pgbench -N` with as many clients), and one table of ratios. `--concurrency-sweep` repeats
//! the whole run at each number of connections and ends with one row per level;
//! `--prefill-payments` puts completed payments in the service's database first (table size).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::args::{Amount, Backend, Options};
use crate::flows::{self, AMOUNT_KRW, CreateOnly, Flow, ServiceFlow};
use crate::service::{self, BenchDatabase, DbStats, RssSampler, ServiceProcess};
use crate::stats::{self, Phase, Recorder, Samples};
use crate::toss_server::TossServer;

/// PostgreSQL 15 backends report their counters at most once a second while busy, and within
/// 10 s once idle: reading `pg_stat_database` this long after a phase sees all of it.
const STATS_FLUSH: Duration = Duration::from_secs(11);

/// The run, or one run per level of `--concurrency-sweep` and their summary; returns whether
/// every confirm succeeded.
pub async fn run(options: &Options) -> anyhow::Result<bool> {
    // One fake Toss for every level of a sweep: a peer is pointed at its address once, and
    // `--toss-bind`'s port could not be bound again while the previous one still listens.
    // Only keys authenticated first are confirmed, for the service and the peer alike.
    let toss = TossServer::start_with(&options.toss_bind, options.toss_delay, false)
        .await
        .context("starting the fake Toss")?;
    println!("fake Toss on {}", toss.1);
    if options.concurrency_sweep.is_empty() {
        return Ok(run_once(options, &toss).await?.errors() == 0);
    }
    let mut tables = Vec::new();
    for &concurrency in &options.concurrency_sweep {
        let level = Options {
            concurrency,
            ..options.clone()
        };
        tables.push(run_once(&level, &toss).await?);
    }
    println!();
    print!("{}", sweep_summary(&tables, options.prefill_payments));
    Ok(tables.iter().all(|table| table.errors() == 0))
}

/// One side-by-side run on databases of its own.
async fn run_once(options: &Options, toss: &(TossServer, String)) -> anyhow::Result<Table> {
    toss.0.forget_all();
    let run_id = format!("{:08x}", rand::random::<u32>());
    let work_dir = std::env::temp_dir().join(format!("ps_bench_{run_id}"));
    std::fs::create_dir_all(&work_dir)?;
    let mut databases = Vec::new();
    let result = measure(options, toss, &run_id, &work_dir, &mut databases).await;
    for db in databases {
        if options.keep_db {
            println!("kept database {}", db.url);
        } else {
            db.drop_now().await;
        }
    }
    if !options.keep_db {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    result
}

/// One row per run of a sweep: connections, each side's median rate and latencies, the
/// ratios, the transactions per confirm and the ceiling.
pub fn sweep_summary(tables: &[Table], prefilled: u64) -> String {
    let mut out = String::new();
    let na = || "n/a".to_owned();
    let _ = writeln!(
        out,
        "== connections sweep ({prefilled} payments in the table before each run)"
    );
    let _ = writeln!(
        out,
        "  {:>5} {:>11} {:>7} {:>7} {:>11} {:>7} {:>7} {:>8} {:>8} {:>9} {:>9}",
        "conns",
        "service/s",
        "p50 ms",
        "p99 ms",
        "peer/s",
        "p50 ms",
        "p99 ms",
        "svc/peer",
        "tx/conf",
        "ceiling/s",
        "of ceil."
    );
    for table in tables {
        let service = table.service.latencies.summary();
        let peer = table
            .peer
            .as_ref()
            .map(|peer| (peer, peer.latencies.summary()));
        let _ = writeln!(
            out,
            "  {:>5} {:>11.1} {:>7.2} {:>7.2} {:>11} {:>7} {:>7} {:>8} {:>8} {:>9} {:>9}",
            table.concurrency,
            table.service.rate(),
            stats::ms(service.p50),
            stats::ms(service.p99),
            peer.map_or_else(na, |(side, _)| format!("{:.1}", side.rate())),
            peer.map_or_else(na, |(_, s)| format!("{:.2}", stats::ms(s.p50))),
            peer.map_or_else(na, |(_, s)| format!("{:.2}", stats::ms(s.p99))),
            table.ratio().map_or_else(na, |r| format!("{r:.2}x")),
            table
                .transactions_per_confirm
                .map_or_else(na, |t| format!("{t:.2}")),
            table.ceiling().map_or_else(na, |c| format!("{c:.0}")),
            table
                .share_of_ceiling()
                .map_or_else(na, |s| format!("{:.1} %", s * 100.0)),
        );
    }
    out
}

async fn measure(
    options: &Options,
    (toss, toss_url): &(TossServer, String),
    run_id: &str,
    work_dir: &Path,
    databases: &mut Vec<BenchDatabase>,
) -> anyhow::Result<Table> {
    let per_round = match options.amount {
        Amount::Flows(n) => n,
        Amount::Duration(_) => 2000,
    };
    let rounds = options.rounds as u64;
    // Unmeasured confirms on each side first, so that no round pays for opening connections.
    let warm = options.concurrency as u64 * 4;
    let load_before = service::load_average();
    println!(
        "loadtest run {run_id}: side by side on {}, concurrency {}, {per_round} confirms per side \
         and round, {rounds} rounds, toss delay {} ms, pool {}, peer {}, load average {load_before}",
        options.backend.name(),
        options.concurrency,
        options.toss_delay.as_millis(),
        options.pool_label(),
        options.peer_url.as_deref().unwrap_or("none"),
    );

    let api_key = options
        .api_key
        .clone()
        .unwrap_or_else(|| format!("bench_{run_id}"));
    let db = BenchDatabase::create(options, run_id, "svc").await?;
    let db_url = db.url.clone();
    databases.push(db);
    let db = databases.last().expect("just pushed");
    let service = ServiceProcess::start(options, &db_url, toss_url, &api_key, work_dir).await?;
    println!(
        "service pid {} on {} (log: {})",
        service.pid,
        service.base_url,
        service.log.display()
    );
    if options.prefill_payments > 0 {
        let started = Instant::now();
        db.prefill_payments(options.prefill_payments)
            .await
            .context("prefilling payments")?;
        println!(
            "prefilled {} completed payments in {:.1} s",
            options.prefill_payments,
            started.elapsed().as_secs_f64()
        );
    }
    let client = flows::http_client();
    let flow = Arc::new(ServiceFlow {
        client: client.clone(),
        base: service.base_url.clone(),
        bearer: format!("Bearer {api_key}"),
        run_id: run_id.to_owned(),
        refund_share: 0.0,
    });

    // Every order of every round, created through the API (not timed) and authenticated at
    // the fake Toss, as the buyer's payment window would.
    let creator = Arc::new(CreateOnly {
        flow: flow.clone(),
        created: Mutex::new(Vec::new()),
    });
    let created = flows::drive(
        "create (not timed)",
        creator.clone(),
        options.concurrency,
        Amount::Flows(per_round * rounds + warm),
        Duration::ZERO,
        None,
        || {},
    )
    .await;
    created.print();
    if created.recorder.error_count() > 0 {
        bail!("creating the orders failed; see above");
    }
    let mut service_orders = std::mem::take(&mut *creator.created.lock().expect("not poisoned"));
    for order_id in &service_orders {
        toss.authenticate(&format!("pk_{order_id}"), order_id, AMOUNT_KRW);
    }
    let peer = options.peer_url.as_ref().map(|url| {
        let orders: Vec<String> = (0..per_round * rounds + warm)
            .map(|i| format!("p{run_id}-{i}"))
            .collect();
        for order_id in &orders {
            toss.authenticate(&format!("pk_{order_id}"), order_id, AMOUNT_KRW);
        }
        (url.clone(), orders)
    });
    let mut peer_orders = peer.as_ref().map(|(_, orders)| orders.clone());

    let warm_service = confirm_round(
        "warm-up",
        Arc::new(ServiceConfirm {
            flow: flow.clone(),
            orders: Mutex::new(take_batch(&mut service_orders, warm)),
        }),
        options.concurrency,
        warm,
    )
    .await;
    print_round(0, &warm_service);
    if let (Some((url, _)), Some(orders)) = (&peer, peer_orders.as_mut()) {
        let warm_peer = confirm_round(
            "warm-up",
            Arc::new(PeerConfirm {
                client: client.clone(),
                url: url.clone(),
                orders: Mutex::new(take_batch(orders, warm)),
            }),
            options.concurrency,
            warm,
        )
        .await;
        print_round(0, &warm_peer);
    }
    // What the service commits while nobody calls it (its relay and schedulers), to take off.
    db.settle().await;
    tokio::time::sleep(STATS_FLUSH).await;
    let idle_from = (Instant::now(), db.stats().await);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_to = (Instant::now(), db.stats().await);
    let background_per_s = match (idle_from.1, idle_to.1) {
        (Some(a), Some(b)) => {
            Some(b.since(a).commits as f64 / (idle_to.0 - idle_from.0).as_secs_f64())
        }
        _ => None,
    };

    let sampler = RssSampler::start(service.pid);
    let mut service_side = SideFigures::default();
    let mut peer_side = SideFigures::default();
    let mut service_attempted = 0;
    for round in 1..=options.rounds {
        // ABBA: the service first in odd rounds, the peer first in even ones.
        let service_first = round % 2 == 1;
        for service_turn in [service_first, !service_first] {
            db.settle().await;
            if service_turn {
                let batch = take_batch(&mut service_orders, per_round);
                let phase = confirm_round(
                    "service",
                    Arc::new(ServiceConfirm {
                        flow: flow.clone(),
                        orders: Mutex::new(batch),
                    }),
                    options.concurrency,
                    per_round,
                )
                .await;
                service_attempted += phase.attempted;
                print_round(round, &phase);
                service_side.add(&phase);
            } else if let (Some((url, _)), Some(orders)) = (&peer, peer_orders.as_mut()) {
                let batch = take_batch(orders, per_round);
                let phase = confirm_round(
                    "peer",
                    Arc::new(PeerConfirm {
                        client: client.clone(),
                        url: url.clone(),
                        orders: Mutex::new(batch),
                    }),
                    options.concurrency,
                    per_round,
                )
                .await;
                print_round(round, &phase);
                peer_side.add(&phase);
            }
        }
    }
    let rss_peak_kib = sampler.peak_kib();
    drop(sampler);
    let rss_hwm_kib = service::memory_kib(service.pid).map(|(_, hwm)| hwm);

    tokio::time::sleep(STATS_FLUSH).await;
    let after = (Instant::now(), db.stats().await);
    let transactions_per_confirm = match (idle_to.1, after.1, background_per_s) {
        (Some(before), Some(after_stats), Some(background)) => Some(transactions_per(
            after_stats.since(before),
            background * (after.0 - idle_to.0).as_secs_f64(),
            service_attempted,
        )),
        _ => None,
    };
    service.stop().await;

    let ceiling = if options.backend == Backend::Postgres && !options.ceiling_secs.is_zero() {
        match pgbench_ceiling(options, run_id).await {
            Ok(tps) => Some(tps),
            Err(error) => {
                println!("no database ceiling: {error:#}");
                None
            }
        }
    } else {
        None
    };

    let table = Table {
        concurrency: options.concurrency,
        service: service_side,
        peer: peer.is_some().then_some(peer_side),
        transactions_per_confirm,
        background_per_s,
        pgbench_tps: ceiling,
    };
    let load_after = service::load_average();
    println!();
    print!("{}", table.render());
    println!(
        "  service memory: peak RSS (VmHWM) {}, highest sampled {:.1} MiB",
        rss_hwm_kib.map_or_else(
            || "?".to_owned(),
            |k| format!("{:.1} MiB", k as f64 / 1024.0)
        ),
        rss_peak_kib as f64 / 1024.0
    );
    println!("  load average {load_before} -> {load_after}");
    if let Some(path) = &options.json {
        let mut value = table.to_json();
        value["run_id"] = json!(run_id);
        value["at"] = json!(chrono::Utc::now().to_rfc3339());
        value["rss_kib"] = json!({"hwm": rss_hwm_kib, "sampled_peak": rss_peak_kib});
        value["load_before"] = json!(load_before);
        value["load_after"] = json!(load_after);
        value["prefilled_payments"] = json!(options.prefill_payments);
        crate::append_json_line(path, &value)?;
    }
    Ok(table)
}

fn take_batch(orders: &mut Vec<String>, n: u64) -> Vec<String> {
    let keep = orders.len().saturating_sub(n as usize);
    orders.split_off(keep)
}

fn print_round(round: usize, phase: &Phase) {
    let summary = phase.recorder.flow.summary();
    println!(
        "round {round} {:<8} {:>8.1} confirms/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
        phase.name,
        phase.flows_per_sec(),
        stats::ms(summary.p50),
        stats::ms(summary.p99),
        phase.recorder.error_count()
    );
    for (what, count) in &phase.recorder.errors {
        println!("    error {what}: {count}");
    }
}

/// `count` confirms on `concurrency` workers, each taking the next order.
async fn confirm_round<F: Flow>(name: &str, flow: Arc<F>, concurrency: usize, count: u64) -> Phase {
    flows::drive(
        name,
        flow,
        concurrency,
        Amount::Flows(count),
        Duration::ZERO,
        None,
        || {},
    )
    .await
}

/// A confirm through the service of one pre-created order.
struct ServiceConfirm {
    flow: Arc<ServiceFlow>,
    orders: Mutex<Vec<String>>,
}

impl Flow for ServiceConfirm {
    async fn run(&self, _worker: usize, _seq: u64, recorder: &mut Recorder) -> bool {
        let Some(order_id) = self.orders.lock().expect("not poisoned").pop() else {
            recorder.error("no order left".to_owned());
            return false;
        };
        self.flow.confirm(&order_id, recorder).await
    }
}

/// A confirm through the peer: `POST {paymentKey, orderId, amount}`, answered with Toss's
/// payment (status `DONE`).
struct PeerConfirm {
    client: reqwest::Client,
    url: String,
    orders: Mutex<Vec<String>>,
}

impl Flow for PeerConfirm {
    async fn run(&self, _worker: usize, _seq: u64, recorder: &mut Recorder) -> bool {
        let Some(order_id) = self.orders.lock().expect("not poisoned").pop() else {
            recorder.error("no order left".to_owned());
            return false;
        };
        let t = Instant::now();
        let sent = self
            .client
            .post(&self.url)
            .json(&json!({
                "paymentKey": format!("pk_{order_id}"),
                "orderId": order_id,
                "amount": AMOUNT_KRW,
            }))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                recorder.error(format!("peer confirm transport {error}"));
                return false;
            }
        };
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(_) => {
                recorder.error(format!("peer confirm {} unparsable body", status.as_u16()));
                return false;
            }
        };
        if status != StatusCode::OK || body["status"] != "DONE" {
            recorder.error(format!(
                "peer confirm {} {}",
                status.as_u16(),
                body["code"].as_str().unwrap_or_default()
            ));
            return false;
        }
        recorder.step("peer confirm", t.elapsed());
        true
    }
}

/// One side's figures over all its rounds.
#[derive(Debug, Default, Clone)]
pub struct SideFigures {
    /// Confirms per second, round by round.
    pub rates: Vec<f64>,
    pub latencies: Samples,
    pub ok: u64,
    pub failed: u64,
}

impl SideFigures {
    fn add(&mut self, phase: &Phase) {
        self.rates.push(phase.flows_per_sec());
        self.latencies.merge(phase.recorder.flow.clone());
        self.ok += phase.recorder.flows_ok;
        self.failed += phase.recorder.flows_failed;
    }

    /// The median round's rate.
    pub fn rate(&self) -> f64 {
        crate::median(self.rates.clone())
    }
}

/// Transactions the service committed per confirm: the counted commits less what it commits
/// when idle over the same time.
pub fn transactions_per(stats: DbStats, background: f64, confirms: u64) -> f64 {
    (stats.commits as f64 - background).max(0.0) / confirms.max(1) as f64
}

/// The side-by-side table.
#[derive(Debug, Clone)]
pub struct Table {
    pub concurrency: usize,
    pub service: SideFigures,
    pub peer: Option<SideFigures>,
    /// From `pg_stat_database.xact_commit` (pg_stat_statements is not assumed).
    pub transactions_per_confirm: Option<f64>,
    pub background_per_s: Option<f64>,
    pub pgbench_tps: Option<f64>,
}

impl Table {
    /// Service ÷ peer, each at its median round.
    pub fn ratio(&self) -> Option<f64> {
        let peer = self.peer.as_ref()?.rate();
        (peer > 0.0).then(|| self.service.rate() / peer)
    }

    /// Confirms per second PostgreSQL allows: pgbench's commits per second ÷ a confirm's.
    pub fn ceiling(&self) -> Option<f64> {
        let per_confirm = self.transactions_per_confirm.filter(|t| *t > 0.0)?;
        Some(self.pgbench_tps? / per_confirm)
    }

    /// The service's rate as a share of the ceiling.
    pub fn share_of_ceiling(&self) -> Option<f64> {
        Some(self.service.rate() / self.ceiling().filter(|c| *c > 0.0)?)
    }

    pub fn errors(&self) -> u64 {
        self.service.failed + self.peer.as_ref().map_or(0, |p| p.failed)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let rounds = |side: &SideFigures| {
            side.rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let row = |out: &mut String, name: &str, side: &SideFigures| {
            let summary = side.latencies.summary();
            let _ = writeln!(
                out,
                "  {name:<8} {:>10.1} {:>9.2} {:>9.2} {:>7} {:>7}   ({})",
                side.rate(),
                stats::ms(summary.p50),
                stats::ms(summary.p99),
                side.ok,
                side.failed,
                rounds(side)
            );
        };
        let _ = writeln!(
            out,
            "== side by side, {} connections ({} rounds; confirms/s is the median round's)",
            self.concurrency,
            self.service.rates.len()
        );
        let _ = writeln!(
            out,
            "  {:<8} {:>10} {:>9} {:>9} {:>7} {:>7}   (rounds)",
            "", "confirms/s", "p50 ms", "p99 ms", "ok", "failed"
        );
        row(&mut out, "service", &self.service);
        if let Some(peer) = &self.peer {
            row(&mut out, "peer", peer);
        }
        let na = || "n/a".to_owned();
        let _ = writeln!(
            out,
            "  service / peer: {}",
            self.ratio().map_or_else(na, |r| format!("{r:.2}x"))
        );
        let _ = writeln!(
            out,
            "  transactions per confirm (pg_stat_database xact_commit; pg_stat_statements not used): {}{}",
            self.transactions_per_confirm
                .map_or_else(na, |t| format!("{t:.2}")),
            self.background_per_s
                .map(|b| format!(" (idle background {b:.1}/s taken off)"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "  database ceiling: pgbench -N, {} clients: {} tps / {} = {} confirms/s; service at {} of it",
            self.concurrency,
            self.pgbench_tps.map_or_else(na, |t| format!("{t:.0}")),
            self.transactions_per_confirm
                .map_or_else(na, |t| format!("{t:.2}")),
            self.ceiling().map_or_else(na, |c| format!("{c:.0}")),
            self.share_of_ceiling()
                .map_or_else(na, |s| format!("{:.1} %", s * 100.0))
        );
        out
    }

    pub fn to_json(&self) -> Value {
        let side = |s: &SideFigures| {
            let summary = s.latencies.summary();
            json!({
                "confirms_per_s": s.rate(),
                "rounds": s.rates,
                "p50_ms": stats::ms(summary.p50),
                "p99_ms": stats::ms(summary.p99),
                "ok": s.ok,
                "failed": s.failed,
            })
        };
        json!({
            "scenario": "SideBySide",
            "concurrency": self.concurrency,
            "service": side(&self.service),
            "peer": self.peer.as_ref().map(side),
            "ratio": self.ratio(),
            "transactions_per_confirm": self.transactions_per_confirm,
            "background_commits_per_s": self.background_per_s,
            "pgbench_tps": self.pgbench_tps,
            "ceiling_confirms_per_s": self.ceiling(),
            "share_of_ceiling": self.share_of_ceiling(),
        })
    }
}

/// `pgbench`: on the PATH, else PostgreSQL's Debian location.
fn pgbench_path() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbench"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin/pgbench")))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

/// `pgbench -N` with the run's clients on a scratch database; its tps.
async fn pgbench_ceiling(options: &Options, run_id: &str) -> anyhow::Result<f64> {
    let Some(pgbench) = pgbench_path() else {
        bail!("pgbench is not installed");
    };
    let scratch = BenchDatabase::create(options, run_id, "pgbench").await?;
    let result = async {
        let init = tokio::process::Command::new(&pgbench)
            .args(["-i", "-q", "-s", "1", &scratch.url])
            .output()
            .await?;
        if !init.status.success() {
            bail!(
                "pgbench -i: {}",
                String::from_utf8_lossy(&init.stderr).trim()
            );
        }
        scratch.settle().await;
        let clients = options.concurrency.to_string();
        let threads = options.concurrency.min(2).to_string();
        let secs = options.ceiling_secs.as_secs().max(1).to_string();
        let load = service::load_average();
        let run = tokio::process::Command::new(&pgbench)
            .args([
                "-n", "-N", "-c", &clients, "-j", &threads, "-T", &secs, &scratch.url,
            ])
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&run.stdout);
        if !run.status.success() {
            bail!("pgbench -N: {}", String::from_utf8_lossy(&run.stderr).trim());
        }
        let tps = parse_tps(&stdout).context("no tps in pgbench's output")?;
        println!(
            "pgbench -N -c {clients} -j {threads} -T {secs}: {tps:.0} tps (load average {load} -> {})",
            service::load_average()
        );
        Ok(tps)
    }
    .await;
    scratch.drop_now().await;
    result
}

/// The `tps = N (without initial connection time)` line of pgbench's report.
pub fn parse_tps(report: &str) -> Option<f64> {
    report
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("tps = "))
        .find(|line| !line.contains("including"))?
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(rates: &[f64], latencies_ms: &[u64], failed: u64) -> SideFigures {
        let mut latencies = Samples::default();
        for ms in latencies_ms {
            latencies.push(Duration::from_millis(*ms));
        }
        SideFigures {
            rates: rates.to_vec(),
            latencies,
            ok: latencies_ms.len() as u64,
            failed,
        }
    }

    fn table() -> Table {
        Table {
            concurrency: 16,
            // Median round 1500 (of 1400, 1500, 1600), against the peer's 2500.
            service: side(&[1600.0, 1400.0, 1500.0], &[5, 6, 7, 8, 20], 0),
            peer: Some(side(&[2500.0, 2400.0, 2600.0], &[3, 3, 4, 4, 9], 1)),
            transactions_per_confirm: Some(2.0),
            background_per_s: Some(0.5),
            pgbench_tps: Some(8000.0),
        }
    }

    #[test]
    fn the_table_compares_median_rounds_and_the_ceiling() {
        let table = table();
        assert_eq!(table.ratio(), Some(0.6));
        assert_eq!(table.ceiling(), Some(4000.0));
        assert_eq!(table.share_of_ceiling(), Some(0.375));
        assert_eq!(table.errors(), 1);
        let text = table.render();
        assert!(text.contains("1500.0"), "{text}");
        assert!(text.contains("service / peer: 0.60x"), "{text}");
        assert!(text.contains("8000 tps / 2.00 = 4000 confirms/s"), "{text}");
        assert!(text.contains("service at 37.5 % of it"), "{text}");
        // p50 and p99 of the service's latencies (nearest rank).
        assert!(text.contains("7.00     20.00"), "{text}");
        let json = table.to_json();
        assert_eq!(json["ratio"], 0.6);
        assert_eq!(json["ceiling_confirms_per_s"], 4000.0);
        assert_eq!(json["peer"]["failed"], 1);
    }

    #[test]
    fn without_a_peer_or_a_ceiling_the_ratios_are_not_made_up() {
        let mut table = table();
        table.peer = None;
        table.pgbench_tps = None;
        assert_eq!(table.ratio(), None);
        assert_eq!(table.ceiling(), None);
        assert_eq!(table.share_of_ceiling(), None);
        let text = table.render();
        assert!(text.contains("service / peer: n/a"), "{text}");
        assert!(text.contains("service at n/a of it"), "{text}");
        assert!(!text.contains("  peer "), "{text}");
        // No transactions counted (SQLite): no ceiling either, never a division by zero.
        table.pgbench_tps = Some(8000.0);
        table.transactions_per_confirm = Some(0.0);
        assert_eq!(table.ceiling(), None);
    }

    #[test]
    fn transactions_per_confirm_take_off_the_idle_background() {
        let stats = DbStats {
            commits: 4010,
            ..DbStats::default()
        };
        assert_eq!(transactions_per(stats, 10.0, 2000), 2.0);
        assert_eq!(transactions_per(stats, 0.0, 0), 4010.0);
    }

    #[test]
    fn reads_pgbench_tps() {
        let report = "transaction type: <builtin: simple update>\n\
                      number of clients: 16\n\
                      latency average = 1.892 ms\n\
                      initial connection time = 12.345 ms\n\
                      tps = 8457.123456 (without initial connection time)\n";
        assert_eq!(parse_tps(report), Some(8457.123456));
        let older = "tps = 900.5 (including connections establishing)\n\
                     tps = 910.25 (excluding connections establishing)\n";
        assert_eq!(parse_tps(older), Some(910.25));
        assert_eq!(parse_tps("pgbench: error"), None);
    }
}
