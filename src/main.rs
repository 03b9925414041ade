use std::process::ExitCode;

use anyhow::Context;
use payment_service::config::Settings;
use payment_service::startup::{self, Application};
use payment_service::telemetry;
use rand::distr::{Alphanumeric, SampleString};

const USAGE: &str = "usage: payment-service                           serve the API
       payment-service reconcile --date YYYY-MM-DD   check one KST day against Toss's books
                                                     (exit 0: all matched, 1: discrepancies, 2: failed)
       payment-service reseal [--batch-size N]       re-seal stored billing keys and refund accounts
                                                     under the newest BILLING_KEY_ENCRYPTION_KEY
                                                     (exit 0: all current, 1: some unreadable, 2: failed)
       payment-service operator hash                 read a console operator's password on stdin and
                                                     print its argon2id hash for OPERATORS_FILE";

/// Rows `reseal` reads and rewrites at a time, unless `--batch-size` says otherwise.
const RESEAL_BATCH: u64 = 200;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("reconcile") => return reconcile(&args[1..]).await,
        Some("reseal") => return reseal(&args[1..]).await,
        Some("operator") if args[1..] == ["hash"] => {
            let mut out = std::io::stdout();
            return command_exit(
                "operator hash",
                startup::operator_hash_command(&mut std::io::stdin().lock(), &mut out),
            );
        }
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, without a backtrace, for whoever reads the deploy log. The errors that
            // reach here name the database without its user name or password (startup.rs).
            eprintln!("payment-service: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// `reconcile --date YYYY-MM-DD`: the summary on stdout, the exit code says what it found.
async fn reconcile(args: &[String]) -> ExitCode {
    let Some(date) = flag(args, "--date") else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    command("reconcile", |settings| async move {
        startup::reconcile_command(settings, date, &mut std::io::stdout()).await
    })
    .await
}

/// `reseal [--batch-size N]`: the counts on stdout, the exit code says whether every sealed
/// value is now under the newest key.
async fn reseal(args: &[String]) -> ExitCode {
    let batch = match args {
        [] => Some(RESEAL_BATCH),
        _ => flag(args, "--batch-size").and_then(|size| size.parse().ok()),
    };
    let Some(batch) = batch.filter(|size| (1..=10_000).contains(size)) else {
        eprintln!("{USAGE}\n(--batch-size: 1 to 10000)");
        return ExitCode::from(2);
    };
    command("reseal", |settings| async move {
        startup::reseal_command(settings, batch, &mut std::io::stdout()).await
    })
    .await
}

/// The value of the only argument, `name value` or `name=value`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    match args {
        [flag, value] if flag == name => Some(value),
        [flag] => flag.strip_prefix(name)?.strip_prefix('='),
        _ => None,
    }
}

/// Runs command `name` with its configuration, and logging started and held until it ends
/// (which sends its spans); exit 2 after saying why the configuration did not load.
async fn command<F: Future<Output = anyhow::Result<u8>>>(
    name: &str,
    run: impl FnOnce(Settings) -> F,
) -> ExitCode {
    let settings = match Settings::load().context("loading configuration") {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("payment-service: {error:#}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = telemetry::init(&settings.log);
    command_exit(name, run(settings).await)
}

/// A command's exit code: its own, or 2 after one line saying why it failed.
fn command_exit(command: &str, result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("payment-service {command}: {}", one_line(&error));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, for whoever reads the deploy log.
fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}").replace(['\n', '\r'], " ")
}

async fn run() -> anyhow::Result<()> {
    let mut settings = Settings::load().context("loading configuration")?;
    // Held until the server has stopped; dropping it sends the spans still buffered.
    let telemetry = telemetry::init(&settings.log);

    // Without configured keys, a fresh random one makes `cargo run` + Swagger UI's Authorize
    // button work out of the box. It is printed once, here, and never logged. Not in
    // production, which refuses to start without keys.
    let no_keys = settings.auth.api_keys.is_empty() && settings.auth.api_keys_file().is_none();
    let generated_key = (no_keys && !settings.is_production()).then(|| {
        let key = format!("dev_{}", Alphanumeric.sample_string(&mut rand::rng(), 32));
        settings.auth.api_keys = vec![key.clone().into()];
        key
    });

    let has_keys_file = settings.auth.api_keys_file().is_some();
    let app = Application::build(settings).await.context("cannot start")?;
    let base = format!("http://{}", app.local_addr());
    println!();
    println!("  payment-service is listening on {base}");
    println!("  Swagger UI:   {base}/swagger-ui/");
    println!("  OpenAPI:      {base}/openapi.json");
    match &generated_key {
        Some(key) => {
            println!("  API key (generated for this run; set API_KEYS to choose your own):");
            println!("      {key}");
            println!("  Authenticate with the header:  Authorization: Bearer {key}");
            println!("  (in Swagger UI: click Authorize and paste the key)");
        }
        None if has_keys_file => println!(
            "  Authenticate with:  Authorization: Bearer <one of API_KEYS or of API_KEYS_FILE's keys>"
        ),
        None => println!("  Authenticate with:  Authorization: Bearer <one of API_KEYS>"),
    }
    println!();
    let served = app.run_until_stopped().await.context("serving");
    // Off the runtime's worker: the exporter blocks until the last batch is sent.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    served
}
