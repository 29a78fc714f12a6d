//! The writer's Prometheus metrics.

/// Counters and histograms of the saga.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: prometheus::Registry,
    /// Writes by outcome: written, replayed, refused (fenced or bad input), failed.
    pub writes: prometheus::IntCounterVec,
    /// Seconds per store call, by store and operation.
    pub step_seconds: prometheus::HistogramVec,
    /// Compensations by store and result (ok, failed).
    pub compensations: prometheus::IntCounterVec,
    /// 0 closed, 1 half-open, 2 open.
    pub breaker_state: prometheus::IntGaugeVec,
    /// Store calls that failed, by store, operation and error code.
    pub store_errors: prometheus::IntCounterVec,
    /// What became queryable, by source: documents (versions written), chunks, entities.
    pub stored: prometheus::IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = prometheus::Registry::new();
        let writes = prometheus::IntCounterVec::new(
            prometheus::Opts::new("apex_writer_writes_total", "Document writes by outcome"),
            &["outcome"],
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        let step_seconds = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new("apex_writer_step_seconds", "Seconds per store call")
                .buckets(vec![
                    0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ]),
            &["store", "op"],
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        let compensations = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "apex_writer_compensations_total",
                "Saga compensations by store and result",
            ),
            &["store", "result"],
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        let breaker_state = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "apex_writer_breaker_state",
                "Circuit breaker per store: 0 closed, 1 half-open, 2 open",
            ),
            &["store"],
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        let store_errors = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "apex_writer_store_errors_total",
                "Store calls that failed, by store, operation and error code",
            ),
            &["store", "op", "code"],
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        let stored = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "apex_writer_stored_total",
                "What writes made queryable, by source and kind (documents, chunks, entities, vectors)",
            ),
            &["source", "kind"],
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        for c in [&writes, &compensations, &store_errors, &stored] {
            let _ = registry.register(Box::new(c.clone()));
        }
        let _ = registry.register(Box::new(step_seconds.clone()));
        let _ = registry.register(Box::new(breaker_state.clone()));
        Self {
            registry,
            writes,
            step_seconds,
            compensations,
            breaker_state,
            store_errors,
            stored,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
