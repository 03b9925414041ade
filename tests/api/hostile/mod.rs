//! Issue 5, property-based: generated bodies, headers, query strings, path ids and methods are
//! thrown at every route of one running application (per database). Every answer is below 500,
//! every 4xx is a complete problem document, and a refused request changes nothing: neither the
//! database (compared row by row, every column) nor what the fake Toss received.
//!
//! Generated values lean towards trouble: oversize and negative numbers, `-0`, floats, huge digit
//! strings, control and bidi characters, emoji, 12 KB strings, SQL and HTML metacharacters,
//! duplicated JSON keys, wrong types, nested values, raw non-JSON bodies, odd content types,
//! API keys right and wrong, `Idempotency-Key`s valid and not, and percent-encoded garbage in
//! paths and queries. Some values are the real ids, order ids, payment keys and amounts, so that
//! requests also get past validation and reach the payment logic; the few that legitimately
//! change state (a 2xx on a route that may change it, or a declined confirm) are accounted for.
//!
//! A NUL (U+0000) is put into strings of bodies and query parameters and into path segments on
//! every route (PostgreSQL's text cannot hold one), and such requests must be refused.
//!
//! Cases: `HOSTILE_CASES` (default 300) per database; `PROPTEST_RNG_SEED` makes a run repeatable;
//! `HOSTILE_VERBOSE=1` prints every request and answer. With `--nocapture` the test prints how
//! many answers of each (route, status, code) it saw, to judge how deep the cases reach.

mod findings;
mod generators;
mod known;
mod problems;
mod property;
mod request;
pub mod snapshot;

use std::sync::Arc;
use std::time::Instant;

use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use sea_orm::Database;

use generators::any_request;
use known::Known;
use property::Context;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_databases;

on_both_databases!(generated_hostile_requests_are_problems_and_change_nothing);

// ---------------------------------------------------------------------------------------------
// The scenario.

async fn generated_hostile_requests_are_problems_and_change_nothing(backend: Backend) {
    let started = Instant::now();
    let app = spawn_app(backend).await;
    let known = Arc::new(Known::create(&app).await);
    let db = Database::connect(&app.database_url)
        .await
        .expect("connect to the test database");
    let context = Context {
        app: &app,
        db: &db,
        seen: Default::default(),
    };

    let cases = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let config = Config {
        cases,
        failure_persistence: None,
        fork: false,
        timeout: 0,
        max_shrink_iters: 400,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let strategy = any_request(&known);
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(config);
        runner.run(&strategy, |request| {
            handle
                .block_on(context.check(&request))
                .map_err(TestCaseError::fail)
        })
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, request)) => panic!(
            "{backend:?}: a generated request broke the contract.\n\
             minimal failing request:\n{request:?}\n\
             what went wrong:\n{reason}"
        ),
        Err(TestError::Abort(reason)) => panic!("{backend:?}: proptest aborted: {reason}"),
    }
    eprintln!(
        "hostile ({backend:?}): {cases} generated requests in {:.1} s; answers: {:#?}",
        started.elapsed().as_secs_f64(),
        context.seen.lock().unwrap()
    );
    let _ = db.close().await;
    app.stop().await;
}
