//! The gateway's Prometheus metrics (the middleware that times every request is in
//! [`crate::app`]).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub accepted: IntCounterVec,
    pub finished: IntCounterVec,
    /// From acceptance to the final status (the document queryable, or failed).
    pub lag_seconds: HistogramVec,
    pub rejected: IntCounter,
    pub fallbacks: IntCounter,
    pub temporal_unreachable: IntCounter,
    pub in_flight: IntGauge,
    /// Webhook deliveries by source and outcome (accepted, duplicate, challenge, failed).
    pub webhook_deliveries: IntCounterVec,
    /// Webhook deliveries refused, by source and reason.
    pub webhook_refusals: IntCounterVec,
    /// Secrets each webhook source verifies with (0: it refuses every delivery).
    pub webhook_secrets: prometheus::IntGaugeVec,
    /// Status reads of Temporal-path ingestions by what answered (`live`: the worker's live
    /// status in Redis; `temporal`: the workflow's description).
    pub status_reads: IntCounterVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: T) -> T {
    // Names are unique within this registry, so registering cannot collide.
    let _ = registry.register(Box::new(m.clone()));
    m
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| panic!("metric {name}: {e}"))
        };
        let counter = |name: &str, help: &str| {
            IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"))
        };
        Self {
            requests: register(
                &registry,
                counter_vec(
                    "apex_gateway_requests_total",
                    "HTTP requests by route and status",
                    &["route", "status"],
                ),
            ),
            request_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("apex_gateway_request_seconds", "HTTP request time")
                        .buckets(vec![
                            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                        ]),
                    &["route"],
                )
                .unwrap_or_else(|e| panic!("metric: {e}")),
            ),
            accepted: register(
                &registry,
                counter_vec(
                    "apex_gateway_ingestions_accepted_total",
                    "Ingestions accepted, by the path they took",
                    &["path"],
                ),
            ),
            finished: register(
                &registry,
                counter_vec(
                    "apex_gateway_ingestions_finished_total",
                    "Ingestions this gateway saw end, by path and final status",
                    &["path", "status"],
                ),
            ),
            lag_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "apex_gateway_ingestion_lag_seconds",
                        "From an upload's acceptance to its final status (queryable or failed), by path and status",
                    )
                    .buckets(vec![
                        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                    ]),
                    &["path", "status"],
                )
                .unwrap_or_else(|e| panic!("metric: {e}")),
            ),
            rejected: register(
                &registry,
                counter(
                    "apex_gateway_rejected_busy_total",
                    "Uploads refused with 429 because max_in_flight ingestions were running",
                ),
            ),
            fallbacks: register(
                &registry,
                counter(
                    "apex_gateway_fallbacks_total",
                    "Documents meant for Temporal that took the legacy path because Temporal was unreachable",
                ),
            ),
            temporal_unreachable: register(
                &registry,
                counter(
                    "apex_gateway_temporal_unreachable_total",
                    "Starts that failed because Temporal could not be reached",
                ),
            ),
            in_flight: register(
                &registry,
                IntGauge::new(
                    "apex_gateway_in_flight",
                    "Ingestions accepted by this gateway and not finished",
                )
                .unwrap_or_else(|e| panic!("metric: {e}")),
            ),
            webhook_deliveries: register(
                &registry,
                counter_vec(
                    "apex_gateway_webhook_deliveries_total",
                    "Verified webhook deliveries by source and outcome (accepted, duplicate, challenge, failed)",
                    &["source", "outcome"],
                ),
            ),
            webhook_refusals: register(
                &registry,
                counter_vec(
                    "apex_gateway_webhook_refusals_total",
                    "Webhook deliveries refused, by source and reason (bad_signature, stale, future, missing_header, malformed, oversized, unknown_key, unknown_source, unconfigured, key_unavailable, unavailable)",
                    &["source", "reason"],
                ),
            ),
            status_reads: register(
                &registry,
                counter_vec(
                    "apex_gateway_status_reads_total",
                    "Status reads of Temporal-path ingestions by what answered (live: the worker's live status in Redis; temporal: the workflow's description)",
                    &["source"],
                ),
            ),
            webhook_secrets: register(
                &registry,
                prometheus::IntGaugeVec::new(
                    Opts::new(
                        "apex_gateway_webhook_secrets",
                        "Secrets each webhook source verifies with now (0: every delivery is refused)",
                    ),
                    &["source"],
                )
                .unwrap_or_else(|e| panic!("metric: {e}")),
            ),
            registry,
        }
    }

    pub fn render(&self) -> anyhow::Result<String> {
        Ok(apex_common::metrics::render(&self.registry))
    }
}
