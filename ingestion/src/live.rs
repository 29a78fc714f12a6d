//! An ingestion's live status: what the worker writes to Redis as a Temporal-path
//! ingestion's status moves, so that a status read is one Redis `GET` instead of a
//! `DescribeWorkflowExecution` (the dev server's costliest read under load).
//!
//! The workflow's memo stays the record of what the server holds; the live status is a copy
//! written when the move happens (not when the workflow task completes), tagged with the
//! run that wrote it. The gateway answers from it only for the run it started, only while it
//! is fresh or final, and only when no step waits on a server-side activity (whose retries
//! and dependency the server's description names); else it asks Temporal as before. A live
//! status that is lost (Redis down, the worker's queue full) costs a describe, nothing more.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::status::IngestStatus;

/// How long a live status is kept: long enough for the client polling a document to see
/// it end, short enough that the keys of old ingestions go away by themselves.
pub const LIVE_STATUS_TTL: Duration = Duration::from_secs(15 * 60);

/// The Redis key of a document's live status.
pub fn live_status_key(document_id: &str) -> String {
    format!("apex:ingest:live:{document_id}")
}

/// A live status, as the worker writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LiveStatus {
    /// The workflow run that wrote it: a status read for another run does not use it.
    pub run_id: String,
    /// When it was written (the worker's clock, Unix ms).
    pub at_ms: u64,
    /// A step waits on a server-side activity (retrying, or too large to run in the
    /// worker): the server's description says more (the pending activity, its attempts).
    pub on_server: bool,
    pub status: IngestStatus,
}

impl LiveStatus {
    /// Whether a status read at `now_ms` for run `run_id` may be answered from this: the same
    /// run, no step on the server, and final or written within `fresh`.
    pub fn answers(&self, run_id: &str, now_ms: u64, fresh: Duration) -> bool {
        if self.run_id.is_empty() || self.run_id != run_id || self.on_server {
            return false;
        }
        self.status.is_final() || now_ms.saturating_sub(self.at_ms) <= fresh.as_millis() as u64
    }
}

/// Of a live status and the memo of the same run, the one further along (more steps
/// recorded; the live status on a tie, as it is written first).
pub fn further<'a>(live: &'a IngestStatus, memo: &'a IngestStatus) -> &'a IngestStatus {
    if memo.is_final() && !live.is_final() || memo.steps.len() > live.steps.len() {
        memo
    } else {
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::StepRecord;

    fn status(name: &str, steps: usize) -> IngestStatus {
        IngestStatus {
            status: name.to_owned(),
            steps: (0..steps)
                .map(|i| StepRecord {
                    step: format!("s{i}"),
                    millis: 1,
                    attempts: 1,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn live(run: &str, at_ms: u64, on_server: bool, s: IngestStatus) -> LiveStatus {
        LiveStatus {
            run_id: run.to_owned(),
            at_ms,
            on_server,
            status: s,
        }
    }

    #[test]
    fn only_a_fresh_or_final_status_of_the_same_run_off_the_server_answers() {
        let fresh = Duration::from_secs(10);
        let parsed = live("r1", 1_000, false, status("parsed", 3));
        assert!(parsed.answers("r1", 5_000, fresh));
        assert!(parsed.answers("r1", 11_000, fresh), "10 s old: still fresh");
        assert!(!parsed.answers("r1", 11_001, fresh), "stale");
        assert!(!parsed.answers("r2", 5_000, fresh), "another run's");
        let done = live("r1", 1_000, false, status("completed", 6));
        assert!(done.answers("r1", 1_000_000, fresh), "final: never stale");
        let waiting = live("r1", 1_000, true, status("parsed", 3));
        assert!(
            !waiting.answers("r1", 1_000, fresh),
            "the server knows more"
        );
        assert!(!live("", 1_000, false, status("parsed", 3)).answers("", 1_000, fresh));
    }

    #[test]
    fn the_status_further_along_is_kept() {
        let (a, b) = (status("parsed", 3), status("embedded", 4));
        assert_eq!(further(&a, &b).status, "embedded");
        assert_eq!(further(&b, &a).status, "embedded");
        let (l, m) = (status("fetched", 2), status("fetched", 2));
        assert!(std::ptr::eq(further(&l, &m), &l), "a tie: the live one");
        let failed = status("failed", 2);
        assert_eq!(further(&status("parsed", 3), &failed).status, "failed");
    }

    #[test]
    fn it_round_trips_through_json_and_tolerates_missing_fields() {
        let l = live("r1", 7, true, status("parsed", 1));
        let json = serde_json::to_string(&l).expect("serialises");
        let back: LiveStatus = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, l);
        let bare: LiveStatus = serde_json::from_str("{\"run_id\":\"r\"}").expect("decodes");
        assert_eq!(
            (bare.run_id.as_str(), bare.at_ms, bare.on_server),
            ("r", 0, false)
        );
    }
}
