//! The mesh under mutual TLS: the four services demand a client certificate from a local CA,
//! the worker process reaches them over https:// with its certificate, a document goes
//! through into every store, and a client without a certificate (or with another CA's, or
//! in plaintext) gets nothing from any service.

use super::*;
use apex_common::tls::{ClientMaterial, ClientTls, ClientTlsSettings, config_for};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A health check of `service` at `addr` over a new connection (`None`: plaintext).
async fn health(
    addr: std::net::SocketAddr,
    service: &str,
    tls: Option<&ClientMaterial>,
) -> Result<i32, String> {
    let endpoint = match tls {
        Some(m) => tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
            .expect("uri")
            .tls_config(config_for(m, "127.0.0.1"))
            .map_err(|e| e.to_string())?,
        None => tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("uri"),
    };
    let call = async {
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| format!("call: {s:?}"))
    };
    tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .map_err(|_| "no answer within 15 s".to_owned())?
}

fn material(settings: ClientTlsSettings) -> ClientMaterial {
    ClientTls::load(&ClientTlsSettings {
        reload_secs: 0,
        ..settings
    })
    .expect("client tls")
    .material()
    .as_ref()
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_goes_through_the_mesh_under_mutual_tls_and_a_client_without_a_certificate_gets_nothing()
 {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let dir = tempfile::tempdir().expect("pki dir");
    let pki = LocalPki::generate(&dir.path().join("mesh")).expect("local CA");
    let other = LocalPki::generate(&dir.path().join("other")).expect("another CA");
    let env = env_of(&stack, &[], Some(pki.clone())).await;

    let input = env.input(
        "arrival.txt",
        b"Container MSCU4821736 arrived at the port of Genoa on 3 March 2026 aboard the \
          MSC Aurora; the consignee Lone Star Grocers was notified by Tirreno Logistics.",
    );
    let id = input.resolved_document_id();
    let s = env.ingest(input).await;
    assert_eq!(s.status, COMPLETED, "{s:?}");
    assert!(
        s.chunk_count > 0 && s.vector_count == s.chunk_count,
        "{s:?}"
    );
    assert_stored(&env.inspect(&id).await, &s);

    let with_certificate = material(pki.client_settings());
    let without_certificate = material(ClientTlsSettings {
        cert: String::new(),
        key: String::new(),
        ..pki.client_settings()
    });
    let foreign_certificate = material(ClientTlsSettings {
        ca: pki.ca().display().to_string(),
        ..other.client_settings()
    });
    let embedder = env.services.embedder.as_ref().expect("embedder");
    for (addr, service) in [
        (env.services.parser.addr, "apex.parser.v1.ParserService"),
        (
            env.services.extractor.addr,
            "apex.extractor.v1.ExtractorService",
        ),
        (embedder.addr, "apex.embedder.v1.EmbedderService"),
        (env.services.writer.addr, "apex.writer.v1.WriterService"),
    ] {
        assert_eq!(
            health(addr, service, Some(&with_certificate)).await,
            Ok(tonic_health::pb::health_check_response::ServingStatus::Serving as i32),
            "{service}"
        );
        for (who, tls) in [
            ("no client certificate", Some(&without_certificate)),
            ("another CA's certificate", Some(&foreign_certificate)),
            ("plaintext", None),
        ] {
            let refused = health(addr, service, tls).await;
            assert!(refused.is_err(), "{service} answered {who}: {refused:?}");
        }
    }
    env.stop().await;
}
