//! `apex-tools`: the development tools of Apex Ingest, kept out of the service binaries that
//! ship: the benchmarks of the parser, extractor, embedder and writer, the parser's mutation
//! fuzzer, the extractor's quality evaluation, the demo corpus `make demo` ingests, and an
//! OTLP sink for the tracing overhead benchmark.
//!
//! Each tool's code lives in its service's library behind the `devtools` feature (it needs the
//! service's internals); this binary is the only one that turns those features on.

mod embedder;
mod extractor;
mod otlp_sink;
mod parser;
mod writer;

use clap::Parser as _;

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Apex Ingest development tools (benchmarks, fuzzing, evaluation, demo corpus)"
)]
enum Cli {
    /// The parser: benchmark, fuzzer, demo corpus.
    #[command(subcommand)]
    Parser(parser::Command),
    /// The extractor: quality evaluation and benchmark.
    #[command(subcommand)]
    Extractor(extractor::Command),
    /// The embedder: model and service benchmarks.
    #[command(subcommand)]
    Embedder(embedder::Command),
    /// The writer: saga benchmark against the local stores.
    #[command(subcommand)]
    Writer(writer::Command),
    /// An OTLP trace receiver that counts and drops (the tracing overhead benchmark).
    OtlpSink(otlp_sink::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Parser(c) => parser::run(c).await,
        Cli::Extractor(c) => extractor::run(c).await,
        Cli::Embedder(c) => embedder::run(c).await,
        Cli::Writer(c) => writer::run(c).await,
        Cli::OtlpSink(a) => otlp_sink::run(a).await,
    }
}
