//! The end-to-end test suite's sandbox. The cross-process tests of Apex Ingest (the worker,
//! the gateway, the CLI and the writer against real Temporal, PostgreSQL, Redis, graph and
//! vector servers) live in this crate's `tests/e2e` binary; this library is what they share:
//!
//! - [`stack`] finds the local stack from the stack's own settings (`APEX_STACK__…`, the
//!   ones `apex up` starts it with) and gates every test that needs it: without a running
//!   stack those tests return at once after one line saying why, unless `APEX_REQUIRE_STACK=1`
//!   (set by `make test`) makes a missing stack a failure;
//! - [`names`] hands out names no other test uses (task queue, graph, collection prefix,
//!   Redis key, source);
//! - [`bins`] finds the workspace's binaries, built from the current sources;
//! - [`fakes`] are local stand-ins for third-party APIs (Plaid, …) on their real wire formats;
//! - [`fault`] is the TCP proxy a test cuts to take a server away;
//! - [`scale`] scales the stack's stages and runs documents through their replicas.
//!
//! It is not a test framework and holds no assertions about the product.

pub mod bins;
pub mod chaos;
pub mod fakes;
pub mod fault;
pub mod names;
pub mod scale;
pub mod stack;

pub use names::Names;
pub use stack::{Stack, StackGuard, stack, stack_exclusive, tools};
