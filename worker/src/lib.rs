//! The Apex Ingest Temporal worker. It only orchestrates: workflows decide what happens and
//! in which order, activities are thin calls to the gRPC services. No parsing, inference or
//! database code lives here.

pub mod greeting;
pub mod settings;
pub mod worker;

pub use settings::WorkerSettings;
pub use worker::{client, run};
