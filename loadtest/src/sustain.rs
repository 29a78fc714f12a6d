//! `apex-loadtest sustain`: an open-loop run. Uploads start at a fixed rate for a fixed time,
//! whether or not earlier ones have finished (as documents arrive in production), and every
//! interval prints a row: documents finished and their rate, latency p50/p99 of those, the
//! backlog (started and not finished) and the resident memory of each process of the stack.
//! The rate holds when the backlog stays flat; a run whose backlog reaches `--concurrency`
//! stops starting documents and says so. Bounded in time and documents, 127.0.0.1 only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::IngestArgs;
use crate::documents::document;
use crate::phase::{Sample, Upload, one};
use crate::report::percentiles;

/// Options of a sustained run (the path, gateway, polling and document shape are `ingest`'s;
/// `--concurrency` is the backlog at which the run gives up; `--documents` is not used).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SustainArgs {
    #[command(flatten)]
    pub(crate) common: IngestArgs,
    /// Uploads started per second.
    #[arg(long, default_value_t = 4.0)]
    pub(crate) rate: f64,
    /// How long uploads are started, in seconds (at most 3,600).
    #[arg(long, default_value_t = 600)]
    pub(crate) seconds: u64,
    /// A row every this many seconds.
    #[arg(long, default_value_t = 60)]
    pub(crate) interval_secs: u64,
}

/// One interval of the run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// Seconds since the start, at the end of the interval.
    pub(crate) t_secs: u64,
    pub(crate) started: usize,
    pub(crate) finished: usize,
    pub(crate) failed: usize,
    pub(crate) docs_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) backlog: usize,
    /// Resident memory by process name, MB.
    pub(crate) rss_mb: BTreeMap<String, u64>,
}

/// What the whole run did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    pub(crate) rows: Vec<Row>,
    pub(crate) started: usize,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    /// Successes over the time uploads were started.
    pub(crate) docs_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// When the backlog reached `--concurrency` (the rate did not hold), seconds since start.
    pub(crate) gave_up_at_secs: Option<u64>,
    pub(crate) errors: Vec<String>,
    pub(crate) ids: Vec<String>,
}

/// Refuses a rate or length outside what this tool runs.
pub(crate) fn check(args: &SustainArgs) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate <= 100.0) {
        anyhow::bail!("--rate must be above 0 and at most 100 documents a second");
    }
    if args.seconds == 0 || args.seconds > 3_600 {
        anyhow::bail!("--seconds must be 1 to 3600");
    }
    if args.interval_secs == 0 {
        anyhow::bail!("--interval-secs must be at least 1");
    }
    Ok(())
}

/// Resident memory of the stack's processes by name (MB): the services, the worker and
/// gateway, Temporal, the stores and the trace viewer. Read from `/proc`; empty elsewhere.
pub(crate) fn rss_by_process() -> BTreeMap<String, u64> {
    rss_under(std::path::Path::new("/proc"))
}

/// [`rss_by_process`] over a `/proc`-shaped directory.
fn rss_under(proc_dir: &std::path::Path) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(proc_dir) else {
        return out;
    };
    for entry in dir.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let name = comm.trim();
        let ours = (name.starts_with("apex-") && name != "apex-loadtest")
            || matches!(
                name,
                "temporal" | "postgres" | "redis-server" | "python" | "python3" | "prometheus"
            );
        if !ours {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue;
        };
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        *out.entry(name.to_owned()).or_default() += kb;
    }
    out.values_mut().for_each(|kb| *kb /= 1024);
    out
}

fn row(t: Duration, started: usize, window: &[Sample], span: Duration, backlog: usize) -> Row {
    let ok: Vec<Duration> = window.iter().filter(|s| s.ok).map(|s| s.latency).collect();
    let p = percentiles(ok.clone());
    let r = Row {
        t_secs: t.as_secs(),
        started,
        finished: window.len(),
        failed: window.iter().filter(|s| !s.ok).count(),
        docs_per_sec: ok.len() as f64 / span.as_secs_f64().max(1e-9),
        p50_ms: p.p50,
        p99_ms: p.p99,
        backlog,
        rss_mb: rss_by_process(),
    };
    let memory: Vec<String> = r.rss_mb.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "  t={:>5}s started {:>5} finished {:>4} failed {:>3} {:>6.2} docs/s p50 {:>7.0} ms p99 {:>7.0} ms backlog {:>4} | MB: {}",
        r.t_secs,
        r.started,
        r.finished,
        r.failed,
        r.docs_per_sec,
        r.p50_ms,
        r.p99_ms,
        r.backlog,
        memory.join(", ")
    );
    r
}

/// Starts `args.rate` uploads a second on `path` for `args.seconds`, then waits (until
/// `--timeout-secs` past the end) for the backlog to finish.
pub(crate) async fn run(http: &reqwest::Client, args: &SustainArgs, path: &'static str) -> Outcome {
    let common = &args.common;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let deadline = end + Duration::from_secs(common.timeout_secs);
    let every = Duration::from_secs(args.interval_secs);
    eprintln!(
        "{path}: {} documents a second for {} s, a row every {} s (run {run})",
        args.rate, args.seconds, args.interval_secs
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let mut arrivals = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    arrivals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tick = tokio::time::interval_at((start + every).into(), every);
    let (mut started, mut in_flight) = (0usize, 0usize);
    let mut gave_up_at_secs = None;
    let (mut window, mut all, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_row = start;
    loop {
        let starting = Instant::now() < end && gave_up_at_secs.is_none();
        tokio::select! {
            _ = arrivals.tick(), if starting => {
                if in_flight >= common.concurrency {
                    let at = start.elapsed().as_secs();
                    eprintln!("  the backlog reached {in_flight} at {at} s: the rate does not hold; no more uploads");
                    gave_up_at_secs = Some(at);
                    continue;
                }
                let (http, common, tx) = (http.clone(), common.clone(), tx.clone());
                let upload = Upload {
                    body: document(&run, started, common.paragraphs).into_bytes(),
                    name: format!("lt-{run}-{started}.txt"),
                    mime: "text/plain",
                    external_id: None,
                };
                tokio::spawn(async move {
                    let _ = tx.send(one(http, common, upload, path, deadline).await);
                });
                started += 1;
                in_flight += 1;
            }
            Some(s) = rx.recv() => {
                in_flight -= 1;
                window.push(s);
            }
            _ = tick.tick() => {
                let now = Instant::now();
                rows.push(row(now - start, started, &window, now - last_row, in_flight));
                all.append(&mut window);
                last_row = now;
            }
            // Wakes the loop when starting ends, so a drained run ends then.
            () = tokio::time::sleep_until(end.into()), if starting => {}
            () = tokio::time::sleep_until(deadline.into()) => {
                eprintln!("  {in_flight} documents not finished by the deadline");
                break;
            }
        }
        let starting = Instant::now() < end && gave_up_at_secs.is_none();
        if !starting && in_flight == 0 {
            let now = Instant::now();
            if !window.is_empty() {
                // The drain after the last upload: its rate over a whole interval, not over
                // the moments since the last row.
                rows.push(row(
                    now - start,
                    started,
                    &window,
                    every.max(now - last_row),
                    0,
                ));
                all.append(&mut window);
            }
            break;
        }
    }
    all.append(&mut window);
    let ok: Vec<Duration> = all.iter().filter(|s| s.ok).map(|s| s.latency).collect();
    let p = percentiles(ok.clone());
    let mut errors: Vec<String> = all.iter().filter_map(|s| s.error.clone()).collect();
    errors.sort();
    errors.dedup();
    errors.truncate(10);
    let ran = Duration::from_secs(gave_up_at_secs.unwrap_or(args.seconds));
    Outcome {
        started,
        succeeded: ok.len(),
        failed: all.iter().filter(|s| !s.ok).count() + in_flight,
        docs_per_sec: ok.len() as f64 / ran.as_secs_f64().max(1.0),
        p50_ms: p.p50,
        p99_ms: p.p99,
        gave_up_at_secs,
        errors,
        ids: all.iter().filter_map(|s| s.document_id.clone()).collect(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_summed_by_process_name_and_other_processes_are_left_out() {
        let dir = tempfile::tempdir().expect("dir");
        for (pid, comm, status) in [
            (
                "1",
                "apex-worker\n",
                "Name:\tapex-worker\nVmRSS:\t    2048 kB\n",
            ),
            ("2", "apex-worker\n", "VmRSS:\t1024 kB\n"),
            ("3", "postgres\n", "VmRSS:\t5120 kB\n"),
            ("4", "bash\n", "VmRSS:\t9999 kB\n"),
            ("5", "apex-loadtest\n", "VmRSS:\t9999 kB\n"),
            // A kernel thread: no VmRSS line.
            ("6", "temporal\n", "Name:\ttemporal\n"),
        ] {
            let p = dir.path().join(pid);
            std::fs::create_dir(&p).expect("pid dir");
            std::fs::write(p.join("comm"), comm).expect("comm");
            std::fs::write(p.join("status"), status).expect("status");
        }
        let rss = rss_under(dir.path());
        assert_eq!(
            rss.into_iter().collect::<Vec<_>>(),
            [
                ("apex-worker".to_owned(), 3),
                ("postgres".to_owned(), 5),
                ("temporal".to_owned(), 0)
            ]
        );
        assert!(rss_under(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn a_rate_or_length_outside_the_bounds_is_refused() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: SustainArgs,
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["t"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).expect("parses").args
        };
        assert!(check(&parse(&[])).is_ok());
        for bad in [
            &["--rate", "0"][..],
            &["--rate", "101"],
            &["--seconds", "0"],
            &["--seconds", "3601"],
            &["--interval-secs", "0"],
        ] {
            assert!(check(&parse(bad)).is_err(), "{bad:?}");
        }
    }
}
