//! [`ServiceError`]: the error a service returns, with its [`ErrorCode`] and its gRPC status.

use tonic::Status;
use tonic_types::pb;

use super::{ErrorCode, pack};

/// A service error with a reason a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong; `field` names the offending field when there is one.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        field: Option<String>,
        message: String,
    },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The service is saturated (a full queue, a rate limit): the same request may succeed
    /// later.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The input is over a configured limit: the same request fails again.
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl ServiceError {
    /// Shorthand for an invalid field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The shared code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Self::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Timeout(_) => ErrorCode::Timeout,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The gRPC status, with `extra` details (packed) after the code's own.
    pub fn into_status_with(self, extra: Vec<prost_types::Any>) -> Status {
        let code = self.code();
        let message = self.to_string();
        let mut details = Vec::new();
        match self {
            ServiceError::InvalidArgument {
                field: Some(field),
                message: reason,
            } => {
                let violation = pb::BadRequest {
                    field_violations: vec![pb::bad_request::FieldViolation {
                        field,
                        description: reason,
                        ..Default::default()
                    }],
                };
                details.push(pack("google.rpc.BadRequest", &violation));
            }
            ServiceError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
            }
            _ => {}
        }
        details.extend(extra);
        code.status(message, details)
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        err.into_status_with(Vec::new())
    }
}
