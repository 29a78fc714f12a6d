//! `apex-chaos` (`make chaos`): the chaos suite against the running local stack. Each
//! dependency in turn is taken away for `--away-secs` while documents go through the
//! Temporal path; the report says, per dependency, how many documents completed, failed,
//! were lost or duplicated, whether the stores agree, and how long recovery took. Exits 1
//! when any document did not complete exactly once.

use std::time::Duration;

use apex_common::stack::StackSettings;
use apex_e2e::chaos::{self, Config, How, TARGETS};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "apex-chaos",
    about = "Take each dependency away in turn while documents are ingested; check nothing is lost"
)]
struct Args {
    /// What to take away, comma-separated (default: every service, store, Temporal and the gateway).
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// How long each stays away, in seconds.
    #[arg(long, default_value_t = 600)]
    away_secs: u64,
    /// Documents per round (half before the outage, half during it).
    #[arg(long, default_value_t = 20)]
    documents: usize,
    /// `stop` (a clean stop) or `kill` (SIGKILL).
    #[arg(long, default_value = "stop")]
    how: String,
    /// How long the documents may take to finish once the target is back, in seconds.
    #[arg(long, default_value_t = 600)]
    settle_secs: u64,
    /// Also write the report to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// The `apex` CLI (default: beside this binary).
    #[arg(long)]
    apex: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let how = match args.how.as_str() {
        "stop" => How::Stop,
        "kill" => How::Kill,
        other => anyhow::bail!("--how must be `stop` or `kill`, not `{other}`"),
    };
    let targets = if args.targets.is_empty() {
        TARGETS.iter().map(|t| (*t).to_owned()).collect()
    } else {
        args.targets
    };
    if let Some(unknown) = targets.iter().find(|t| !TARGETS.contains(&t.as_str())) {
        anyhow::bail!(
            "unknown target `{unknown}`; the targets are {}",
            TARGETS.join(", ")
        );
    }
    anyhow::ensure!(args.documents > 0, "--documents must be at least 1");
    let stack =
        apex_common::settings::load::<StackSettings>(&apex_common::settings::Source::from_env::<
            StackSettings,
        >())
        .map_err(|e| anyhow::anyhow!("stack settings: {e}"))?;
    let apex = match args.apex {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("apex"),
    };
    anyhow::ensure!(
        apex.is_file(),
        "no apex CLI at {} (make build, or --apex)",
        apex.display()
    );
    let config = Config {
        stack,
        apex,
        targets,
        away: Duration::from_secs(args.away_secs),
        documents: args.documents,
        how,
        settle: Duration::from_secs(args.settle_secs),
        run_id: format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs()
        ),
    };
    let rounds = chaos::run(&config, |line| eprintln!("[chaos] {line}")).await?;
    let report = chaos::report(&rounds);
    println!("{report}");
    if let Some(path) = args.report {
        std::fs::write(&path, &report)?;
    }
    if rounds
        .iter()
        .all(|r| r.verdict.clean() && r.recovered.is_some())
    {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
