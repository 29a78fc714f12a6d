//! Steps waiting for a dependency, as this worker sees them: a step whose attempt failed with
//! an outage and will be tried again is waiting until an attempt succeeds or fails for good.
//! The worker exports it as `apex_ingest_waiting{dependency}` (how many steps wait) and
//! `apex_ingest_waiting_seconds{dependency}` (the longest wait, from the step's first
//! schedule), refreshed every few seconds.
//!
//! The next attempt may run on another worker replica; an entry therefore lapses a while
//! after the retry was due, so a step is not counted forever by a worker that never sees it
//! again. Summing the gauge over replicas may count a step twice for that while.
//!
//! When a step of a dependency succeeds, the dependency answers again: the steps this worker
//! saw waiting for it with their next attempt still far off are handed out to be woken
//! ([`Waiting::succeeded`], [`super::wake`]), once each, so a backlog does not sit out the
//! rest of its backoff after the outage ended.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use apex_ingestion::steps::DEPENDENCIES;

/// How long after its retry was due an entry lapses unless refreshed.
const LAPSE: Duration = Duration::from_secs(90);

/// A step whose next attempt is due sooner than this is not worth waking.
pub const WAKE_AFTER: Duration = Duration::from_secs(2);

/// The activity execution a waiting step is, to wake it through Temporal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    pub workflow_id: String,
    pub run_id: String,
    pub activity_id: String,
}

#[derive(Debug, Clone)]
struct Entry {
    dependency: &'static str,
    since: SystemTime,
    /// When its next attempt is due.
    due: Instant,
    until: Instant,
    /// Taken when it is woken; `None` from the start for a step that must not be (one
    /// whose attempts are counted: waking restarts the count).
    wake: Option<StepRef>,
}

/// One dependency's waiting steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waits {
    pub steps: u64,
    pub longest: Duration,
}

/// The steps waiting, by `<workflow run>/<activity id>` (cheap to clone, shared).
#[derive(Debug, Clone, Default)]
pub struct Waiting {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The step `key` failed waiting for `dependency`, first scheduled at `since`; it is
    /// retried in `retry_in`. `wake` is the step to wake when the dependency answers again
    /// before then (`None`: leave it to its backoff).
    pub fn failed(
        &self,
        key: String,
        dependency: &'static str,
        since: SystemTime,
        retry_in: Duration,
        wake: Option<StepRef>,
    ) {
        let due = Instant::now() + retry_in;
        self.lock().insert(
            key,
            Entry {
                dependency,
                since,
                due,
                until: due + LAPSE,
                wake,
            },
        );
    }

    /// The step `key` failed for good.
    pub fn done(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The step `key`, a step of `dependency`, succeeded: the dependency answers again. Its
    /// entry goes; the steps still waiting for it whose next attempt is more than
    /// [`WAKE_AFTER`] away are returned to be woken, each only once per failed attempt.
    pub fn succeeded(&self, key: &str, dependency: &'static str) -> Vec<StepRef> {
        let mut entries = self.lock();
        entries.remove(key);
        let soon = Instant::now() + WAKE_AFTER;
        entries
            .values_mut()
            .filter(|e| e.dependency == dependency && e.due > soon)
            .filter_map(|e| e.wake.take())
            .collect()
    }

    /// Every dependency (also those nothing waits for, at zero), with lapsed entries dropped.
    pub fn snapshot(&self, now: SystemTime) -> BTreeMap<&'static str, Waits> {
        let mut out: BTreeMap<&'static str, Waits> = DEPENDENCIES
            .iter()
            .map(|d| (*d, Waits::default()))
            .collect();
        let mut entries = self.lock();
        let instant = Instant::now();
        entries.retain(|_, e| e.until > instant);
        for e in entries.values() {
            let w = out.entry(e.dependency).or_default();
            w.steps += 1;
            w.longest = w
                .longest
                .max(now.duration_since(e.since).unwrap_or_default());
        }
        out
    }
}

/// How often the gauges are refreshed.
const REFRESH: Duration = Duration::from_secs(5);

/// Exports `waiting` on `meter` (the worker's Prometheus exporter) until the process ends:
/// `apex_ingest_waiting{dependency}` and `apex_ingest_waiting_seconds{dependency}`.
pub fn export(
    waiting: Waiting,
    meter: Arc<dyn temporalio_common::telemetry::metrics::CoreMeter>,
) -> tokio::task::JoinHandle<()> {
    use temporalio_common::telemetry::metrics::{MetricKeyValue, MetricParameters, NewAttributes};
    let steps = meter.gauge(
        MetricParameters::builder()
            .name("apex_ingest_waiting")
            .description("Steps whose last attempt failed with an outage and that will be tried again, by dependency")
            .build(),
    );
    let longest = meter.gauge_f64(
        MetricParameters::builder()
            .name("apex_ingest_waiting_seconds")
            .description(
                "The longest of those waits, from the step's first schedule, by dependency",
            )
            .build(),
    );
    let attributes: BTreeMap<&'static str, _> = DEPENDENCIES
        .iter()
        .map(|d| {
            let kv = MetricKeyValue::new("dependency", (*d).to_owned());
            (*d, meter.new_attributes(NewAttributes::from([kv])))
        })
        .collect();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tick.tick().await;
            for (dependency, w) in waiting.snapshot(SystemTime::now()) {
                if let Some(a) = attributes.get(dependency) {
                    steps.record(w.steps, a);
                    longest.record(w.longest.as_secs_f64(), a);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_waits_until_it_is_done_and_the_longest_wait_is_reported() {
        let w = Waiting::default();
        let now = SystemTime::now();
        let minute = Duration::from_secs(60);
        w.failed("run/1".into(), "embedder", now - 3 * minute, minute, None);
        w.failed("run/2".into(), "embedder", now - minute, minute, None);
        w.failed("run/3".into(), "stores", now - minute, minute, None);
        let s = w.snapshot(now);
        assert_eq!(s.len(), DEPENDENCIES.len(), "every dependency, zeros too");
        assert_eq!(
            s["embedder"],
            Waits {
                steps: 2,
                longest: 3 * minute
            }
        );
        assert_eq!(s["stores"].steps, 1);
        assert_eq!(s["parser"], Waits::default());
        w.done("run/1");
        w.done("run/3");
        let s = w.snapshot(now);
        assert_eq!(
            s["embedder"],
            Waits {
                steps: 1,
                longest: minute
            }
        );
        assert_eq!(s["stores"].steps, 0);
    }

    #[test]
    fn an_entry_no_attempt_refreshes_lapses() {
        let w = Waiting::default();
        let now = SystemTime::now();
        w.failed("run/1".into(), "parser", now, Duration::ZERO, None);
        // Lapsed: as if its retry ran on another worker long ago.
        w.lock().get_mut("run/1").expect("entry").until = Instant::now() - Duration::from_secs(1);
        assert_eq!(w.snapshot(now)["parser"].steps, 0);
    }

    fn step(n: &str) -> Option<StepRef> {
        Some(StepRef {
            workflow_id: format!("ingest-{n}"),
            run_id: format!("run-{n}"),
            activity_id: "3".to_owned(),
        })
    }

    #[test]
    fn a_success_wakes_the_other_steps_of_its_dependency_that_wait_long_once_each() {
        let w = Waiting::default();
        let now = SystemTime::now();
        let half = Duration::from_secs(30);
        w.failed("a".into(), "embedder", now, half, step("a"));
        w.failed("b".into(), "embedder", now, half, step("b"));
        // Due within WAKE_AFTER: its own attempt comes soon enough.
        w.failed(
            "c".into(),
            "embedder",
            now,
            Duration::from_millis(500),
            step("c"),
        );
        // Counted attempts: never woken.
        w.failed("d".into(), "embedder", now, half, None);
        // Another dependency.
        w.failed("e".into(), "parser", now, half, step("e"));
        let mut woken = w.succeeded("a", "embedder");
        woken.sort_by(|x, y| x.workflow_id.cmp(&y.workflow_id));
        assert_eq!(
            woken,
            vec![step("b").expect("b")],
            "only b: a succeeded, c is due, d counts, e is not the embedder's"
        );
        assert!(
            w.succeeded("x", "embedder").is_empty(),
            "b is not woken twice"
        );
        let s = w.snapshot(now);
        assert_eq!(
            s["embedder"].steps, 3,
            "b, c and d wait until their attempt tells"
        );
        assert_eq!(s["parser"].steps, 1);
        // b's woken attempt failed again: it may be woken again after the next success.
        w.failed("b".into(), "embedder", now, half, step("b"));
        assert_eq!(w.succeeded("y", "embedder"), vec![step("b").expect("b")]);
    }
}
