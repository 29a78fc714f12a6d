//! TLS between a real tonic server and clients on 127.0.0.1: mutual TLS admits a client with
//! a certificate the CA signed and refuses one without, or with another CA's; a rotated
//! certificate is served after a reload; bad files are errors that name them.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::*;
use crate::grpc;
use crate::shutdown::Shutdown;

const SERVICE: &str = "apex.test.v1.Test";

struct Served {
    addr: SocketAddr,
    tls: ServerTls,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    async fn start(settings: &ServerTlsSettings) -> Self {
        Self::start_at(settings, "127.0.0.1:0").await
    }

    async fn start_at(settings: &ServerTlsSettings, at: &str) -> Self {
        let tls = ServerTls::load(settings).expect("load").expect("tls on");
        let (reporter, router) =
            grpc::with_health_and_reflection(grpc::server(Duration::from_secs(5)), &[SERVICE])
                .await
                .expect("router");
        let listener = TcpListener::bind(at).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(grpc::serve_tls(
            router,
            listener,
            Some(tls.clone()),
            reporter,
            &[SERVICE],
            shutdown.clone(),
        ));
        Self {
            addr,
            tls,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("serve");
    }
}

/// Asks the server's health over a new connection made with `material` (`None`: plaintext).
async fn check(addr: SocketAddr, material: Option<&ClientMaterial>) -> Result<i32, String> {
    let endpoint = match material {
        Some(m) => Endpoint::from_shared(format!("https://{addr}"))
            .expect("uri")
            .tls_config(config_for(m, "localhost"))
            .map_err(|e| e.to_string())?,
        None => Endpoint::from_shared(format!("http://{addr}")).expect("uri"),
    };
    let channel: Channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        HealthClient::new(channel).check(HealthCheckRequest {
            service: SERVICE.into(),
        }),
    )
    .await
    .map_err(|_| "no answer in 10 s".to_owned())?
    .map_err(|s| format!("call: {s:?}"))?;
    Ok(answer.into_inner().status)
}

fn material(pki: &local::LocalPki, with_certificate: bool) -> ClientMaterial {
    let mut s = pki.client_settings();
    if !with_certificate {
        s.cert.clear();
        s.key.clear();
    }
    ClientTls::load(&ClientTlsSettings {
        reload_secs: 0,
        ..s
    })
    .expect("client tls")
    .material()
    .as_ref()
    .clone()
}

/// Waits (at most 5 s) until the server's handshake task has counted a refusal for
/// `reason` beyond `before`: the client can see the refusal a moment before it is counted.
async fn counted(reason: &str, before: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if handshake_failures(reason) > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;

#[tokio::test]
async fn mutual_tls_admits_a_signed_client_and_refuses_the_rest() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = local::LocalPki::generate(&dir.path().join("a")).expect("pki");
    let other = local::LocalPki::generate(&dir.path().join("b")).expect("other pki");
    let served = Served::start(&pki.server_settings(true)).await;
    assert!(served.tls.mutual());

    assert_eq!(
        check(served.addr, Some(&material(&pki, true))).await,
        Ok(SERVING)
    );

    let before = handshake_failures("no_client_certificate");
    let err = check(served.addr, Some(&material(&pki, false)))
        .await
        .expect_err("a client without a certificate");
    assert!(!err.is_empty());
    assert!(
        counted("no_client_certificate", before).await,
        "the refusal is counted by its reason"
    );

    // A certificate from another CA: refused by the server.
    let mut foreign = material(&other, true);
    foreign.ca = material(&pki, true).ca;
    let before = handshake_failures("bad_certificate");
    check(served.addr, Some(&foreign))
        .await
        .expect_err("another CA's client certificate");
    assert!(counted("bad_certificate", before).await);

    // A client that trusts another CA refuses the server; a plaintext client gets nowhere.
    check(served.addr, Some(&material(&other, true)))
        .await
        .expect_err("server certificate from an untrusted CA");
    check(served.addr, None).await.expect_err("plaintext");

    // Still serving the right client after all that.
    assert_eq!(
        check(served.addr, Some(&material(&pki, true))).await,
        Ok(SERVING)
    );
    served.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_is_served_after_the_files_are_read_again() {
    let dir = tempfile::tempdir().expect("dir");
    let live = local::LocalPki::generate(&dir.path().join("live")).expect("pki");
    let next = local::LocalPki::generate(&dir.path().join("next")).expect("next pki");
    let served = Served::start(&live.server_settings(false)).await;
    let trusts_next = material(&next, false);

    check(served.addr, Some(&trusts_next))
        .await
        .expect_err("the next CA's client does not trust the live certificate");
    assert!(!served.tls.reload().expect("unchanged files"), "no change");

    for (from, to) in [
        (next.server_cert(), live.server_cert()),
        (next.server_key(), live.server_key()),
    ] {
        std::fs::copy(from, to).expect("rotate");
    }
    assert!(served.tls.reload().expect("rotated files"), "changed");
    assert_eq!(check(served.addr, Some(&trusts_next)).await, Ok(SERVING));

    // A broken file is reported and the rotated certificate stays in use.
    std::fs::write(live.server_cert(), "not a certificate").expect("break");
    let err = served.tls.reload().expect_err("broken file").to_string();
    assert!(
        err.contains(&live.server_cert().display().to_string()),
        "{err}"
    );
    assert_eq!(check(served.addr, Some(&trusts_next)).await, Ok(SERVING));
    served.stop().await;
}

#[tokio::test]
async fn a_balanced_client_reaches_a_mutual_tls_service_by_name() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = local::LocalPki::generate(dir.path()).expect("pki");
    let served = Served::start(&pki.server_settings(true)).await;
    let options = grpc::balance::BalanceOptions {
        tls: Some(ClientTls::load(&pki.client_settings()).expect("client tls")),
        ..grpc::balance::BalanceOptions::new(SERVICE)
    };
    // By name: the certificate is checked against `localhost`, not the resolved address.
    let spec = format!("https://localhost:{}", served.addr.port());
    let channel = grpc::balance::channel(&spec, &options).expect("channel");
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: SERVICE.into(),
        })
        .await
        .expect("health over mutual TLS");
    assert_eq!(answer.into_inner().status, SERVING);
    served.stop().await;
}

#[tokio::test]
async fn a_balanced_client_takes_new_client_files_without_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let old = local::LocalPki::generate(&dir.path().join("old")).expect("old pki");
    let new = local::LocalPki::generate(&dir.path().join("new")).expect("new pki");
    // The client's files, which are rotated in place.
    let client_dir = dir.path().join("client");
    std::fs::create_dir(&client_dir).expect("mkdir");
    let files = |pki: &local::LocalPki| {
        for (from, name) in [
            (pki.ca(), "ca.pem"),
            (pki.client_cert(), "client.pem"),
            (pki.client_key(), "client-key.pem"),
        ] {
            std::fs::copy(from, client_dir.join(name)).expect("copy");
        }
    };
    files(&old);
    let settings = ClientTlsSettings {
        ca: client_dir.join("ca.pem").display().to_string(),
        cert: client_dir.join("client.pem").display().to_string(),
        key: client_dir.join("client-key.pem").display().to_string(),
        // Read again only when the test says so.
        reload_secs: 0,
        ..ClientTlsSettings::default()
    };
    let tls = ClientTls::load(&settings).expect("client tls");
    let served = Served::start(&old.server_settings(true)).await;
    let addr = served.addr;
    let options = grpc::balance::BalanceOptions {
        tls: Some(tls.clone()),
        refresh: Duration::from_millis(200),
        call_timeout: Duration::from_secs(5),
        ..grpc::balance::BalanceOptions::new(SERVICE)
    };
    let channel = grpc::balance::channel(&format!("https://127.0.0.1:{}", addr.port()), &options)
        .expect("channel");
    let ask = || {
        let mut client = HealthClient::new(channel.clone());
        async move {
            client
                .check(HealthCheckRequest {
                    service: SERVICE.into(),
                })
                .await
                .map(|r| r.into_inner().status)
        }
    };
    assert_eq!(ask().await.expect("the old CA's service"), SERVING);

    // The service comes back on the same port with the new CA's certificates: the client,
    // still holding the old files, cannot reach it.
    served.stop().await;
    let served = Served::start_at(&new.server_settings(true), &addr.to_string()).await;
    assert!(
        ask().await.is_err(),
        "the old client files do not fit the new CA"
    );

    // The new files arrive and are read: the client connects again with them.
    files(&new);
    assert!(tls.reload().expect("new files"), "changed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match ask().await {
            Ok(status) => break status,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("still refused 10 s after the reload: {e:?}"),
        }
    };
    assert_eq!(answer, SERVING);
    served.stop().await;
}

#[test]
fn settings_that_cannot_work_are_named() {
    let half = ServerTlsSettings {
        cert: "/etc/apex/tls/server.pem".into(),
        ..ServerTlsSettings::default()
    };
    assert_eq!(
        half.validate("tls"),
        ["tls.cert and tls.key must be set together"]
    );
    let mutual_without_tls = ServerTlsSettings {
        client_ca: "/etc/apex/tls/ca.pem".into(),
        ..ServerTlsSettings::default()
    };
    assert!(mutual_without_tls.validate("tls")[0].contains("tls.client_ca"));
    assert!(ServerTlsSettings::default().validate("tls").is_empty());
    assert!(
        ServerTls::load(&ServerTlsSettings::default())
            .expect("off")
            .is_none()
    );

    let client = ClientTlsSettings {
        key: "/k.pem".into(),
        server_name: "not a name!".into(),
        ..ClientTlsSettings::default()
    };
    let problems = client.validate("ingest.tls");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(ClientTlsSettings::default().validate("x").is_empty());
}

#[test]
fn unreadable_files_are_errors_that_name_them() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = local::LocalPki::generate(dir.path()).expect("pki");
    let missing = dir.path().join("missing.pem").display().to_string();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let not_pem = not_pem.display().to_string();

    let cases = [
        ServerTlsSettings {
            cert: missing.clone(),
            ..pki.server_settings(false)
        },
        ServerTlsSettings {
            cert: not_pem.clone(),
            ..pki.server_settings(false)
        },
        ServerTlsSettings {
            key: pki.server_cert().display().to_string(),
            ..pki.server_settings(false)
        },
        ServerTlsSettings {
            client_ca: not_pem.clone(),
            ..pki.server_settings(true)
        },
    ];
    for (i, s) in cases.iter().enumerate() {
        let err = ServerTls::load(s).expect_err("bad file").to_string();
        let named = [&missing, &not_pem, &s.key];
        assert!(
            named.iter().any(|n| err.contains(n.as_str())),
            "case {i}: {err}"
        );
    }
    let err = ClientTls::load(&ClientTlsSettings {
        ca: missing.clone(),
        ..ClientTlsSettings::default()
    })
    .expect_err("missing CA")
    .to_string();
    assert!(err.contains(&missing), "{err}");
}

#[test]
fn local_keys_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let pki = local::LocalPki::ensure(dir.path()).expect("pki");
    for key in [pki.server_key(), pki.client_key()] {
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    // Present files are kept.
    let ca = std::fs::read(pki.ca()).expect("ca");
    let again = local::LocalPki::ensure(dir.path()).expect("again");
    assert_eq!(std::fs::read(again.ca()).expect("ca"), ca);
}
