//! The gRPC clients of the four services the stages call, each balanced over the service's
//! replicas ([`apex_common::grpc::balance`]): calls open client spans, carry the trace
//! context, and are sent again on another replica when one refuses or drops them.

use std::time::Duration;

use apex_common::grpc::balance::{self, BalanceOptions, Balanced};
use apex_common::tls::ClientTls;
use apex_proto::embedder::v1::embedder_service_client::EmbedderServiceClient;
use apex_proto::extractor::v1::extractor_service_client::ExtractorServiceClient;
use apex_proto::parser::v1::parser_service_client::ParserServiceClient;
use apex_proto::writer::v1::writer_service_client::WriterServiceClient;

use crate::settings::IngestSettings;

/// A channel balanced over a service's replicas, whose calls each open a client span and
/// send its context along.
pub type Traced = Balanced;

/// Balanced clients of the four services (connected lazily; cheap to clone).
#[derive(Clone, Debug)]
pub struct ServiceClients {
    pub parser: ParserServiceClient<Traced>,
    pub extractor: ExtractorServiceClient<Traced>,
    pub embedder: EmbedderServiceClient<Traced>,
    pub writer: WriterServiceClient<Traced>,
}

fn channel(
    addr: &str,
    health: &str,
    settings: &IngestSettings,
    tls: &ClientTls,
) -> anyhow::Result<Traced> {
    let options = BalanceOptions {
        refresh: Duration::from_secs(settings.refresh_secs),
        call_timeout: Duration::from_secs(settings.call_timeout_secs),
        retries: settings.call_retries,
        tls: Some(tls.clone()),
        ..BalanceOptions::new(health)
    };
    balance::channel(addr, &options)
}

impl ServiceClients {
    /// Must be called within a Tokio runtime (each channel keeps its replicas current in a
    /// task). The TLS files are read here: a missing or unreadable one is an error naming it.
    pub fn new(settings: &IngestSettings) -> anyhow::Result<Self> {
        let max = settings.max_message_bytes;
        let s = settings;
        let tls = ClientTls::load(&s.tls).map_err(|e| anyhow::anyhow!("ingest.tls: {e}"))?;
        let tls = &tls;
        Ok(Self {
            parser: ParserServiceClient::new(channel(
                &s.parser_addr,
                "apex.parser.v1.ParserService",
                s,
                tls,
            )?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
            extractor: ExtractorServiceClient::new(channel(
                &s.extractor_addr,
                "apex.extractor.v1.ExtractorService",
                s,
                tls,
            )?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
            embedder: EmbedderServiceClient::new(channel(
                &s.embedder_addr,
                "apex.embedder.v1.EmbedderService",
                s,
                tls,
            )?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
            writer: WriterServiceClient::new(channel(
                &s.writer_addr,
                "apex.writer.v1.WriterService",
                s,
                tls,
            )?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        })
    }
}
