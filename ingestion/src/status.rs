//! What `get_status` answers about an ingestion, and the gRPC status → Temporal failure
//! mapping the activities use.

use serde::{Deserialize, Serialize};

/// Where an ingestion (or a deletion) is. On the wire, in `get_status`, the `Status` search
/// attribute and the legacy path's records, it is the snake-case name ([`Status::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Fetched,
    Parsed,
    EntitiesExtracted,
    Embedded,
    Completed,
    /// Ended without writing: the content hash equals the stored version's.
    Unchanged,
    Failed,
    Deleted,
}

impl Status {
    /// Every status, in the order a successful ingestion passes them, then the other ends.
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::Fetched,
        Status::Parsed,
        Status::EntitiesExtracted,
        Status::Embedded,
        Status::Completed,
        Status::Unchanged,
        Status::Failed,
        Status::Deleted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Fetched => "fetched",
            Status::Parsed => "parsed",
            Status::EntitiesExtracted => "entities_extracted",
            Status::Embedded => "embedded",
            Status::Completed => "completed",
            Status::Unchanged => "unchanged",
            Status::Failed => "failed",
            Status::Deleted => "deleted",
        }
    }

    /// The status a wire name stands for; `None` for a name this version does not know.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Nothing more will happen to this ingestion: it completed, found nothing changed,
    /// failed, or its document was deleted. The one definition of "final" for every path.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Unchanged | Status::Failed | Status::Deleted
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wire names, for code that compares or stores the name.
pub const PENDING: &str = Status::Pending.as_str();
pub const FETCHED: &str = Status::Fetched.as_str();
pub const PARSED: &str = Status::Parsed.as_str();
pub const ENTITIES_EXTRACTED: &str = Status::EntitiesExtracted.as_str();
pub const EMBEDDED: &str = Status::Embedded.as_str();
pub const COMPLETED: &str = Status::Completed.as_str();
pub const UNCHANGED: &str = Status::Unchanged.as_str();
pub const FAILED: &str = Status::Failed.as_str();
pub const DELETED: &str = Status::Deleted.as_str();

/// Whether a status name is final ([`Status::is_final`]); an unknown name is not.
pub fn is_final(name: &str) -> bool {
    Status::parse(name).is_some_and(Status::is_final)
}

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
    /// When the step in progress (or the last one) began, in ms since the Unix epoch: how
    /// long a step that keeps failing has been waiting for its dependency.
    pub step_started_ms: u64,
}

impl IngestStatus {
    /// The status as a [`Status`]; `None` for a name this version does not know.
    pub fn state(&self) -> Option<Status> {
        Status::parse(&self.status)
    }

    /// Nothing more will happen to this ingestion.
    pub fn is_final(&self) -> bool {
        is_final(&self.status)
    }
}

/// How a service's answer is retried by Temporal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The input is wrong or over a limit: retrying cannot help.
    Never,
    /// The service is down, overloaded or slow: retry with backoff.
    Backoff,
}

/// The retry class of a service's answer, from the error contract: the `ErrorInfo` a mesh
/// service attaches (so "over a limit" and "overloaded", both `RESOURCE_EXHAUSTED`, go
/// opposite ways), or the gRPC code when the answer has no details (a connection that
/// failed). The message plays no part.
pub fn retry_class(status: &tonic::Status) -> Retry {
    match apex_common::error::retry_of(status) {
        apex_common::error::Retry::Retryable => Retry::Backoff,
        apex_common::error::Retry::NonRetryable => Retry::Never,
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
    fn statuses_round_trip_their_wire_names_and_four_are_final() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).expect("json");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        let finals: Vec<&str> = Status::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(Status::as_str)
            .collect();
        assert_eq!(finals, ["completed", "unchanged", "failed", "deleted"]);
        assert!(is_final(DELETED));
        assert!(!is_final(EMBEDDED));
        assert!(!is_final("archived"), "an unknown name is not final");
    }

    #[test]
    fn input_errors_are_final_and_outages_are_retried() {
        use apex_common::ServiceError;
        for err in [
            ServiceError::invalid_field("texts", "x"),
            ServiceError::NotFound("x".into()),
            ServiceError::FailedPrecondition("x".into()),
        ] {
            let status = tonic::Status::from(err);
            assert_eq!(retry_class(&status), Retry::Never, "{status:?}");
        }
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::Unknown,
            Code::Aborted,
        ] {
            // Also without details: a connection that failed never reached a service.
            let bare = tonic::Status::new(code, "x");
            assert_eq!(retry_class(&bare), Retry::Backoff, "{code:?}");
        }
        let down = tonic::Status::from(ServiceError::Unavailable("graph down".into()));
        assert_eq!(retry_class(&down), Retry::Backoff);
    }

    #[test]
    fn resource_exhausted_is_final_for_limits_and_retried_for_overload() {
        use apex_common::ServiceError;
        let limit = tonic::Status::from(ServiceError::TooLarge(
            "input is 90000000 bytes, over the parser's limit of 67108864 bytes".into(),
        ));
        let overload = tonic::Status::from(ServiceError::ResourceExhausted(
            "the embedding queue is full (4096 of 4096 texts waiting); retry later".into(),
        ));
        assert_eq!(limit.code(), Code::ResourceExhausted);
        assert_eq!(overload.code(), Code::ResourceExhausted);
        assert_eq!(retry_class(&limit), Retry::Never);
        assert_eq!(retry_class(&overload), Retry::Backoff);
        assert_eq!(failure_type(Code::InvalidArgument), "GrpcInvalidArgument");
    }
}
