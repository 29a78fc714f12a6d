//! Health probes that speak each component's own protocol: SQL for PostgreSQL, RESP for
//! Redis and FalkorDB, the Bolt handshake for the graph's Bolt port, gRPC for Temporal and
//! HTTP for UIs and metrics endpoints.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a probe learned: `Ok(detail)` when healthy, `Err(reason)` otherwise.
pub type ProbeResult = Result<String, String>;

async fn bounded<F: std::future::Future<Output = ProbeResult>>(f: F) -> ProbeResult {
    timeout(PROBE_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())))
}

/// PostgreSQL answers a query; the detail is the server version.
pub async fn postgres(url: &str) -> ProbeResult {
    bounded(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let task = tokio::spawn(conn);
        let row = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| e.to_string())?;
        drop(client);
        task.abort();
        Ok(row.get::<_, String>(0))
    })
    .await
}

/// The major version in a PostgreSQL version string ("15.18 (Debian …)" → 15).
pub fn postgres_major(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Redis answers PING; for the graph store, a Cypher query must also work.
pub async fn redis(port: u16, cypher: bool) -> ProbeResult {
    bounded(async move {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .map_err(|e| e.to_string())?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut con)
            .await
            .map_err(|e| e.to_string())?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_owned();
        if cypher {
            let _: redis::Value = redis::cmd("GRAPH.QUERY")
                .arg("apex_probe")
                .arg("RETURN 1")
                .query_async(&mut con)
                .await
                .map_err(|e| format!("redis {version} answers but GRAPH.QUERY fails: {e}"))?;
            return Ok(format!("redis {version} with FalkorDB, {pong}"));
        }
        Ok(format!("redis {version}, {pong}"))
    })
    .await
}

/// The Bolt handshake: offer 5.7 down to 5.1 and read the version the server picks.
pub async fn bolt(port: u16) -> ProbeResult {
    bounded(async move {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let mut hello = vec![0x60, 0x60, 0xB0, 0x17];
        hello.extend_from_slice(&[0x00, 0x06, 0x07, 0x05]); // 5.7 and the six minors below
        hello.extend_from_slice(&[0x00, 0x00, 0x04, 0x04]); // 4.4
        hello.extend_from_slice(&[0; 8]);
        s.write_all(&hello).await.map_err(|e| e.to_string())?;
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply).await.map_err(|e| e.to_string())?;
        if reply == [0; 4] {
            return Err("server speaks none of Bolt 5.1–5.7 or 4.4".to_owned());
        }
        Ok(format!("bolt {}.{}", reply[3], reply[2]))
    })
    .await
}

/// Something accepts connections on the loopback `port`.
pub async fn tcp(port: u16) -> ProbeResult {
    bounded(async move {
        TcpStream::connect(("127.0.0.1", port))
            .await
            .map(|_| format!("port {port} open"))
            .map_err(|e| format!("port {port}: {e}"))
    })
    .await
}

/// An HTTP endpoint answers 2xx.
pub async fn http(url: &str) -> ProbeResult {
    bounded(async {
        let resp = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(format!("HTTP {}", resp.status().as_u16()))
        } else {
            Err(format!("HTTP {}", resp.status()))
        }
    })
    .await
}

/// A gRPC server reports `service` SERVING on the standard gRPC health service (Qdrant
/// reports `qdrant.Points`; the Apex services their own names). An `https://` URL is dialled
/// with TLS: `tls` (the local CA and client certificate), else the system's roots.
pub async fn grpc_health(
    url: &str,
    service: &str,
    tls: Option<&apex_common::tls::ClientMaterial>,
) -> ProbeResult {
    bounded(async {
        let mut endpoint =
            tonic::transport::Endpoint::from_shared(url.to_owned()).map_err(|e| e.to_string())?;
        if url.starts_with("https://") {
            let host = endpoint
                .uri()
                .host()
                .unwrap_or("localhost")
                .trim_matches(['[', ']'])
                .to_owned();
            let roots = apex_common::tls::ClientMaterial {
                ca: None,
                identity: None,
            };
            endpoint = endpoint
                .tls_config(apex_common::tls::config_for(tls.unwrap_or(&roots), &host))
                .map_err(|e| e.to_string())?;
        }
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|e| e.message().to_owned())?
            .into_inner()
            .status;
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            Ok(format!("{service} SERVING"))
        } else {
            Err(format!("{service} health status {status}"))
        }
    })
    .await
}

/// The Temporal frontend accepts a client connection (which calls GetSystemInfo).
pub async fn temporal(address: &str) -> ProbeResult {
    bounded(async {
        let url = url::Url::parse(address).map_err(|e| e.to_string())?;
        let opts = temporalio_client::ConnectionOptions::new(url).build();
        let conn = temporalio_client::Connection::connect(opts)
            .await
            .map_err(|e| e.to_string())?;
        let server = conn
            .capabilities()
            .map(|_| "capabilities ok")
            .unwrap_or("connected");
        Ok(format!("frontend {server}"))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_major_reads_debian_version_strings() {
        assert_eq!(postgres_major("15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(postgres_major("9.6.24"), Some(9));
        assert_eq!(postgres_major("garbage"), None);
    }

    #[tokio::test]
    async fn probes_of_a_closed_port_fail_with_a_reason() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        assert!(redis(port, false).await.is_err());
        assert!(bolt(port).await.is_err());
        assert!(http(&format!("http://127.0.0.1:{port}/")).await.is_err());
        assert!(
            postgres(&format!("postgres://x:y@127.0.0.1:{port}/z"))
                .await
                .is_err()
        );
        assert!(temporal(&format!("http://127.0.0.1:{port}")).await.is_err());
    }
}
