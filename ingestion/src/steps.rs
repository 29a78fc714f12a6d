//! Each step's time per attempt, how long its failures are retried, and the wait between
//! attempts. The workflow's activity options and the gateway's legacy path both read these,
//! so a step gets the same time on both paths.
//!
//! Retries go by the failure's class ([`Patience`]), not by a small fixed count: an outage
//! (a service or store unavailable, a timeout, an overload, an open breaker) is waited out
//! until the ingestion's deadline ([`DEFAULT_DEADLINE`] unless the input sets one), so a
//! rolling restart or a failover minutes long fails no document; a failure that may be a bug
//! (`internal`) gets [`MAX_ATTEMPTS`]; bad input is never retried.

use std::time::Duration;

/// Failure type of an ingestion input that cannot be ingested (never retried).
pub const INVALID_INPUT: &str = "InvalidIngestInput";

/// How long an ingestion on the Temporal path may wait out outages before it fails.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);

/// Attempts of a failure that may be the service's own fault rather than an outage
/// (`internal` with the error contract's details): enough for a crash-restart, not a day of
/// a bug. (The legacy path has its own count, the gateway's `legacy_max_attempts`.)
pub const MAX_ATTEMPTS: u32 = 5;

/// The wait before the second attempt, doubled for each later one up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts: how late a step may notice that its dependency
/// is back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

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

/// How long a service step's first attempt may run in the worker (a local activity, which
/// the server does not see) before the step goes on as a server-side activity that
/// heartbeats: a service that hangs is then visible, and retried, like any other failure.
pub const LOCAL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest document whose parse starts in the worker (a local activity,
/// [`crate::workflows::LOCAL_SERVICE_STEPS_PATCH`]); a larger one, which may take minutes
/// (OCR of a long scan), is parsed by a server-side activity that heartbeats from the start.
pub const LOCAL_PARSE_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// The most chunks a document may have for its extraction and embedding to start in the
/// worker; larger ones are server-side activities from the start.
pub const LOCAL_MAX_CHUNKS: u32 = 2_000;

/// A step of the Temporal path and what it waits for when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepDependency {
    /// The step, as the status's `steps` name it.
    pub step: &'static str,
    /// The dependency, as a metric label.
    pub dependency: &'static str,
    /// The dependency, for a sentence ("waiting for the embedder").
    pub described: &'static str,
}

const STEP_DEPENDENCIES: [(&str, StepDependency); 7] = {
    const fn d(
        step: &'static str,
        dependency: &'static str,
        described: &'static str,
    ) -> StepDependency {
        StepDependency {
            step,
            dependency,
            described,
        }
    }
    [
        (
            "fetch_document",
            d("fetch", "source", "the document's source or the blob store"),
        ),
        ("check_document", d("check", "writer", "the writer")),
        ("parse_document", d("parse", "parser", "the parser")),
        (
            "extract_entities",
            d("extract", "extractor", "the extractor"),
        ),
        (
            "generate_embeddings",
            d("embed", "embedder", "the embedder"),
        ),
        (
            "write_to_databases",
            d("write", "stores", "the writer and its stores"),
        ),
        (
            "delete_document",
            d("delete", "stores", "the writer and its stores"),
        ),
    ]
};

/// Every dependency label [`step_of_activity`] gives, once each.
pub const DEPENDENCIES: [&str; 6] = [
    "source",
    "writer",
    "parser",
    "extractor",
    "embedder",
    "stores",
];

/// The step and dependency of an activity, by its type name as Temporal reports it (which
/// may carry a prefix such as `IngestActivities::`).
pub fn step_of_activity(activity_type: &str) -> Option<StepDependency> {
    let name = activity_type
        .rsplit([':', '.'])
        .next()
        .unwrap_or(activity_type);
    STEP_DEPENDENCIES
        .iter()
        .find(|(activity, _)| *activity == name)
        .map(|(_, d)| *d)
}

/// How long a failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// The input or the state is wrong: retrying cannot help.
    Never,
    /// Maybe the service's own fault: this many attempts in all.
    Attempts(u32),
    /// An outage: retried until the ingestion's deadline.
    UntilDeadline,
}

impl Patience {
    /// Whether attempt `attempt` (1 for the first) failing with this class is the last.
    pub fn gives_up_after(self, attempt: u32) -> bool {
        match self {
            Patience::Never => true,
            Patience::Attempts(n) => attempt >= n,
            Patience::UntilDeadline => false,
        }
    }
}

/// The wait after attempt `attempt` (1 for the first) failed: [`FIRST_BACKOFF`] doubled per
/// attempt up to [`MAX_BACKOFF`], scaled into its upper half by `jitter` (0 to 1) so that
/// documents that failed together do not all come back in the same instant.
pub fn retry_delay(attempt: u32, jitter: f64) -> Duration {
    apex_common::retry::backoff(
        FIRST_BACKOFF,
        MAX_BACKOFF,
        attempt.saturating_sub(1),
        jitter as f32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_to_a_cap_and_jitter_spreads_it_over_its_upper_half() {
        let waits: Vec<u64> = (1..=8)
            .map(|a| retry_delay(a, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(retry_delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(retry_delay(40, 0.0), Duration::from_secs(15));
        assert_eq!(retry_delay(40, 7.0), MAX_BACKOFF, "jitter is clamped");
        assert!(retry_delay(3, 0.5) < retry_delay(3, 0.9));
        assert_eq!(retry_delay(0, 1.0), FIRST_BACKOFF);
    }

    #[test]
    fn each_activity_names_its_step_and_dependency() {
        let embed = step_of_activity("IngestActivities::generate_embeddings").expect("known");
        assert_eq!((embed.step, embed.dependency), ("embed", "embedder"));
        assert_eq!(
            step_of_activity("write_to_databases").map(|d| d.dependency),
            Some("stores")
        );
        assert_eq!(step_of_activity("greet"), None);
        for (_, d) in STEP_DEPENDENCIES {
            assert!(DEPENDENCIES.contains(&d.dependency), "{d:?}");
        }
    }

    #[test]
    fn outages_never_give_up_faults_after_their_attempts_and_bad_input_at_once() {
        assert!(Patience::Never.gives_up_after(1));
        assert!(!Patience::Attempts(5).gives_up_after(4));
        assert!(Patience::Attempts(5).gives_up_after(5));
        assert!(!Patience::UntilDeadline.gives_up_after(u32::MAX));
    }
}
