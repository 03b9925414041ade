//! The console's pages (GET): the review queue, a payment's timeline (by id or order id),
//! reconciliation runs and their chart, scheduled charges due soon and exhausted.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use futures::StreamExt as _;
use serde::Deserialize;

use super::auth::SignedIn;
use super::chart::{self, Day};
use super::views::{CompareRow, Entry, Layout, compare, filters, timeline};
use super::{Console, Failure, render};
use crate::domain::reconciliation::{Discrepancy, ReconciliationRun, today_kst};
use crate::domain::{OrderId, Payment, Schedule};
use crate::error::{AppError, payment_id};

/// Flagged payments shown at once (each costs a read of Toss's record).
const QUEUE_PAGE: u64 = 20;
/// Runs whose discrepancies are listed, and days in the chart.
const RUNS_SHOWN: usize = 14;
/// Schedules due within this many hours count as "due soon".
const DUE_SOON_HOURS: i64 = 24;
const SCHEDULES_SHOWN: u64 = 100;

#[derive(Deserialize, Default)]
pub struct PageQuery {
    notice: Option<String>,
    order_id: Option<String>,
}

/// The line about what the last action did: only these fixed texts, never the query's own.
fn notice(query: &PageQuery) -> Option<&'static str> {
    match query.notice.as_deref()? {
        "resolved" => Some("검토를 마쳤습니다 / The review is resolved"),
        "run_started" => Some("대사를 시작했습니다 / The reconciliation run started"),
        _ => None,
    }
}

fn layout(signed_in: &SignedIn, query: &PageQuery) -> Layout {
    Layout {
        operator: signed_in.session.operator.clone(),
        csrf_token: signed_in.session.csrf_token.clone(),
        notice: notice(query),
    }
}

pub struct QueueItem {
    pub payment: Payment,
    pub rows: Vec<CompareRow>,
    /// Why Toss's record is not beside ours.
    pub toss_missing: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage {
    layout: Layout,
    items: Vec<QueueItem>,
    total: u64,
}

/// `GET /console/`: every payment set aside, our record beside Toss's current one.
pub async fn queue(
    State(console): State<Console>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Result<Response, Failure> {
    let (payments, total) = console
        .service
        .list(None, Some(true), QUEUE_PAGE, 0)
        .await?;
    // Toss is read for a few payments at a time, not one after another: a slow Toss slows the
    // page by a fraction, and the queue keeps its order.
    let items = futures::stream::iter(payments)
        .map(|payment| queue_item(&console, payment))
        .buffered(TOSS_READS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    Ok(render(
        StatusCode::OK,
        &QueuePage {
            layout: layout(&signed_in, &query),
            items,
            total,
        },
    ))
}

/// How many of the queue's payments have Toss's record read at the same time.
const TOSS_READS_AT_ONCE: usize = 4;

/// One set-aside payment with Toss's current record beside ours (or why it is not there).
async fn queue_item(console: &Console, payment: Payment) -> QueueItem {
    let record = console.service.reviewing().pg_record(&payment).await;
    let toss_missing = match &record {
        Ok(Some(_)) => None,
        Ok(None) => Some("토스에 기록이 없습니다 / Toss has no record of it"),
        Err(AppError::PgNotConfigured) => {
            Some("토스 키가 없습니다 / No Toss key is configured: Toss's record cannot be read")
        }
        Err(error) => {
            tracing::warn!(payment_id = %payment.id, %error, "console: Toss's record could not be read");
            Some("지금은 토스를 읽을 수 없습니다 / Toss could not be read just now")
        }
    };
    QueueItem {
        rows: record
            .ok()
            .flatten()
            .map_or_else(Vec::new, |record| compare(&payment, &record)),
        payment,
        toss_missing,
    }
}

#[derive(Template)]
#[template(path = "console/payment.html")]
struct PaymentPage<'a> {
    layout: Layout,
    /// What was looked for (`order_id`), to fill the search form again.
    searched: String,
    payment: Option<&'a Payment>,
    entries: Vec<Entry>,
}

async fn payment_page(
    console: &Console,
    signed_in: &SignedIn,
    query: &PageQuery,
    payment: Payment,
) -> Result<Response, Failure> {
    let service = &console.service;
    let attempts = service.attempts(payment.id).await?;
    let (_, refunds) = service.refunds(payment.id).await?;
    let events = service.events_of(payment.id).await?;
    let reviews = service.reviewing().reviews(payment.id).await?;
    Ok(render(
        StatusCode::OK,
        &PaymentPage {
            layout: layout(signed_in, query),
            searched: payment.order_id.to_string(),
            entries: timeline(&attempts, &refunds, &events, &reviews),
            payment: Some(&payment),
        },
    ))
}

/// `GET /console/payments/{payment_id}`: the payment and its timeline.
pub async fn payment(
    State(console): State<Console>,
    signed_in: SignedIn,
    Path(raw_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, Failure> {
    let payment = console.service.get(payment_id(&raw_id)?).await?;
    payment_page(&console, &signed_in, &query, payment).await
}

/// `GET /console/payments?order_id=`: the payment of an order and its timeline, or the search
/// form without an order id.
pub async fn payment_by_order(
    State(console): State<Console>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Result<Response, Failure> {
    let searched = query.order_id.as_deref().map(str::trim).unwrap_or_default();
    if searched.is_empty() {
        return Ok(render(
            StatusCode::OK,
            &PaymentPage {
                layout: layout(&signed_in, &query),
                searched: String::new(),
                payment: None,
                entries: Vec::new(),
            },
        ));
    }
    let order_id = OrderId::parse(searched).map_err(AppError::from)?;
    let payment = console.service.get_by_order(&order_id).await?;
    payment_page(&console, &signed_in, &query, payment).await
}

/// A run and what it found.
pub struct RunView<'a> {
    pub run: &'a ReconciliationRun,
    pub discrepancies: Vec<Discrepancy>,
}

#[derive(Template)]
#[template(path = "console/reconciliation.html")]
struct ReconciliationPage<'a> {
    layout: Layout,
    today: String,
    runs: Vec<RunView<'a>>,
    chart: String,
}

/// `GET /console/reconciliation`: the latest runs, what they found, the chart, the form.
pub async fn reconciliation(
    State(console): State<Console>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Result<Response, Failure> {
    let runs = console.reconciliation.runs(None).await?;
    let mut views = Vec::new();
    for run in runs.iter().take(RUNS_SHOWN) {
        views.push(RunView {
            run,
            discrepancies: console.reconciliation.discrepancies(run).await?,
        });
    }
    let mut days: Vec<Day> = runs
        .iter()
        .filter_map(|run| {
            run.summary.as_ref().map(|summary| Day {
                date: run.date,
                approved_krw: summary.approved_krw,
                refunded_krw: summary.cancelled_krw,
            })
        })
        .take(RUNS_SHOWN)
        .collect();
    days.reverse();
    Ok(render(
        StatusCode::OK,
        &ReconciliationPage {
            layout: layout(&signed_in, &query),
            today: today_kst(Utc::now()).to_string(),
            runs: views,
            chart: chart::svg(&days),
        },
    ))
}

#[derive(Template)]
#[template(path = "console/schedules.html")]
struct SchedulesPage {
    layout: Layout,
    hours: i64,
    due: Vec<Schedule>,
    exhausted: Vec<Schedule>,
}

/// `GET /console/schedules`: scheduled charges due within a day, and those that gave up.
pub async fn schedules(
    State(console): State<Console>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Result<Response, Failure> {
    let until = Utc::now() + chrono::Duration::hours(DUE_SOON_HOURS);
    let schedules = console.service.schedules();
    let due = schedules.schedules_due_by(until, SCHEDULES_SHOWN).await?;
    let exhausted = schedules.exhausted_schedules(SCHEDULES_SHOWN).await?;
    Ok(render(
        StatusCode::OK,
        &SchedulesPage {
            layout: layout(&signed_in, &query),
            hours: DUE_SOON_HOURS,
            due,
            exhausted,
        },
    ))
}
