//! The one guarded way to fetch a URL: every URL the system fetches on someone's behalf
//! (uploads by URL, the ingestion's fetch step, polling sources) goes through a
//! [`FetchPolicy`] so that a request cannot be turned inward.
//!
//! - Only `http` and `https`.
//! - A host that is an address literal (in any spelling the URL standard accepts: decimal,
//!   octal, hex, IPv4-mapped IPv6) is judged as it is; a name is resolved once by the
//!   client's resolver, every address it resolves to is judged, and the connection goes to
//!   those same addresses, so a second lookup cannot rebind the name.
//! - Loopback, private, shared, link-local, unique-local, multicast, broadcast, unspecified,
//!   documentation, reserved and cloud metadata ranges are refused ([`ranges`]).
//! - Every redirect is judged the same way, and at most `max_redirects` are followed.
//! - `allow` opts in explicitly: CIDRs (`10.1.0.0/16`, `127.0.0.1/32`), host names
//!   (`files.internal`) and suffixes (`*.corp.example`). A name on the list is trusted
//!   whatever it resolves to.
//!
//! A refusal is a [`Refusal`] naming the rule; it is counted in
//! `apex_fetch_refusals_total{service, rule}`. It names the host, never the URL's path or
//! query, which may carry a token.

pub mod ranges;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;
use prometheus::{IntCounterVec, Opts};
pub use ranges::{Rule, classify};
use url::{Host, Url};

/// `apex_fetch_refusals_total{service, rule}`.
static REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "apex_fetch_refusals_total",
            "URLs refused by the fetch guard, by rule",
        ),
        &["service", "rule"],
    )
    .expect("valid metric");
    let _ = prometheus::default_registry().register(Box::new(counter.clone()));
    counter
});

/// A fetch the guard refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    /// The URL's host as written.
    pub host: String,
    /// The address judged, when the refusal is about one.
    pub address: Option<IpAddr>,
}

impl Refusal {
    fn new(rule: Rule, host: &str, address: Option<IpAddr>) -> Self {
        REFUSALS
            .with_label_values(&[crate::metrics::process::service(), rule.as_str()])
            .inc();
        Refusal {
            rule,
            host: host.to_owned(),
            address,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.rule, self.address) {
            (Rule::Scheme | Rule::Redirects | Rule::NoAddress, _) | (_, None) => write!(
                f,
                "refused to fetch from `{}`: {} (rule `{}`)",
                self.host,
                self.rule.describe(),
                self.rule.as_str()
            ),
            (rule, Some(ip)) => write!(
                f,
                "refused to fetch from `{}`: {ip} is {} (rule `{}`; `ingest.fetch_allow` can allow it)",
                self.host,
                rule.describe(),
                rule.as_str()
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// What a fetch may reach beyond public unicast addresses, and how many redirects it follows.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
    max_redirects: usize,
}

impl FetchPolicy {
    /// `allow`: CIDRs, bare addresses, host names and `*.` suffixes. An entry that is none of
    /// these is an error naming it.
    pub fn new(allow: &[String], max_redirects: usize) -> Result<Self, String> {
        let mut policy = FetchPolicy {
            max_redirects,
            ..Default::default()
        };
        for entry in allow.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else if is_host_pattern(entry) {
                policy.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "`{entry}` is not a CIDR, an address, a host name or `*.suffix`"
                ));
            }
        }
        Ok(policy)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|h| match h.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => *h == host,
        })
    }

    /// Judges one address reached through `host`.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match classify(ip) {
            Some(_) if self.nets.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(rule) => Err(Refusal::new(rule, host, Some(ip))),
            None => Ok(()),
        }
    }

    /// Judges what can be judged without a lookup: the scheme, and the host when it is an
    /// address. A name is judged when it is resolved ([`FetchPolicy::client`] or
    /// [`FetchPolicy::check_resolving`]).
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        let host = url.host_str().unwrap_or_default();
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::new(Rule::Scheme, host, None));
        }
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check_ip(host, IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(host, IpAddr::V6(ip)),
            Some(Host::Domain(_)) => Ok(()),
            None => Err(Refusal::new(Rule::NoAddress, host, None)),
        }
    }

    /// [`check_url`](Self::check_url), then the name resolved and every address judged:
    /// what the gateway asks before it accepts a URL, so that a refusal is an answer to the
    /// request rather than a failed ingestion. The fetch itself judges again.
    pub async fn check_resolving(&self, url: &Url) -> Result<(), Refusal> {
        self.check_url(url)?;
        if let Some(Host::Domain(name)) = url.host() {
            self.resolve(name)
                .await
                .map_err(|e| match e.downcast::<Refusal>() {
                    Ok(refusal) => *refusal,
                    // A name that does not resolve is refused here too: nothing could be fetched.
                    Err(_) => Refusal::new(Rule::NoAddress, name, None),
                })?;
        }
        Ok(())
    }

    /// Every address `name` resolves to, each judged; the first refused refuses the name.
    async fn resolve(
        &self,
        name: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0)).await?.collect();
        if self.host_allowed(name) {
            return Ok(addrs);
        }
        if addrs.is_empty() {
            return Err(Box::new(Refusal::new(Rule::NoAddress, name, None)));
        }
        for addr in &addrs {
            self.check_ip(name, addr.ip())?;
        }
        Ok(addrs)
    }

    /// An HTTP client that only reaches what this policy allows: its resolver judges every
    /// address, its redirect policy judges every hop, and it ignores proxy settings (a proxy
    /// would make the connection for it, to an address it never judged).
    pub fn client(&self, builder: reqwest::ClientBuilder) -> reqwest::Result<reqwest::Client> {
        let resolver = Arc::new(Guarded(self.clone()));
        let policy = self.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let host = attempt.url().host_str().unwrap_or_default().to_owned();
            if attempt.previous().len() > policy.max_redirects {
                return attempt.error(Refusal::new(Rule::Redirects, &host, None));
            }
            match policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        });
        builder
            .dns_resolver(resolver)
            .redirect(redirects)
            .no_proxy()
            .build()
    }
}

fn is_host_pattern(entry: &str) -> bool {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// The client's resolver: resolves once and hands the client only the addresses it judged.
struct Guarded(FetchPolicy);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs = policy.resolve(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// `url` as it may be shown in errors and logs: without a password or a query, which may
/// carry credentials (a presigned URL's signature, a token).
pub fn shown(url: &Url) -> String {
    let mut safe = url.clone();
    let _ = safe.set_password(None);
    if safe.query().is_some() {
        safe.set_query(Some("redacted"));
    }
    safe.set_fragment(None);
    safe.to_string()
}

/// A URL as a document's default identity in its source: without its password and
/// fragment, and with its query (which may carry a token) replaced by a digest of it, so two
/// URLs that differ in their query stay two documents while no token is stored or shown.
pub fn identity(url: &Url) -> String {
    use sha2::Digest as _;
    let mut id = url.clone();
    let _ = id.set_password(None);
    id.set_fragment(None);
    if let Some(query) = url.query() {
        let digest = hex::encode(sha2::Sha256::digest(query.as_bytes()));
        id.set_query(Some(&format!("sha256={}", &digest[..16])));
    }
    id.to_string()
}

/// The guard's refusal behind a client error, if that is why the request failed.
pub fn refusal_of(error: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<Refusal>() {
            return Some(r.clone());
        }
        source = e.source();
    }
    None
}
