//! `apex-writer`: the writer gRPC service (`apex-writer` or `apex-writer serve`), plus
//! `inspect` and `delete` against a running writer. Its benchmark is `apex-tools writer
//! bench`.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_proto::writer::v1::writer_service_client::WriterServiceClient;
use apex_proto::writer::v1::{DeleteDocumentRequest, InspectDocumentRequest, StepState, Store};
use apex_writer::WriterSettings;
use clap::{Parser as _, Subcommand};

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Apex Ingest writer: one saga over PostgreSQL, the graph, the vectors and Redis"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// What each store holds for a document, and whether they agree.
    Inspect {
        document_id: String,
        #[arg(long, default_value = "http://127.0.0.1:50054")]
        addr: String,
    },
    /// Delete a document from all four stores.
    Delete {
        document_id: String,
        #[arg(long, default_value = "http://127.0.0.1:50054")]
        addr: String,
    },
}

fn store(code: i32) -> &'static str {
    apex_writer::saga::store_name(Store::try_from(code).unwrap_or(Store::Unspecified))
}

async fn inspect(document_id: String, addr: String) -> anyhow::Result<()> {
    let mut client = WriterServiceClient::connect(addr).await?;
    let r = client
        .inspect_document(InspectDocumentRequest { document_id })
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    println!("store     present  version  chunks  entities  vectors");
    for v in &r.stores {
        println!(
            "{:<9} {:<8} {:<8} {:<7} {:<9} {}",
            store(v.store),
            v.present,
            v.version,
            v.chunk_count,
            v.entity_count,
            v.vector_count
        );
    }
    println!("consistent: {}", r.consistent);
    Ok(())
}

async fn delete(document_id: String, addr: String) -> anyhow::Result<()> {
    let mut client = WriterServiceClient::connect(addr).await?;
    let r = client
        .delete_document(DeleteDocumentRequest {
            document_id,
            idempotency_key: String::new(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    for o in &r.outcomes {
        let state = StepState::try_from(o.state).map_or("?", |s| s.as_str_name());
        println!("{:<9} {state} {}", store(o.store), o.error);
    }
    println!("existed: {}", r.existed);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        None | Some(Command::Serve) => {
            let settings: WriterSettings = load_or_exit();
            let _telemetry = init_telemetry("apex-writer", &settings.service.telemetry)?;
            let (listener, metrics) = apex_common::service::bind(&settings.service).await?;
            apex_writer::run(settings, listener, metrics, Shutdown::on_signals()).await
        }
        Some(Command::Inspect { document_id, addr }) => inspect(document_id, addr).await,
        Some(Command::Delete { document_id, addr }) => delete(document_id, addr).await,
    }
}
