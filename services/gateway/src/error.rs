//! Errors as the HTTP API answers them: `{"error": {"code", "message", "details",
//! "retryable"}}` with the status from the shared error table, and `Retry-After` where
//! waiting helps. `retryable` lets a client decide from the body alone whether sending the
//! same request again can succeed.

use apex_common::error::{ErrorCode, Retry};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: json!({}),
            retry_after_secs: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message).with_details(json!({ "field": field }))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// A dependency the request needs is away: `503` with `Retry-After`
    /// ([`UNAVAILABLE_RETRY_AFTER_SECS`]), so a client waits and sends it again.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after_secs: Some(UNAVAILABLE_RETRY_AFTER_SECS),
            ..Self::new(ErrorCode::Unavailable, message)
        }
    }

    pub fn busy(in_flight: usize, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "{in_flight} ingestions are in flight, the most this gateway takes; retry later"
                ),
            )
            .with_details(json!({ "max_in_flight": in_flight }))
        }
    }

    /// A service's gRPC answer, by the error contract (its details, else its gRPC code):
    /// a parser's "over the limit" is a 413, an embedder's full queue a 429.
    pub fn from_status(service: &str, status: &tonic::Status) -> Self {
        let code = ErrorCode::of_status(status);
        Self::new(code, format!("{service}: {}", status.message()))
            .with_details(json!({ "service": service }))
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Whether the same request may succeed later: the code's retry class (the one its gRPC
    /// details carry), or an answer that says when to come back (`Retry-After`). The latter
    /// covers the `409` for a document another ingestion holds: `already_exists` is final as
    /// a service's answer, but this conflict ends when that ingestion does.
    pub fn retryable(&self) -> bool {
        self.code.retry() == Retry::Retryable || self.retry_after_secs.is_some()
    }

    pub fn body(&self) -> Value {
        json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "details": self.details,
                "retryable": self.retryable(),
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// What a `503` asks a client to wait when nothing better is known: long enough not to
/// hammer a gateway whose dependency is away, short enough to notice it back soon.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        // Every 503 says when to come back, also one made from a service's answer.
        let retry_after = self.retry_after_secs.or_else(|| {
            (self.status() == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(UNAVAILABLE_RETRY_AFTER_SECS)
        });
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_use_the_shared_table_and_carry_retry_after_when_busy() {
        let e = ApiError::invalid("file", "the file is empty");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.body(),
            json!({"error": {"code": "invalid_argument", "message": "the file is empty",
                             "details": {"field": "file"}, "retryable": false}})
        );
        let busy = ApiError::busy(4, 2).into_response();
        assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "2");
        let down = ApiError::from_status("writer", &tonic::Status::unavailable("postgres down"));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.message, "writer: postgres down");
        assert_eq!(
            ApiError::new(ErrorCode::TooLarge, "x").status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn the_body_says_whether_the_same_request_may_be_retried() {
        let retryable = |e: &ApiError| e.body()["error"]["retryable"].clone();
        // By the code's retry class, as the gRPC details say it.
        assert_eq!(retryable(&ApiError::invalid("file", "empty")), json!(false));
        assert_eq!(
            retryable(&ApiError::new(ErrorCode::TooLarge, "x")),
            json!(false)
        );
        assert_eq!(retryable(&ApiError::busy(4, 2)), json!(true));
        let down = ApiError::from_status("writer", &tonic::Status::unavailable("postgres down"));
        assert_eq!(retryable(&down), json!(true));
        let limit = ApiError::from_status(
            "parser",
            &ErrorCode::TooLarge.status("over the limit", Vec::new()),
        );
        assert_eq!(retryable(&limit), json!(false));
        // A conflict that says when to come back (the 409 of a document being ingested).
        let held = ApiError {
            retry_after_secs: Some(2),
            ..ApiError::new(ErrorCode::AlreadyExists, "document d is being ingested")
        };
        assert_eq!(held.status(), StatusCode::CONFLICT);
        assert_eq!(retryable(&held), json!(true));
        assert_eq!(
            retryable(&ApiError::new(ErrorCode::AlreadyExists, "x")),
            json!(false)
        );
    }
}
