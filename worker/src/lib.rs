//! The Apex Ingest Temporal worker. It only orchestrates: workflows decide what happens and
//! in which order, activities are thin calls to the gRPC services. No parsing, inference or
//! database code lives here.

pub mod greeting;
pub mod ingest;
pub mod settings;
pub mod worker;

pub use settings::{IngestSettings, WorkerSettings};
pub use worker::{client, run};

/// An error and all its causes on one line, so that the reason an activity gave (for
/// example "name must not be empty") reaches whoever started the workflow.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}
