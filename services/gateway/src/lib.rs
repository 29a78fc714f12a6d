//! The Apex Ingest HTTP gateway. Built by the gateway issue; so far it holds the rollout
//! decision ([`rollout::RolloutCoordinator`]).

pub mod rollout;
