//! The short chaos suite: every service, store, Temporal and the gateway taken away for about
//! 30 s in turn (`APEX_CHAOS_AWAY_SECS` to change it) while documents go through the Temporal
//! path; none may fail, be lost or be stored twice, and the stores must agree. `make chaos`
//! runs the long version.

use std::time::Duration;

use apex_e2e::chaos::{self, Config, How, TARGETS};

fn away() -> Duration {
    let secs = std::env::var("APEX_CHAOS_AWAY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_document_fails_while_any_one_dependency_is_away_for_half_a_minute() {
    let Some(stack) = apex_e2e::stack_exclusive() else {
        return;
    };
    let config = Config {
        stack: stack.settings.clone(),
        apex: apex_e2e::bins::bin("apex"),
        targets: TARGETS.iter().map(|t| (*t).to_owned()).collect(),
        away: away(),
        documents: 6,
        how: How::Stop,
        settle: Duration::from_secs(300),
        run_id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
    };
    let rounds = chaos::run(&config, |line| eprintln!("[chaos] {line}"))
        .await
        .expect("the chaos rounds ran");
    let report = chaos::report(&rounds);
    eprintln!("{report}");
    assert_eq!(
        rounds.len(),
        TARGETS.len() + 1,
        "the baseline, then each target"
    );
    assert_eq!(rounds[0].target, chaos::BASELINE);
    for r in &rounds {
        assert!(
            r.verdict.clean() && r.recovered.is_some(),
            "taking {} away lost or failed documents:\n{report}",
            r.target
        );
        assert_eq!(r.verdict.completed, config.documents, "{report}");
    }
}
