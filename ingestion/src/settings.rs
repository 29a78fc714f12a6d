//! Where the stage calls find the services and the blob store: the worker's
//! `APEX_WORKER__INGEST__…` and the gateway's legacy path read the same keys.

use serde::{Deserialize, Serialize};

/// The services and blob store the ingestion activities call (`APEX_WORKER__INGEST__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct IngestSettings {
    /// Where each service's replicas are: one or more comma-separated `http://host:port`
    /// endpoints (a name resolving to several addresses, like a Kubernetes headless
    /// Service, counts every address), or `file://<path>` listing one per line. Calls are
    /// balanced over the replicas that answer health; names and files are read again
    /// every `refresh_secs`.
    pub parser_addr: String,
    pub extractor_addr: String,
    pub embedder_addr: String,
    pub writer_addr: String,
    /// The blob store the services share (`file:///dir`, a path, `s3://bucket/prefix`).
    pub blob_url: String,
    /// Largest document `fetch_document` copies into the blob store.
    pub fetch_max_bytes: u64,
    pub fetch_timeout_secs: u64,
    /// What a fetch by URL may reach besides public addresses, comma-separated: CIDRs
    /// (`10.1.0.0/16`), addresses, host names and `*.suffix`es. Empty (the default): loopback,
    /// private, link-local, metadata and every other inward range is refused.
    pub fetch_allow: String,
    /// Redirects a fetch follows, each judged like the first URL.
    pub fetch_max_redirects: usize,
    /// Largest gRPC message sent or accepted.
    pub max_message_bytes: usize,
    /// How often the replicas are listed and health-checked again.
    pub refresh_secs: u64,
    /// Deadline of a call whose caller sets none (the activities set their own).
    pub call_timeout_secs: u64,
    /// How many times a call a replica refused or dropped is sent again (to another).
    pub call_retries: u32,
    /// TLS for `https://` service addresses: the CA to trust, a client certificate for
    /// mutual TLS, the name to check; files are read again every `tls.reload_secs`.
    pub tls: apex_common::tls::ClientTlsSettings,
    /// Where polling accounts' secrets are read when no `APEX_POLL_SECRET_…` variable
    /// holds them: `<dir>/<account>/<name>` (empty: the environment only).
    pub poll_secrets_dir: String,
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
            fetch_allow: String::new(),
            fetch_max_redirects: 5,
            max_message_bytes: apex_common::grpc::DEFAULT_MAX_MESSAGE_BYTES,
            refresh_secs: 5,
            call_timeout_secs: 600,
            call_retries: 2,
            tls: apex_common::tls::ClientTlsSettings::default(),
            poll_secrets_dir: String::new(),
        }
    }
}

impl IngestSettings {
    /// The guard every fetch by URL goes through.
    pub fn fetch_policy(&self) -> Result<apex_common::fetch::FetchPolicy, String> {
        let allow: Vec<String> = self.fetch_allow.split(',').map(str::to_owned).collect();
        apex_common::fetch::FetchPolicy::new(&allow, self.fetch_max_redirects)
    }

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
            if let Err(e) = apex_common::grpc::balance::Targets::parse(addr) {
                p.push(format!("{key}: {e}"));
            }
        }
        p.extend(self.tls.validate("ingest.tls"));
        if self.blob_url.trim().is_empty() {
            p.push("ingest.blob_url must not be empty".to_owned());
        }
        if self.fetch_max_bytes == 0 {
            p.push("ingest.fetch_max_bytes must be at least 1".to_owned());
        }
        if self.fetch_timeout_secs == 0 {
            p.push("ingest.fetch_timeout_secs must be at least 1".to_owned());
        }
        if let Err(e) = self.fetch_policy() {
            p.push(format!("ingest.fetch_allow: {e}"));
        }
        if self.fetch_max_redirects > 20 {
            p.push("ingest.fetch_max_redirects must be at most 20".to_owned());
        }
        for (key, v) in [
            ("ingest.refresh_secs", self.refresh_secs),
            ("ingest.call_timeout_secs", self.call_timeout_secs),
        ] {
            if v == 0 {
                p.push(format!("{key} must be at least 1"));
            }
        }
        if self.call_retries > 10 {
            p.push("ingest.call_retries must be at most 10".to_owned());
        }
        if self.max_message_bytes < 1024 {
            p.push("ingest.max_message_bytes must be at least 1024".to_owned());
        }
    }
}
