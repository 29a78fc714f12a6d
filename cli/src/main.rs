//! `apex`: the command line of Apex Ingest. It runs the local stack (`up`, `down`, `status`,
//! `logs`, `doctor`) and the hello-world workflow (`hello`). It does not ingest anything yet.

// A binary crate: `pub` items in its modules are crate-visible by construction.
#![allow(unreachable_pub)]

mod doctor;
mod hello;
mod probe;
mod process;
mod settings;
mod stack;

use std::process::ExitCode;

use apex_common::settings::load_or_exit;
use apex_worker::greeting::GreetingInput;
use clap::{Parser, Subcommand};

use crate::{settings::StackSettings, stack::Component};

#[derive(Debug, Parser)]
#[command(
    name = "apex",
    version,
    about = "Apex Ingest: local stack and workflows"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the local stack (or the named components); safe to run twice.
    Up { components: Vec<String> },
    /// Stop what `up` started (or the named components).
    Down { components: Vec<String> },
    /// Health of every component.
    Status,
    /// Print a component's log.
    Logs {
        component: String,
        /// Lines from the end.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
    },
    /// Pre-flight: is everything installed and reachable?
    Doctor,
    /// Run the hello-world workflow through Temporal.
    Hello {
        #[arg(default_value = "Apex")]
        name: String,
        /// Fail the activity on its first N attempts to show retries.
        #[arg(long, default_value_t = 0)]
        fail_first: u32,
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

fn components(names: &[String]) -> Result<Vec<Component>, String> {
    names
        .iter()
        .map(|n| {
            Component::parse(n).ok_or_else(|| {
                let known: Vec<&str> = Component::ALL.iter().map(|c| c.name()).collect();
                format!("unknown component `{n}` (known: {})", known.join(", "))
            })
        })
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings: StackSettings = load_or_exit();
    let result = match cli.command {
        Cmd::Up { components: names } => match components(&names) {
            Ok(only) => stack::up(&settings, &only).await.map(|()| {
                println!("Temporal UI: {}", settings.temporal_ui());
                true
            }),
            Err(e) => Err(anyhow::anyhow!(e)),
        },
        Cmd::Down { components: names } => match components(&names) {
            Ok(only) => stack::down(&settings, &only).map(|()| true),
            Err(e) => Err(anyhow::anyhow!(e)),
        },
        Cmd::Status => stack::status(&settings).await,
        Cmd::Logs { component, lines } => match components(&[component]) {
            Ok(c) => stack::log_path(&settings, c[0]).map(|path| {
                println!("==> {} <==", path.display());
                println!("{}", process::tail(&path, lines));
                true
            }),
            Err(e) => Err(anyhow::anyhow!(e)),
        },
        Cmd::Doctor => Ok(doctor::print(&doctor::run(&settings).await)),
        Cmd::Hello {
            name,
            fail_first,
            namespace,
        } => {
            let input = GreetingInput {
                name,
                fail_first_attempts: fail_first,
                delay_ms: 0,
            };
            hello::run(&settings, input, &namespace).await
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
