//! One trace from an activity into the service it calls: the worker process and the
//! services (in this process) export spans over OTLP to a receiver in this test, and each
//! service's request span is a child of the activity span that called it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::services::Services;
use super::{DevServer, WorkerProc, unique_queue};
use apex_common::settings::TelemetrySettings;
use apex_worker::ingest::status::COMPLETED;
use apex_worker::ingest::{IngestInput, start_ingestion};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use temporalio_client::WorkflowGetResultOptions;

/// A span as received: service, name, ids.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Received {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_call_joins_the_trace_of_the_activity_that_made_it() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // The services in this process export their spans as `apex-services`.
    let _telemetry = apex_common::telemetry::init_telemetry(
        "apex-services",
        &TelemetrySettings {
            otlp_endpoint: otlp.clone(),
            log_filter: "info".into(),
            ..TelemetrySettings::default()
        },
    )
    .expect("telemetry");

    let server = DevServer::start();
    let client = server.client().await;
    let queue = unique_queue("trace");
    let services = Services::start(&stack).await;
    let mut vars = services.worker_env();
    vars.push(("APEX_WORKER__TELEMETRY__OTLP_ENDPOINT".into(), otlp));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let worker = WorkerProc::spawn_with(&server.address(), &queue, &vars);
    worker.wait_for_line("worker polling", Duration::from_secs(60));

    let files = tempfile::tempdir().expect("files");
    let path = files.path().join("note.txt");
    std::fs::write(
        &path,
        "PRO# 48213377 delivered in Dallas, TX on 2026-03-05.",
    )
    .expect("write");
    let input = IngestInput {
        source: "upload".into(),
        external_id: uuid::Uuid::new_v4().to_string(),
        location: path.display().to_string(),
        ..Default::default()
    };
    let status = start_ingestion(&client, &queue, input)
        .await
        .expect("start")
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("ingested");
    assert_eq!(status.status, COMPLETED);

    wait_until_every_call_joins_its_activity(&receiver).await;
    drop(worker);
    services.stop().await;
}

/// Spans arrive in batches: waits until every call is matched with its service span.
async fn wait_until_every_call_joins_its_activity(receiver: &Receiver) {
    let calls = [
        ("parse_document", "ParserService/ParseBlob"),
        ("extract_entities", "ExtractorService/ExtractBlob"),
        ("generate_embeddings", "EmbedderService/EmbedBlob"),
        ("write_to_databases", "WriterService/WriteDocument"),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let spans = receiver
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let joined = |activity: &str, rpc: &str| {
            spans
                .iter()
                .filter(|a| a.service == "apex-worker" && a.name == activity)
                .any(|a| {
                    spans.iter().any(|s| {
                        s.service == "apex-services"
                            && s.name.ends_with(rpc)
                            && s.trace_id == a.trace_id
                            && s.parent_span_id == a.span_id
                    })
                })
        };
        let missing: Vec<&str> = calls
            .iter()
            .filter(|(a, r)| !joined(a, r))
            .map(|(a, _)| *a)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no service span joined the trace of {missing:?}; received {:?}",
            spans
                .iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
