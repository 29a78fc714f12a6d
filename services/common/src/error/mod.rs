//! One error contract for the whole mesh. An [`ErrorCode`] decides, by exhaustive matches,
//! its gRPC status code, its HTTP status and whether retrying helps. Every error status a
//! service sends carries its code and retry class in its details (a `google.rpc.ErrorInfo`
//! with reason `TOO_LARGE`, `RESOURCE_EXHAUSTED`, … in domain [`DOMAIN`], and a
//! `google.rpc.RetryInfo` when retrying helps); the worker, the gateway and the CLI decide
//! from those details alone ([`ErrorCode::of_status`]), never from the message, so rewording
//! a message changes no behaviour. "Over a limit" ([`ErrorCode::TooLarge`], final) and
//! "overloaded, retry later" ([`ErrorCode::ResourceExhausted`], retried) travel as the same
//! gRPC code and are told apart by the details.

mod details;
mod service_error;

use std::time::Duration;

use apex_proto::common::v1::ErrorCode as WireCode;
use prost::Message as _;
use tonic::{Code, Status};
use tonic_types::pb;

pub use details::{Details, decode_details, pack};
pub use service_error::ServiceError;

/// The `ErrorInfo` domain of the mesh's errors.
pub const DOMAIN: &str = "apex.ingest";

/// How long a caller should wait before retrying a retryable error, unless the error says.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The shared error codes (the wire form is `apex.common.v1.ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    /// Overloaded: a full queue, a rate limit, too many in flight. Retry later.
    ResourceExhausted,
    Unavailable,
    Timeout,
    Cancelled,
    Unimplemented,
    Internal,
    /// Over a size or count limit (HTTP 413; over gRPC `RESOURCE_EXHAUSTED`): final.
    TooLarge,
    /// A body of a type that is not accepted (HTTP 415; over gRPC `INVALID_ARGUMENT`).
    UnsupportedType,
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient: let the retry policy try again.
    Retryable,
    /// The input or state is wrong: retrying cannot help.
    NonRetryable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::FailedPrecondition,
        ErrorCode::ResourceExhausted,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Cancelled,
        ErrorCode::Unimplemented,
        ErrorCode::Internal,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedType,
    ];

    /// The gRPC status code.
    pub const fn grpc(self) -> Code {
        match self {
            Self::InvalidArgument | Self::UnsupportedType => Code::InvalidArgument,
            Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::AlreadyExists,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::ResourceExhausted | Self::TooLarge => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Timeout => Code::DeadlineExceeded,
            Self::Cancelled => Code::Cancelled,
            Self::Unimplemented => Code::Unimplemented,
            Self::Internal => Code::Internal,
        }
    }

    /// The HTTP status code.
    pub const fn http(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::NotFound => 404,
            Self::AlreadyExists => 409,
            Self::FailedPrecondition => 412,
            Self::TooLarge => 413,
            Self::UnsupportedType => 415,
            Self::ResourceExhausted => 429,
            Self::Cancelled => 499,
            Self::Internal => 500,
            Self::Unimplemented => 501,
            Self::Unavailable => 503,
            Self::Timeout => 504,
        }
    }

    /// Whether a failure with this code is worth retrying.
    pub const fn retry(self) -> Retry {
        match self {
            Self::ResourceExhausted
            | Self::Unavailable
            | Self::Timeout
            | Self::Cancelled
            | Self::Internal => Retry::Retryable,
            Self::InvalidArgument
            | Self::NotFound
            | Self::AlreadyExists
            | Self::FailedPrecondition
            | Self::Unimplemented
            | Self::TooLarge
            | Self::UnsupportedType => Retry::NonRetryable,
        }
    }

    /// Stable snake-case name, used in JSON error bodies and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::FailedPrecondition => "failed_precondition",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Unimplemented => "unimplemented",
            Self::Internal => "internal",
            Self::TooLarge => "too_large",
            Self::UnsupportedType => "unsupported_type",
        }
    }

    /// The wire enum.
    pub const fn wire(self) -> WireCode {
        match self {
            Self::InvalidArgument => WireCode::InvalidArgument,
            Self::NotFound => WireCode::NotFound,
            Self::AlreadyExists => WireCode::AlreadyExists,
            Self::FailedPrecondition => WireCode::FailedPrecondition,
            Self::ResourceExhausted => WireCode::ResourceExhausted,
            Self::Unavailable => WireCode::Unavailable,
            Self::Timeout => WireCode::Timeout,
            Self::Cancelled => WireCode::Cancelled,
            Self::Unimplemented => WireCode::Unimplemented,
            Self::Internal => WireCode::Internal,
            Self::TooLarge => WireCode::TooLarge,
            Self::UnsupportedType => WireCode::UnsupportedType,
        }
    }

    /// The `ErrorInfo` reason: the wire enum's name without its prefix (`TOO_LARGE`).
    pub fn reason(self) -> &'static str {
        let name = self.wire().as_str_name();
        name.strip_prefix("ERROR_CODE_").unwrap_or(name)
    }

    /// The code an `ErrorInfo` reason names.
    pub fn from_reason(reason: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.reason() == reason)
    }

    /// The code for a gRPC status code alone: for answers that carry no details (a
    /// connection that failed, a proxy, a server of another project).
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

    /// The code of a status: from its `ErrorInfo` when a mesh service sent it, else from
    /// its gRPC code ([`ErrorCode::from_grpc`]).
    pub fn of_status(status: &Status) -> Self {
        Self::sent_in(status).unwrap_or_else(|| Self::from_grpc(status.code()))
    }

    /// The code a mesh service put in the status's `ErrorInfo`, if one did.
    fn sent_in(status: &Status) -> Option<Self> {
        decode_details(status)
            .and_then(|d| d.error_info)
            .filter(|info| info.domain == DOMAIN)
            .and_then(|info| Self::from_reason(&info.reason))
    }

    /// A status with this code, `message`, the code's `ErrorInfo` (and `RetryInfo` when
    /// retryable), and `extra` details (already packed as `Any`) after them.
    pub fn status(self, message: impl Into<String>, extra: Vec<prost_types::Any>) -> Status {
        let message = message.into();
        let retryable = self.retry() == Retry::Retryable;
        let info = pb::ErrorInfo {
            reason: self.reason().to_owned(),
            domain: DOMAIN.to_owned(),
            metadata: [
                ("code".to_owned(), self.as_str().to_owned()),
                ("retryable".to_owned(), retryable.to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let mut details = vec![pack("google.rpc.ErrorInfo", &info)];
        if retryable {
            let delay = pb::RetryInfo {
                retry_delay: Some(prost_types::Duration {
                    seconds: DEFAULT_RETRY_DELAY.as_secs() as i64,
                    nanos: 0,
                }),
            };
            details.push(pack("google.rpc.RetryInfo", &delay));
        }
        details.extend(extra);
        let body = pb::Status {
            code: self.grpc() as i32,
            message: message.clone(),
            details,
        };
        Status::with_details(self.grpc(), message, body.encode_to_vec().into())
    }
}

/// Whether retrying a failed call can help. A mesh service's answer says so in its details
/// ([`ErrorCode::of_status`]); an answer without them (a connection refused or reset, a
/// deadline, a proxy) is judged by its gRPC code: only the codes that blame the request are
/// final.
pub fn retry_of(status: &Status) -> Retry {
    match ErrorCode::sent_in(status) {
        Some(code) => code.retry(),
        None => match status.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::AlreadyExists => Retry::NonRetryable,
            Code::Ok
            | Code::Cancelled
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unavailable
            | Code::Internal
            | Code::DataLoss => Retry::Retryable,
        },
    }
}

#[cfg(test)]
mod tests;
