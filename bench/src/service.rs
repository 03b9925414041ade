//! The things the benchmark runs against: fresh databases, the service as a child process (so
//! its memory is its own), and what `/proc` tells about processes and the machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tokio::process::{Child, Command};

use crate::args::{Backend, Options};

/// A database made for this run, deleted afterwards unless kept.
pub struct BenchDatabase {
    pub url: String,
    backend: Backend,
    server_url: String,
    name: String,
    dir: PathBuf,
}

impl BenchDatabase {
    /// PostgreSQL: `CREATE DATABASE ps_bench_<run>_<label>`; SQLite: a file in a temporary folder.
    pub async fn create(options: &Options, run_id: &str, label: &str) -> anyhow::Result<Self> {
        let name = format!("ps_bench_{run_id}_{label}");
        let dir = std::env::temp_dir().join(format!("ps_bench_{run_id}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let url = match options.backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{label}.db")).display()
            ),
            Backend::Postgres => {
                let admin_url = database_url(&options.postgres_url, "postgres");
                let admin = Database::connect(&admin_url)
                    .await
                    .with_context(|| format!("connecting to {admin_url}"))?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .with_context(|| format!("creating database {name}"))?;
                let _ = admin.close().await;
                database_url(&options.postgres_url, &name)
            }
        };
        Ok(Self {
            url,
            backend: options.backend,
            server_url: options.postgres_url.clone(),
            name,
            dir,
        })
    }

    /// Brings the server to the same state before every measured phase, so a phase does not
    /// pay for the one before it: PostgreSQL writes out what the earlier phases left dirty
    /// (`CHECKPOINT`) and finishes the autovacuum they triggered (waited for up to 60 s).
    pub async fn settle(&self) {
        if self.backend == Backend::Postgres {
            let settled = async {
                let admin = Database::connect(database_url(&self.server_url, "postgres")).await?;
                admin.execute_unprepared("CHECKPOINT").await?;
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    let busy = admin
                        .query_one_raw(Statement::from_string(
                            DbBackend::Postgres,
                            "SELECT count(*) AS n FROM pg_stat_activity \
                             WHERE backend_type = 'autovacuum worker'",
                        ))
                        .await?
                        .and_then(|row| row.try_get::<i64>("", "n").ok())
                        .unwrap_or(0);
                    if busy == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                admin.close().await
            }
            .await;
            if let Err(error) = settled {
                eprintln!("could not settle PostgreSQL before the phase: {error}");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// Fills the (migrated) `payments` table with `count` completed card payments of a
    /// past day, in one `INSERT … SELECT generate_series` (not through the API: a million
    /// confirms would take the run's hour), then `ANALYZE`s it so the planner knows its size.
    /// PostgreSQL only.
    pub async fn prefill_payments(&self, count: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.backend == Backend::Postgres,
            "prefilling goes with PostgreSQL"
        );
        let db = Database::connect(&self.url).await?;
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO payments (id, user_id, order_id, order_name, payment_type, \
             payment_method, amount_krw, refunded_amount_krw, refund_reserved_krw, currency, \
             status, pg_provider, pg_transaction_id, payment_key, confirm_attempt, confirm_sends, \
             needs_review, reconcile_attempts, tax_free_amount_krw, created_at, updated_at, \
             completed_at) \
             SELECT gen_random_uuid()::text, 'prefill-user-' || (n % 10000), 'prefill-' || n, \
             'prefilled order', 'ONE_TIME', 'card', 15000, 0, 0, 'KRW', 'COMPLETED', 'toss', \
             'pk_prefill_' || n, 'pk_prefill_' || n, 1, 1, false, 0, 0, \
             now() - interval '2 days' + n * interval '1 ms', \
             now() - interval '2 days' + n * interval '1 ms', \
             now() - interval '2 days' + n * interval '1 ms' \
             FROM generate_series(1, $1::bigint) AS n",
            [i64::try_from(count)?.into()],
        ))
        .await?;
        db.execute_unprepared("ANALYZE payments").await?;
        db.close().await?;
        Ok(())
    }

    /// What PostgreSQL counted for this database so far (`None` on SQLite). Backends report
    /// when they go idle or exit, so read it after closing the connections.
    pub async fn stats(&self) -> Option<DbStats> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let admin = Database::connect(database_url(&self.server_url, "postgres"))
            .await
            .ok()?;
        let row = admin
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched \
                 FROM pg_stat_database WHERE datname = $1",
                [self.name.clone().into()],
            ))
            .await
            .ok()??;
        let get = |column: &str| row.try_get::<i64>("", column).ok();
        let stats = DbStats {
            commits: get("xact_commit")?,
            rollbacks: get("xact_rollback")?,
            inserted: get("tup_inserted")?,
            updated: get("tup_updated")?,
            fetched: get("tup_fetched")?,
        };
        let _ = admin.close().await;
        Some(stats)
    }

    pub async fn drop_now(self) {
        match self.backend {
            Backend::Sqlite => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            Backend::Postgres => {
                let result = async {
                    let admin =
                        Database::connect(database_url(&self.server_url, "postgres")).await?;
                    admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                            self.name
                        ))
                        .await?;
                    admin.close().await
                }
                .await;
                if let Err(error) = result {
                    eprintln!("could not drop database {}: {error}", self.name);
                }
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// `postgres://host:port?opts` + `name` -> `postgres://host:port/name?opts`.
fn database_url(server: &str, name: &str) -> String {
    match server.split_once('?') {
        Some((base, query)) => format!("{}/{name}?{query}", base.trim_end_matches('/')),
        None => format!("{}/{name}", server.trim_end_matches('/')),
    }
}

/// PostgreSQL's counters of one database (`pg_stat_database`): transactions (an autocommitted
/// statement is one) and rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbStats {
    pub commits: i64,
    pub rollbacks: i64,
    pub inserted: i64,
    pub updated: i64,
    pub fetched: i64,
}

impl DbStats {
    pub fn since(self, before: DbStats) -> DbStats {
        DbStats {
            commits: self.commits - before.commits,
            rollbacks: self.rollbacks - before.rollbacks,
            inserted: self.inserted - before.inserted,
            updated: self.updated - before.updated,
            fetched: self.fetched - before.fetched,
        }
    }
}

/// The service as a child process.
pub struct ServiceProcess {
    child: Child,
    pub pid: u32,
    pub base_url: String,
    pub log: PathBuf,
}

impl ServiceProcess {
    pub async fn start(
        options: &Options,
        database_url: &str,
        toss_url: &str,
        api_key: &str,
        work_dir: &Path,
    ) -> anyhow::Result<Self> {
        Self::start_instance(
            options,
            database_url,
            toss_url,
            api_key,
            work_dir,
            "service",
            &[],
        )
        .await
    }

    /// One of several instances: its log is `<name>.log`; `env` comes after the loadtest's own
    /// settings and before `--service-env`.
    pub async fn start_instance(
        options: &Options,
        database_url: &str,
        toss_url: &str,
        api_key: &str,
        work_dir: &Path,
        name: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let bin = match &options.service_bin {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("payment-service"),
        };
        // Absolute: a relative program path would be looked up from the child's directory.
        let Ok(bin) = std::path::absolute(&bin).and_then(|bin| bin.canonicalize()) else {
            bail!(
                "{} not found: build it with `cargo build --release -p payment-service`, or pass --service-bin",
                bin.display()
            );
        };
        let port = free_port()?;
        let log = work_dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(&bin);
        if let Some(pool) = options.pool {
            command.env("APP_DATABASE__MAX_CONNECTIONS", pool.to_string());
        }
        let child = command
            // Config files are read relative to the working directory: none there.
            .current_dir(work_dir)
            .env_remove("RUST_LOG")
            .env_remove("NATS_URL")
            .env("APP_ENV", "bench")
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("TOSS_SECRET_KEY", crate::toss_server::SECRET_KEY)
            .env("TOSS_API_URL", toss_url)
            .env("API_KEYS", api_key)
            .env("APP_LOG__FILTER", &options.log_filter)
            // Every request comes from 127.0.0.1; the per-IP limit of the public routes is for
            // the internet's many buyers, not for one load generator.
            .env("APP_LIMITS__PUBLIC_REQUESTS_PER_SEC", "1000000")
            .env("APP_LIMITS__PUBLIC_BURST", "1000000")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .envs(options.service_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the service exited at once")?;
        let mut service = Self {
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
            log,
        };
        service.wait_ready().await?;
        Ok(service)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let url = format!("{}/ready", self.base_url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the service exited ({status}) before it was ready; its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the service was not ready after 60 s; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM (graceful), then SIGKILL after a few seconds.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Samples a process's resident memory every 50 ms; keeps the highest seen.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some((rss, _)) = memory_kib(pid) {
                    seen.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak, task }
    }

    pub fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ; 100 on Linux).
const TICKS: f64 = 100.0;

/// User + system CPU seconds a process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields after its closing parenthesis are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

/// CPU seconds used so far by each `postgres` process (other users' sessions included).
pub fn postgres_cpu() -> HashMap<u32, f64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(|pid| Some((pid, cpu_seconds(pid)?)))
        .collect()
}

/// CPU used since `then` by the `postgres` processes alive now (a backend that exited in
/// between is not counted).
fn postgres_cpu_since(then: &HashMap<u32, f64>) -> f64 {
    postgres_cpu()
        .into_iter()
        .map(|(pid, now)| now - then.get(&pid).copied().unwrap_or(0.0))
        .sum()
}

/// (busy, total) jiffies of the whole machine, from `/proc/stat`.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// CPU used during a phase, by whom.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub service: Option<f64>,
    pub loadgen: f64,
    pub postgres: f64,
    /// Share of the machine's CPU time that was busy, 0..1.
    pub machine_busy: f64,
}

pub struct CpuMeter {
    service_pid: Option<u32>,
    service: Option<f64>,
    loadgen: f64,
    postgres: HashMap<u32, f64>,
    machine: (u64, u64),
}

impl CpuMeter {
    pub fn start(service_pid: Option<u32>) -> Self {
        Self {
            service_pid,
            service: service_pid.and_then(cpu_seconds),
            loadgen: cpu_seconds(std::process::id()).unwrap_or(0.0),
            postgres: postgres_cpu(),
            machine: machine_ticks().unwrap_or((0, 0)),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let (busy, total) = machine_ticks().unwrap_or(self.machine);
        let total = total.saturating_sub(self.machine.1).max(1);
        CpuUse {
            service: match (self.service_pid.and_then(cpu_seconds), self.service) {
                (Some(now), Some(then)) => Some(now - then),
                _ => None,
            },
            loadgen: cpu_seconds(std::process::id()).unwrap_or(0.0) - self.loadgen,
            postgres: postgres_cpu_since(&self.postgres),
            machine_busy: busy.saturating_sub(self.machine.0) as f64 / total as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_keeps_options() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url("postgres://h:5432/?sslmode=disable", "x"),
            "postgres://h:5432/x?sslmode=disable"
        );
    }

    #[test]
    fn reads_this_process() {
        let (rss, hwm) = memory_kib(std::process::id()).unwrap();
        assert!(rss > 0 && hwm >= rss);
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(machine_ticks().is_some());
    }
}
