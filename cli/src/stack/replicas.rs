//! Replicas of the stages in the local stack. Replica 1 of a stage is the component itself
//! (`embedder`, its usual ports, `.apex/logs/embedder.log`); replica n is `embedder-n` on
//! ports moved by `replica_port_step`. The scale `apex up --scale` last set is remembered
//! in `<state>/scale.json`; the replicas that run are listed for the clients in
//! `<state>/endpoints/<stage>` (the worker and the gateway read it as `file://…` every
//! `refresh_secs`), and for Prometheus in `<state>/endpoints/<stage>.targets.json`.

use std::{fs, path::Path};

use anyhow::Context;
use apex_common::stack::Scale;
use serde_json::json;

use super::Component;
use crate::settings::StackSettings;

/// One running copy of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub component: Component,
    /// From 1.
    pub replica: u16,
}

impl Instance {
    pub fn name(self) -> String {
        if self.replica <= 1 {
            self.component.name().to_owned()
        } else {
            format!("{}-{}", self.component.name(), self.replica)
        }
    }

    /// The settings as this replica sees them (its own ports).
    pub fn settings(self, s: &StackSettings) -> StackSettings {
        if self.replica <= 1 {
            s.clone()
        } else {
            s.for_replica(self.component.name(), self.replica)
        }
    }
}

/// Replicas of `c` at `scale` (1 for a component that does not scale).
pub fn replicas(c: Component, scale: &Scale) -> u16 {
    scale.of(c.name()).unwrap_or(1)
}

/// Where the clients find the replicas of `stage` (read as `file://` of this path).
pub fn endpoints_file(state: &Path, stage: &str) -> std::path::PathBuf {
    state.join("endpoints").join(stage)
}

fn scale_file(state: &Path) -> std::path::PathBuf {
    state.join("scale.json")
}

/// The scale in effect: what `apex up --scale` last set, else the settings'.
pub fn load(s: &StackSettings, state: &Path) -> Scale {
    fs::read_to_string(scale_file(state))
        .ok()
        .and_then(|t| serde_json::from_str::<Scale>(&t).ok())
        .unwrap_or(s.scale)
}

pub fn save(state: &Path, scale: &Scale) -> anyhow::Result<()> {
    let path = scale_file(state);
    fs::write(&path, serde_json::to_string_pretty(scale)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A replica as the lists name it.
struct Listed {
    name: String,
    /// `127.0.0.1:<port>` of its `/metrics`.
    metrics: String,
    /// `http(s)://127.0.0.1:<port>` of a gRPC service.
    grpc: Option<String>,
}

/// Every replica of `c` at `scale`.
fn listed(c: Component, s: &StackSettings, scale: &Scale) -> Vec<Listed> {
    (1..=replicas(c, scale))
        .map(|r| {
            let i = Instance {
                component: c,
                replica: r,
            };
            let rs = i.settings(s);
            let service = c.grpc_service(&rs);
            Listed {
                name: i.name(),
                metrics: format!(
                    "127.0.0.1:{}",
                    service.map_or(rs.worker_metrics_port, |g| g.2)
                ),
                grpc: service.map(|g| format!("{}://127.0.0.1:{}", s.grpc_scheme(), g.1)),
            }
        })
        .collect()
}

/// Writes the replica lists of every stage at `scale`: the clients' endpoint files and
/// Prometheus's target files. Each file is replaced whole (written aside, then renamed), so
/// a reader never sees half a list.
pub fn write_lists(s: &StackSettings, state: &Path, scale: &Scale) -> anyhow::Result<()> {
    let dir = state.join("endpoints");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for c in Component::ALL {
        if scale.of(c.name()).is_none() {
            continue;
        }
        let replicas = listed(c, s, scale);
        let grpc: Vec<&str> = replicas.iter().filter_map(|l| l.grpc.as_deref()).collect();
        if !grpc.is_empty() {
            let text = format!(
                "# replicas of {} (written by `apex up`)\n{}\n",
                c.name(),
                grpc.join("\n")
            );
            replace(&endpoints_file(state, c.name()), &text)?;
        }
        let groups: Vec<_> = replicas
            .iter()
            .map(|l| json!({"targets": [l.metrics], "labels": {"replica": l.name}}))
            .collect();
        replace(
            &dir.join(format!("{}.targets.json", c.name())),
            &serde_json::to_string_pretty(&groups)?,
        )?;
    }
    Ok(())
}

fn replace(path: &Path, text: &str) -> anyhow::Result<()> {
    let aside = path.with_extension("new");
    fs::write(&aside, text).with_context(|| format!("cannot write {}", aside.display()))?;
    fs::rename(&aside, path).with_context(|| format!("cannot replace {}", path.display()))
}
