//! The cross-process tests of Apex Ingest: the worker with a real Temporal dev server and
//! worker processes, the gateway and the `apex` CLI against the running mesh, the writer's
//! saga and the extractor's gazetteer against the real stores.
//!
//! One test binary (one link, one "skipping" line): each test first asks the sandbox
//! ([`apex_e2e::stack`], or [`apex_e2e::tools`] for the ones that only need bootstrap's
//! `temporal` CLI) and returns at once when that is missing, unless `APEX_REQUIRE_STACK=1`
//! (`make test`) requires it. Tests isolate themselves with [`apex_e2e::Names`].

mod alerts;
mod chaos;
mod cli;
mod dashboards;
mod deploy;
mod gateway;
mod gazetteer;
mod polling;
mod replicas;
mod rollbacks;
mod secrets;
mod traces;
mod worker;
mod writer;
