//! Command-line options: clap parses them into [`Cli`], and [`Options`] is what a run needs (the
//! amount of work and the baselines depend on the scenario).

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};

/// loadtest: drives payment-service flows against a fake Toss on loopback and measures them
/// against baselines taken in the same run: (a) the fake Toss alone, (b) the database alone
/// doing, through the service's own store, what the service does for a flow. See
/// docs/benchmarks.md.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
pub struct Cli {
    /// Database of the service and of baseline (b)
    #[arg(
        long = "database",
        value_name = "DATABASE",
        value_enum,
        default_value = "sqlite"
    )]
    backend: Backend,

    /// PostgreSQL server (a fresh database is created on it); options after `?` are kept, e.g.
    /// `?sslmode=disable`
    #[arg(
        long,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432",
        alias = "pg-url"
    )]
    postgres_url: String,

    /// Complete flows, a burst of confirms released at once, a day of Toss transactions
    /// reconciled, a renewal day (scheduled charges all due in one minute), or confirms of
    /// pre-created orders side by side with another confirm endpoint (--peer-url)
    #[arg(long, value_enum, default_value = "flows")]
    scenario: Scenario,

    /// renewal-day: scheduled charges due in the same minute
    #[arg(long, value_name = "N", default_value = "100000", value_parser = at_least_one::<u64>)]
    charges: u64,

    /// renewal-day: service instances on the one database, each with its scheduler on
    #[arg(long, value_name = "N", default_value = "2", value_parser = at_least_one::<usize>)]
    instances: usize,

    /// renewal-day: subscribers, each a customer with one billing key issued through the API;
    /// the payments are spread over them round-robin [default: one per charge, at most 1000]
    #[arg(long, value_name = "N", value_parser = at_least_one::<u64>)]
    customers: Option<u64>,

    /// renewal-day: the charges are due evenly over this many seconds from the due minute
    /// (0: all at the minute itself)
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds)]
    due_spread: Duration,

    /// renewal-day: give up waiting for the charges this long after the due minute
    #[arg(long, value_name = "SECS", default_value = "1800", value_parser = seconds)]
    max_wait: Duration,

    /// reconcile: Toss transactions of the day (each a completed payment of ours)
    #[arg(long, value_name = "N", default_value = "100000", value_parser = at_least_one::<u64>)]
    transactions: u64,

    /// Worker tasks (confirm-burst: for creating the payments)
    #[arg(short = 'c', long, value_name = "N", default_value = "16", value_parser = at_least_one::<usize>)]
    concurrency: usize,

    /// Measured time per phase (flows)
    #[arg(short = 'd', long, value_name = "SECS", default_value = "20", value_parser = seconds)]
    duration: Duration,

    /// A fixed number of flows instead of a duration; confirm-burst: the number of confirms;
    /// side-by-side: confirms per side and round [default: 1000 for confirm-burst, 2000 for
    /// side-by-side]
    #[arg(short = 'n', long, value_name = "N", value_parser = at_least_one::<u64>)]
    flows: Option<u64>,

    /// Unmeasured time before each phase (flows)
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds)]
    warmup: Duration,

    /// Pace every phase at this many flows per second in all (open loop; latency from each
    /// flow's due time) [default: none, each worker starts its next flow at once]
    #[arg(long, value_name = "FLOWS_PER_SEC", value_parser = flows_per_second)]
    rate: Option<f64>,

    /// The fake Toss answers after this delay
    #[arg(long = "toss-delay-ms", value_name = "MS", default_value = "0", value_parser = milliseconds)]
    toss_delay: Duration,

    /// Share of flows that also refund, 0.0..1.0
    #[arg(long, value_name = "F", default_value = "0.1", value_parser = share)]
    refund_share: f64,

    /// Service's PostgreSQL pool (APP_DATABASE__MAX_CONNECTIONS), also baseline (b)'s pool
    /// [default: the service sizes its own; baseline (b) and the seeding: --concurrency]
    #[arg(long, value_name = "N", value_parser = at_least_one::<u32>)]
    pool: Option<u32>,

    /// side-by-side: one whole run per number of connections, and one summary row each, e.g.
    /// 1,16,64 (replaces --concurrency)
    #[arg(long, value_name = "LIST", value_parser = concurrency_list)]
    concurrency_sweep: Option<Levels>,

    /// side-by-side: fill the service's database with this many completed payments (one
    /// `INSERT … SELECT generate_series`, PostgreSQL only) before the orders are created
    #[arg(long, value_name = "N", default_value = "0")]
    prefill_payments: u64,

    /// Comma list of a, b, or none [default: a,b; confirm-burst: none]
    #[arg(long, value_name = "LIST", value_parser = baseline_list)]
    baselines: Option<BaselineList>,

    /// The service's log filter (RUST_LOG)
    #[arg(long, value_name = "FILTER", default_value = "warn")]
    log_filter: String,

    /// Extra environment for the service (repeatable), after the loadtest's own:
    /// APP_LIMITS__PUBLIC_REQUESTS_PER_SEC and APP_LIMITS__PUBLIC_BURST = 1000000, since all load
    /// comes from one IP
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    service_env: Vec<(String, String)>,

    /// The service's binary [default: payment-service next to this binary]
    #[arg(long, value_name = "PATH")]
    service_bin: Option<PathBuf>,

    /// Use a running service instead of starting one; it must use --toss-bind's address as
    /// TOSS_API_URL, TOSS_SECRET_KEY test_sk_bench and --api-key
    #[arg(long, value_name = "URL", requires = "api_key")]
    target: Option<String>,

    /// Fake Toss listen address
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    toss_bind: String,

    /// API key (generated when the service is started here)
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,

    /// With --target: the process whose memory to sample
    #[arg(long, value_name = "PID")]
    service_pid: Option<u32>,

    /// side-by-side: the peer's confirm endpoint, taking POST `{paymentKey, orderId, amount}`
    /// (Toss's sample: http://127.0.0.1:4000/confirm/payment); it must call the fake Toss
    /// (--toss-bind) with TOSS_SECRET_KEY test_sk_bench
    #[arg(long, value_name = "URL")]
    peer_url: Option<String>,

    /// side-by-side: seconds of `pgbench -N` for the database ceiling (0: skip it)
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds)]
    ceiling_secs: Duration,

    /// Append the results as one JSON line to PATH
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Do not delete the databases afterwards
    #[arg(long)]
    keep_db: bool,

    /// Repeat the whole run (baselines, then the service) N times and report the median of each
    /// ratio and latency
    #[arg(long, value_name = "N", default_value = "1", value_parser = at_least_one::<usize>)]
    rounds: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Sqlite,
    #[value(alias = "postgresql", alias = "pg")]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Flows,
    #[value(alias = "burst")]
    ConfirmBurst,
    Reconcile,
    RenewalDay,
    SideBySide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The fake Toss alone.
    Toss,
    /// The database alone, doing through the service's store what the service does.
    Database,
}

impl Baseline {
    pub fn label(self) -> &'static str {
        match self {
            Self::Toss => "(a) fake Toss alone",
            Self::Database => "(b) database alone",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::Toss => "a",
            Self::Database => "b",
        }
    }
}

/// `--baselines`, in the order given, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineList(Vec<Baseline>);

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
    pub transactions: u64,
    pub charges: u64,
    pub instances: usize,
    pub customers: u64,
    pub due_spread: Duration,
    pub max_wait: Duration,
    pub concurrency: usize,
    /// side-by-side: the connections of each run; empty: one run at `concurrency`.
    pub concurrency_sweep: Vec<usize>,
    /// side-by-side: completed payments put in the service's database first.
    pub prefill_payments: u64,
    pub amount: Amount,
    pub warmup: Duration,
    pub rate: Option<f64>,
    pub toss_delay: Duration,
    pub refund_share: f64,
    /// `None`: the service sizes its own pool.
    pub pool: Option<u32>,
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
    /// Times the whole run (baselines and service) is repeated, for a median; side-by-side:
    /// rounds of the service and the peer, alternating.
    pub rounds: usize,
    pub peer_url: Option<String>,
    pub ceiling_secs: Duration,
}

impl Options {
    /// The pool of a store the loadtest opens itself (baseline (b), seeding): `--pool`, else
    /// one connection per worker.
    pub fn store_pool(&self) -> u32 {
        self.pool
            .unwrap_or_else(|| u32::try_from(self.concurrency).unwrap_or(u32::MAX))
    }

    /// The service's pool, for the report.
    pub fn pool_label(&self) -> String {
        self.pool
            .map_or_else(|| "the service's own".to_owned(), |n| n.to_string())
    }

    /// Parses the process's arguments; prints help or the error and exits as clap does.
    pub fn from_env() -> Self {
        Self::try_parse_from(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// `args` starts with the program's name. `--help` and `--version` are errors of their own
    /// kind, as in clap.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        let side_by_side_only = [
            ("--peer-url", cli.peer_url.is_some()),
            ("--concurrency-sweep", cli.concurrency_sweep.is_some()),
            ("--prefill-payments", cli.prefill_payments > 0),
        ];
        for (flag, given) in side_by_side_only {
            if given && cli.scenario != Scenario::SideBySide {
                return Err(Cli::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("{flag} goes with --scenario side-by-side"),
                ));
            }
        }
        if cli.prefill_payments > 0 && cli.backend != Backend::Postgres {
            return Err(Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "--prefill-payments goes with --database postgres",
            ));
        }
        let amount = match (cli.scenario, cli.flows) {
            (Scenario::ConfirmBurst, flows) => Amount::Flows(flows.unwrap_or(1000)),
            (Scenario::SideBySide, flows) => Amount::Flows(flows.unwrap_or(2000)),
            (Scenario::Flows | Scenario::Reconcile | Scenario::RenewalDay, Some(n)) => {
                Amount::Flows(n)
            }
            (Scenario::Flows | Scenario::Reconcile | Scenario::RenewalDay, None) => {
                Amount::Duration(cli.duration)
            }
        };
        let baselines = match cli.baselines {
            Some(BaselineList(list)) => list,
            None => match cli.scenario {
                Scenario::Flows => vec![Baseline::Toss, Baseline::Database],
                Scenario::ConfirmBurst
                | Scenario::Reconcile
                | Scenario::RenewalDay
                | Scenario::SideBySide => Vec::new(),
            },
        };
        Ok(Self {
            backend: cli.backend,
            postgres_url: cli.postgres_url,
            scenario: cli.scenario,
            transactions: cli.transactions,
            charges: cli.charges,
            instances: cli.instances,
            customers: cli.customers.unwrap_or(cli.charges.min(1000)),
            due_spread: cli.due_spread,
            max_wait: cli.max_wait,
            concurrency: cli.concurrency,
            concurrency_sweep: cli
                .concurrency_sweep
                .map(|Levels(levels)| levels)
                .unwrap_or_default(),
            prefill_payments: cli.prefill_payments,
            amount,
            warmup: cli.warmup,
            rate: cli.rate,
            toss_delay: cli.toss_delay,
            refund_share: cli.refund_share,
            pool: cli.pool,
            baselines,
            log_filter: cli.log_filter,
            service_env: cli.service_env,
            service_bin: cli.service_bin,
            target: cli.target.map(|url| url.trim_end_matches('/').to_owned()),
            toss_bind: cli.toss_bind,
            api_key: cli.api_key,
            service_pid: cli.service_pid,
            json: cli.json,
            keep_db: cli.keep_db,
            rounds: cli.rounds,
            peer_url: cli.peer_url,
            ceiling_secs: cli.ceiling_secs,
        })
    }
}

fn at_least_one<T>(raw: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a valid number"))?;
    if value < T::from(1) {
        return Err("must be at least 1".to_owned());
    }
    Ok(value)
}

fn number(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("{raw:?} is not a valid number")),
    }
}

fn seconds(raw: &str) -> Result<Duration, String> {
    match number(raw)? {
        secs if secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
        _ => Err("must not be negative".to_owned()),
    }
}

fn milliseconds(raw: &str) -> Result<Duration, String> {
    raw.trim()
        .parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("{raw:?} is not a whole number of milliseconds"))
}

fn share(raw: &str) -> Result<f64, String> {
    match number(raw)? {
        share if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("must be between 0.0 and 1.0".to_owned()),
    }
}

fn flows_per_second(raw: &str) -> Result<f64, String> {
    match number(raw)? {
        rate if rate > 0.0 => Ok(rate),
        _ => Err("must be a positive number of flows per second".to_owned()),
    }
}

fn key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{raw:?} is not KEY=VALUE"))
}

/// `--concurrency-sweep`: numbers of connections, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels(Vec<usize>);

fn concurrency_list(raw: &str) -> Result<Levels, String> {
    let list = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(at_least_one::<usize>)
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() {
        return Err("name at least one number of connections".to_owned());
    }
    Ok(Levels(list))
}

fn baseline_list(raw: &str) -> Result<BaselineList, String> {
    let mut list = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let baseline = match item {
            "none" => continue,
            "a" | "toss" => Baseline::Toss,
            "b" | "db" => Baseline::Database,
            "b0" | "db-commits" => {
                return Err(
                    "(b0), the database committing a hand-copied list of plain statements, was \
                     dropped when (b) moved onto the service's own store; see docs/benchmarks.md"
                        .to_owned(),
                );
            }
            other => return Err(format!("unknown {other:?} (a, b or none)")),
        };
        if !list.contains(&baseline) {
            list.push(baseline);
        }
    }
    Ok(BaselineList(list))
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("loadtest").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_overrides() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.backend, Backend::Sqlite);
        assert_eq!(options.postgres_url, "postgres://postgres@127.0.0.1:5432");
        assert_eq!(options.scenario, Scenario::Flows);
        assert_eq!(options.concurrency, 16);
        assert!(matches!(options.amount, Amount::Duration(d) if d == Duration::from_secs(20)));
        assert_eq!(options.warmup, Duration::from_secs(2));
        assert_eq!(options.rate, None);
        assert_eq!(options.toss_delay, Duration::ZERO);
        assert_eq!(options.refund_share, 0.1);
        assert_eq!(options.pool, None, "the service sizes its own");
        assert_eq!(options.store_pool(), 16);
        assert!(options.concurrency_sweep.is_empty());
        assert_eq!(options.prefill_payments, 0);
        assert_eq!(options.baselines, vec![Baseline::Toss, Baseline::Database]);
        assert_eq!(options.log_filter, "warn");
        assert_eq!(options.toss_bind, "127.0.0.1:0");
        assert_eq!(options.rounds, 1);
        assert!(!options.keep_db);

        let options = parse(&[
            "--database=pg",
            "-c",
            "64",
            "--toss-delay-ms",
            "300",
            "--baselines",
            "b,a,b",
            "-n",
            "500",
            "--service-env",
            "APP_TOSS__MAX_CONCURRENCY=64",
            "--service-env=RUST_LOG=info",
            "--rate",
            "250.5",
            "--rounds",
            "3",
        ])
        .unwrap();
        assert_eq!(options.backend, Backend::Postgres);
        assert_eq!(options.concurrency, 64);
        assert_eq!(options.toss_delay, Duration::from_millis(300));
        assert_eq!(options.baselines, vec![Baseline::Database, Baseline::Toss]);
        assert!(matches!(options.amount, Amount::Flows(500)));
        assert_eq!(
            options.service_env,
            vec![
                ("APP_TOSS__MAX_CONCURRENCY".to_owned(), "64".to_owned()),
                ("RUST_LOG".to_owned(), "info".to_owned())
            ]
        );
        assert_eq!(options.rate, Some(250.5));
        assert_eq!(options.rounds, 3);

        let options = parse(&["--target", "http://127.0.0.1:8080/", "--api-key", "k"]).unwrap();
        assert_eq!(options.target.as_deref(), Some("http://127.0.0.1:8080"));
    }

    #[test]
    fn burst_defaults_to_a_thousand_confirms_without_baselines() {
        let options = parse(&["--scenario", "confirm-burst"]).unwrap();
        assert!(matches!(options.amount, Amount::Flows(1000)));
        assert!(options.baselines.is_empty());
        let options = parse(&["--scenario", "burst", "--flows", "10"]).unwrap();
        assert_eq!(options.scenario, Scenario::ConfirmBurst);
        assert!(matches!(options.amount, Amount::Flows(10)));
        assert!(
            parse(&["--baselines", "none"])
                .unwrap()
                .baselines
                .is_empty()
        );
    }

    #[test]
    fn side_by_side_takes_a_peer_and_defaults_to_2000_confirms_per_side() {
        let options = parse(&[
            "--scenario",
            "side-by-side",
            "--peer-url",
            "http://127.0.0.1:4000/confirm/payment",
            "--rounds",
            "4",
        ])
        .unwrap();
        assert_eq!(options.scenario, Scenario::SideBySide);
        assert!(matches!(options.amount, Amount::Flows(2000)));
        assert!(options.baselines.is_empty());
        assert_eq!(
            options.peer_url.as_deref(),
            Some("http://127.0.0.1:4000/confirm/payment")
        );
        assert_eq!(options.rounds, 4);
        assert_eq!(options.ceiling_secs, Duration::from_secs(5));
        let alone = parse(&[
            "--scenario",
            "side-by-side",
            "-n",
            "10",
            "--ceiling-secs",
            "0",
        ])
        .unwrap();
        assert_eq!(alone.peer_url, None);
        assert!(matches!(alone.amount, Amount::Flows(10)));
        assert!(alone.ceiling_secs.is_zero());
        let stray = parse(&["--peer-url", "http://127.0.0.1:4000/confirm/payment"]).unwrap_err();
        assert_eq!(stray.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn side_by_side_sweeps_connections_and_prefills_payments() {
        let options = parse(&[
            "--scenario",
            "side-by-side",
            "--database",
            "postgres",
            "--concurrency-sweep",
            "1, 16,64",
            "--prefill-payments",
            "1000000",
        ])
        .unwrap();
        assert_eq!(options.concurrency_sweep, vec![1, 16, 64]);
        assert_eq!(options.prefill_payments, 1_000_000);
        for bad in [["--concurrency-sweep", "1,0"], ["--concurrency-sweep", ","]] {
            let args = [&["--scenario", "side-by-side"][..], &bad[..]].concat();
            assert_eq!(parse(&args).unwrap_err().kind(), ErrorKind::ValueValidation);
        }
        for stray in [
            &["--concurrency-sweep", "1,16"][..],
            &["--prefill-payments", "5"][..],
            &["--scenario", "side-by-side", "--prefill-payments", "5"][..],
        ] {
            assert_eq!(
                parse(stray).unwrap_err().kind(),
                ErrorKind::ArgumentConflict,
                "{stray:?}"
            );
        }
    }

    #[test]
    fn reconcile_defaults_to_a_day_of_100000_transactions() {
        let options = parse(&["--scenario", "reconcile"]).unwrap();
        assert_eq!(options.scenario, Scenario::Reconcile);
        assert_eq!(options.transactions, 100_000);
        assert!(options.baselines.is_empty());
        assert_eq!(
            parse(&["--scenario", "reconcile", "--transactions", "5"])
                .unwrap()
                .transactions,
            5
        );
        assert!(parse(&["--transactions", "0"]).is_err());
    }

    #[test]
    fn renewal_day_defaults_to_100000_charges_on_two_instances() {
        let options = parse(&["--scenario", "renewal-day"]).unwrap();
        assert_eq!(options.scenario, Scenario::RenewalDay);
        assert_eq!(options.charges, 100_000);
        assert_eq!(options.instances, 2);
        assert_eq!(options.customers, 1000);
        assert_eq!(options.due_spread, Duration::from_secs(60));
        assert!(options.baselines.is_empty());
        let options = parse(&[
            "--scenario",
            "renewal-day",
            "--charges",
            "50",
            "--instances",
            "3",
            "--due-spread",
            "0",
        ])
        .unwrap();
        assert_eq!((options.charges, options.instances), (50, 3));
        assert_eq!(options.customers, 50, "one customer per charge below 1000");
        assert_eq!(options.due_spread, Duration::ZERO);
        assert_eq!(
            parse(&["--charges", "10", "--customers", "4"])
                .unwrap()
                .customers,
            4
        );
        assert!(parse(&["--instances", "0"]).is_err());
        assert!(parse(&["--charges", "0"]).is_err());
        assert!(parse(&["--customers", "0"]).is_err());
    }

    #[test]
    fn refuses_nonsense() {
        assert!(parse(&["--refund-share", "2"]).is_err());
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--pool", "0"]).is_err());
        assert!(parse(&["--flows", "0"]).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--duration", "-1"]).is_err());
        assert!(parse(&["--database", "mysql"]).is_err());
        assert!(parse(&["--baselines", "a,c"]).is_err());
        assert!(parse(&["--baselines", "b0"]).is_err());
        assert!(parse(&["--service-env", "NOVALUE"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        let without_key = parse(&["--target", "http://127.0.0.1:8080"]).unwrap_err();
        assert_eq!(without_key.kind(), ErrorKind::MissingRequiredArgument);
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
    }
}
