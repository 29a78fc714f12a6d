//! The ingestion input and the ids and references that travel with it in Temporal payloads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A claim check as it travels through Temporal payloads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Blob {
    pub key: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub content_type: String,
}

impl From<apex_proto::common::v1::BlobRef> for Blob {
    fn from(b: apex_proto::common::v1::BlobRef) -> Self {
        Self {
            key: b.key,
            sha256: b.sha256,
            size_bytes: b.size_bytes,
            content_type: b.content_type,
        }
    }
}

impl From<Blob> for apex_proto::common::v1::BlobRef {
    fn from(b: Blob) -> Self {
        Self {
            key: b.key,
            sha256: b.sha256,
            size_bytes: b.size_bytes,
            content_type: b.content_type,
        }
    }
}

/// One version of one document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocRef {
    pub document_id: String,
    pub source: String,
    pub version: u64,
}

impl From<DocRef> for apex_proto::common::v1::DocumentRef {
    fn from(d: DocRef) -> Self {
        Self {
            document_id: d.document_id,
            source: d.source,
            version: d.version,
        }
    }
}

/// The document id for `(source, external id)`: UUIDv5 in a fixed namespace, so the same
/// record from the same source is always the same document.
pub fn document_id(source: &str, external_id: &str) -> String {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://apex-ingest.dev/ns/document");
    Uuid::new_v5(
        &namespace,
        format!("{source}\u{1f}{external_id}").as_bytes(),
    )
    .to_string()
}

/// The workflow id of a document's ingestion.
pub fn ingestion_workflow_id(document_id: &str) -> String {
    format!("ingest-{document_id}")
}

/// The workflow id of a document's deletion.
pub fn deletion_workflow_id(document_id: &str) -> String {
    format!("delete-{document_id}")
}

/// Input of the ingestion workflow.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct IngestInput {
    /// Given, or derived from `source` and `external_id` by [`document_id`].
    pub document_id: String,
    pub source: String,
    pub external_id: String,
    /// Higher is more urgent; recorded as the `Priority` search attribute.
    pub priority: i64,
    /// Where the bytes are: `http(s)://…`, `s3://bucket/key`, `file:///path`, an absolute
    /// path, or `blob:<key>` for bytes already in the blob store.
    pub location: String,
    /// Hints for format detection.
    pub file_name: String,
    pub mime_type: String,
    pub metadata: BTreeMap<String, String>,
    /// How many times the write to the stores is tried before the ingestion fails (0: no
    /// count, retried like every step until the deadline).
    pub max_write_attempts: u32,
    /// How long the ingestion waits out outages before it fails, in seconds from its start
    /// (0: [`crate::steps::DEFAULT_DEADLINE`]).
    pub deadline_secs: u64,
    /// How long a service step's first attempt may run in the worker (a local activity)
    /// before the step goes on as a server-side activity, in seconds (0:
    /// [`crate::steps::LOCAL_ATTEMPT_TIMEOUT`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub local_attempt_secs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl IngestInput {
    /// How long a step's first attempt may run in the worker: the input's
    /// `local_attempt_secs`, else the default.
    pub fn local_attempt(&self) -> std::time::Duration {
        match self.local_attempt_secs {
            0 => crate::steps::LOCAL_ATTEMPT_TIMEOUT,
            s => std::time::Duration::from_secs(s),
        }
    }

    /// The document id: the given one, or the one derived from source and external id.
    pub fn resolved_document_id(&self) -> String {
        if self.document_id.trim().is_empty() {
            document_id(&self.source, &self.external_id)
        } else {
            self.document_id.trim().to_owned()
        }
    }

    /// How long the ingestion may wait out outages: the input's `deadline_secs`, else the
    /// default.
    pub fn deadline(&self) -> std::time::Duration {
        match self.deadline_secs {
            0 => crate::steps::DEFAULT_DEADLINE,
            s => std::time::Duration::from_secs(s),
        }
    }
}

/// Input of the deletion workflow.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct DeleteInput {
    pub document_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_are_deterministic_per_source_and_external_id() {
        let a = document_id("upload", "invoice-7");
        assert_eq!(a, document_id("upload", "invoice-7"));
        assert_ne!(a, document_id("webhook", "invoice-7"));
        assert_ne!(a, document_id("upload", "invoice-8"));
        assert!(Uuid::parse_str(&a).is_ok());
        let given = IngestInput {
            document_id: " 5b1c0a0e-0000-4000-8000-000000000000 ".into(),
            ..Default::default()
        };
        assert_eq!(
            given.resolved_document_id(),
            "5b1c0a0e-0000-4000-8000-000000000000"
        );
    }
}
