use std::process::ExitCode;

use anyhow::Context;
use payment_service::config::Settings;
use payment_service::startup::Application;
use payment_service::telemetry;
use rand::distr::{Alphanumeric, SampleString};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, without a backtrace, for whoever reads the deploy log. The errors that
            // reach here name the database without its user name or password (startup.rs).
            let message = format!("{error:#}").replace(['\n', '\r'], " ");
            eprintln!("payment-service: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let mut settings = Settings::load().context("loading configuration")?;
    telemetry::init(&settings.log);

    // Without configured keys, a fresh random one makes `cargo run` + Swagger UI's Authorize
    // button work out of the box. It is printed once, here, and never logged.
    let generated_key = settings.auth.api_keys.is_empty().then(|| {
        let key = format!("dev_{}", Alphanumeric.sample_string(&mut rand::rng(), 32));
        settings.auth.api_keys = vec![key.clone().into()];
        key
    });

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
        None => println!("  Authenticate with:  Authorization: Bearer <one of API_KEYS>"),
    }
    println!();
    app.run_until_stopped().await.context("serving")?;
    Ok(())
}
