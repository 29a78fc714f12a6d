//! Polled sources on Temporal: [`PollingWorkflow`] per source account over the thin
//! [`PollActivities::poll_page`] (one call to the provider's API). The providers, their
//! cursors and the contract are in [`apex_ingestion::polling`].

pub mod activities;
pub mod workflow;

pub use activities::PollActivities;
pub use workflow::PollingWorkflow;

#[cfg(test)]
mod contract {
    use apex_ingestion::polling as contract;
    use temporalio_common::{QueryDefinition, WorkflowDefinition};

    use super::PollingWorkflow;

    #[test]
    fn the_contract_names_the_polling_workflow_and_its_query() {
        fn same_workflow<A, B>(implemented: &A, declared: &B)
        where
            A: WorkflowDefinition,
            B: WorkflowDefinition<Input = A::Input, Output = A::Output>,
        {
            assert_eq!(implemented.name(), declared.name());
        }
        fn same_query<A, B>(implemented: &A, declared: &B)
        where
            A: QueryDefinition,
            B: QueryDefinition<Input = A::Input, Output = A::Output>,
        {
            assert_eq!(implemented.name(), declared.name());
        }
        same_workflow(&PollingWorkflow::run, &contract::Polling);
        same_query(&PollingWorkflow::get_stats, &contract::PollingStats);
    }
}
