//! Latencies and errors, kept per worker and merged at the end (no shared lock on the hot path).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// One kind of step: a request (`create`, `confirm`, `refund`), a database transaction, or a
/// whole flow. Latencies in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u32>);

impl Samples {
    pub fn push(&mut self, elapsed: Duration) {
        self.0
            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        Summary {
            count: sorted.len() as u64,
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

/// Nearest-rank percentile of sorted samples (0 when there are none).
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: u64,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub max: u32,
}

impl Summary {
    pub fn to_json(self) -> Value {
        json!({
            "count": self.count,
            "p50_ms": ms(self.p50),
            "p90_ms": ms(self.p90),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        })
    }
}

pub fn ms(micros: u32) -> f64 {
    (f64::from(micros) / 10.0).round() / 100.0
}

/// What one worker saw; merged into one for the report.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    /// Step name -> latencies, in the order steps were first seen.
    steps: Vec<(&'static str, Samples)>,
    pub flow: Samples,
    pub flows_ok: u64,
    pub flows_failed: u64,
    pub requests: u64,
    /// "step status code" -> count.
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn step(&mut self, name: &'static str, elapsed: Duration) {
        self.requests += 1;
        match self.steps.iter_mut().find(|(n, _)| *n == name) {
            Some((_, samples)) => samples.push(elapsed),
            None => {
                let mut samples = Samples::default();
                samples.push(elapsed);
                self.steps.push((name, samples));
            }
        }
    }

    pub fn error(&mut self, what: String) {
        self.requests += 1;
        *self.errors.entry(what).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        for (name, samples) in other.steps {
            match self.steps.iter_mut().find(|(n, _)| *n == name) {
                Some((_, mine)) => mine.merge(samples),
                None => self.steps.push((name, samples)),
            }
        }
        self.flow.merge(other.flow);
        self.flows_ok += other.flows_ok;
        self.flows_failed += other.flows_failed;
        self.requests += other.requests;
        for (what, count) in other.errors {
            *self.errors.entry(what).or_default() += count;
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn steps(&self) -> impl Iterator<Item = (&'static str, Summary)> + '_ {
        self.steps.iter().map(|(name, s)| (*name, s.summary()))
    }
}

/// A measured phase: what was recorded, over how long.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub recorder: Recorder,
    pub elapsed: Duration,
    /// Flows started, warm-up and failed ones included (what the database saw).
    pub attempted: u64,
}

impl Phase {
    pub fn flows_per_sec(&self) -> f64 {
        self.recorder.flows_ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn requests_per_sec(&self) -> f64 {
        self.recorder.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// p99 of each request kind, then of the whole flow, in ms.
    pub fn p99_ms(&self) -> Vec<(String, f64)> {
        let flow = self.recorder.flow.summary();
        self.recorder
            .steps()
            .chain(std::iter::once(("flow", flow)))
            .map(|(name, s)| (name.to_owned(), ms(s.p99)))
            .collect()
    }

    pub fn print(&self) {
        let r = &self.recorder;
        println!(
            "  {:<24} {:>8} flows in {:>6.2} s = {:>9.1} flows/s, {:>9.1} steps/s, errors {}",
            self.name,
            r.flows_ok,
            self.elapsed.as_secs_f64(),
            self.flows_per_sec(),
            self.requests_per_sec(),
            r.error_count()
        );
        println!(
            "    {:<22} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "max"
        );
        let flow = r.flow.summary();
        for (name, s) in r.steps().chain(std::iter::once(("flow", flow))) {
            println!(
                "    {:<22} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                name,
                s.count,
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.max)
            );
        }
        for (what, count) in &r.errors {
            println!("    error {what}: {count}");
        }
    }

    pub fn to_json(&self) -> Value {
        let r = &self.recorder;
        let steps: serde_json::Map<String, Value> = r
            .steps()
            .map(|(name, s)| (name.to_owned(), s.to_json()))
            .collect();
        json!({
            "name": self.name,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "flows": r.flows_ok,
            "flows_failed": r.flows_failed,
            "flows_per_s": self.flows_per_sec(),
            "steps_per_s": self.requests_per_sec(),
            "flow_latency": r.flow.summary().to_json(),
            "steps": steps,
            "errors": r.errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 99.0), 99);
        assert_eq!(percentile(&sorted, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Recorder::default();
        a.step("create", Duration::from_millis(1));
        a.error("confirm 503 SERVICE_UNAVAILABLE".to_owned());
        let mut b = Recorder::default();
        b.step("create", Duration::from_millis(3));
        b.step("confirm", Duration::from_millis(2));
        b.error("confirm 503 SERVICE_UNAVAILABLE".to_owned());
        a.merge(b);
        assert_eq!(a.requests, 5);
        assert_eq!(a.error_count(), 2);
        let steps: Vec<_> = a.steps().map(|(n, s)| (n, s.count)).collect();
        assert_eq!(steps, vec![("create", 2), ("confirm", 1)]);
    }
}
