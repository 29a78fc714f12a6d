//! Each step's time per attempt and attempts. The workflow's activity options and the
//! gateway's legacy path both read these, so a step gets the same time on both paths.

use std::time::Duration;

/// Failure type of an ingestion input that cannot be ingested (never retried).
pub const INVALID_INPUT: &str = "InvalidIngestInput";

/// Attempts per step. The embedding provider gets 5, as the plan asks; fetch, parse and
/// extract get the same; the write gets more, since the stores are the likeliest to be
/// briefly away and a write is idempotent.
pub const MAX_ATTEMPTS: u32 = 5;
pub const WRITE_MAX_ATTEMPTS: u32 = 10;

/// Time per attempt of each step.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Parse, extract and embed.
pub const SERVICE_TIMEOUT: Duration = Duration::from_secs(600);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often parse, extract and embed heartbeat (and so how soon a dead worker is noticed).
pub const SERVICE_HEARTBEAT: Duration = Duration::from_secs(30);
/// How often the write and the delete heartbeat.
pub const WRITE_HEARTBEAT: Duration = Duration::from_secs(60);
