//! What `get_status` answers about an ingestion, and the gRPC status → Temporal failure
//! mapping the activities use.

use serde::{Deserialize, Serialize};

/// Statuses in the order a successful ingestion passes them.
pub const PENDING: &str = "pending";
pub const FETCHED: &str = "fetched";
pub const PARSED: &str = "parsed";
pub const ENTITIES_EXTRACTED: &str = "entities_extracted";
pub const EMBEDDED: &str = "embedded";
pub const COMPLETED: &str = "completed";
/// Ended without writing: the content hash equals the stored version's.
pub const UNCHANGED: &str = "unchanged";
pub const FAILED: &str = "failed";
pub const DELETED: &str = "deleted";

/// One step's timing and attempts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepRecord {
    pub step: String,
    /// Workflow time from scheduling the step to its result.
    pub millis: u64,
    /// Attempts the activity took (1 = first try).
    pub attempts: u32,
}

/// The answer of `get_status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct IngestStatus {
    pub status: String,
    pub document_id: String,
    pub source: String,
    /// The version being written (or stored, when unchanged).
    pub version: u64,
    pub content_sha256: String,
    pub steps: Vec<StepRecord>,
    pub chunk_count: u32,
    pub entity_count: u32,
    pub vector_count: u32,
    /// Loud notes about silent outcomes: no chunks, no entities from a non-empty text.
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

/// How a gRPC status code is retried by Temporal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The input is wrong or over a limit: retrying cannot help.
    Never,
    /// The service is down, overloaded or slow: retry with backoff.
    Backoff,
}

/// The retry class of a service's answer. `RESOURCE_EXHAUSTED` is an overload (retried)
/// when the service says "retry later" (a full queue, a rate limit), and input over a limit
/// (not retried) otherwise.
pub fn retry_class(code: tonic::Code, message: &str) -> Retry {
    use tonic::Code as C;
    match code {
        C::InvalidArgument
        | C::NotFound
        | C::FailedPrecondition
        | C::OutOfRange
        | C::Unimplemented
        | C::PermissionDenied
        | C::Unauthenticated
        | C::AlreadyExists => Retry::Never,
        C::ResourceExhausted => {
            let m = message.to_ascii_lowercase();
            if m.contains("retry later") || m.contains("rate limit") {
                Retry::Backoff
            } else {
                Retry::Never
            }
        }
        _ => Retry::Backoff,
    }
}

/// The failure type name of a gRPC code: `Grpc` + the code (`GrpcInvalidArgument`, …).
pub fn failure_type(code: tonic::Code) -> String {
    format!("Grpc{code:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn input_errors_are_final_and_outages_are_retried() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::FailedPrecondition,
        ] {
            assert_eq!(retry_class(code, "x"), Retry::Never, "{code:?}");
        }
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::Unknown,
            Code::Aborted,
        ] {
            assert_eq!(retry_class(code, "x"), Retry::Backoff, "{code:?}");
        }
    }

    #[test]
    fn resource_exhausted_is_final_for_limits_and_retried_for_overload() {
        assert_eq!(
            retry_class(
                Code::ResourceExhausted,
                "input is 90000000 bytes, over the parser's limit of 67108864 bytes"
            ),
            Retry::Never
        );
        assert_eq!(
            retry_class(
                Code::ResourceExhausted,
                "the embedding queue is full (4096 of 4096 texts waiting); retry later"
            ),
            Retry::Backoff
        );
        assert_eq!(failure_type(Code::InvalidArgument), "GrpcInvalidArgument");
    }
}
