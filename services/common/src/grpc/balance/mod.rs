//! Client-side balancing over the replicas of a service. A [`channel`] is tonic's balanced
//! channel (tower's power-of-two-choices over the ready replicas) fed by a membership task:
//! every refresh, and at once when a call found a replica gone, it reads the replicas from
//! their [`Targets`], asks each over gRPC health whether it serves, and adds and removes
//! replicas so that calls go only to those that answer. The calls pass through
//! [`RetryingService`], which sends an idempotent call that a replica refused or dropped again,
//! after the membership has been refreshed, so it lands on another replica.
//!
//! A replica that stops answering is dropped; the last one is never dropped (calls then
//! fail at once with UNAVAILABLE instead of waiting for a replica that may never come), and
//! when no replica answers health, every listed one is kept.

mod retry;
mod targets;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc::Sender, watch};
use tonic::transport::{Channel, Endpoint, channel::Change};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

pub use retry::RetryingService;
pub use targets::{Replica, Target, Targets};

use super::{ClientSpans, ClientSpansService};
use crate::tls::{ClientMaterial, ClientTls};

/// A balanced channel whose calls open client spans and are retried on another replica.
pub type Balanced = RetryingService<ClientSpansService<Channel>>;

/// How a balanced client finds, checks and calls the replicas.
#[derive(Debug, Clone)]
pub struct BalanceOptions {
    /// The gRPC health name the replicas serve (`apex.embedder.v1.EmbedderService`).
    pub health_service: String,
    /// How often the replicas are listed and checked again.
    pub refresh: Duration,
    pub connect_timeout: Duration,
    /// A health check unanswered this long counts as a replica gone.
    pub health_timeout: Duration,
    /// Deadline of a call that sets none itself (a call's own `grpc-timeout` is kept).
    pub call_timeout: Duration,
    /// How many times a refused or dropped call is sent again.
    pub retries: u32,
    /// TLS for `https://` replicas (none: the system's roots, no client certificate). When
    /// its files change, every replica's connection is made again with the new material.
    pub tls: Option<ClientTls>,
}

impl BalanceOptions {
    pub fn new(health_service: &str) -> Self {
        Self {
            health_service: health_service.to_owned(),
            refresh: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            health_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(600),
            retries: 2,
            tls: None,
        }
    }
}

/// A balanced channel over the replicas `spec` names ([`Targets::parse`]). Must be called
/// within a Tokio runtime: the membership runs as a task until the channel is dropped.
pub fn channel(spec: &str, options: &BalanceOptions) -> anyhow::Result<Balanced> {
    let targets = Targets::parse(spec).map_err(|e| anyhow::anyhow!("service address: {e}"))?;
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    let membership = Membership::new();
    let tls_changes = options.tls.as_ref().map(ClientTls::watch);
    let task = Maintainer {
        targets,
        tls_changes,
        options: options.clone(),
        changes,
        membership: membership.clone(),
        members: BTreeSet::new(),
        health: HashMap::new(),
        last_error: None,
    };
    tokio::spawn(task.run());
    let traced = tower::Layer::layer(&ClientSpans, channel);
    Ok(RetryingService::new(traced, membership, options))
}

/// Sweeps started and finished.
#[derive(Debug, Clone, Copy, Default)]
struct Sweeps {
    started: u64,
    finished: u64,
}

/// What the retry layer sees of the membership task: a way to ask for a sweep now and to
/// wait until one that started after the request has finished.
#[derive(Debug, Clone)]
pub struct Membership {
    poke: Arc<Notify>,
    sweeps: watch::Receiver<Sweeps>,
    publish: Arc<watch::Sender<Sweeps>>,
    members: watch::Receiver<BTreeSet<Replica>>,
    publish_members: Arc<watch::Sender<BTreeSet<Replica>>>,
}

impl Membership {
    fn new() -> Self {
        let (publish, sweeps) = watch::channel(Sweeps::default());
        let (publish_members, members) = watch::channel(BTreeSet::new());
        Self {
            poke: Arc::new(Notify::new()),
            sweeps,
            publish: Arc::new(publish),
            members,
            publish_members: Arc::new(publish_members),
        }
    }

    /// The replicas calls go to now.
    pub fn members(&self) -> BTreeSet<Replica> {
        self.members.borrow().clone()
    }

    /// Refreshes the membership now and waits (at most `limit`) until it is done.
    pub async fn refresh(&self, limit: Duration) {
        let mut sweeps = self.sweeps.clone();
        let asked_at = sweeps.borrow_and_update().started;
        self.poke.notify_one();
        let done = sweeps.wait_for(|s| s.finished > asked_at);
        let _ = tokio::time::timeout(limit, done).await;
    }

    /// Waits until at least one replica is a member (at most `limit`).
    pub async fn any(&self, limit: Duration) -> bool {
        let mut members = self.members.clone();
        let wait = members.wait_for(|m| !m.is_empty());
        matches!(tokio::time::timeout(limit, wait).await, Ok(Ok(_)))
    }
}

struct Maintainer {
    targets: Targets,
    /// Changes of the TLS material (`None`: no TLS settings).
    tls_changes: Option<watch::Receiver<Arc<ClientMaterial>>>,
    options: BalanceOptions,
    changes: Sender<Change<SocketAddr, Endpoint>>,
    membership: Membership,
    members: BTreeSet<Replica>,
    health: HashMap<Replica, tonic_health::pb::health_client::HealthClient<Channel>>,
    last_error: Option<String>,
}

impl Maintainer {
    async fn run(mut self) {
        loop {
            self.membership
                .publish
                .send_modify(|s| s.started = s.started.wrapping_add(1));
            let open = self.sweep().await;
            self.membership
                .publish
                .send_modify(|s| s.finished = s.started);
            if !open {
                return;
            }
            let refresh = self.options.refresh;
            let poke = self.membership.poke.clone();
            let tls = self.tls_changes.as_mut();
            let tls_changed = async move {
                if let Some(rx) = tls
                    && rx.changed().await.is_ok()
                {
                    return;
                }
                std::future::pending::<()>().await;
            };
            let renew = tokio::select! {
                () = tokio::time::sleep(refresh) => false,
                () = poke.notified() => false,
                () = tls_changed => true,
            };
            if renew {
                self.renew_tls().await;
            }
        }
    }

    /// One refresh; false once the channel is gone.
    async fn sweep(&mut self) -> bool {
        let listed = match self.targets.resolve().await {
            Ok(listed) => {
                if self.last_error.take().is_some() {
                    tracing::info!(service = %self.options.health_service, "replicas listed again");
                }
                listed
            }
            Err(e) => {
                if self.last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(service = %self.options.health_service, error = %e, "cannot list the replicas; calls keep going to the ones known");
                }
                self.last_error = Some(e);
                BTreeSet::new()
            }
        };
        self.health.retain(|r, _| listed.contains(r));
        let serving = self.serving(&listed).await;
        let wanted = if !serving.is_empty() {
            serving
        } else if !listed.is_empty() {
            listed
        } else {
            self.members.clone()
        };
        for gone in self.members.difference(&wanted) {
            if self.changes.send(Change::Remove(gone.addr)).await.is_err() {
                return false;
            }
        }
        for new in wanted.difference(&self.members) {
            let endpoint = match self.endpoint(new) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(replica = %new.uri(), error = %e, "cannot use replica");
                    continue;
                }
            };
            if self
                .changes
                .send(Change::Insert(new.addr, endpoint))
                .await
                .is_err()
            {
                return false;
            }
        }
        if wanted != self.members {
            tracing::info!(
                service = %self.options.health_service,
                replicas = ?wanted.iter().map(Replica::uri).collect::<Vec<_>>(),
                "calls go to these replicas"
            );
            self.members = wanted.clone();
            self.membership.publish_members.send_replace(wanted);
        }
        !self.changes.is_closed()
    }

    /// New TLS material: every replica is connected again with it (calls in flight finish
    /// on the connections they have), health checks too.
    async fn renew_tls(&mut self) {
        self.health.clear();
        for r in &self.members {
            match self.endpoint(r) {
                Ok(endpoint) => {
                    let _ = self.changes.send(Change::Insert(r.addr, endpoint)).await;
                }
                Err(e) => {
                    tracing::warn!(replica = %r.uri(), error = %e, "cannot use the new TLS material for a replica");
                }
            }
        }
        tracing::info!(service = %self.options.health_service, "replicas connected again with new TLS material");
    }

    /// The endpoint of `r`: TLS for `https://` replicas, checking the host it was listed under.
    fn tls_endpoint(&self, r: &Replica) -> anyhow::Result<Endpoint> {
        let endpoint = Endpoint::from_shared(r.uri())?;
        if !r.https {
            return Ok(endpoint);
        }
        let config = match &self.options.tls {
            Some(tls) => tls.config(&r.host),
            None => crate::tls::config_for(
                &ClientMaterial {
                    ca: None,
                    identity: None,
                },
                &r.host,
            ),
        };
        Ok(endpoint.tls_config(config)?)
    }

    fn endpoint(&self, r: &Replica) -> anyhow::Result<Endpoint> {
        Ok(self
            .tls_endpoint(r)?
            .connect_timeout(self.options.connect_timeout)
            .timeout(self.options.call_timeout)
            .tcp_nodelay(true)
            // A replica that died or hangs on an open connection is noticed within about
            // 15 s (a ping unanswered), not at the end of a long call.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true))
    }

    /// The listed replicas that answer SERVING (or have no health service at all).
    async fn serving(&mut self, listed: &BTreeSet<Replica>) -> BTreeSet<Replica> {
        let mut checks = Vec::new();
        for r in listed {
            let client = match self.health.get(r) {
                Some(c) => c.clone(),
                None => match self.tls_endpoint(r) {
                    Ok(e) => {
                        let c = tonic_health::pb::health_client::HealthClient::new(
                            e.connect_timeout(self.options.connect_timeout)
                                .connect_lazy(),
                        );
                        self.health.insert(r.clone(), c.clone());
                        c
                    }
                    Err(_) => continue,
                },
            };
            let service = self.options.health_service.clone();
            let limit = self.options.health_timeout;
            let r = r.clone();
            checks.push(tokio::spawn(async move {
                let mut client = client;
                let check = client.check(HealthCheckRequest { service });
                let ok = match tokio::time::timeout(limit, check).await {
                    Ok(Ok(resp)) => resp.into_inner().status == ServingStatus::Serving as i32,
                    Ok(Err(s)) => s.code() == tonic::Code::Unimplemented,
                    Err(_) => false,
                };
                (r, ok)
            }));
        }
        let mut out = BTreeSet::new();
        for c in checks {
            if let Ok((r, true)) = c.await {
                out.insert(r);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
