//! The balanced channel against real gRPC servers on 127.0.0.1: each replica serves the
//! standard health service and counts the calls the test sends it (marked by a header, so
//! the membership's own health checks are not counted).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpListener;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;

use super::*;
use crate::shutdown::Shutdown;

const SERVICE: &str = "apex.test.v1.Test";

struct Replica {
    addr: SocketAddr,
    calls: Arc<AtomicU64>,
    health: HealthReporter,
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let (health, service) = tonic_health::server::health_reporter();
        health
            .set_service_status(SERVICE, tonic_health::ServingStatus::Serving)
            .await;
        let stop = Shutdown::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(tonic::service::InterceptorLayer::new(
                    move |req: tonic::Request<()>| {
                        if req.metadata().contains_key("x-apex-test") {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(req)
                    },
                ))
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async move { stopped.wait().await },
                )
                .await
                .expect("serve");
        });
        Self {
            addr,
            calls,
            health,
            stop,
            task,
        }
    }

    fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn stop(self) {
        self.stop.trigger();
        self.task.await.expect("join");
    }
}

fn options() -> BalanceOptions {
    BalanceOptions {
        // Long: the tests refresh explicitly, so nothing depends on timing.
        refresh: Duration::from_secs(600),
        connect_timeout: Duration::from_secs(2),
        call_timeout: Duration::from_secs(10),
        ..BalanceOptions::new(SERVICE)
    }
}

async fn call(client: &Balanced) -> Result<(), tonic::Status> {
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: SERVICE.into(),
    });
    req.metadata_mut().insert(
        "x-apex-test",
        tonic::metadata::MetadataValue::from_static("1"),
    );
    HealthClient::new(client.clone())
        .check(req)
        .await
        .map(|_| ())
}

async fn calls(client: &Balanced, n: usize) {
    for i in 0..n {
        call(client)
            .await
            .unwrap_or_else(|e| panic!("call {i} failed: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_takes_a_share_and_a_stopped_one_loses_no_call() {
    let replicas = [
        Replica::start().await,
        Replica::start().await,
        Replica::start().await,
    ];
    let spec = replicas
        .iter()
        .map(Replica::uri)
        .collect::<Vec<_>>()
        .join(",");
    let client = channel(&spec, &options()).expect("channel");
    client.refresh().await;
    assert_eq!(client.replicas().len(), 3, "{:?}", client.replicas());
    calls(&client, 300).await;
    let shares: Vec<u64> = replicas.iter().map(Replica::calls).collect();
    assert_eq!(shares.iter().sum::<u64>(), 300, "{shares:?}");
    // Power of two choices among equals: each gets about a third.
    assert!(shares.iter().all(|n| *n >= 50), "{shares:?}");

    // One replica stops (its port then refuses): every call still succeeds, the first ones
    // that meet the refusal being sent again elsewhere.
    let [a, b, c] = replicas;
    let retries_before = retries();
    c.stop().await;
    calls(&client, 60).await;
    assert_eq!(a.calls() + b.calls(), shares[0] + shares[1] + 60);
    // It was picked for some of the 60 (each call picks it with odds of a third) and
    // those were sent again.
    assert!(retries() > retries_before);
    client.refresh().await;
    assert_eq!(client.replicas().len(), 2, "{:?}", client.replicas());
    a.stop().await;
    b.stop().await;
}

fn retries() -> u64 {
    crate::metrics::process::RPC_CLIENT_RETRIES
        .with_label_values(&[crate::metrics::process::service(), "grpc.health.v1.Health"])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_added_to_the_file_takes_calls_and_one_not_serving_is_left_out() {
    let first = Replica::start().await;
    let second = Replica::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("test");
    std::fs::write(&file, format!("{}\n", first.uri())).expect("write");
    let client = channel(&format!("file://{}", file.display()), &options()).expect("channel");
    calls(&client, 20).await;
    assert_eq!((first.calls(), second.calls()), (20, 0));

    std::fs::write(&file, format!("{}\n{}\n", first.uri(), second.uri())).expect("write");
    client.refresh().await;
    calls(&client, 100).await;
    assert!(
        second.calls() >= 20,
        "the new replica takes calls: {}",
        second.calls()
    );

    // A replica that says it does not serve (draining) gets no more calls.
    first
        .health
        .set_service_status(SERVICE, tonic_health::ServingStatus::NotServing)
        .await;
    client.refresh().await;
    let before = first.calls();
    calls(&client, 30).await;
    assert_eq!(first.calls(), before);
    assert_eq!(client.replicas(), vec![second.uri()]);
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_replica_gone_a_call_fails_at_once_as_unavailable() {
    let only = Replica::start().await;
    let uri = only.uri();
    only.stop().await;
    let client = channel(&uri, &options()).expect("channel");
    // Refused three times, not left waiting until the 10 s deadline (DEADLINE_EXCEEDED).
    let err = call(&client).await.expect_err("nothing listens");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    // A file that lists nothing: the call says so instead of waiting.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("none");
    std::fs::write(&file, "# no replicas\n").expect("write");
    let options = BalanceOptions {
        call_timeout: Duration::from_millis(300),
        ..options()
    };
    let client = channel(&format!("file://{}", file.display()), &options).expect("channel");
    let err = call(&client).await.expect_err("nothing listed");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("no replica"), "{err:?}");
}
