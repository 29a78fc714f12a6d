//! `apex-tools otlp-sink`: an OTLP/gRPC trace receiver that decodes and counts what it is
//! sent, then drops it. The tracing overhead benchmark points the mesh at it to measure
//! what tracing costs the processes themselves (spans made, batched, encoded and sent), apart
//! from what a collector or viewer costs on the same machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to listen (loopback).
    #[arg(long, default_value = "127.0.0.1:4318")]
    listen: String,
}

#[derive(Default, Clone)]
struct Sink(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves until SIGTERM/SIGINT, then prints how many spans it received.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = args.listen.parse()?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the sink listens on loopback only, not {addr}"
    );
    let sink = Sink::default();
    let count = sink.0.clone();
    let shutdown = apex_common::Shutdown::on_signals();
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink))
        .serve_with_shutdown(addr, async move { shutdown.wait().await })
        .await?;
    println!(
        "otlp-sink: {} spans received",
        count.load(Ordering::Relaxed)
    );
    Ok(())
}
