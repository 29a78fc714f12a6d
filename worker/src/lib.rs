//! The Apex Ingest Temporal worker. It only orchestrates: workflows decide what happens and
//! in which order, activities are thin calls to the gRPC services. No parsing, inference or
//! database code lives here.

pub mod greeting;
pub mod ingest;
pub mod metrics;
pub mod poll;
pub mod settings;
pub mod worker;

pub use settings::{IngestSettings, WorkerSettings};
pub use worker::{client, run};

pub use apex_ingestion::error_chain;
