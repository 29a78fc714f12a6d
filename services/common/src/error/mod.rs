//! One error contract for the whole mesh. An [`ErrorCode`] decides, by exhaustive matches,
//! its gRPC status code, its HTTP status and whether retrying helps. Every error status a
//! service sends carries its code and retry class in its details (a `google.rpc.ErrorInfo`
//! with reason `TOO_LARGE`, `RESOURCE_EXHAUSTED`, … in domain [`DOMAIN`], and a
//! `google.rpc.RetryInfo` when retrying helps); the worker, the gateway and the CLI decide
//! from those details alone ([`ErrorCode::of_status`]), never from the message, so rewording
//! a message changes no behaviour. "Over a limit" ([`ErrorCode::TooLarge`], final) and
//! "overloaded, retry later" ([`ErrorCode::ResourceExhausted`], retried) travel as the same
//! gRPC code and are told apart by the details.

use std::time::Duration;

use apex_proto::common::v1::ErrorCode as WireCode;
use prost::Message as _;
use tonic::{Code, Status};
use tonic_types::pb;

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

/// Packs a message as `Any` under `type.googleapis.com/<full name>`.
pub fn pack(full_name: &str, message: &impl prost::Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/{full_name}"),
        value: message.encode_to_vec(),
    }
}

/// The details of a status: the mesh's `ErrorInfo` and every other `Any` it carries.
#[derive(Debug, Default)]
pub struct Details {
    pub error_info: Option<pb::ErrorInfo>,
    pub retry_delay: Option<Duration>,
    pub bad_request: Option<pb::BadRequest>,
    /// Every detail, packed, in order (for details of the service's own types).
    pub all: Vec<prost_types::Any>,
}

impl Details {
    /// The first detail of `type_url`'s type, decoded.
    pub fn find<M: prost::Message + Default>(&self, full_name: &str) -> Option<M> {
        let url = format!("type.googleapis.com/{full_name}");
        self.all
            .iter()
            .find(|a| a.type_url == url)
            .and_then(|a| M::decode(a.value.as_slice()).ok())
    }
}

/// Decodes a status's details (`None` when it carries none, or not as `google.rpc.Status`).
pub fn decode_details(status: &Status) -> Option<Details> {
    if status.details().is_empty() {
        return None;
    }
    let body = pb::Status::decode(status.details()).ok()?;
    let mut out = Details::default();
    for any in &body.details {
        match any.type_url.as_str() {
            "type.googleapis.com/google.rpc.ErrorInfo" if out.error_info.is_none() => {
                out.error_info = pb::ErrorInfo::decode(any.value.as_slice()).ok();
            }
            "type.googleapis.com/google.rpc.RetryInfo" => {
                out.retry_delay = pb::RetryInfo::decode(any.value.as_slice())
                    .ok()
                    .and_then(|r| r.retry_delay)
                    .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32));
            }
            "type.googleapis.com/google.rpc.BadRequest" => {
                out.bad_request = pb::BadRequest::decode(any.value.as_slice()).ok();
            }
            _ => {}
        }
    }
    out.all = body.details;
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt as _;

    #[test]
    fn every_code_round_trips_through_its_details_and_its_wire_name() {
        for code in ErrorCode::ALL {
            let status = code.status("some words", Vec::new());
            assert_eq!(status.code(), code.grpc(), "{}", code.as_str());
            assert_eq!(ErrorCode::of_status(&status), code, "{}", code.as_str());
            assert_eq!(ErrorCode::from_reason(code.reason()), Some(code));
            let info = status.get_details_error_info().expect("error info");
            assert_eq!(info.domain, DOMAIN);
            assert_eq!(info.reason, code.reason());
            assert_eq!(
                info.metadata.get("retryable").map(String::as_str),
                Some(if code.retry() == Retry::Retryable {
                    "true"
                } else {
                    "false"
                })
            );
            assert_eq!(
                status.get_details_retry_info().is_some(),
                code.retry() == Retry::Retryable,
                "{}",
                code.as_str()
            );
        }
        assert_eq!(ErrorCode::TooLarge.reason(), "TOO_LARGE");
        assert_eq!(ErrorCode::Internal.as_str(), "internal");
        assert_eq!(ErrorCode::TooLarge.http(), 413);
        assert_eq!(ErrorCode::UnsupportedType.http(), 415);
    }

    /// The wire enum and this enum name the same codes: a value added to the proto without a
    /// counterpart here fails this test.
    #[test]
    fn the_wire_enum_has_exactly_these_codes() {
        let mut wire: Vec<i32> = ErrorCode::ALL.iter().map(|c| c.wire() as i32).collect();
        wire.sort_unstable();
        let known: Vec<i32> = (1..=12).collect();
        assert_eq!(wire, known);
        assert!(WireCode::try_from(13).is_err());
    }

    #[test]
    fn over_a_limit_is_final_and_overloaded_is_retried_though_both_are_resource_exhausted() {
        let limit = Status::from(ServiceError::TooLarge("input over the limit".into()));
        let busy = Status::from(ServiceError::ResourceExhausted("queue full".into()));
        assert_eq!(limit.code(), Code::ResourceExhausted);
        assert_eq!(busy.code(), Code::ResourceExhausted);
        assert_eq!(ErrorCode::of_status(&limit).retry(), Retry::NonRetryable);
        assert_eq!(ErrorCode::of_status(&busy).retry(), Retry::Retryable);
        // The message plays no part: the same words with the other code classify the other way.
        let reworded = ErrorCode::TooLarge.status("queue full; retry later", Vec::new());
        assert_eq!(ErrorCode::of_status(&reworded), ErrorCode::TooLarge);
    }

    #[test]
    fn a_status_without_details_is_classified_by_its_grpc_code() {
        assert_eq!(
            ErrorCode::of_status(&Status::unavailable("tcp connect error")),
            ErrorCode::Unavailable
        );
        assert_eq!(
            ErrorCode::of_status(&Status::invalid_argument("x")),
            ErrorCode::InvalidArgument
        );
        // Details of another domain are not ours to read.
        let foreign = Status::with_error_details(
            Code::ResourceExhausted,
            "quota",
            tonic_types::ErrorDetails::with_error_info("TOO_LARGE", "example.com", []),
        );
        assert_eq!(ErrorCode::of_status(&foreign), ErrorCode::ResourceExhausted);
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
    fn invalid_field_carries_a_bad_request_detail_and_extra_details_follow() {
        let status = Status::from(ServiceError::invalid_field("content", "empty document"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request detail");
        assert_eq!(bad.field_violations[0].field, "content");
        assert_eq!(bad.field_violations[0].description, "empty document");
        assert_eq!(ErrorCode::of_status(&status), ErrorCode::InvalidArgument);

        let extra = pack("google.rpc.Help", &pb::Help { links: Vec::new() });
        let status = ServiceError::Unavailable("down".into()).into_status_with(vec![extra]);
        let decoded = decode_details(&status).expect("details");
        assert_eq!(
            decoded.all.len(),
            3,
            "error info, retry info, then the extra"
        );
        assert!(decoded.find::<pb::Help>("google.rpc.Help").is_some());
        assert_eq!(decoded.retry_delay, Some(DEFAULT_RETRY_DELAY));
    }
}
