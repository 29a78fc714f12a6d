//! `apex worker status|promote|rollback`: the worker's Worker Deployment versions. A new
//! worker build runs next to the old one (its version is `<deployment>.<build id>`);
//! `promote` makes it current (new workflows go to it), `rollback` makes the version that
//! was current before current again. Workflows keep the version they started on (pinned),
//! so neither interrupts one: keep a version's workers running until `status` says it is
//! drained.

use anyhow::{Context as _, bail};
use apex_ingestion::deployment::{self, Deployment};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum WorkerCmd {
    /// The deployment's versions: which is current, which are draining or drained.
    Status,
    /// Makes a version current: new workflows go to its workers.
    Promote { build_id: String },
    /// Makes the version that was current before the current one current again.
    Rollback,
}

/// Where the deployment is.
pub struct Target<'a> {
    pub temporal: &'a str,
    pub namespace: &'a str,
    pub deployment: &'a str,
}

pub async fn run(cmd: &WorkerCmd, t: &Target<'_>) -> anyhow::Result<bool> {
    let client = apex_ingestion::workflows::client(t.temporal, t.namespace)
        .await
        .with_context(|| format!("cannot reach Temporal at {}", t.temporal))?;
    let Some(d) = deployment::describe(&client, t.namespace, t.deployment).await? else {
        bail!(
            "no worker of deployment `{}` has polled namespace `{}` yet (is the worker running with versioning on?)",
            t.deployment,
            t.namespace
        );
    };
    match cmd {
        WorkerCmd::Status => {
            print(&d);
            Ok(true)
        }
        WorkerCmd::Promote { build_id } => {
            if !d.versions.iter().any(|v| &v.build_id == build_id) {
                bail!(
                    "`{build_id}` is not a version of `{}` (its workers must poll first); versions: {}",
                    t.deployment,
                    names(&d)
                );
            }
            switch(&client, t, &d, build_id).await
        }
        WorkerCmd::Rollback => {
            let Some(previous) = d.previous() else {
                bail!(
                    "`{}` has no version that was current before {}: nothing to roll back to",
                    t.deployment,
                    d.current.as_deref().unwrap_or("(none)")
                );
            };
            let build = previous.build_id.clone();
            switch(&client, t, &d, &build).await
        }
    }
}

async fn switch(
    client: &temporalio_client::Client,
    t: &Target<'_>,
    d: &Deployment,
    build_id: &str,
) -> anyhow::Result<bool> {
    let before = d.current.as_deref().unwrap_or("(none)");
    // A version whose workers just started may not have polled every queue yet: wait for it.
    let patience = std::time::Duration::from_secs(30);
    deployment::set_current(
        client,
        t.namespace,
        t.deployment,
        build_id,
        "apex-cli",
        patience,
    )
    .await?;
    println!(
        "{}: current version {before} → {build_id}; new workflows go to {build_id}, running ones stay on the version they started on",
        t.deployment
    );
    if let Some(after) = deployment::describe(client, t.namespace, t.deployment).await? {
        print(&after);
    }
    Ok(true)
}

fn names(d: &Deployment) -> String {
    d.versions
        .iter()
        .map(|v| v.build_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print(d: &Deployment) {
    println!("  {:<24} {:<9} last current", "build id", "status");
    for v in &d.versions {
        let when = if v.last_current > 0 {
            format!("{} s ago", now_secs().saturating_sub(v.last_current))
        } else {
            "never".to_owned()
        };
        println!("  {:<24} {:<9} {when}", v.build_id, v.status);
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
