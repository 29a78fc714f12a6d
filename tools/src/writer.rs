//! `apex-tools writer`: documents/s and chunks/s through the saga against the local stores.

use apex_common::settings::load_or_exit;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Documents/s and chunks/s through the saga against the local stores, batched and
    /// row by row, serial and concurrent.
    Bench(apex_writer::bench::BenchArgs),
}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Bench(args) => apex_writer::bench::run(load_or_exit(), args).await,
    }
}
