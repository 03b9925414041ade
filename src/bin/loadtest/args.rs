//! Command-line options, parsed by hand: `--name value` pairs and a few flags.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
loadtest: drives payment-service flows against a fake Toss on loopback and measures them
against baselines taken in the same run: (a) the fake Toss alone, (b) the database alone
sending the service's statements, (b0) the database alone committing the same transactions
with nothing else. See docs/benchmarks.md.

usage: loadtest [options]
  --database sqlite|postgres   database of the service and of baseline (b)     [sqlite]
  --postgres-url URL           PostgreSQL server (a fresh database is created on it);
                               options after `?` are kept, e.g. `?sslmode=disable`
                                                  [postgres://postgres@127.0.0.1:5432]
  --scenario flows|confirm-burst                                                 [flows]
  --concurrency N              worker tasks (confirm-burst: for creating the payments) [16]
  --duration SECS              measured time per phase (flows)                    [20]
  --flows N                    a fixed number of flows instead of a duration;
                               confirm-burst: the number of confirms            [1000]
  --warmup SECS                unmeasured time before each phase (flows)           [2]
  --rate FLOWS_PER_SEC         pace every phase at this many flows per second in all
                               (open loop; latency from each flow's due time)
                               [none: each worker starts its next flow at once]
  --toss-delay-ms MS           the fake Toss answers after this delay              [0]
  --refund-share F             share of flows that also refund, 0.0..1.0         [0.1]
  --pool N                     service's PostgreSQL pool (APP_DATABASE__MAX_CONNECTIONS),
                               also baseline (b)'s pool                           [10]
  --baselines LIST             comma list of a, b, b0, or none    [a,b,b0; burst: none]
  --log-filter FILTER          the service's log filter (RUST_LOG)              [warn]
  --service-env KEY=VALUE      extra environment for the service (repeatable), after
                               the loadtest's own: APP_LIMITS__PUBLIC_REQUESTS_PER_SEC and
                               APP_LIMITS__PUBLIC_BURST = 1000000, since all load comes
                               from one IP
  --service-bin PATH           [payment-service next to this binary]
  --target URL                 use a running service instead of starting one; it must
                               use --toss-bind's address as TOSS_API_URL, TOSS_SECRET_KEY
                               test_sk_bench and --api-key
  --toss-bind ADDR             fake Toss listen address                  [127.0.0.1:0]
  --api-key KEY                API key (generated when the service is started here)
  --service-pid PID            with --target: the process whose memory to sample
  --json PATH                  append the results as one JSON line to PATH
  --keep-db                    do not delete the databases afterwards
  --rounds N                   repeat the whole run (baselines, then the service) N times
                               and report the median of each ratio and latency        [1]
  -h, --help
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Flows,
    ConfirmBurst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The fake Toss alone.
    Toss,
    /// The database alone, statement for statement what the service sends.
    Database,
    /// The database alone, only the committing statements.
    DatabaseCommits,
}

impl Baseline {
    pub fn label(self) -> &'static str {
        match self {
            Self::Toss => "(a) fake Toss alone",
            Self::Database => "(b) database alone",
            Self::DatabaseCommits => "(b0) db, commits only",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::Toss => "a",
            Self::Database => "b",
            Self::DatabaseCommits => "b0",
        }
    }
}

/// How long a phase runs: for a time, or until a number of flows is done.
#[derive(Debug, Clone, Copy)]
pub enum Amount {
    Duration(Duration),
    Flows(u64),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    pub postgres_url: String,
    pub scenario: Scenario,
    pub concurrency: usize,
    pub amount: Amount,
    pub warmup: Duration,
    pub rate: Option<f64>,
    pub toss_delay: Duration,
    pub refund_share: f64,
    pub pool: u32,
    pub baselines: Vec<Baseline>,
    pub log_filter: String,
    pub service_env: Vec<(String, String)>,
    pub service_bin: Option<PathBuf>,
    pub target: Option<String>,
    pub toss_bind: String,
    pub api_key: Option<String>,
    pub service_pid: Option<u32>,
    pub json: Option<PathBuf>,
    pub keep_db: bool,
    /// Times the whole run (baselines and service) is repeated, for a median.
    pub rounds: usize,
}

impl Options {
    /// `Ok(None)` for `--help`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Self>, String> {
        let mut backend = Backend::Sqlite;
        let mut postgres_url = "postgres://postgres@127.0.0.1:5432".to_owned();
        let mut scenario = Scenario::Flows;
        let mut concurrency = 16usize;
        let mut duration = Duration::from_secs(20);
        let mut flows: Option<u64> = None;
        let mut warmup = Duration::from_secs(2);
        let mut rate: Option<f64> = None;
        let mut toss_delay = Duration::ZERO;
        let mut refund_share = 0.1f64;
        let mut pool = 10u32;
        let mut baselines: Option<Vec<Baseline>> = None;
        let mut log_filter = "warn".to_owned();
        let mut service_env = Vec::new();
        let mut service_bin = None;
        let mut target = None;
        let mut toss_bind = "127.0.0.1:0".to_owned();
        let mut api_key = None;
        let mut service_pid = None;
        let mut json = None;
        let mut keep_db = false;
        let mut rounds = 1usize;

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => {
                    (name.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match name.as_str() {
                "-h" | "--help" => return Ok(None),
                "--database" => {
                    backend = match value()?.as_str() {
                        "sqlite" => Backend::Sqlite,
                        "postgres" | "postgresql" | "pg" => Backend::Postgres,
                        other => return Err(format!("--database: unknown {other:?}")),
                    }
                }
                // `--pg-url`: the older spelling, still accepted.
                "--postgres-url" | "--pg-url" => postgres_url = value()?,
                "--scenario" => {
                    scenario = match value()?.as_str() {
                        "flows" => Scenario::Flows,
                        "confirm-burst" | "burst" => Scenario::ConfirmBurst,
                        other => return Err(format!("--scenario: unknown {other:?}")),
                    }
                }
                "--concurrency" | "-c" => concurrency = number(&name, &value()?)?,
                "--duration" | "-d" => {
                    duration = Duration::from_secs_f64(number(&name, &value()?)?)
                }
                "--flows" | "-n" => flows = Some(number(&name, &value()?)?),
                "--warmup" => warmup = Duration::from_secs_f64(number(&name, &value()?)?),
                "--rate" => rate = Some(number(&name, &value()?)?),
                "--toss-delay-ms" => {
                    toss_delay = Duration::from_millis(number(&name, &value()?)?);
                }
                "--refund-share" => refund_share = number(&name, &value()?)?,
                "--pool" => pool = number(&name, &value()?)?,
                "--baselines" => baselines = Some(parse_baselines(&value()?)?),
                "--log-filter" => log_filter = value()?,
                "--service-env" => {
                    let pair = value()?;
                    let (key, val) = pair
                        .split_once('=')
                        .ok_or_else(|| format!("--service-env: {pair:?} is not KEY=VALUE"))?;
                    service_env.push((key.to_owned(), val.to_owned()));
                }
                "--service-bin" => service_bin = Some(PathBuf::from(value()?)),
                "--target" => target = Some(value()?.trim_end_matches('/').to_owned()),
                "--toss-bind" => toss_bind = value()?,
                "--api-key" => api_key = Some(value()?),
                "--service-pid" => service_pid = Some(number(&name, &value()?)?),
                "--json" => json = Some(PathBuf::from(value()?)),
                "--keep-db" => keep_db = true,
                "--rounds" => rounds = number(&name, &value()?)?,
                other => return Err(format!("unknown option {other:?} (see --help)")),
            }
        }

        if concurrency == 0 {
            return Err("--concurrency must be at least 1".to_owned());
        }
        if rounds == 0 {
            return Err("--rounds must be at least 1".to_owned());
        }
        if !(0.0..=1.0).contains(&refund_share) {
            return Err("--refund-share must be between 0.0 and 1.0".to_owned());
        }
        if rate.is_some_and(|rate| !(rate > 0.0 && rate.is_finite())) {
            return Err("--rate must be a positive number of flows per second".to_owned());
        }
        if pool == 0 {
            return Err("--pool must be at least 1".to_owned());
        }
        if target.is_some() && api_key.is_none() {
            return Err("--target needs --api-key (the running service's key)".to_owned());
        }
        let amount = match (scenario, flows) {
            (Scenario::ConfirmBurst, flows) => Amount::Flows(flows.unwrap_or(1000)),
            (Scenario::Flows, Some(n)) => Amount::Flows(n),
            (Scenario::Flows, None) => Amount::Duration(duration),
        };
        if matches!(amount, Amount::Flows(0)) {
            return Err("--flows must be at least 1".to_owned());
        }
        let baselines = baselines.unwrap_or_else(|| match scenario {
            Scenario::Flows => vec![
                Baseline::Toss,
                Baseline::Database,
                Baseline::DatabaseCommits,
            ],
            Scenario::ConfirmBurst => Vec::new(),
        });
        Ok(Some(Self {
            backend,
            postgres_url,
            scenario,
            concurrency,
            amount,
            warmup,
            rate,
            toss_delay,
            refund_share,
            pool,
            baselines,
            log_filter,
            service_env,
            service_bin,
            target,
            toss_bind,
            api_key,
            service_pid,
            json,
            keep_db,
            rounds,
        }))
    }
}

fn number<T: std::str::FromStr>(name: &str, raw: &str) -> Result<T, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("{name}: {raw:?} is not a valid number"))
}

fn parse_baselines(raw: &str) -> Result<Vec<Baseline>, String> {
    let mut list = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let baseline = match item {
            "none" => continue,
            "a" | "toss" => Baseline::Toss,
            "b" | "db" => Baseline::Database,
            "b0" | "db-commits" => Baseline::DatabaseCommits,
            other => return Err(format!("--baselines: unknown {other:?}")),
        };
        if !list.contains(&baseline) {
            list.push(baseline);
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn defaults_and_overrides() {
        let options = parse(&[]).unwrap().unwrap();
        assert_eq!(options.backend, Backend::Sqlite);
        assert_eq!(options.concurrency, 16);
        assert_eq!(options.baselines.len(), 3);

        let options = parse(&[
            "--database=postgres",
            "--concurrency",
            "64",
            "--toss-delay-ms",
            "300",
            "--baselines",
            "b,a",
            "--flows",
            "500",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(options.backend, Backend::Postgres);
        assert_eq!(options.concurrency, 64);
        assert_eq!(options.toss_delay, Duration::from_millis(300));
        assert_eq!(options.baselines, vec![Baseline::Database, Baseline::Toss]);
        assert!(matches!(options.amount, Amount::Flows(500)));
    }

    #[test]
    fn the_postgres_url_under_both_spellings() {
        let url = "postgres://bench@10.0.0.2:5432?sslmode=disable";
        for flag in ["--postgres-url", "--pg-url"] {
            let options = parse(&[flag, url]).unwrap().unwrap();
            assert_eq!(options.postgres_url, url);
        }
    }

    #[test]
    fn burst_defaults_to_a_thousand_confirms_without_baselines() {
        let options = parse(&["--scenario", "confirm-burst"]).unwrap().unwrap();
        assert!(matches!(options.amount, Amount::Flows(1000)));
        assert!(options.baselines.is_empty());
    }

    #[test]
    fn refuses_nonsense() {
        assert!(parse(&["--refund-share", "2"]).is_err());
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--target", "http://127.0.0.1:8080"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
