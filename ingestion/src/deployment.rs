//! Worker Deployment versions (Temporal's worker versioning): every worker polls as a
//! version `<deployment>.<build id>`; the server sends new workflows to the deployment's
//! *current* version, and a workflow pinned to the version it started on stays there until it
//! ends. So a new worker build runs next to the old one, `promote` makes it current, and
//! `rollback` makes the previous version current again; neither interrupts a running
//! workflow. Used by the worker (a worker that finds no current version makes its own
//! current) and by `apex worker status|promote|rollback`.

use anyhow::Context as _;
use temporalio_client::Client;
use temporalio_client::grpc::WorkflowService as _;
use temporalio_common::protos::temporal::api::deployment::v1::WorkerDeploymentInfo;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    DescribeWorkerDeploymentRequest, SetWorkerDeploymentCurrentVersionRequest,
};

/// One version of a deployment, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub build_id: String,
    pub current: bool,
    /// `current`, `ramping`, `draining`, `drained`, `inactive`.
    pub status: String,
    /// When it was last current (seconds since the epoch; 0: never).
    pub last_current: i64,
}

/// A deployment's versions, the current one first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deployment {
    pub name: String,
    pub current: Option<String>,
    pub versions: Vec<Version>,
}

impl Deployment {
    /// The version that was current before the current one (the newest `last_current`
    /// among the others).
    pub fn previous(&self) -> Option<&Version> {
        self.versions
            .iter()
            .filter(|v| !v.current && v.last_current > 0)
            .max_by_key(|v| v.last_current)
    }
}

fn status_word(status: i32) -> String {
    use temporalio_common::protos::temporal::api::enums::v1::WorkerDeploymentVersionStatus as S;
    match S::try_from(status).unwrap_or(S::Unspecified) {
        S::Inactive => "inactive",
        S::Current => "current",
        S::Ramping => "ramping",
        S::Draining => "draining",
        S::Drained => "drained",
        S::Created => "created",
        S::Unspecified => "unknown",
    }
    .to_owned()
}

fn from_info(name: &str, info: WorkerDeploymentInfo) -> Deployment {
    let current = info
        .routing_config
        .as_ref()
        .and_then(|r| r.current_deployment_version.as_ref())
        .map(|v| v.build_id.clone())
        .filter(|b| !b.is_empty());
    let mut versions: Vec<Version> = info
        .version_summaries
        .into_iter()
        .filter_map(|s| {
            let build_id = s.deployment_version?.build_id;
            Some(Version {
                current: current.as_deref() == Some(build_id.as_str()),
                build_id,
                status: status_word(s.status),
                last_current: s
                    .last_current_time
                    .or(s.current_since_time)
                    .map_or(0, |t| t.seconds),
            })
        })
        .collect();
    versions.sort_by_key(|v| (!v.current, std::cmp::Reverse(v.last_current)));
    Deployment {
        name: name.to_owned(),
        current,
        versions,
    }
}

/// The deployment `name`; `None` when no worker of it has polled yet.
pub async fn describe(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<Deployment>> {
    let request = DescribeWorkerDeploymentRequest {
        namespace: namespace.to_owned(),
        deployment_name: name.to_owned(),
    };
    match client
        .clone()
        .describe_worker_deployment(tonic::Request::new(request))
        .await
    {
        Ok(r) => Ok(r
            .into_inner()
            .worker_deployment_info
            .map(|info| from_info(name, info))),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(anyhow::anyhow!(
            "describing worker deployment {name}: {}",
            s.message()
        )),
    }
}

/// Makes `build_id` the current version of deployment `name`: new workflows go to it.
///
/// The server refuses a version that has not yet polled every task queue the current one
/// polls (workflow *and* activity queue). A worker that just started reaches the server with
/// its pollers one by one, so such a refusal is asked again every half second for up to
/// `patience`; after that the server's reason is the error.
pub async fn set_current(
    client: &Client,
    namespace: &str,
    name: &str,
    build_id: &str,
    identity: &str,
    patience: std::time::Duration,
) -> anyhow::Result<()> {
    let request = SetWorkerDeploymentCurrentVersionRequest {
        namespace: namespace.to_owned(),
        deployment_name: name.to_owned(),
        build_id: build_id.to_owned(),
        identity: identity.to_owned(),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match client
            .clone()
            .set_worker_deployment_current_version(tonic::Request::new(request.clone()))
            .await
        {
            Ok(_) => return Ok(()),
            Err(s) if pollers_not_there_yet(&s) && tokio::time::Instant::now() < deadline => {
                tracing::debug!(
                    reason = s.message(),
                    "the new version is not polling every task queue yet; asking again"
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(s) => {
                let hint = if pollers_not_there_yet(&s) {
                    format!(
                        " (waited {} s for its workers to poll every task queue; are they running?)",
                        patience.as_secs()
                    )
                } else {
                    String::new()
                };
                return Err(anyhow::anyhow!("{}{hint}", s.message()))
                    .with_context(|| format!("making {name}.{build_id} the current version"));
            }
        }
    }
}

/// The refusal a version gets while its pollers have not all reached the server.
fn pollers_not_there_yet(s: &tonic::Status) -> bool {
    s.message().contains("missing active task queues") || s.message().contains("no pollers")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(build_id: &str, current: bool, last_current: i64) -> Version {
        Version {
            build_id: build_id.into(),
            current,
            status: String::new(),
            last_current,
        }
    }

    #[test]
    fn the_previous_version_is_the_one_current_most_recently() {
        let d = Deployment {
            name: "apex-ingest".into(),
            current: Some("c".into()),
            versions: vec![
                v("c", true, 300),
                v("a", false, 100),
                v("b", false, 200),
                v("new", false, 0),
            ],
        };
        assert_eq!(d.previous().map(|v| v.build_id.as_str()), Some("b"));
        let only = Deployment {
            versions: vec![v("c", true, 300), v("new", false, 0)],
            ..d
        };
        assert!(
            only.previous().is_none(),
            "a version never current is no rollback target"
        );
    }
}
