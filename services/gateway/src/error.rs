//! Errors as the HTTP API answers them: `{"error": {"code", "message", "details"}}` with the
//! status from the shared error table, and `Retry-After` where waiting helps.

use apex_common::error::ErrorCode;
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

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
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

    pub fn body(&self) -> Value {
        json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "details": self.details,
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after_secs
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
                             "details": {"field": "file"}}})
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
}
