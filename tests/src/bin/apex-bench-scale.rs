//! `apex-bench-scale` (`make bench-scale`): the same ingestion through the local stack's
//! gateway with 1, 2 and 3 replicas of one stage (the embedder unless `--stage` says
//! otherwise), then with 1 and 2 workers; docs/s and latency percentiles for each, compared
//! with one replica, in one run. Puts the scale back to one of each at the end.

use std::time::Duration;

use apex_e2e::scale::{self, Run, apex};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "apex-bench-scale",
    about = "Ingestion docs/s and latency at 1-3 replicas of a stage and 1-2 workers"
)]
struct Args {
    /// The stage whose replicas vary.
    #[arg(long, default_value = "embedder")]
    stage: String,
    /// Documents per setting.
    #[arg(long, default_value_t = 60)]
    documents: usize,
    /// Also write the table to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

fn row(setting: &str, run: &Run, base: Option<f64>) -> String {
    let rate = run.docs_per_sec();
    let ratio = base.map_or_else(|| "1.00×".to_owned(), |b| format!("{:.2}×", rate / b));
    format!(
        "| {setting} | {} | {} | {rate:.2} | {ratio} | {:.1} | {:.1} | {:.1} |",
        run.docs.len(),
        run.verdict.completed,
        run.latency(0.5).as_secs_f64(),
        run.latency(0.95).as_secs_f64(),
        run.latency(0.99).as_secs_f64(),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings: apex_common::stack::StackSettings =
        apex_common::settings::load(&apex_common::settings::Source::from_env::<
            apex_common::stack::StackSettings,
        >())?;
    let settings_list = [
        (format!("{}=1,worker=1", args.stage), "1 replica"),
        (format!("{}=2,worker=1", args.stage), "2 replicas"),
        (format!("{}=3,worker=1", args.stage), "3 replicas"),
        (format!("{}=1,worker=2", args.stage), "1 replica, 2 workers"),
    ];
    let mut lines = vec![
        format!(
            "| {} replicas (workers) | documents | completed | docs/s | vs 1 replica | p50 s | p95 s | p99 s |",
            args.stage
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    let mut base = None;
    let mut clean = true;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    for (i, (spec, label)) in settings_list.iter().enumerate() {
        apex(&["up", "--scale", spec])?;
        let source = format!("bench-scale-{}-{i}", &run_id[..8]);
        eprintln!("[bench-scale] {label}: {} documents", args.documents);
        let run = scale::ingest(
            &settings,
            &source,
            args.documents,
            0,
            || Ok(()),
            Duration::from_secs(900),
        )
        .await?;
        clean &= run.verdict.clean();
        let line = row(label, &run, base);
        eprintln!("[bench-scale] {line}");
        base.get_or_insert(run.docs_per_sec());
        lines.push(line);
    }
    apex(&["up", "--scale", &format!("{}=1,worker=1", args.stage)])?;
    let table = lines.join("\n");
    println!("{table}");
    if let Some(path) = args.report {
        std::fs::write(path, format!("{table}\n"))?;
    }
    anyhow::ensure!(clean, "some documents did not complete exactly once");
    Ok(())
}
