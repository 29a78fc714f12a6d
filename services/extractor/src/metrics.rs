//! The extractor's Prometheus metrics (served on `/metrics`).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Counters and histograms the extractor keeps.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Chunks read, and chunks that were empty or whitespace only.
    pub chunks: IntCounter,
    pub empty_chunks: IntCounter,
    /// Mentions found, by entity type.
    pub mentions: IntCounterVec,
    /// Seconds per request, by RPC.
    pub request_seconds: HistogramVec,
    /// LLM API calls by outcome (`ok`, `http_429`, `http_5xx`, `transport`, …).
    pub llm_calls: IntCounterVec,
    /// LLM cache lookups: `hit`, `miss`, `error`.
    pub llm_cache: IntCounterVec,
    /// Chunks the default engine took over, by reason.
    pub llm_fallbacks: IntCounterVec,
    /// LLM entities whose text is not in the chunk (dropped).
    pub llm_dropped_entities: IntCounter,
    /// Seconds per LLM API call.
    pub llm_call_seconds: Histogram,
    /// Entities per document (`ExtractBlob`), and documents with text but no entity.
    pub document_entities: Histogram,
    pub documents_without_entities: IntCounter,
    /// Surface forms in the user gazetteer, and failed reloads.
    pub gazetteer_forms: IntGauge,
    pub gazetteer_reload_errors: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: T) -> T {
    // Names are fixed and distinct, so registration cannot collide.
    let _ = registry.register(Box::new(c.clone()));
    c
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            register(
                &registry,
                IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}")),
            )
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels)
                    .unwrap_or_else(|e| panic!("metric {name}: {e}")),
            )
        };
        Self {
            chunks: counter("apex_extractor_chunks_total", "Chunks read"),
            empty_chunks: counter(
                "apex_extractor_empty_chunks_total",
                "Chunks that were empty or whitespace only",
            ),
            mentions: counter_vec(
                "apex_extractor_mentions_total",
                "Mentions found, by entity type",
                &["entity_type"],
            ),
            request_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("apex_extractor_request_seconds", "Seconds per request")
                        .buckets(vec![0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0, 60.0]),
                    &["rpc"],
                )
                .unwrap_or_else(|e| panic!("histogram: {e}")),
            ),
            llm_calls: counter_vec(
                "apex_extractor_llm_calls_total",
                "LLM API calls by outcome",
                &["outcome"],
            ),
            llm_cache: counter_vec(
                "apex_extractor_llm_cache_total",
                "LLM answer cache lookups by result",
                &["result"],
            ),
            llm_fallbacks: counter_vec(
                "apex_extractor_llm_fallback_chunks_total",
                "Chunks the default engine extracted because the LLM did not answer",
                &["reason"],
            ),
            llm_dropped_entities: counter(
                "apex_extractor_llm_dropped_entities_total",
                "LLM entities whose text is not in the chunk",
            ),
            llm_call_seconds: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new("apex_extractor_llm_call_seconds", "Seconds per LLM call")
                        .buckets(vec![0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]),
                )
                .unwrap_or_else(|e| panic!("histogram: {e}")),
            ),
            document_entities: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "apex_extractor_document_entities",
                        "Entities per document extracted by ExtractBlob",
                    )
                    .buckets(vec![
                        0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 500.0, 2000.0,
                    ]),
                )
                .unwrap_or_else(|e| panic!("histogram: {e}")),
            ),
            documents_without_entities: counter(
                "apex_extractor_documents_without_entities_total",
                "Documents with non-empty text in which no entity was found",
            ),
            gazetteer_forms: register(
                &registry,
                IntGauge::new(
                    "apex_extractor_gazetteer_forms",
                    "Surface forms in the user gazetteer",
                )
                .unwrap_or_else(|e| panic!("gauge: {e}")),
            ),
            gazetteer_reload_errors: counter(
                "apex_extractor_gazetteer_reload_errors_total",
                "User gazetteer reloads that failed (the previous one stays)",
            ),
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
