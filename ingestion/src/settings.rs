//! Where the stage calls find the services and the blob store: the worker's
//! `APEX_WORKER__INGEST__…` and the gateway's legacy path read the same keys.

use serde::{Deserialize, Serialize};

/// The services and blob store the ingestion activities call (`APEX_WORKER__INGEST__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct IngestSettings {
    pub parser_addr: String,
    pub extractor_addr: String,
    pub embedder_addr: String,
    pub writer_addr: String,
    /// The blob store the services share (`file:///dir`, a path, `s3://bucket/prefix`).
    pub blob_url: String,
    /// Largest document `fetch_document` copies into the blob store.
    pub fetch_max_bytes: u64,
    pub fetch_timeout_secs: u64,
    /// Largest gRPC message sent or accepted.
    pub max_message_bytes: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            parser_addr: "http://127.0.0.1:50051".to_owned(),
            extractor_addr: "http://127.0.0.1:50052".to_owned(),
            embedder_addr: "http://127.0.0.1:50053".to_owned(),
            writer_addr: "http://127.0.0.1:50054".to_owned(),
            blob_url: ".apex/blobs".to_owned(),
            fetch_max_bytes: 64 * 1024 * 1024,
            fetch_timeout_secs: 120,
            max_message_bytes: apex_common::grpc::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

impl IngestSettings {
    /// Problems with these values, each naming its key under `ingest.`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        self.validate(&mut p);
        p
    }

    fn validate(&self, p: &mut Vec<String>) {
        for (key, addr) in [
            ("ingest.parser_addr", &self.parser_addr),
            ("ingest.extractor_addr", &self.extractor_addr),
            ("ingest.embedder_addr", &self.embedder_addr),
            ("ingest.writer_addr", &self.writer_addr),
        ] {
            if !(addr.starts_with("http://") || addr.starts_with("https://")) {
                p.push(format!(
                    "{key} must be an http:// or https:// URL, not `{addr}`"
                ));
            }
        }
        if self.blob_url.trim().is_empty() {
            p.push("ingest.blob_url must not be empty".to_owned());
        }
        if self.fetch_max_bytes == 0 {
            p.push("ingest.fetch_max_bytes must be at least 1".to_owned());
        }
        if self.fetch_timeout_secs == 0 {
            p.push("ingest.fetch_timeout_secs must be at least 1".to_owned());
        }
        if self.max_message_bytes < 1024 {
            p.push("ingest.max_message_bytes must be at least 1024".to_owned());
        }
    }
}
