//! Polled sources on Temporal: [`PollingWorkflow`] per source account over the thin
//! [`PollActivities::poll_page`] (one call to the provider's API). The providers, their
//! cursors and the contract are in [`apex_ingestion::polling`].

pub mod activities;
pub mod workflow;

pub use activities::PollActivities;
pub use workflow::PollingWorkflow;
