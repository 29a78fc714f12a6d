//! One error vocabulary for the whole mesh: a code, its gRPC status code, its HTTP status and
//! whether a Temporal activity should retry it. Services convert their own error enums into
//! [`ServiceError`]; the gateway and the worker read statuses back through [`ErrorCode`].

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The shared error codes (mirrors `apex.common.v1.ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    ResourceExhausted,
    Unavailable,
    Timeout,
    Cancelled,
    Unimplemented,
    Internal,
    /// A body over a size limit (HTTP 413; over gRPC it is `RESOURCE_EXHAUSTED`).
    TooLarge,
    /// A body of a type that is not accepted (HTTP 415; over gRPC `INVALID_ARGUMENT`).
    UnsupportedType,
}

/// How a Temporal activity treats a failure with this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient: let the retry policy try again.
    Retryable,
    /// The input or state is wrong: retrying cannot help.
    NonRetryable,
}

/// The table: code → (gRPC code, HTTP status, retry class, stable name).
const TABLE: &[(ErrorCode, Code, u16, Retry, &str)] = &[
    (
        ErrorCode::InvalidArgument,
        Code::InvalidArgument,
        400,
        Retry::NonRetryable,
        "invalid_argument",
    ),
    (
        ErrorCode::NotFound,
        Code::NotFound,
        404,
        Retry::NonRetryable,
        "not_found",
    ),
    (
        ErrorCode::AlreadyExists,
        Code::AlreadyExists,
        409,
        Retry::NonRetryable,
        "already_exists",
    ),
    (
        ErrorCode::FailedPrecondition,
        Code::FailedPrecondition,
        412,
        Retry::NonRetryable,
        "failed_precondition",
    ),
    (
        ErrorCode::ResourceExhausted,
        Code::ResourceExhausted,
        429,
        Retry::Retryable,
        "resource_exhausted",
    ),
    (
        ErrorCode::Unavailable,
        Code::Unavailable,
        503,
        Retry::Retryable,
        "unavailable",
    ),
    (
        ErrorCode::Timeout,
        Code::DeadlineExceeded,
        504,
        Retry::Retryable,
        "timeout",
    ),
    (
        ErrorCode::Cancelled,
        Code::Cancelled,
        499,
        Retry::Retryable,
        "cancelled",
    ),
    (
        ErrorCode::Unimplemented,
        Code::Unimplemented,
        501,
        Retry::NonRetryable,
        "unimplemented",
    ),
    (
        ErrorCode::Internal,
        Code::Internal,
        500,
        Retry::Retryable,
        "internal",
    ),
    (
        ErrorCode::TooLarge,
        Code::ResourceExhausted,
        413,
        Retry::NonRetryable,
        "too_large",
    ),
    (
        ErrorCode::UnsupportedType,
        Code::InvalidArgument,
        415,
        Retry::NonRetryable,
        "unsupported_type",
    ),
];

impl ErrorCode {
    fn row(self) -> &'static (ErrorCode, Code, u16, Retry, &'static str) {
        TABLE.iter().find(|row| row.0 == self).unwrap_or(&TABLE[9])
    }

    /// The gRPC status code.
    pub fn grpc(self) -> Code {
        self.row().1
    }

    /// The HTTP status code.
    pub fn http(self) -> u16 {
        self.row().2
    }

    /// Whether an activity should retry a failure with this code.
    pub fn retry(self) -> Retry {
        self.row().3
    }

    /// Stable snake-case name, used in JSON error bodies and metric labels.
    pub fn as_str(self) -> &'static str {
        self.row().4
    }

    /// The code for a gRPC status code received from another service.
    pub fn from_grpc(code: Code) -> Self {
        match code {
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => Self::Internal,
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument,
            Code::NotFound => Self::NotFound,
            Code::AlreadyExists => Self::AlreadyExists,
            Code::FailedPrecondition | Code::Aborted => Self::FailedPrecondition,
            Code::ResourceExhausted => Self::ResourceExhausted,
            Code::Unavailable => Self::Unavailable,
            Code::DeadlineExceeded => Self::Timeout,
            Code::Cancelled => Self::Cancelled,
            Code::Unimplemented => Self::Unimplemented,
            Code::PermissionDenied | Code::Unauthenticated => Self::FailedPrecondition,
        }
    }
}

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
    /// Input over a configured limit, or the service is saturated.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
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
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Timeout(_) => ErrorCode::Timeout,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        let code = err.code().grpc();
        let message = err.to_string();
        match err {
            ServiceError::InvalidArgument {
                field: Some(field),
                message: reason,
            } => Status::with_error_details(
                code,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            ServiceError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                Status::new(code, message)
            }
            _ => Status::new(code, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_grpc() {
        // The HTTP-only refinements come back as the broader gRPC code they travel as.
        for row in TABLE {
            let back = match row.0 {
                ErrorCode::TooLarge => ErrorCode::ResourceExhausted,
                ErrorCode::UnsupportedType => ErrorCode::InvalidArgument,
                other => other,
            };
            assert_eq!(ErrorCode::from_grpc(row.0.grpc()), back, "{}", row.4);
        }
        assert_eq!(ErrorCode::Internal.as_str(), "internal");
        assert_eq!(ErrorCode::TooLarge.http(), 413);
        assert_eq!(ErrorCode::UnsupportedType.http(), 415);
    }

    #[test]
    fn validation_codes_are_not_retried_and_transient_ones_are() {
        assert_eq!(ErrorCode::InvalidArgument.retry(), Retry::NonRetryable);
        assert_eq!(ErrorCode::NotFound.retry(), Retry::NonRetryable);
        assert_eq!(ErrorCode::FailedPrecondition.retry(), Retry::NonRetryable);
        assert_eq!(ErrorCode::Unavailable.retry(), Retry::Retryable);
        assert_eq!(ErrorCode::Timeout.retry(), Retry::Retryable);
        assert_eq!(ErrorCode::InvalidArgument.http(), 400);
        assert_eq!(ErrorCode::ResourceExhausted.http(), 429);
    }

    #[test]
    fn invalid_field_carries_a_bad_request_detail() {
        let status = Status::from(ServiceError::invalid_field("content", "empty document"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request detail");
        assert_eq!(bad.field_violations[0].field, "content");
        assert_eq!(bad.field_violations[0].description, "empty document");
    }
}
