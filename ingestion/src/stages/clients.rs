//! The gRPC clients of the four services the stages call, each over a lazily connected
//! channel whose calls open client spans and carry the trace context.

use std::time::Duration;

use apex_common::grpc::{ClientSpans, ClientSpansService};
use apex_proto::embedder::v1::embedder_service_client::EmbedderServiceClient;
use apex_proto::extractor::v1::extractor_service_client::ExtractorServiceClient;
use apex_proto::parser::v1::parser_service_client::ParserServiceClient;
use apex_proto::writer::v1::writer_service_client::WriterServiceClient;
use tonic::transport::Channel;

use crate::settings::IngestSettings;

/// A channel whose calls each open a client span and send its context along.
pub type Traced = ClientSpansService<Channel>;

/// Lazily connected clients of the four services.
#[derive(Clone, Debug)]
pub struct ServiceClients {
    pub parser: ParserServiceClient<Traced>,
    pub extractor: ExtractorServiceClient<Traced>,
    pub embedder: EmbedderServiceClient<Traced>,
    pub writer: WriterServiceClient<Traced>,
}

fn channel(addr: &str) -> anyhow::Result<Traced> {
    let channel = Channel::from_shared(addr.to_owned())
        .map_err(|e| anyhow::anyhow!("service address {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        // A service that died or hangs on an open connection is noticed within about 15 s
        // (a ping unanswered), not at the end of a 10-minute call.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(tower::Layer::layer(&ClientSpans, channel))
}

impl ServiceClients {
    pub fn new(settings: &IngestSettings) -> anyhow::Result<Self> {
        let max = settings.max_message_bytes;
        Ok(Self {
            parser: ParserServiceClient::new(channel(&settings.parser_addr)?)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            extractor: ExtractorServiceClient::new(channel(&settings.extractor_addr)?)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            embedder: EmbedderServiceClient::new(channel(&settings.embedder_addr)?)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            writer: WriterServiceClient::new(channel(&settings.writer_addr)?)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        })
    }
}
