//! `apex-vectord`: a single-node server that speaks Qdrant's gRPC API (`qdrant.Qdrant`,
//! `qdrant.Collections`, `qdrant.Points`) and stores data with Qdrant's embedded engine,
//! `qdrant-edge`. It exists so that the product's `qdrant-client` code path runs against a
//! real engine on machines where no Qdrant server installs; it is a development tool, not
//! part of the product. `README.md` beside this crate lists what it supports and every known
//! difference from a real Qdrant.

pub mod bench;
mod convert;
mod error;
pub mod server;
mod service;
pub mod settings;
mod store;

pub use server::{Server, serve};
pub use service::QDRANT_API_VERSION;
pub use settings::VectordSettings;
