//! `--scenario renewal-day`: `--charges` scheduled charges (subscription renewals) all due in one
//! minute, worked through by `--instances` service instances on one PostgreSQL database.
//!
//! Starts the instances (each with its scheduler on, all with the same billing-key encryption
//! key), then prepares the day through the API, on `--concurrency` workers spread over the
//! instances: `--customers` customers, each with a billing key issued from a card registered at
//! the fake Toss (`POST /billing/customers`, `POST /billing-keys`), one subscription payment per
//! charge (`POST /payments`), and its schedule (`POST /payments/{id}/schedule`), due at the next
//! whole minute after the scheduling can be done, spread evenly over `--due-spread`. Nothing of
//! the preparation is measured as the result. From the due minute it measures: how long until
//! every schedule ended (the last schedule's `updated_at`), charges per second, how late each
//! charge started (its arrival at the fake Toss, and the payment's claim in the database, each
//! against its own due time), each instance's memory (sampled, and `VmHWM`) and CPU, and proof
//! that each order was approved exactly once (the fake Toss's approvals per order id, the
//! charges it received, and the database's rows and events).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::AUTHORIZATION;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};

use crate::args::{Backend, Options};
use crate::service::{self, BenchDatabase, CpuMeter, RssSampler, ServiceProcess};
use crate::toss_server::TossServer;

pub struct Renewed {
    pub charges: u64,
    pub seconds: f64,
    pub errors: u64,
}

/// The amount of every renewal, in KRW.
const AMOUNT_KRW: i64 = 29_900;

/// The contract: each due charge is started within this long of its time.
const START_WITHIN_SECS: f64 = 60.0;

/// The first whole minute after `t`.
pub fn next_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let next = (t.timestamp().div_euclid(60) + 1) * 60;
    DateTime::from_timestamp(next, 0).expect("a minute in range")
}

/// When charge `index` of `count` is due: spread evenly over `[minute, minute + spread)`.
pub fn due_at(minute: DateTime<Utc>, index: u64, count: u64, spread: Duration) -> DateTime<Utc> {
    let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    let offset = u128::from(spread_ms) * u128::from(index) / u128::from(count.max(1));
    minute + chrono::Duration::milliseconds(i64::try_from(offset).unwrap_or(i64::MAX))
}

/// How late the charges started, in seconds past their due time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lateness {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Started more than [`START_WITHIN_SECS`] after their time.
    pub over_limit: usize,
}

impl Lateness {
    /// Nearest-rank percentiles of `seconds` (a charge started early counts as 0 late).
    pub fn of(mut seconds: Vec<f64>) -> Self {
        for s in &mut seconds {
            *s = s.max(0.0);
        }
        seconds.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            if seconds.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * seconds.len() as f64).ceil() as usize;
            seconds[rank.clamp(1, seconds.len()) - 1]
        };
        Self {
            count: seconds.len(),
            p50: rank(50.0),
            p99: rank(99.0),
            max: seconds.last().copied().unwrap_or(0.0),
            over_limit: seconds.iter().filter(|&&s| s > START_WITHIN_SECS).count(),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.1} s, p99 {:.1} s, max {:.1} s; over {START_WITHIN_SECS:.0} s: {} of {} ({:.1} %)",
            self.p50,
            self.p99,
            self.max,
            self.over_limit,
            self.count,
            100.0 * self.over_limit as f64 / self.count.max(1) as f64
        )
    }
}

/// How many orders were approved at Toss how many times: `approved[n]` orders approved `n`
/// times.
pub fn approvals_histogram(counts: impl IntoIterator<Item = usize>) -> BTreeMap<usize, u64> {
    let mut histogram = BTreeMap::new();
    for n in counts {
        *histogram.entry(n).or_insert(0) += 1;
    }
    histogram
}

fn order_id(run_id: &str, index: u64) -> String {
    format!("rn_{run_id}_{index:07}")
}

/// Runs `job(0..count)` on `workers` tasks; the results in index order. The first error stops it.
async fn in_parallel<T, F, Fut>(workers: usize, count: u64, job: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let job = Arc::new(job);
    let tickets = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (job, tickets) = (job.clone(), tickets.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let index = tickets.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                match job(index).await {
                    Ok(value) => done.push((index, value)),
                    Err(error) => {
                        tickets.store(count, Ordering::Relaxed);
                        return Err(error.context(format!("item {index}")));
                    }
                }
            }
            anyhow::Ok(done)
        }));
    }
    let mut all = Vec::with_capacity(count as usize);
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_by_key(|(index, _)| *index);
    Ok(all.into_iter().map(|(_, value)| value).collect())
}

/// The API as the preparation calls it: instance `index % n` answers request `index`.
struct Api {
    client: reqwest::Client,
    bases: Vec<String>,
    bearer: String,
}

impl Api {
    async fn post(
        &self,
        index: u64,
        path: &str,
        body: Value,
        expect: &[u16],
    ) -> anyhow::Result<Value> {
        let base = &self.bases[(index % self.bases.len() as u64) as usize];
        let response = self
            .client
            .post(format!("{base}{path}"))
            .header(AUTHORIZATION, &self.bearer)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if !expect.contains(&status) {
            bail!("POST {path} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {path}: not JSON"))
    }
}

fn text(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {field} in {value}"))
}

async fn query_i64(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await?
        .context("no row")?;
    Ok(row.try_get::<Option<i64>>("", "n")?.unwrap_or(0))
}

async fn query_f64(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Option<f64>> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await?
        .context("no row")?;
    Ok(row.try_get::<Option<f64>>("", "x")?)
}

/// Schedules by status.
async fn schedule_counts(db: &DatabaseConnection) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT status, count(*)::bigint AS n FROM payment_schedules GROUP BY status",
        ))
        .await?;
    let mut counts = BTreeMap::new();
    for row in rows {
        counts.insert(
            row.try_get::<String>("", "status")?,
            row.try_get::<i64>("", "n")?,
        );
    }
    Ok(counts)
}

fn ended(counts: &BTreeMap<String, i64>) -> i64 {
    counts
        .iter()
        .filter(|(status, _)| !matches!(status.as_str(), "SCHEDULED" | "CHARGING"))
        .map(|(_, n)| n)
        .sum()
}

/// A counter of the instance's `/metrics` (summed over its labels), if it has it.
async fn metric(client: &reqwest::Client, base: &str, bearer: &str, name: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .header(AUTHORIZATION, bearer)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".to_owned(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

pub async fn run(
    options: &Options,
    run_id: &str,
    work_dir: &std::path::Path,
    databases: &mut Vec<BenchDatabase>,
    toss: &TossServer,
    toss_url: &str,
) -> anyhow::Result<Renewed> {
    if options.backend != Backend::Postgres {
        bail!(
            "the renewal day runs on PostgreSQL (--database postgres): several instances share one database"
        );
    }
    let count = options.charges;
    let customers = options.customers.min(count);
    let db = BenchDatabase::create(options, run_id, "svc").await?;
    let url = db.url.clone();
    databases.push(db);

    // One billing-key encryption key for all: a key sealed by one instance is charged by any.
    let key: [u8; 32] = rand::random();
    let env = vec![(
        "BILLING_KEY_ENCRYPTION_KEY".to_owned(),
        base64::engine::general_purpose::STANDARD.encode(key),
    )];
    let api_key = format!("bench_{run_id}");
    let mut instances = Vec::new();
    // One after the other: the first migrates the fresh database.
    for i in 0..options.instances {
        let instance = ServiceProcess::start_instance(
            options,
            &url,
            toss_url,
            &api_key,
            work_dir,
            &format!("service-{}", i + 1),
            &env,
        )
        .await?;
        println!(
            "instance {} pid {} on {} (log: {})",
            i + 1,
            instance.pid,
            instance.base_url,
            instance.log.display()
        );
        instances.push(instance);
    }
    let rss_idle: Vec<Option<u64>> = instances
        .iter()
        .map(|s| service::memory_kib(s.pid).map(|(rss, _)| rss))
        .collect();
    let api = Arc::new(Api {
        client: crate::flows::http_client(),
        bases: instances.iter().map(|s| s.base_url.clone()).collect(),
        bearer: format!("Bearer {api_key}"),
    });
    let workers = options.concurrency;

    // The preparation, through the API.
    let started = Instant::now();
    let keys = {
        let (api, toss, run_id) = (api.clone(), toss.clone(), run_id.to_owned());
        in_parallel(workers, customers, move |c| {
            let (api, toss, run_id) = (api.clone(), toss.clone(), run_id.clone());
            async move {
                let user_id = format!("u{run_id}-{c}");
                let customer = api
                    .post(
                        c,
                        "/billing/customers",
                        json!({"user_id": user_id}),
                        &[200, 201],
                    )
                    .await?;
                let customer_key = text(&customer, "customer_key")?;
                let auth_key = toss.register_card(&customer_key);
                let key = api
                    .post(
                        c,
                        "/billing-keys",
                        json!({"customer_key": customer_key, "auth_key": auth_key}),
                        &[201],
                    )
                    .await?;
                anyhow::Ok((user_id, text(&key, "billing_key_id")?))
            }
        })
        .await?
    };
    let keys_secs = started.elapsed().as_secs_f64();
    println!("{customers} customers with a billing key issued in {keys_secs:.1} s");

    let started = Instant::now();
    let keys = Arc::new(keys);
    let payments = {
        let (api, keys, run_id) = (api.clone(), keys.clone(), run_id.to_owned());
        in_parallel(workers, count, move |i| {
            let (api, keys, run_id) = (api.clone(), keys.clone(), run_id.clone());
            async move {
                let (user_id, _) = &keys[(i % keys.len() as u64) as usize];
                let payment = api
                    .post(
                        i,
                        "/payments",
                        json!({"user_id": user_id, "order_id": order_id(&run_id, i),
                               "order_name": "Vitamin box, monthly", "amount_krw": AMOUNT_KRW,
                               "payment_method": "card", "payment_type": "SUBSCRIPTION",
                               "subscription_id": format!("sub{run_id}-{i}")}),
                        &[201],
                    )
                    .await?;
                text(&payment, "payment_id")
            }
        })
        .await?
    };
    let payments_secs = started.elapsed().as_secs_f64();
    println!(
        "{count} subscription payments created in {payments_secs:.1} s ({:.0}/s)",
        count as f64 / payments_secs
    );

    // Due at the first whole minute after the schedules can all be written (scheduling is
    // about as costly as creating; half again as long, and 10 s more, to be safe).
    let estimate = Duration::from_secs_f64(payments_secs * 1.5 + 10.0);
    let minute = next_minute(Utc::now() + estimate);
    println!(
        "scheduling {count} charges due from {} over {} s",
        minute.to_rfc3339_opts(SecondsFormat::Secs, true),
        options.due_spread.as_secs_f64()
    );
    let started = Instant::now();
    let payments = Arc::new(payments);
    let written_late = {
        let (api, keys, payments) = (api.clone(), keys.clone(), payments.clone());
        let spread = options.due_spread;
        in_parallel(workers, count, move |i| {
            let (api, keys, payments) = (api.clone(), keys.clone(), payments.clone());
            async move {
                let (_, key_id) = &keys[(i % keys.len() as u64) as usize];
                let due = due_at(minute, i, count, spread);
                let payment_id = &payments[i as usize];
                let reply = api
                    .post(
                        i,
                        &format!("/payments/{payment_id}/schedule"),
                        json!({"billing_key_id": key_id,
                               "charge_at": due.to_rfc3339_opts(SecondsFormat::Millis, true)}),
                        &[200],
                    )
                    .await?;
                if reply["schedule"]["status"] != "SCHEDULED" {
                    bail!("the schedule is not SCHEDULED: {reply}");
                }
                anyhow::Ok(Utc::now() > due)
            }
        })
        .await?
        .into_iter()
        .filter(|late| *late)
        .count()
    };
    let schedules_secs = started.elapsed().as_secs_f64();
    println!(
        "{count} charges scheduled in {schedules_secs:.1} s ({written_late} written after they were due)"
    );

    // The day.
    let until_due = (minute - Utc::now()).to_std().unwrap_or_default();
    println!(
        "waiting {:.1} s for the due minute",
        until_due.as_secs_f64()
    );
    tokio::time::sleep(until_due).await;
    let load_before = service::load_average();
    let samplers: Vec<RssSampler> = instances.iter().map(|s| RssSampler::start(s.pid)).collect();
    let meters: Vec<CpuMeter> = instances
        .iter()
        .map(|s| CpuMeter::start(Some(s.pid)))
        .collect();
    let db_before = databases.last().expect("pushed above").stats().await;
    let due = Instant::now();
    let watch = Database::connect(&url).await?;
    let mut last_report = Instant::now();
    let counts = loop {
        let counts = schedule_counts(&watch).await?;
        let done = ended(&counts);
        if done >= i64::try_from(count).unwrap_or(i64::MAX) {
            break counts;
        }
        if due.elapsed() > options.max_wait {
            println!("gave up after {} s: {counts:?}", options.max_wait.as_secs());
            break counts;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            println!("  +{:>5.0} s  {counts:?}", due.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let cpu: Vec<_> = meters.iter().map(CpuMeter::stop).collect();
    let peaks: Vec<u64> = samplers.iter().map(RssSampler::peak_kib).collect();
    drop(samplers);
    let hwm: Vec<Option<u64>> = instances
        .iter()
        .map(|s| service::memory_kib(s.pid).map(|(_, hwm)| hwm))
        .collect();
    let mut done_by = Vec::new();
    for base in &api.bases {
        done_by.push(
            metric(
                &api.client,
                base,
                &api.bearer,
                "scheduled_charges_done_total",
            )
            .await,
        );
    }
    let load_after = service::load_average();

    // When the last schedule ended, and how late each charge was claimed, from the database.
    let minute_epoch = minute.timestamp() as f64;
    let last_end = query_f64(
        &watch,
        "SELECT EXTRACT(EPOCH FROM max(updated_at))::float8 AS x FROM payment_schedules \
         WHERE status NOT IN ('SCHEDULED', 'CHARGING')",
    )
    .await?
    .unwrap_or(f64::NAN);
    let seconds = last_end - minute_epoch;
    let rows = watch
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT EXTRACT(EPOCH FROM (p.confirm_started_at - s.charge_at))::float8 AS late \
             FROM payment_schedules s JOIN payments p ON p.id = s.payment_id \
             WHERE p.confirm_started_at IS NOT NULL",
        ))
        .await?;
    let claimed_late = Lateness::of(
        rows.iter()
            .filter_map(|row| row.try_get::<f64>("", "late").ok())
            .collect(),
    );
    let completed = query_i64(
        &watch,
        "SELECT count(*)::bigint AS n FROM payments WHERE status = 'COMPLETED'",
    )
    .await?;
    let done_once = query_i64(
        &watch,
        "SELECT count(*)::bigint AS n FROM payment_schedules WHERE status = 'DONE' AND attempts_made = 1",
    )
    .await?;
    let sends = query_i64(
        &watch,
        "SELECT sum(confirm_sends)::bigint AS n FROM payments",
    )
    .await?;
    let completed_events = query_i64(
        &watch,
        "SELECT count(*)::bigint AS n FROM events WHERE event_type = 'payment.completed'",
    )
    .await?;
    let completed_event_payments = query_i64(
        &watch,
        "SELECT count(DISTINCT payment_id)::bigint AS n FROM events WHERE event_type = 'payment.completed'",
    )
    .await?;
    let _ = watch.close().await;
    for instance in instances {
        instance.stop().await;
    }
    // Backends report their counters when they exit: read them once the instances are gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db_stats = match (databases.last(), db_before) {
        (Some(db), Some(before)) => db.stats().await.map(|after| after.since(before)),
        _ => None,
    };

    // What the fake Toss saw.
    let arrivals = toss.charge_arrivals();
    let mut toss_late = Vec::with_capacity(count as usize);
    let mut charge_calls = 0u64;
    let mut approvals = Vec::with_capacity(count as usize);
    let mut first_start: Option<DateTime<Utc>> = None;
    let mut last_start: Option<DateTime<Utc>> = None;
    for i in 0..count {
        let order = order_id(run_id, i);
        approvals.push(toss.approvals(&order));
        if let Some(arrival) = arrivals.get(&order) {
            charge_calls += u64::from(arrival.calls);
            let due = due_at(minute, i, count, options.due_spread);
            toss_late.push((arrival.first - due).num_milliseconds() as f64 / 1000.0);
            first_start = Some(first_start.map_or(arrival.first, |t| t.min(arrival.first)));
            last_start = Some(last_start.map_or(arrival.first, |t| t.max(arrival.first)));
        }
    }
    let toss_late = Lateness::of(toss_late);
    let histogram = approvals_histogram(approvals);
    let approved_once = histogram.get(&1).copied().unwrap_or(0);
    let n = i64::try_from(count).unwrap_or(i64::MAX);
    let mut problems = Vec::new();
    if ended(&counts) != n || counts.get("DONE").copied().unwrap_or(0) != n {
        problems.push(format!("not every schedule ended DONE: {counts:?}"));
    }
    if approved_once != count {
        problems.push(format!("approvals per order at Toss: {histogram:?}"));
    }
    if completed != n || done_once != n || completed_events != n || completed_event_payments != n {
        problems.push(format!(
            "database: {completed} completed, {done_once} DONE after one attempt, \
             {completed_events} payment.completed events for {completed_event_payments} payments"
        ));
    }
    if charge_calls != count || sends != n {
        problems.push(format!(
            "{charge_calls} charges reached Toss and {sends} were sent, for {count} orders"
        ));
    }

    let within = last_start
        .zip(first_start)
        .map(|(last, first)| (last - first).num_milliseconds() as f64 / 1000.0);
    println!(
        "\n== renewal day: {count} charges due from {} over {} s, {} instances, PostgreSQL, pool {} each",
        minute.to_rfc3339_opts(SecondsFormat::Secs, true),
        options.due_spread.as_secs_f64(),
        options.instances,
        options.pool_label()
    );
    println!(
        "  preparation (API)     {customers} billing keys {keys_secs:.1} s, {count} payments {payments_secs:.1} s, {count} schedules {schedules_secs:.1} s ({written_late} written after due)"
    );
    println!("  all ended             {seconds:.1} s after the due minute  {counts:?}");
    println!(
        "  charges/s             {:.0} (due minute to last end); {} (first to last start at Toss)",
        count as f64 / seconds,
        within.map_or("n/a".to_owned(), |w| format!(
            "{:.0} over {w:.1} s",
            count as f64 / w.max(0.001)
        ))
    );
    println!("  started late, Toss    {}", toss_late.line());
    println!("  started late, claim   {}", claimed_late.line());
    println!(
        "  approvals at Toss     per order: {histogram:?} (times approved: orders); {charge_calls} charge requests"
    );
    println!(
        "  database              {completed} COMPLETED, {done_once} DONE after 1 attempt, {completed_events} payment.completed for {completed_event_payments} payments, {sends} sends"
    );
    for (i, ((idle, peak), (hwm, (cpu, done)))) in rss_idle
        .iter()
        .zip(&peaks)
        .zip(hwm.iter().zip(cpu.iter().zip(&done_by)))
        .enumerate()
    {
        println!(
            "  instance {}            charged {}, RSS idle {}, peak during the day {} (sampled), VmHWM {} (whole life, preparation included), CPU {:.1} s",
            i + 1,
            done.map_or("n/a".to_owned(), |d| format!("{d:.0}")),
            mib(*idle),
            mib(Some(*peak)),
            mib(*hwm),
            cpu.service.unwrap_or(f64::NAN)
        );
    }
    if let Some(cpu) = cpu.first() {
        println!(
            "  machine               busy {:.0} %, postgres CPU {:.1} s, load average {load_before} -> {load_after}",
            cpu.machine_busy * 100.0,
            cpu.postgres
        );
    }
    if let Some(stats) = db_stats {
        let per = |n: i64| n as f64 / count.max(1) as f64;
        println!(
            "  PostgreSQL per charge  {:.1} transactions, {:.1} rows fetched, {:.1} updated, {:.1} inserted (from the due minute, the progress polls included)",
            per(stats.commits + stats.rollbacks),
            per(stats.fetched),
            per(stats.updated),
            per(stats.inserted)
        );
    }
    for problem in &problems {
        println!("  ERROR: {problem}");
    }
    Ok(Renewed {
        charges: count,
        seconds,
        errors: problems.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_due_minute_is_the_next_whole_minute() {
        assert_eq!(
            next_minute(at("2026-12-06T16:29:59.900Z")),
            at("2026-12-06T16:30:00Z")
        );
        assert_eq!(
            next_minute(at("2026-12-06T16:30:00Z")),
            at("2026-12-06T16:31:00Z")
        );
        assert_eq!(
            next_minute(at("2026-12-31T23:59:01Z")),
            at("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn charges_are_spread_evenly_within_the_minute() {
        let minute = at("2026-12-06T16:30:00Z");
        let spread = Duration::from_secs(60);
        assert_eq!(due_at(minute, 0, 4, spread), minute);
        assert_eq!(due_at(minute, 1, 4, spread), at("2026-12-06T16:30:15Z"));
        assert_eq!(due_at(minute, 3, 4, spread), at("2026-12-06T16:30:45Z"));
        let last = due_at(minute, 99_999, 100_000, spread);
        assert!(last < at("2026-12-06T16:31:00Z") && last > at("2026-12-06T16:30:59.99Z"));
        assert_eq!(due_at(minute, 7, 10, Duration::ZERO), minute);
        assert_eq!(due_at(minute, 0, 1, spread), minute);
    }

    #[test]
    fn lateness_takes_nearest_rank_percentiles_and_counts_the_late() {
        let mut seconds: Vec<f64> = (1..=100).map(f64::from).collect();
        seconds.reverse();
        let late = Lateness::of(seconds);
        assert_eq!(late.count, 100);
        assert_eq!(late.p50, 50.0);
        assert_eq!(late.p99, 99.0);
        assert_eq!(late.max, 100.0);
        assert_eq!(late.over_limit, 40, "61..=100 are over 60 s");

        let early = Lateness::of(vec![-0.5, 0.2]);
        assert_eq!((early.p50, early.max, early.over_limit), (0.0, 0.2, 0));
        let none = Lateness::of(Vec::new());
        assert_eq!((none.count, none.p99, none.max), (0, 0.0, 0.0));
    }

    #[test]
    fn approvals_are_counted_per_number_of_times() {
        let histogram = approvals_histogram([1, 1, 0, 2, 1]);
        assert_eq!(histogram, BTreeMap::from([(0, 1), (1, 3), (2, 1)]));
        assert!(approvals_histogram([]).is_empty());
    }
}
