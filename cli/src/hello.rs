//! `apex hello`: runs `GreetingWorkflow` through the real Temporal server and prints the
//! result, its status query and a link to its history in the UI.

use std::time::{SystemTime, UNIX_EPOCH};

use apex_ingestion::workflows::{Greeting, GreetingInput, GreetingStatusQuery};
use temporalio_client::{WorkflowGetResultOptions, WorkflowQueryOptions, WorkflowStartOptions};

use crate::settings::StackSettings;

pub async fn run(s: &StackSettings, input: GreetingInput, namespace: &str) -> anyhow::Result<bool> {
    let client = apex_ingestion::workflows::client(&s.temporal_address(), namespace).await?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let id = format!("hello-{nanos:x}");
    let handle = client
        .start_workflow(
            Greeting,
            input.into(),
            WorkflowStartOptions::new(apex_common::temporal::TASK_QUEUE, &id).build(),
        )
        .await?;
    let outcome = handle.get_result(WorkflowGetResultOptions::default()).await;
    let status = handle
        .query(GreetingStatusQuery, (), WorkflowQueryOptions::default())
        .await;
    let link = format!("{}/namespaces/{namespace}/workflows/{id}", s.temporal_ui());
    let ok = match outcome {
        Ok(greeting) => {
            println!("{greeting}");
            true
        }
        Err(e) => {
            println!("workflow failed: {}", apex_ingestion::error_chain(&e));
            false
        }
    };
    match status {
        Ok(st) => println!("status: {}", st.status),
        Err(e) => println!("status query failed: {e}"),
    }
    println!("history: {link}");
    Ok(ok)
}
