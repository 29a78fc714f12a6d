//! Shared plumbing for every Apex Ingest binary: settings loading and validation, telemetry
//! (logs and OTLP traces with W3C propagation), shutdown signals, gRPC health and server
//! helpers, the error-code table shared by gRPC and HTTP, the content-addressed blob store and
//! the Prometheus `/metrics` endpoint.
//!
//! It holds no business logic: parsing, extraction, embedding and store writes live in their
//! own service crates.

pub mod api_key;
pub mod blob;
pub mod error;
pub mod fetch;
pub mod grpc;
pub mod metrics;
pub mod ports;
pub mod retry;
pub mod rng;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod stack;
pub mod telemetry;
pub mod temporal;
pub mod tls;
pub mod viewer;

pub use error::{ErrorCode, ServiceError};
pub use settings::{ConfigError, Settings};
pub use shutdown::Shutdown;
