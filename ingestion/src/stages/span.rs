//! The span each stage runs in, the same on the Temporal path (inside the activity's
//! `RunActivity` span) and on the legacy path (inside the ingestion's span): named after
//! the step, with the document it works on as `apex.document_id`, `apex.version` and
//! `apex.source`, and marked as an error (with `error.type`) when the stage fails.

use std::future::Future;

use tracing::Instrument;

use super::StageError;
use crate::input::DocRef;

/// The span of step `name` (`parse`, `extract`, …) on `document`.
pub(crate) fn step(name: &'static str, document: &DocRef) -> tracing::Span {
    let span = step_of(name, &document.document_id);
    span.record("apex.version", document.version);
    span.record("apex.source", document.source.as_str());
    span
}

/// The span of step `name` on a document known only by its id (none for the fetch, which
/// runs before the document has one).
pub(crate) fn step_of(name: &'static str, document_id: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "stage",
        otel.name = name,
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        apex.document_id = tracing::field::Empty,
        apex.version = tracing::field::Empty,
        apex.source = tracing::field::Empty,
    );
    if !document_id.is_empty() {
        span.record("apex.document_id", document_id);
    }
    span
}

/// Runs `stage` in `span`, recording its failure on the span.
pub(crate) async fn traced<T>(
    span: tracing::Span,
    stage: impl Future<Output = Result<T, StageError>>,
) -> Result<T, StageError> {
    let result = stage.instrument(span.clone()).await;
    if let Err(e) = &result {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", e.type_name.as_str());
    }
    result
}
