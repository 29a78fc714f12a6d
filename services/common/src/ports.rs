//! The mesh's default ports, defined once: each binary's defaults, `apex up`, the Prometheus
//! configuration it writes and the docs' tables all come from here. Every one can be changed
//! by its binary's settings (and `APEX_STACK__…_PORT` for `apex up`).

/// A gRPC service's default ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePorts {
    pub grpc: u16,
    pub metrics: u16,
}

pub const PARSER: ServicePorts = ServicePorts {
    grpc: 50051,
    metrics: 9101,
};
pub const EXTRACTOR: ServicePorts = ServicePorts {
    grpc: 50052,
    metrics: 9102,
};
pub const EMBEDDER: ServicePorts = ServicePorts {
    grpc: 50053,
    metrics: 9103,
};
pub const WRITER: ServicePorts = ServicePorts {
    grpc: 50054,
    metrics: 9104,
};
/// The worker serves only the SDK's `/metrics`.
pub const WORKER_METRICS: u16 = 9105;
/// The gateway's HTTP API (which also serves `/metrics`) and its second `/metrics` listener.
pub const GATEWAY_HTTP: u16 = 8080;
pub const GATEWAY_METRICS: u16 = 9106;
