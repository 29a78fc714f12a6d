//! `apex top`: a live terminal view of the mesh from the stack's Prometheus: documents in
//! flight and waiting, ingestion rates and outcomes, the task-queue backlog, each service's
//! call rate, errors and latency, the stores, and the alerts firing. It redraws every few
//! seconds until Ctrl-C; `--once` prints one frame (for scripts and tests).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use apex_common::metrics::query::{Prometheus, Series};

fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map_or("", String::as_str)
}

/// A value for people: `-` for no number, few digits otherwise.
fn show(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn ms(seconds: f64) -> String {
    if seconds.is_nan() {
        "-".to_owned()
    } else {
        format!("{:.0} ms", seconds * 1000.0)
    }
}

const WINDOW: &str = "1m";

/// One frame of the view.
async fn frame(p: &Prometheus) -> anyhow::Result<String> {
    let mut out = String::new();
    let rate = |m: &str| format!("sum(rate({m}[{WINDOW}]))");
    let in_flight = p.number("sum(apex_gateway_in_flight)").await?;
    let waiting = p.number("sum(apex_ingest_waiting)").await?;
    let longest = p.number("max(apex_ingest_waiting_seconds)").await?;
    let started = p.number(&rate("apex_workflow_started_total")).await?;
    writeln!(
        out,
        "documents  in flight {}   waiting for a dependency {} (longest {} s)   started {}/s",
        show(in_flight),
        show(waiting),
        show(longest),
        show(started)
    )?;
    let ended = p
        .query(&format!(
            "sum by (status) (rate(apex_workflow_ended_total[{WINDOW}]))"
        ))
        .await?;
    let ended: Vec<String> = ended
        .iter()
        .map(|(l, v)| format!("{} {}/s", label(l, "status"), show(*v)))
        .collect();
    let p95 = p
        .number(&format!(
            "histogram_quantile(0.95, sum by (le) (rate(apex_workflow_seconds_bucket[{WINDOW}])))"
        ))
        .await?;
    writeln!(
        out,
        "ended      {}   end-to-end p95 {}",
        if ended.is_empty() {
            "none".to_owned()
        } else {
            ended.join("  ")
        },
        ms(p95)
    )?;
    let backlog = p
        .query(r#"sum by (task_type) (approximate_backlog_count{taskqueue!~"temporal_sys.*"})"#)
        .await?;
    let backlog: Vec<String> = backlog
        .iter()
        .map(|(l, v)| format!("{} {}", label(l, "task_type"), show(*v)))
        .collect();
    let to_start = p
        .number(&format!(
            "histogram_quantile(0.95, sum by (le) (rate(temporal_activity_schedule_to_start_latency_bucket[{WINDOW}])))"
        ))
        .await?;
    writeln!(
        out,
        "temporal   backlog {}   activity schedule-to-start p95 {}",
        if backlog.is_empty() {
            "-".to_owned()
        } else {
            backlog.join("  ")
        },
        ms(to_start)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<16} {:>9} {:>9} {:>10}",
        "service", "calls/s", "errors/s", "p95"
    )?;
    let calls = p
        .query(&format!(
            "sum by (service) (rate(apex_rpc_server_requests_total[{WINDOW}]))"
        ))
        .await?;
    let errors = p
        .query(&format!(
            r#"sum by (service) (rate(apex_rpc_server_requests_total{{code!="0"}}[{WINDOW}]))"#
        ))
        .await?;
    let latency = p
        .query(&format!(
            "histogram_quantile(0.95, sum by (le, service) (rate(apex_rpc_server_seconds_bucket[{WINDOW}])))"
        ))
        .await?;
    let of = |series: &Series, service: &str| {
        series
            .iter()
            .find(|(l, _)| label(l, "service") == service)
            .map_or(0.0, |s| s.1)
    };
    for (l, v) in &calls {
        let service = label(l, "service");
        writeln!(
            out,
            "{service:<16} {:>9} {:>9} {:>10}",
            show(*v),
            show(of(&errors, service)),
            ms(of(&latency, service))
        )?;
    }
    let queue = p.number("sum(apex_embedder_queue_depth)").await?;
    writeln!(out, "embedder queue {}", show(queue))?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<10} {:>10} {:>9}  breaker",
        "store", "p95", "errors/s"
    )?;
    let stores = p
        .query(&format!(
            "histogram_quantile(0.95, sum by (le, store) (rate(apex_writer_step_seconds_bucket[{WINDOW}])))"
        ))
        .await?;
    let store_errors = p
        .query(&format!(
            "sum by (store) (rate(apex_writer_store_errors_total[{WINDOW}]))"
        ))
        .await?;
    let breakers = p
        .query("max by (store) (apex_writer_breaker_state)")
        .await?;
    for (l, v) in &stores {
        let store = label(l, "store");
        let state = breakers
            .iter()
            .find(|(b, _)| label(b, "store") == store)
            .map_or("-", |(_, s)| match *s as i64 {
                0 => "closed",
                1 => "half-open",
                _ => "OPEN",
            });
        let errors = store_errors
            .iter()
            .find(|(e, _)| label(e, "store") == store)
            .map_or(0.0, |e| e.1);
        writeln!(
            out,
            "{store:<10} {:>10} {:>9}  {state}",
            ms(*v),
            show(errors)
        )?;
    }
    writeln!(out)?;
    let firing = p.query(r#"ALERTS{alertstate="firing"}"#).await?;
    let names: Vec<&str> = firing.iter().map(|(l, _)| label(l, "alertname")).collect();
    let log_errors = p
        .number(&format!(
            r#"sum(rate(apex_log_lines_total{{level="error"}}[{WINDOW}]))"#
        ))
        .await?;
    writeln!(
        out,
        "alerts firing {}{}   error log lines {}/s",
        names.len(),
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        },
        show(log_errors)
    )?;
    Ok(out)
}

/// Runs the view: one frame with `once`, else a frame every `every` until Ctrl-C.
pub async fn run(prometheus: &str, every: Duration, once: bool) -> anyhow::Result<bool> {
    let p = Prometheus::new(prometheus)?;
    if once {
        print!("{}", frame(&p).await?);
        return Ok(true);
    }
    loop {
        let text = match frame(&p).await {
            Ok(t) => t,
            Err(e) => format!("{e:#}\n"),
        };
        // Clear the screen, cursor home, then the frame.
        print!(
            "\x1b[2J\x1b[H{}  ({} s refresh, Ctrl-C to quit)\n\n{text}",
            prometheus,
            every.as_secs()
        );
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shown_briefly() {
        assert_eq!(show(f64::NAN), "-");
        assert_eq!(show(3.0), "3");
        assert_eq!(show(0.1234), "0.12");
        assert_eq!(show(1234.5), "1234");
        assert_eq!(ms(0.0125), "12 ms");
        assert_eq!(ms(f64::NAN), "-");
    }
}
