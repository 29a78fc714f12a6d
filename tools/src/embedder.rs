//! `apex-tools embedder`: chunks/s of the in-process model against ONNX Runtime, and the
//! whole service under concurrent requests.

use apex_embedder::bench::{BenchArgs, LoadArgs};
use apex_embedder::model::{MiniLm, default_model_dir};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Chunks/s of the in-process model against ONNX Runtime on the same cores.
    Bench(BenchArgs),
    /// The whole service on 127.0.0.1 under concurrent single-text requests: chunks/s and
    /// latency with and without dynamic batching.
    Load(LoadArgs),
}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Load(args) => apex_embedder::bench::load(&args).await,
        Command::Bench(args) => {
            let model = MiniLm::load(&default_model_dir(), 256)?;
            tokio::task::spawn_blocking(move || apex_embedder::bench::run(&model, &args)).await?
        }
    }
}
