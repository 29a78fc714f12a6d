//! Document ingestion on Temporal: [`DocumentIngestionWorkflow`] (fetch → parse → extract ∥
//! embed → write) and [`DocumentDeletionWorkflow`], over thin [`IngestActivities`], each one
//! gRPC call (or, for `fetch_document`, one read of the bytes into the blob store).

pub mod activities;
pub mod live;
pub mod waiting;
pub mod wake;
pub mod workflow;

pub use activities::IngestActivities;
pub use stages::{ServiceClients, StageError, Stages};
pub use workflow::{DocumentDeletionWorkflow, DocumentIngestionWorkflow};

/// The task queue of the ingestion workflows (and of the hello world).
pub use apex_common::temporal::TASK_QUEUE;

pub use apex_ingestion::workflows::{IngestionHandle, start_ingestion};
pub use apex_ingestion::{
    Blob, DeleteInput, DocRef, IngestInput, deletion_workflow_id, document_id,
    ingestion_workflow_id, stages, status,
};

/// The contract crate describes these workflows to clients that do not link the worker; these
/// checks fail to compile, or fail, when the two drift apart.
#[cfg(test)]
mod contract {
    use apex_ingestion::workflows as contract;
    use temporalio_common::{QueryDefinition, WorkflowDefinition};

    use super::{DocumentDeletionWorkflow, DocumentIngestionWorkflow};
    use crate::greeting::GreetingWorkflow;
    use crate::poll::PollingWorkflow;

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

    #[test]
    fn the_contract_names_the_workflows_and_queries_the_worker_runs() {
        same_workflow(&DocumentIngestionWorkflow::run, &contract::Ingestion);
        same_query(
            &DocumentIngestionWorkflow::get_status,
            &contract::IngestionStatus,
        );
        same_workflow(&DocumentDeletionWorkflow::run, &contract::Deletion);
        same_query(
            &DocumentDeletionWorkflow::get_status,
            &contract::DeletionStatus,
        );
        same_workflow(&GreetingWorkflow::run, &contract::Greeting);
        same_query(
            &GreetingWorkflow::get_status,
            &contract::GreetingStatusQuery,
        );
        use apex_ingestion::polling;
        same_workflow(&PollingWorkflow::run, &polling::Polling);
        same_query(&PollingWorkflow::get_stats, &polling::PollingStats);
    }
}
