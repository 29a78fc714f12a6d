//! Unit tests for the error contract: codes, details, retry classes and bad-request fields.

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
