//! The worker's Temporal connection over mutual TLS. The local dev server speaks plaintext,
//! so this test puts a TLS terminator in front of its frontend: the mesh's own TLS server
//! (`apex_common::tls`, demanding a client certificate from a local CA) that pipes each
//! connection to the real frontend. A worker given the CA and a client certificate connects
//! through it and runs a workflow; one without a certificate never gets to poll. Both carry
//! an API key (sent as a bearer token, as to Temporal Cloud), which neither ever prints.

use std::net::SocketAddr;
use std::time::Duration;

use apex_common::tls::{ServerTls, local::LocalPki};
use apex_worker::greeting::GreetingInput;
use temporalio_client::WorkflowGetResultOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt as _;

use super::{DevServer, WorkerProc, start, unique_queue};

/// The worker's own crates and the Temporal client at debug level.
const FILTER: &str =
    "info,apex_worker=debug,apex_common=debug,apex_ingestion=debug,temporalio_client=debug";

/// Terminates mutual TLS on a loopback port and pipes each connection to `upstream`.
async fn tls_terminator(
    pki: &LocalPki,
    upstream: SocketAddr,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let tls = ServerTls::load(&pki.server_settings(true))
        .expect("tls files")
        .expect("tls on");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut incoming = tls.incoming(listener);
    let task = tokio::spawn(async move {
        while let Some(Ok(mut client)) = incoming.next().await {
            tokio::spawn(async move {
                if let Ok(mut server) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reaches_temporal_over_mutual_tls_and_one_without_a_certificate_never_polls() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let server = DevServer::start();
    let client = server.client().await;
    let dir = tempfile::tempdir().expect("pki dir");
    let pki = LocalPki::generate(dir.path()).expect("local CA");
    let (addr, terminator) = tls_terminator(&pki, ([127, 0, 0, 1], server.port).into()).await;
    let address = format!("https://{addr}");
    let ca = pki.ca().display().to_string();
    let cert = pki.client_cert().display().to_string();
    let key = pki.client_key().display().to_string();
    let queue = unique_queue("temporal-tls");
    let api_key = format!("apex-temporal-key-{}", uuid::Uuid::new_v4().simple());

    let refused = WorkerProc::spawn_with(
        &address,
        &queue,
        &[
            ("APEX_WORKER__TEMPORAL__TLS__CA", ca.as_str()),
            ("TEMPORAL_API_KEY", api_key.as_str()),
            ("APEX_WORKER__TELEMETRY__LOG_FILTER", FILTER),
        ],
    );
    let unreachable = refused.wait_for_line("temporal unreachable", Duration::from_secs(60));
    assert!(!unreachable.contains(&api_key), "{unreachable}");
    let mut printed = refused.finish();

    let worker = WorkerProc::spawn_with(
        &address,
        &queue,
        &[
            ("APEX_WORKER__TEMPORAL__TLS__CA", ca.as_str()),
            ("APEX_WORKER__TEMPORAL__TLS__CERT", cert.as_str()),
            ("APEX_WORKER__TEMPORAL__TLS__KEY", key.as_str()),
            ("TEMPORAL_API_KEY", api_key.as_str()),
            ("APEX_WORKER__TELEMETRY__LOG_FILTER", FILTER),
        ],
    );
    worker.wait_for_line("worker polling", Duration::from_secs(60));
    let handle = start(&client, &queue, GreetingInput::named("Ada")).await;
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the workflow ends within a minute")
    .expect("result");
    assert_eq!(result, "Hello, Ada!");
    printed.extend(worker.finish());
    assert!(printed.len() > 10, "the workers logged: {printed:?}");
    for line in &printed {
        assert!(!line.contains(&api_key), "the API key was printed: {line}");
    }
    terminator.abort();
}
