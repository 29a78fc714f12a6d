//! Metrics every process of the mesh has, whatever it does, in the process-wide registry
//! that every `/metrics` endpoint also serves: its gRPC calls as a server and as a client
//! (rate, latency and errors by service, method and status), and its warning and error log
//! lines. The `service` label names the process (`apex-parser`, `apex-worker`, …).

use std::sync::{LazyLock, OnceLock};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

static SERVICE: OnceLock<String> = OnceLock::new();

/// Names this process in the `service` label (once, at telemetry setup; later calls keep
/// the first name).
pub fn set_service(name: &str) {
    let _ = SERVICE.set(name.to_owned());
}

pub fn service() -> &'static str {
    SERVICE.get().map_or("unknown", String::as_str)
}

/// Latency buckets of a gRPC call, 1 ms to 5 min.
const RPC_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    // Registered once per process (these are statics); a clash is a programming error
    // that would only lose this metric, never the process.
    let _ = prometheus::default_registry().register(Box::new(metric.clone()));
    metric
}

/// `apex_rpc_server_requests_total{service, rpc_service, method, code}`.
pub static RPC_SERVER_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "apex_rpc_server_requests_total",
                "gRPC calls served, by method and gRPC status code",
            ),
            &["service", "rpc_service", "method", "code"],
        )
        .expect("valid metric"),
    )
});

/// `apex_rpc_server_seconds{service, rpc_service, method}`.
pub static RPC_SERVER_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("apex_rpc_server_seconds", "Time to answer a gRPC call")
                .buckets(RPC_BUCKETS.to_vec()),
            &["service", "rpc_service", "method"],
        )
        .expect("valid metric"),
    )
});

/// `apex_rpc_client_requests_total{service, rpc_service, method, code}`.
pub static RPC_CLIENT_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "apex_rpc_client_requests_total",
                "gRPC calls made to the mesh's services, by method and status code",
            ),
            &["service", "rpc_service", "method", "code"],
        )
        .expect("valid metric"),
    )
});

/// `apex_rpc_client_seconds{service, rpc_service, method}`.
pub static RPC_CLIENT_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "apex_rpc_client_seconds",
                "Time from sending a gRPC call to its answer, as the caller saw it",
            )
            .buckets(RPC_BUCKETS.to_vec()),
            &["service", "rpc_service", "method"],
        )
        .expect("valid metric"),
    )
});

/// `apex_rpc_client_retries_total{service, rpc_service}`: calls sent again on another
/// replica after one refused or dropped them.
pub static RPC_CLIENT_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "apex_rpc_client_retries_total",
                "gRPC calls sent again after a replica refused or dropped them",
            ),
            &["service", "rpc_service"],
        )
        .expect("valid metric"),
    )
});

/// `apex_log_lines_total{service, level}`: warning and error lines written.
pub static LOG_LINES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "apex_log_lines_total",
                "Warning and error log lines written, by level",
            ),
            &["service", "level"],
        )
        .expect("valid metric"),
    )
});

/// Counts warning and error events (a `tracing` layer; cheap for the other levels, which
/// it looks at only to skip).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogLines;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLines {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            _ => return,
        };
        LOG_LINES.with_label_values(&[service(), level]).inc();
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn warnings_and_errors_are_counted_and_other_lines_not() {
        let before = |level: &str| LOG_LINES.with_label_values(&[service(), level]).get();
        let (warn, error) = (before("warn"), before("error"));
        let subscriber = tracing_subscriber::registry().with(LogLines);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("fine");
            tracing::debug!("detail");
            tracing::warn!("careful");
            tracing::warn!("careful again");
            tracing::error!("broken");
        });
        assert_eq!(before("warn") - warn, 2);
        assert_eq!(before("error") - error, 1);
        let text = crate::metrics::render(&prometheus::Registry::new());
        assert!(text.contains("apex_log_lines_total"), "{text}");
    }
}
