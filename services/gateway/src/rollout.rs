//! Gradual rollout: which path a document takes. A document goes through Temporal when
//! `bucket(document id) < percent`, else through the legacy path (the same services called
//! in sequence by the gateway). The bucket is a stable hash of the id, so the same document
//! takes the same path in every process and after restarts, and raising the percentage
//! only moves documents from legacy to Temporal, never back.

use std::sync::atomic::{AtomicU8, Ordering};

/// The two ingestion paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    Temporal,
    Legacy,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Temporal => "temporal",
            Self::Legacy => "legacy",
        }
    }
}

/// The document's bucket, 0–99 (shared with `apex rollout drain`, which must agree).
pub use apex_ingestion::rollout::bucket;

/// A rollout percentage outside 0–100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rollout percentage must be between 0 and 100, not {0}")]
pub struct BadPercent(pub i64);

/// Decides paths and counts the decisions by path.
#[derive(Debug)]
pub struct RolloutCoordinator {
    percent: AtomicU8,
    decisions: prometheus::IntCounterVec,
}

impl RolloutCoordinator {
    /// A coordinator starting at `percent`, counting into `registry` as
    /// `apex_gateway_rollout_decisions_total{path}`.
    pub fn new(percent: i64, registry: &prometheus::Registry) -> Result<Self, BadPercent> {
        let decisions = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "apex_gateway_rollout_decisions_total",
                "Documents routed, by path (temporal, legacy)",
            ),
            &["path"],
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        let _ = registry.register(Box::new(decisions.clone()));
        let coordinator = Self {
            percent: AtomicU8::new(0),
            decisions,
        };
        coordinator.set_percent(percent)?;
        Ok(coordinator)
    }

    pub fn percent(&self) -> u8 {
        self.percent.load(Ordering::Relaxed)
    }

    /// Changes the percentage at runtime; 0 sends everything to the legacy path (the
    /// emergency rollback).
    pub fn set_percent(&self, percent: i64) -> Result<(), BadPercent> {
        let p = u8::try_from(percent)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or(BadPercent(percent))?;
        let before = self.percent.swap(p, Ordering::Relaxed);
        if before != p {
            tracing::info!(from = before, to = p, "rollout percentage changed");
        }
        Ok(())
    }

    /// The path of `document_id` at the current percentage; logged and counted.
    pub fn decide(&self, document_id: &str) -> Path {
        let b = bucket(document_id);
        let percent = self.percent();
        let path = if b < percent {
            Path::Temporal
        } else {
            Path::Legacy
        };
        self.decisions.with_label_values(&[path.as_str()]).inc();
        tracing::info!(
            document = document_id,
            bucket = b,
            percent,
            path = path.as_str(),
            "rollout decision"
        );
        path
    }

    /// Decisions made so far on `path`.
    pub fn decided(&self, path: Path) -> u64 {
        self.decisions.with_label_values(&[path.as_str()]).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &i.to_be_bytes()).to_string())
            .collect()
    }

    fn coordinator(percent: i64) -> RolloutCoordinator {
        RolloutCoordinator::new(percent, &prometheus::Registry::new()).expect("percent")
    }

    #[test]
    fn buckets_are_pinned_values_of_the_id() {
        // Computed independently (Python hashlib). A change of the hash would move
        // documents between paths, so these values must never change.
        for (id, expected) in [
            ("a", 50),
            ("b", 46),
            ("doc-1", 1),
            ("00000000-0000-0000-0000-000000000000", 68),
        ] {
            assert_eq!(bucket(id), expected, "{id}");
        }
        assert!(ids(1000).iter().all(|i| bucket(i) < 100));
    }

    #[test]
    fn the_split_is_within_three_points_at_10_and_50_percent() {
        let all = ids(10_000);
        for percent in [10i64, 50] {
            let c = coordinator(percent);
            for id in &all {
                c.decide(id);
            }
            let share = c.decided(Path::Temporal) as f64 / all.len() as f64 * 100.0;
            assert!(
                (share - percent as f64).abs() <= 3.0,
                "{percent} % asked, {share:.2} % routed to Temporal"
            );
            assert_eq!(c.decided(Path::Temporal) + c.decided(Path::Legacy), 10_000);
        }
    }

    #[test]
    fn the_same_document_always_takes_the_same_path_and_raising_only_adds_to_temporal() {
        let all = ids(2_000);
        let a = coordinator(30);
        let b = coordinator(30);
        assert!(
            all.iter().all(|id| a.decide(id) == b.decide(id)),
            "another process agrees"
        );
        let at_30: Vec<Path> = all.iter().map(|id| a.decide(id)).collect();
        a.set_percent(60).expect("percent");
        for (id, before) in all.iter().zip(at_30) {
            if before == Path::Temporal {
                assert_eq!(a.decide(id), Path::Temporal, "{id} moved back to legacy");
            }
        }
    }

    #[test]
    fn zero_is_all_legacy_and_hundred_is_all_temporal() {
        let all = ids(1_000);
        let c = coordinator(0);
        assert!(all.iter().all(|id| c.decide(id) == Path::Legacy));
        c.set_percent(100).expect("percent");
        assert!(all.iter().all(|id| c.decide(id) == Path::Temporal));
    }

    #[test]
    fn percentages_outside_0_to_100_are_refused_and_change_nothing() {
        let c = coordinator(20);
        for bad in [-1i64, 101, 1_000] {
            assert_eq!(c.set_percent(bad), Err(BadPercent(bad)));
            assert_eq!(c.percent(), 20);
        }
        assert!(RolloutCoordinator::new(150, &prometheus::Registry::new()).is_err());
    }
}
