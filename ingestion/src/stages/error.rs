//! [`StageError`]: how a stage failed, and whether trying again can help.

use apex_proto::writer::v1::WRITE_OUTCOMES;
use apex_proto::writer::v1::{StepState, Store, WriteDocumentResponse};

use crate::status::{Retry, failure_type, retry_class};
use crate::steps::{MAX_ATTEMPTS, Patience};

/// A stage that did not succeed: the failure type (as Temporal records it), the reason,
/// and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    pub type_name: String,
    pub message: String,
    pub retryable: bool,
    /// The error contract's code of the service's answer (from its details, else its gRPC
    /// code), when a service answered.
    pub kind: Option<apex_common::error::ErrorCode>,
    /// How long the Temporal path retries it (see [`crate::steps`]).
    pub patience: Patience,
}

impl StageError {
    /// A failure carrying the service's reason, retryable or not by its code.
    pub fn grpc(service: &str, status: &tonic::Status) -> Self {
        use apex_common::error::{ErrorCode, decode_details};
        let retryable = retry_class(status) == Retry::Backoff;
        let kind = ErrorCode::of_status(status);
        // `internal` as a mesh service's own answer (it attached the error contract's
        // details) may be a bug: a few attempts. Without details no service answered (a
        // connection refused or cut, a proxy's error page): an outage like `unavailable`.
        let answered = decode_details(status)
            .and_then(|d| d.error_info)
            .is_some_and(|info| info.domain == apex_common::error::DOMAIN);
        let patience = if !retryable {
            Patience::Never
        } else if kind == ErrorCode::Internal && answered {
            Patience::Attempts(MAX_ATTEMPTS)
        } else {
            Patience::UntilDeadline
        };
        Self {
            type_name: failure_type(status.code()),
            message: format!("{service}: {}", status.message()),
            retryable,
            kind: Some(kind),
            patience,
        }
    }

    /// A failure no retry can fix.
    pub fn fatal(type_name: &str, message: String) -> Self {
        Self {
            type_name: type_name.to_owned(),
            message,
            retryable: false,
            kind: None,
            patience: Patience::Never,
        }
    }

    /// A transient failure: a source or the blob store away, waited out like an outage.
    pub fn transient(message: String) -> Self {
        Self {
            type_name: "Transient".to_owned(),
            message,
            retryable: true,
            kind: None,
            patience: Patience::UntilDeadline,
        }
    }

    /// A failed write, naming the failing stores from the status details the writer
    /// attaches.
    pub fn write(status: &tonic::Status) -> Self {
        let stores = apex_common::error::decode_details(status)
            .and_then(|d| d.find::<WriteDocumentResponse>(WRITE_OUTCOMES))
            .map(|r| {
                r.outcomes
                    .iter()
                    .filter(|o| o.state == StepState::Failed as i32)
                    .filter_map(|o| Store::try_from(o.store).ok())
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("STORE_")
                            .to_ascii_lowercase()
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let mut e = Self::grpc("writer", status);
        if !stores.is_empty() {
            e.message = format!(
                "writer: store {} failed: {}",
                stores.join(", "),
                status.message()
            );
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_names_the_failed_store_and_keeps_the_retry_class() {
        use apex_proto::writer::v1::StoreOutcome;
        let details = WriteDocumentResponse {
            outcomes: vec![
                StoreOutcome {
                    store: Store::Postgres as i32,
                    state: StepState::Compensated as i32,
                    error: String::new(),
                },
                StoreOutcome {
                    store: Store::Graph as i32,
                    state: StepState::Failed as i32,
                    error: "down".into(),
                },
            ],
            ..Default::default()
        };
        let status = apex_common::error::ErrorCode::Unavailable.status(
            "unavailable: graph: down",
            vec![apex_common::error::pack(WRITE_OUTCOMES, &details)],
        );
        let failure = StageError::write(&status);
        assert!(failure.message.contains("store graph failed"), "{failure}");
        assert!(failure.retryable);
        assert_eq!(failure.patience, Patience::UntilDeadline);
        let refused = StageError::write(
            &apex_common::error::ErrorCode::FailedPrecondition.status("older version", Vec::new()),
        );
        assert!(!refused.retryable);
        assert_eq!(refused.patience, Patience::Never);
        assert_eq!(refused.type_name, "GrpcFailedPrecondition");
        assert_eq!(refused.message, "writer: older version");
    }

    #[test]
    fn outages_are_waited_out_and_a_services_own_internal_error_gets_a_few_attempts() {
        use apex_common::ServiceError;
        let patience = |s: tonic::Status| StageError::grpc("embedder", &s).patience;
        // Answers of a service, with the error contract's details.
        let answered = [
            (
                ServiceError::Unavailable("graph: circuit open".into()),
                Patience::UntilDeadline,
            ),
            (
                ServiceError::ResourceExhausted("queue full".into()),
                Patience::UntilDeadline,
            ),
            (
                ServiceError::Internal(anyhow::anyhow!("bug")),
                Patience::Attempts(MAX_ATTEMPTS),
            ),
            (
                ServiceError::invalid_field("texts", "empty"),
                Patience::Never,
            ),
            (
                ServiceError::TooLarge("over the limit".into()),
                Patience::Never,
            ),
        ];
        for (err, want) in answered {
            let status = tonic::Status::from(err);
            assert_eq!(patience(status.clone()), want, "{status:?}");
        }
        // No service answered: a refused or cut connection, whatever its gRPC code.
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::Unknown,
            tonic::Code::Internal,
            tonic::Code::DeadlineExceeded,
        ] {
            let bare = tonic::Status::new(code, "transport error");
            assert_eq!(patience(bare), Patience::UntilDeadline, "{code:?}");
        }
        assert_eq!(
            StageError::transient("x".into()).patience,
            Patience::UntilDeadline
        );
        assert_eq!(StageError::fatal("X", "x".into()).patience, Patience::Never);
    }
}
