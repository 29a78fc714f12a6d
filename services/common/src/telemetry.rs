//! Logs and traces: `tracing` with an env filter, JSON lines when stdout is not a terminal
//! (each carrying the `trace_id` and `span_id` it was written under), and OTLP/gRPC trace
//! export when an endpoint is configured. W3C trace context is the propagation format
//! everywhere (gRPC metadata, HTTP headers, Temporal's `_tracer-data` header).
//!
//! Spans always get real ids, so logs can be joined to traces; whether they are exported
//! is decided where a trace starts: a process with an endpoint samples the traces it
//! starts and follows the caller's decision for the ones it continues, a process without
//! one starts unsampled traces, and the processes downstream follow that.

use std::io::IsTerminal;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{IdGenerator, RandomIdGenerator, Sampler, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, filter::filter_fn, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::settings::TelemetrySettings;

mod json;

pub use json::JsonLines;

/// Keeps the trace exporter alive; dropping it flushes pending spans.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("trace exporter shutdown failed: {e}");
        }
    }
}

/// Installs the global subscriber and propagator. Call once, early in `main`.
pub fn init_telemetry(
    service_name: &str,
    settings: &TelemetrySettings,
) -> anyhow::Result<TelemetryGuard> {
    init_telemetry_with(service_name, settings, RandomIdGenerator::default())
}

/// [`init_telemetry`] with the span ids drawn from `ids` (the Temporal worker passes the
/// SDK's replay-safe generator, so a workflow's spans keep their ids when it is replayed).
pub fn init_telemetry_with<G: IdGenerator + 'static>(
    service_name: &str,
    settings: &TelemetrySettings,
    ids: G,
) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    crate::metrics::process::set_service(service_name);
    let filter = EnvFilter::try_new(&settings.log_filter)?;
    let json = match settings.log_format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(JsonLines)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };

    let provider = provider(service_name, settings, ids)?;
    opentelemetry::global::set_tracer_provider(provider.clone());
    // The Temporal SDK's own `tracing` spans (`RunWorkflow:…` entered on every poll and
    // replay, `RunActivity:…`) are left out: its OpenTelemetry plugin makes the real ones,
    // parented across the `_tracer-data` header, and ours nest under those.
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service_name.to_owned()))
        .with_filter(filter_fn(|meta| !meta.target().starts_with("temporalio")));

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(crate::metrics::process::LogLines)
        .with(otel_layer)
        .try_init()?;
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

/// Spans only, no log output (for a command-line tool whose output is its own): exported
/// to `endpoint` (empty: not exported, the context still propagates).
pub fn init_export_only(service_name: &str, endpoint: &str) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    crate::metrics::process::set_service(service_name);
    let settings = TelemetrySettings {
        otlp_endpoint: endpoint.to_owned(),
        ..TelemetrySettings::default()
    };
    let provider = provider(service_name, &settings, RandomIdGenerator::default())?;
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service_name.to_owned()))
        .with_filter(EnvFilter::try_new("info")?);
    tracing_subscriber::registry().with(otel_layer).try_init()?;
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

fn provider<G: IdGenerator + 'static>(
    service_name: &str,
    settings: &TelemetrySettings,
    ids: G,
) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .with_attributes([
            opentelemetry::KeyValue::new("service.namespace", "apex"),
            // The project Arize Phoenix (the local viewer) files the traces under.
            opentelemetry::KeyValue::new("openinference.project.name", TRACE_PROJECT),
            opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            opentelemetry::KeyValue::new(
                "service.instance.id",
                format!("{}:{}", hostname(), std::process::id()),
            ),
        ])
        .build();
    let builder = SdkTracerProvider::builder()
        .with_id_generator(ids)
        .with_resource(resource)
        .with_span_processor(ServiceAttribute(service_name.to_owned()));
    let builder = if settings.otlp_endpoint.is_empty() {
        builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
    } else {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.otlp_endpoint.clone())
            .build()?;
        builder
            .with_sampler(root_sampler(settings.sample_ratio.0))
            .with_batch_exporter(exporter)
    };
    Ok(builder.build())
}

/// Traces this process starts are exported at `ratio` (by trace id, so every process that
/// starts traces agrees); continued ones follow the caller.
fn root_sampler(ratio: f64) -> Sampler {
    if ratio >= 1.0 {
        Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
    } else {
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio.max(0.0))))
    }
}

/// The project the local trace viewer (Arize Phoenix) keeps the mesh's traces in.
pub const TRACE_PROJECT: &str = "apex";

/// Copies the service name onto every span as an attribute: viewers that drop the
/// resource (Phoenix does) still show which service a span came from.
#[derive(Debug)]
struct ServiceAttribute(String);

impl opentelemetry_sdk::trace::SpanProcessor for ServiceAttribute {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {
        use opentelemetry::trace::Span as _;
        span.set_attribute(opentelemetry::KeyValue::new("service.name", self.0.clone()));
    }

    fn on_end(&self, _span: opentelemetry_sdk::trace::SpanData) {}

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(
        &self,
        _timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Makes `span` continue the trace whose `traceparent` (and `tracestate`) `headers` carry;
/// without them (or with malformed ones) it stays what it was, a root or a local child.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    use opentelemetry::trace::TraceContextExt as _;
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed; the span is then local.
        let _ = span.set_parent(parent);
    }
}

/// [`continue_trace`] when the request carries a trace; otherwise `span` starts a trace
/// that is not sampled: nothing of it is exported, here or in the services it calls (their
/// samplers follow the parent's decision). For requests too frequent to be worth a trace
/// each, unless their caller traces them.
pub fn continue_trace_or_unsampled(span: &tracing::Span, headers: &http::HeaderMap) {
    use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let parent = if parent.span().span_context().is_valid() {
        parent
    } else {
        let ids = RandomIdGenerator::default();
        opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::default(),
            true,
            TraceState::default(),
        ))
    };
    // Fails only when no OpenTelemetry layer is installed; the span is then local.
    let _ = span.set_parent(parent);
}

/// Writes `span`'s context into `headers` as `traceparent` (and `tracestate`).
pub fn send_trace(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers))
    });
}

/// Tags the current span (a service's request span) with the document a request is about:
/// `apex.document_id`, `apex.version`, `apex.source` (the ones it has).
pub fn record_document(document: Option<&apex_proto::common::v1::DocumentRef>) {
    let Some(d) = document else { return };
    let span = tracing::Span::current();
    if !d.document_id.is_empty() {
        span.record("apex.document_id", d.document_id.as_str());
    }
    if d.version > 0 {
        span.record("apex.version", d.version);
    }
    if !d.source.is_empty() {
        span.record("apex.source", d.source.as_str());
    }
}

#[cfg(test)]
mod sampling_tests {
    use opentelemetry::Context;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample as _};

    use super::root_sampler;
    use crate::settings::TelemetrySettings;

    fn decide(ratio: f64, parent: Option<bool>, trace: u128) -> bool {
        let parent = parent.map(|sampled| {
            Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(trace),
                SpanId::from(1),
                if sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                true,
                TraceState::default(),
            ))
        });
        let result = root_sampler(ratio).should_sample(
            parent.as_ref(),
            TraceId::from(trace),
            "span",
            &SpanKind::Server,
            &[],
            &[],
        );
        result.decision == SamplingDecision::RecordAndSample
    }

    #[test]
    fn new_traces_are_kept_at_the_ratio_and_continued_ones_follow_the_caller() {
        // Every trace at 1, none at 0.
        assert!((1..200u128).all(|t| decide(1.0, None, t << 64)));
        assert!((1..200u128).all(|t| !decide(0.0, None, t << 64)));
        // About a tenth at 0.1, decided by the trace id (the same id, the same answer).
        let kept = (1..2000u128)
            .filter(|t| {
                decide(
                    0.1,
                    None,
                    (1 << 64) | u128::from((*t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                )
            })
            .count();
        assert!((100..=300).contains(&kept), "{kept} of 1999");
        let id = 0xABCD_u128 << 64;
        assert_eq!(decide(0.1, None, id), decide(0.1, None, id));
        // A caller's decision wins over the ratio, both ways.
        assert!(decide(0.0, Some(true), 7 << 64));
        assert!(!decide(1.0, Some(false), 7 << 64));
    }

    /// The sampling decision of a span given `headers`, through `join` (one of the
    /// continue functions), with every new trace kept (ratio 1).
    fn sampled_with(
        join: fn(&tracing::Span, &http::HeaderMap),
        headers: &http::HeaderMap,
    ) -> (bool, String) {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_sampler(root_sampler(1.0))
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("GET /v1/documents/{id}");
            join(&span, headers);
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            assert!(sc.is_valid());
            (sc.is_sampled(), sc.trace_id().to_string())
        })
    }

    #[test]
    fn a_frequent_request_is_traced_only_when_its_caller_traces_it() {
        let none = http::HeaderMap::new();
        // Without a caller's trace: a new trace, kept (ratio 1) — or not sampled at all.
        assert!(sampled_with(super::continue_trace, &none).0);
        assert!(!sampled_with(super::continue_trace_or_unsampled, &none).0);
        // A caller that traces it gets its trace continued, sampled or not as it says.
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        for (flags, sampled) in [("01", true), ("00", false)] {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "traceparent",
                format!("00-{trace}-00f067aa0ba902b7-{flags}")
                    .parse()
                    .expect("header"),
            );
            let got = sampled_with(super::continue_trace_or_unsampled, &headers);
            assert_eq!(got, (sampled, trace.to_owned()));
        }
    }

    #[test]
    fn a_ratio_outside_zero_to_one_is_refused_with_the_key() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let settings = TelemetrySettings {
                sample_ratio: crate::settings::Ratio(bad),
                ..TelemetrySettings::default()
            };
            let problems = settings.validate("telemetry");
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with("telemetry.sample_ratio must be between 0 and 1")),
                "{bad}: {problems:?}"
            );
        }
        assert!(
            TelemetrySettings::default()
                .validate("telemetry")
                .is_empty()
        );
    }
}
