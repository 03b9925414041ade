//! Reconciliation: our books checked against Toss's for one KST business day.
//!
//! A run streams Toss's transactions (`startingAfter` paging) and settlements (`page` paging)
//! page by page into staging tables, then compares them with our payments and refunds in SQL
//! (`Store::compare`): memory stays bounded by one page whatever the size of the day. Every
//! payment a discrepancy names is flagged for review (`PaymentUpdate::SetAside`), once per
//! discrepancy and date; the review route's `resync` then adopts Toss's record through
//! `adopt::decide`. There is one run per date: running a date again replaces its result.
//!
//! A flag is a note for a person, never a stop sign: a payment still in flight goes on being
//! settled (a virtual account is read back at once), and once its adopted record no longer
//! disagrees with what the run found, the flag is cleared, kept as a review by `system`
//! ([`clear_resolved_flag`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::domain::reconciliation::{
    Discrepancy, DiscrepancyKind, ReconciliationRun, RunSummary, RunTrigger, kst_day_bounds,
    today_kst,
};
use crate::domain::{PassId, Payment, PaymentId, PaymentStatus, PaymentUpdate, Refund, Review};
use crate::error::AppError;
use crate::gateway::Books;
use crate::store::{Claimed, Plan, Store, StoreError, Target};

/// Timing and paging of runs (`[reconciliation]` in the configuration).
#[derive(Debug, Clone)]
pub struct ReconciliationOptions {
    /// The daily schedule's time of day, KST; `None`: no schedule.
    pub daily_at: Option<NaiveTime>,
    pub check_interval: Duration,
    /// Rows per page of Toss's lists (1..=5000).
    pub page_size: u32,
    pub lease: Duration,
}

impl Default for ReconciliationOptions {
    fn default() -> Self {
        Self {
            daily_at: None,
            check_interval: Duration::from_secs(60),
            page_size: crate::gateway::books::MAX_PAGE,
            lease: Duration::from_secs(300),
        }
    }
}

/// Discrepancies read per query, when flagging and counting them.
const BATCH: u64 = 500;

#[derive(Clone)]
pub struct Reconciliation {
    store: Store,
    /// Toss's books, one per key set (merchant id) the service takes payments under: the
    /// payments key's, and the billing key's when billing runs under a key of its own. None
    /// without a Toss key (runs answer `PG_NOT_CONFIGURED`).
    books: Arc<[Arc<dyn Books>]>,
    settings: Arc<ReconciliationOptions>,
}

impl Reconciliation {
    pub fn new(store: Store, books: Vec<Arc<dyn Books>>, settings: ReconciliationOptions) -> Self {
        Self {
            store,
            books: books.into(),
            settings: Arc::new(settings),
        }
    }

    /// Starts a run of `date` and returns it at once (`RUNNING`); the pass goes on in the
    /// background. A date already running is returned as it is.
    pub async fn start(&self, date: NaiveDate) -> Result<ReconciliationRun, AppError> {
        self.start_from(date, RunTrigger::Api).await
    }

    /// [`start`](Self::start), recording where the run was asked for (the API, the console).
    pub async fn start_from(
        &self,
        date: NaiveDate,
        trigger: RunTrigger,
    ) -> Result<ReconciliationRun, AppError> {
        let claimed = self.claim(date, trigger).await?;
        if let Some(pass) = claimed.pass {
            let this = self.clone();
            let run = claimed.run.clone();
            tokio::spawn(async move { this.carry_out(&run, &pass).await });
        }
        Ok(claimed.run)
    }

    /// Runs `date` to its end and returns the run as it ended (the command line and the daily
    /// schedule). A date another instance is running: `INVALID_STATE`.
    pub async fn run_now(
        &self,
        date: NaiveDate,
        trigger: RunTrigger,
    ) -> Result<ReconciliationRun, AppError> {
        let claimed = self.claim(date, trigger).await?;
        let Some(pass) = claimed.pass else {
            return Err(AppError::InvalidState(format!(
                "the run of {date} is in progress elsewhere; look again later"
            )));
        };
        self.carry_out(&claimed.run, &pass).await;
        self.store
            .run(&claimed.run.id)
            .await?
            .ok_or_else(|| AppError::Internal("the run vanished".to_owned()))
    }

    async fn claim(&self, date: NaiveDate, trigger: RunTrigger) -> Result<Claimed, AppError> {
        let now = Utc::now();
        if date > today_kst(now) {
            return Err(AppError::unprocessable(format!(
                "date: {date} is after today in Korea ({})",
                today_kst(now)
            )));
        }
        if self.books.is_empty() {
            return Err(AppError::PgNotConfigured);
        }
        let claimed = self
            .store
            .claim_run(date, trigger, now, now + self.settings.lease)
            .await?;
        if claimed.pass.is_some() {
            tracing::info!(run_id = %claimed.run.id, %date, trigger = trigger.as_str(), "reconciliation.started");
        }
        Ok(claimed)
    }

    pub async fn run(&self, id: &str) -> Result<ReconciliationRun, AppError> {
        let found = match id.parse() {
            Ok(id) => self.store.run(&id).await?,
            Err(_) => None,
        };
        found.ok_or_else(|| AppError::NotFound("no such reconciliation run".to_owned()))
    }

    /// The run of `date`, or the latest runs (newest date first) without one.
    pub async fn runs(&self, date: Option<NaiveDate>) -> Result<Vec<ReconciliationRun>, AppError> {
        Ok(match date {
            Some(date) => self.store.run_of_date(date).await?.into_iter().collect(),
            None => self.store.runs(31).await?,
        })
    }

    /// What a finished run found (nothing while it runs or after it failed).
    pub async fn discrepancies(
        &self,
        run: &ReconciliationRun,
    ) -> Result<Vec<Discrepancy>, AppError> {
        if run.summary.is_none() {
            return Ok(Vec::new());
        }
        let all = self
            .store
            .discrepancies(&run.id, 0, i64::MAX as u64)
            .await?;
        Ok(all.into_iter().map(|stored| stored.discrepancy).collect())
    }

    /// One pass of a run, to its end: `COMPLETED` with the summary, or `FAILED` with why.
    async fn carry_out(&self, run: &ReconciliationRun, pass: &PassId) {
        let started = Instant::now();
        let outcome = self.pass(run, pass).await;
        let finished = self
            .store
            .finish_run(
                &run.id,
                pass,
                outcome.as_ref().map_err(String::as_str),
                Utc::now(),
            )
            .await
            .map_err(|error| error.to_string());
        // Its pages are of no use to anyone any more.
        if let Err(error) = self.store.clear_staging(Some(pass)).await {
            tracing::warn!(run_id = %run.id, error = %error, "reconciliation: staging not cleared");
        }
        let elapsed = started.elapsed().as_secs_f64();
        let status = match (&outcome, &finished) {
            (_, Ok(false)) => "superseded",
            (Ok(_), Ok(true)) => "completed",
            _ => "failed",
        };
        metrics::counter!("reconciliation_runs_total", "status" => status).increment(1);
        metrics::histogram!("reconciliation_run_duration_seconds").record(elapsed);
        match (outcome, finished) {
            (Ok(summary), Ok(true)) => tracing::info!(
                run_id = %run.id,
                date = %run.date,
                toss_transactions = summary.toss_transactions,
                matched = summary.matched,
                discrepancies = summary.discrepancies,
                approved_krw = summary.approved_krw,
                cancelled_krw = summary.cancelled_krw,
                fees_krw = summary.fees_krw,
                payout_krw = summary.payout_krw,
                elapsed_secs = elapsed,
                "reconciliation.completed"
            ),
            (_, Ok(false)) => {
                tracing::warn!(run_id = %run.id, date = %run.date, "reconciliation: another start took this run over")
            }
            (Err(error), _) | (Ok(_), Err(error)) => {
                tracing::error!(run_id = %run.id, date = %run.date, %error, "reconciliation.failed")
            }
        }
    }

    /// Reads Toss's lists (of every key set) into the staging tables, compares, flags.
    async fn pass(&self, run: &ReconciliationRun, pass: &PassId) -> Result<RunSummary, String> {
        let database = |error: StoreError| format!("the database could not be used: {error}");
        // Pages of passes that died with their instance.
        self.store.clear_staging(None).await.map_err(database)?;
        let date = run.date;
        let size = self.settings.page_size;
        let full = usize::try_from(size).unwrap_or(usize::MAX);
        // Toss's lists can only show what happened before they were read: our records completed
        // since are not judged by this pass (the next run of the date judges them).
        let read_from = Utc::now();

        for books in self.books.iter() {
            let mut after: Option<String> = None;
            loop {
                let page = books
                    .transactions(date, after.as_deref(), size)
                    .await
                    .map_err(|error| format!("Toss's transactions could not be read: {error}"))?;
                self.store
                    .stage_transactions(pass, &page)
                    .await
                    .map_err(database)?;
                self.keep_lease(run, pass).await?;
                let last = page.last().map(|row| row.transaction_key.clone());
                if page.len() < full || last.is_none() {
                    break;
                }
                if last == after {
                    return Err("Toss's transactions did not move past startingAfter".to_owned());
                }
                after = last;
            }
        }

        // Settlement rows are numbered across the key sets' lists.
        let mut staged: i64 = 0;
        for books in self.books.iter() {
            let mut page_number = 1u32;
            loop {
                let page = books
                    .settlements(date, page_number, size)
                    .await
                    .map_err(|error| format!("Toss's settlements could not be read: {error}"))?;
                self.store
                    .stage_settlements(pass, staged, &page)
                    .await
                    .map_err(database)?;
                staged += i64::try_from(page.len()).unwrap_or(i64::MAX);
                self.keep_lease(run, pass).await?;
                if page.len() < full {
                    break;
                }
                page_number = page_number
                    .checked_add(1)
                    .ok_or_else(|| "Toss's settlements have no end".to_owned())?;
            }
        }

        let (from, to) = kst_day_bounds(date);
        let summary = self
            .store
            .compare(&run.id, pass, date, (from, to.min(read_from)))
            .await
            .map_err(database)?
            .ok_or_else(|| "another start took this run over".to_owned())?;
        self.flag(run, date).await.map_err(database)?;
        self.clear_dropped_flags(date).await.map_err(database)?;
        Ok(summary)
    }

    async fn keep_lease(&self, run: &ReconciliationRun, pass: &PassId) -> Result<(), String> {
        let until = Utc::now() + self.settings.lease;
        match self.store.renew_run(&run.id, pass, until).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("another start took this run over".to_owned()),
            Err(error) => Err(format!("the database could not be used: {error}")),
        }
    }

    /// Sets aside every payment a discrepancy names, once per discrepancy and date (a re-run
    /// flags nothing twice, and a dismissed flag stays dismissed); counts them by kind.
    async fn flag(&self, run: &ReconciliationRun, date: NaiveDate) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut after = 0;
        loop {
            let page = self.store.discrepancies(&run.id, after, BATCH).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for stored in page {
                let found = &stored.discrepancy;
                metrics::counter!("reconciliation_discrepancies_total", "kind" => found.kind.as_str())
                    .increment(1);
                let Some(payment_id) = found
                    .payment_id
                    .as_deref()
                    .and_then(|id| id.parse::<PaymentId>().ok())
                else {
                    continue;
                };
                let key = format!(
                    "{}:{}:{}",
                    found.kind.as_str(),
                    found.transaction_key.as_deref().unwrap_or("-"),
                    payment_id
                );
                if !self.store.claim_flag(date, &key, now).await? {
                    continue;
                }
                // One conditional write (under the row's lock): a payment flagged already keeps
                // its flag, and the claim goes back, so this discrepancy may flag it once that
                // flag is gone.
                let set_aside = PaymentUpdate::SetAside {
                    reason: reason(date, found),
                };
                let adopted = self
                    .store
                    .adopt(payment_id, |payment, _| {
                        let plan = (!payment.needs_review)
                            .then(|| Plan::payment(set_aside.applied_to(payment, now)));
                        let applied = plan.is_some();
                        (plan, applied)
                    })
                    .await?;
                let Some((flagged, refunds, true)) = adopted else {
                    self.store.release_flag(date, &key).await?;
                    continue;
                };
                tracing::warn!(%payment_id, %date, kind = found.kind.as_str(), "reconciliation: payment set aside for review");
                let in_flight = match flagged.status {
                    PaymentStatus::InProgress => true,
                    PaymentStatus::WaitingForDeposit => flagged.cancel_reason.is_none(),
                    PaymentStatus::Pending
                    | PaymentStatus::Completed
                    | PaymentStatus::PartialRefund
                    | PaymentStatus::Refunded
                    | PaymentStatus::Failed
                    | PaymentStatus::Cancelled => false,
                };
                if in_flight {
                    // Toss's books show it decided (an approval whose reply or callback was
                    // lost): read it back now rather than at the pace of retries or deposits.
                    // Toss's record being decided, nothing is sent again by it.
                    let now = PaymentUpdate::Reschedule {
                        at: Utc::now(),
                        secret: None,
                    };
                    self.store
                        .update_payment(Target::attempt(&flagged), &now, None)
                        .await?;
                }
                // Settled meanwhile (the comparison saw it in flight)? Then the flag goes.
                clear_resolved_flag(&self.store, &flagged, &refunds).await?;
            }
        }
        Ok(())
    }

    /// Clears the flags an earlier pass of `date` set whose discrepancy this pass no longer
    /// finds (Toss's books and ours agree now), each kept as a review by `system`.
    async fn clear_dropped_flags(&self, date: NaiveDate) -> Result<(), StoreError> {
        let mut after = None;
        loop {
            let page = self.store.flagged_by_run_of(date, after, BATCH).await?;
            let Some(last) = page.last() else { break };
            after = Some(*last);
            for payment_id in page {
                let Some(payment) = self.store.payment(payment_id).await? else {
                    continue;
                };
                let refunds = self.store.refunds_of(payment_id).await?;
                clear_resolved_flag(&self.store, &payment, &refunds).await?;
            }
        }
        Ok(())
    }

    /// Runs the daily schedule until `stop`: from `daily_at` (KST) on each day, the previous
    /// day is run by the first instance whose claim the database accepts.
    pub async fn schedule(self, stop: CancellationToken) {
        let Some(daily_at) = self.settings.daily_at else {
            return;
        };
        tracing::info!(daily_at = %daily_at.format("%H:%M"), "reconciliation: daily schedule (KST)");
        loop {
            if let Some(date) = due(Utc::now(), daily_at) {
                match self.store.claim_schedule(date, Utc::now()).await {
                    // Shutting down abandons the pass: its lease runs out and the next start of
                    // the date takes it over.
                    Ok(true) => tokio::select! {
                        () = stop.cancelled() => return,
                        ended = self.run_now(date, RunTrigger::Schedule) => match ended {
                            Ok(run) => tracing::info!(run_id = %run.id, %date, status = run.status.as_str(), "reconciliation: scheduled run ended"),
                            Err(error) => tracing::error!(%date, %error, "reconciliation: scheduled run could not start"),
                        },
                    },
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%date, %error, "reconciliation: schedule not claimed")
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.settings.check_interval) => {}
            }
        }
    }
}

/// The day the schedule should have run by `now`: yesterday (KST) once today's `daily_at`
/// has passed, else nothing yet.
fn due(now: DateTime<Utc>, daily_at: NaiveTime) -> Option<NaiveDate> {
    let local = now.with_timezone(&crate::domain::reconciliation::kst());
    (local.time() >= daily_at).then(|| local.date_naive().pred_opt())?
}

/// The date of the run that flagged a payment with `reason` (as [`reason`] writes it).
fn flag_date(reason: &str) -> Option<NaiveDate> {
    let rest = reason.strip_prefix("reconciliation of ")?;
    NaiveDate::parse_from_str(rest.get(..10)?, "%Y-%m-%d").ok()
}

/// Clears `payment`'s review flag when a reconciliation run set it and nothing that run found
/// about the payment holds any more against it and its `refunds` as they are now (say, the
/// run saw Toss's approval while the payment was `IN_PROGRESS`, and the read-back since adopted
/// it). The clearing is kept as a review (`resync` by `system`). A flag set for anything else,
/// or since, stays. Returns the payment as cleared.
pub(crate) async fn clear_resolved_flag(
    store: &Store,
    payment: &Payment,
    refunds: &[Refund],
) -> Result<Option<Payment>, StoreError> {
    let Some(reason) = payment
        .review_reason
        .as_deref()
        .filter(|_| payment.needs_review)
    else {
        return Ok(None);
    };
    let Some(date) = flag_date(reason) else {
        return Ok(None);
    };
    // Only a reason a run wrote, whole: another note joined to it (Toss's tax-free amount taken)
    // asks a person to look whatever the books say.
    if !is_run_reason(reason) {
        return Ok(None);
    }
    let Some(run) = store.run_of_date(date).await? else {
        return Ok(None);
    };
    let found = store.discrepancies_naming(&run.id, payment.id).await?;
    if found.iter().any(|d| d.holds(payment, refunds)) {
        return Ok(None);
    }
    // Each pass replaces the run's discrepancies whole: one the latest comparison no longer
    // lists was resolved, and its flag goes too.
    let flagged_by = found.iter().find(|d| self::reason(date, d) == reason);
    let what = match flagged_by {
        Some(found) => format!(
            "Toss's record, adopted since, agrees with what reconciliation of {date} found \
             ({} of transaction {})",
            found.kind.as_str(),
            found.transaction_key.as_deref().unwrap_or("-"),
        ),
        None => format!("reconciliation of {date}, run again, no longer finds what it flagged"),
    };
    let review = Review {
        id: uuid::Uuid::now_v7().to_string(),
        payment_id: payment.id,
        action: super::review::ReviewAction::Resync.as_str().to_owned(),
        note: format!("cleared by the service: {what}"),
        reviewer: "system".to_owned(),
        outcome: format!(
            "flag cleared: {} with {} KRW refunded",
            payment.status, payment.refunded_amount_krw
        ),
        created_at: Utc::now(),
        requested_by: crate::domain::Actor::system(),
    };
    let cleared = store
        .clear_review(payment.id, Some(reason), &review)
        .await?;
    if cleared.is_some() {
        tracing::info!(payment_id = %payment.id, %date, "reconciliation: flag cleared, the payment no longer disagrees");
    }
    Ok(cleared)
}

/// Whether `reason` is one [`reason`] writes, with nothing joined to it.
fn is_run_reason(reason: &str) -> bool {
    let Some((_, rest)) = reason.split_once(": ") else {
        return false;
    };
    let Some((kind, what)) = rest.split_once(" (") else {
        return false;
    };
    kind.parse::<DiscrepancyKind>().is_ok()
        && what.ends_with(')')
        && !what[..what.len() - 1].contains(')')
}

fn reason(date: NaiveDate, found: &Discrepancy) -> String {
    let what = match found.kind {
        DiscrepancyKind::MissingHere => "Toss has a transaction this service has no record of",
        DiscrepancyKind::MissingAtToss => "Toss has no transaction for this completed record",
        DiscrepancyKind::AmountMismatch => "Toss's amount differs from ours",
        DiscrepancyKind::StatusMismatch => "Toss's status differs from ours",
    };
    format!(
        "reconciliation of {date}: {} ({what}; transaction {})",
        found.kind.as_str(),
        found.transaction_key.as_deref().unwrap_or("-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_flags_reason_names_its_runs_date() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let found = Discrepancy {
            kind: DiscrepancyKind::StatusMismatch,
            order_id: Some("order-1".into()),
            payment_key: Some("pk_1".into()),
            transaction_key: Some("tx_1".into()),
            payment_id: None,
            ours: None,
            theirs: None,
        };
        assert_eq!(flag_date(&reason(date, &found)), Some(date));
        assert_eq!(
            flag_date("Toss's totalAmount 100 differs from ours 10000"),
            None
        );
        assert_eq!(flag_date("reconciliation of yesterday"), None);
        assert!(is_run_reason(&reason(date, &found)));
        let joined = format!(
            "{}; Toss's taxFreeAmount 1500 differs from ours 1000; Toss's was taken",
            reason(date, &found)
        );
        assert!(
            !is_run_reason(&joined),
            "a note joined to a run's reason stays"
        );
    }

    #[test]
    fn the_schedule_runs_yesterday_once_daily_at_has_passed_in_korea() {
        let four = NaiveTime::from_hms_opt(4, 0, 0).unwrap();
        // 18:59 UTC = 03:59 KST on 2026-12-01.
        let before = Utc.with_ymd_and_hms(2026, 11, 30, 18, 59, 0).unwrap();
        assert_eq!(due(before, four), None);
        let after = Utc.with_ymd_and_hms(2026, 11, 30, 19, 0, 0).unwrap();
        assert_eq!(due(after, four), NaiveDate::from_ymd_opt(2026, 11, 30));
    }
}
