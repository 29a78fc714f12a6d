//! What a running ingestion is waiting for: its steps whose last attempt failed and that
//! Temporal will try again (the pending activities in the workflow's description), with how
//! long each has been waiting (from when the workflow began the step).

use std::time::{Duration, SystemTime};

use apex_ingestion::steps::step_of_activity;
use serde_json::{Value, json};
use temporalio_common::protos::temporal::api::workflow::v1::PendingActivityInfo;

/// A protobuf timestamp's `(seconds, nanos)` in ms since the Unix epoch; `None` when unset.
fn millis(t: Option<(i64, i32)>) -> Option<u64> {
    let (seconds, nanos) = t?;
    let ms = i128::from(seconds) * 1_000 + i128::from(nanos) / 1_000_000;
    u64::try_from(ms).ok().filter(|ms| *ms > 0)
}

/// `HH:MM:SS UTC` of a time in ms since the Unix epoch.
fn clock(ms: u64) -> String {
    let s = (ms / 1_000) % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3_600, s / 60 % 60, s % 60)
}

/// A rough, readable length: `45 s`, `12 min`, `3 h`.
fn span(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3_600 => format!("{} min", s / 60),
        s => format!("{} h", s / 3_600),
    }
}

/// The steps being retried: one object per pending activity that has failed at least once,
/// with a sentence that says it all ("waiting for the embedder since 12:03:10 UTC: attempt 7
/// failed (embedder: unavailable: …); next attempt in 20 s").
pub fn waiting(
    pending: &[PendingActivityInfo],
    step_started_ms: u64,
    now: SystemTime,
) -> Vec<Value> {
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    pending
        .iter()
        .filter_map(|p| {
            let failure = p.last_failure.as_ref()?;
            let kind = step_of_activity(&p.activity_type.as_ref()?.name)?;
            let failed = p.attempt.saturating_sub(1).max(1);
            let next_ms = millis(p.next_attempt_schedule_time.as_ref().map(|t| (t.seconds, t.nanos)));
            let since_ms = Some(step_started_ms).filter(|ms| *ms > 0);
            let mut message = format!("waiting for {}", kind.described);
            if let Some(since) = since_ms {
                message.push_str(&format!(" since {}", clock(since)));
            }
            message.push_str(&format!(": attempt {failed} failed ({})", failure.message));
            match next_ms {
                Some(next) => message.push_str(&format!(
                    "; next attempt in {}",
                    span(Duration::from_millis(next.saturating_sub(now_ms)))
                )),
                None => message.push_str("; trying again now"),
            }
            Some(json!({
                "step": kind.step,
                "dependency": kind.dependency,
                "since_ms": since_ms,
                "attempt": p.attempt,
                "last_error": failure.message,
                "last_failed_ms": millis(p.last_attempt_complete_time.as_ref().map(|t| (t.seconds, t.nanos))),
                "next_attempt_ms": next_ms,
                "message": message,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::common::v1::ActivityType;
    use temporalio_common::protos::temporal::api::failure::v1::Failure;

    /// Sets a protobuf timestamp field to `ms` since the Unix epoch.
    macro_rules! set_ms {
        ($field:expr, $ms:expr) => {{
            let mut t = $field.take().unwrap_or_default();
            t.seconds = ($ms / 1_000) as i64;
            t.nanos = (($ms % 1_000) * 1_000_000) as i32;
            $field = Some(t);
        }};
    }

    #[test]
    fn a_failing_step_says_what_it_waits_for_since_when_and_when_it_tries_again() {
        let started = 1_699_920_000_000 + 43_390_000; // 2023-11-14 12:03:10 UTC
        let now = started + 600_000;
        let mut embedding = PendingActivityInfo {
            activity_type: Some(ActivityType {
                name: "generate_embeddings".into(),
            }),
            attempt: 8,
            last_failure: Some(Failure {
                message: "embedder: tcp connect error".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        set_ms!(embedding.last_attempt_complete_time, now - 10_000);
        set_ms!(embedding.next_attempt_schedule_time, now + 20_000);
        let pending = [
            embedding,
            // Running its first attempt: not waiting.
            PendingActivityInfo {
                activity_type: Some(ActivityType {
                    name: "extract_entities".into(),
                }),
                attempt: 1,
                ..Default::default()
            },
        ];
        let w = waiting(
            &pending,
            started,
            SystemTime::UNIX_EPOCH + Duration::from_millis(now),
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0]["step"], "embed");
        assert_eq!(w[0]["dependency"], "embedder");
        assert_eq!(w[0]["attempt"], 8);
        assert_eq!(w[0]["since_ms"], started);
        assert_eq!(
            w[0]["message"],
            "waiting for the embedder since 12:03:10 UTC: attempt 7 failed (embedder: tcp connect error); next attempt in 20 s"
        );
    }
}
