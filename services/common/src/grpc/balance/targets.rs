//! Where a client finds the replicas of a service, and how that place is read into a set of
//! socket addresses: a list of endpoints (`http://10.0.0.7:50053,http://10.0.0.8:50053`),
//! a name that resolves to several addresses (a Kubernetes headless Service,
//! `http://apex-embedder-replicas:50053`), or a file that lists endpoints one per line
//! (`file:///srv/apex/endpoints/embedder`, which `apex up --scale` keeps current). Names are
//! looked up and files read again on every refresh, so replicas come and go while clients
//! run.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// One endpoint of a list: scheme, host (a name or an address) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

/// Where the replicas are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    List(Vec<Target>),
    File(PathBuf),
}

/// The address a replica is reached at, its scheme, and the host it was listed under (the
/// name a TLS server certificate must carry).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Replica {
    pub addr: SocketAddr,
    pub https: bool,
    pub host: Arc<str>,
}

impl Replica {
    /// `http://10.0.0.7:50053`.
    pub fn uri(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

impl Targets {
    /// Parses a setting: `file://<path>`, or one or more comma-separated
    /// `http(s)://host[:port]` endpoints.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        if let Some(path) = spec.strip_prefix("file://") {
            if path.is_empty() {
                return Err("`file://` needs a path".to_owned());
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        let list = parse_list(spec)?;
        if list.is_empty() {
            return Err("no endpoint given".to_owned());
        }
        Ok(Self::List(list))
    }

    /// The replicas listed now: every address every name resolves to. A name that does not
    /// resolve or a file that cannot be read is an error (the caller keeps what it had).
    pub async fn resolve(&self) -> Result<BTreeSet<Replica>, String> {
        let list = match self {
            Self::List(list) => list.clone(),
            Self::File(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let lines: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .collect();
                parse_list(&lines.join(",")).map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        let mut out = BTreeSet::new();
        for t in list {
            let host: Arc<str> = Arc::from(t.host.as_str());
            if let Ok(ip) = t.host.parse::<IpAddr>() {
                out.insert(Replica {
                    addr: SocketAddr::new(ip, t.port),
                    https: t.https,
                    host,
                });
                continue;
            }
            let addrs = tokio::net::lookup_host((t.host.as_str(), t.port))
                .await
                .map_err(|e| format!("cannot resolve {}: {e}", t.host))?;
            out.extend(addrs.map(|addr| Replica {
                addr,
                https: t.https,
                host: host.clone(),
            }));
        }
        Ok(out)
    }
}

fn parse_list(spec: &str) -> Result<Vec<Target>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_target)
        .collect()
}

fn parse_target(s: &str) -> Result<Target, String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|e| format!("`{s}` is not an endpoint URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(format!(
                "`{s}` must start with http:// or https:// (or be file://<path>)"
            ));
        }
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "`{s}` must not have a path: a gRPC endpoint is a host and port"
        ));
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("`{s}` has no host"))?;
    // `[::1]` comes back with its brackets.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let authority = uri.authority().map_or("", |a| a.as_str());
    let port = match authority.rsplit_once(':') {
        Some((_, p)) if !p.ends_with(']') => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{s}` has an invalid port `{p}`"))?,
        _ => {
            if https {
                443
            } else {
                80
            }
        }
    };
    Ok(Target { https, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(v: &[&str]) -> BTreeSet<Replica> {
        v.iter()
            .map(|a| {
                let addr: SocketAddr = a.parse().expect("addr");
                Replica {
                    addr,
                    https: false,
                    host: Arc::from(addr.ip().to_string().as_str()),
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn a_list_of_addresses_is_every_replica() {
        let t = Targets::parse("http://127.0.0.1:50053, http://127.0.0.2:50053,http://[::1]:7")
            .expect("parse");
        assert_eq!(
            t.resolve().await.expect("resolve"),
            replicas(&["127.0.0.1:50053", "127.0.0.2:50053", "[::1]:7"])
        );
    }

    #[tokio::test]
    async fn a_name_resolves_to_its_addresses() {
        let t = Targets::parse("http://localhost:50053").expect("parse");
        let got = t.resolve().await.expect("resolve");
        assert!(
            got.iter()
                .all(|r| r.addr.ip().is_loopback() && r.addr.port() == 50053),
            "{got:?}"
        );
        assert!(!got.is_empty());
    }

    #[tokio::test]
    async fn a_file_is_read_again_on_every_resolve() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("embedder");
        std::fs::write(&path, "# replicas\nhttp://127.0.0.1:50053\n").expect("write");
        let t = Targets::parse(&format!("file://{}", path.display())).expect("parse");
        assert_eq!(
            t.resolve().await.expect("first"),
            replicas(&["127.0.0.1:50053"])
        );
        std::fs::write(&path, "http://127.0.0.1:50053\n\nhttp://127.0.0.1:50063\n").expect("write");
        assert_eq!(
            t.resolve().await.expect("second"),
            replicas(&["127.0.0.1:50053", "127.0.0.1:50063"])
        );
        std::fs::write(&path, "tcp://x:1\n").expect("write");
        let err = t.resolve().await.expect_err("bad line");
        assert!(err.contains("must start with http://"), "{err}");
        std::fs::remove_file(&path).expect("rm");
        let err = t.resolve().await.expect_err("gone");
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_reason() {
        for (spec, reason) in [
            ("", "no endpoint"),
            ("127.0.0.1:50053", "must start with http://"),
            ("grpc://a:1", "must start with http://"),
            ("http://a:1/v1", "must not have a path"),
            ("http://a:99999", "invalid port"),
            ("http://a:0", "invalid port"),
            ("file://", "needs a path"),
        ] {
            let err = Targets::parse(spec).expect_err(spec);
            assert!(err.contains(reason), "{spec}: {err}");
        }
        assert_eq!(
            Targets::parse("https://embedder.apex.svc").expect("default port"),
            Targets::List(vec![Target {
                https: true,
                host: "embedder.apex.svc".into(),
                port: 443
            }])
        );
    }
}
