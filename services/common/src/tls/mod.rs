//! Transport security for the gRPC mesh: TLS (rustls, ring) on every server and client, with
//! mutual TLS as an option, certificates read from PEM files and read again while running.
//!
//! - A server with [`ServerTlsSettings::cert`] set serves TLS only; with `client_ca` set it
//!   also demands a client certificate that chains to that CA (mutual TLS) and refuses a
//!   client without one during the handshake, before any call is read.
//! - A client uses TLS for `https://` addresses, trusting [`ClientTlsSettings::ca`] (or the
//!   system's roots when it is empty) and presenting `cert`/`key` when set. The name checked
//!   against a server's certificate is the host of the address (before it was resolved to
//!   the replicas' addresses) unless `server_name` says otherwise.
//! - Both sides read their files again every `reload_secs`; a change takes effect for new
//!   connections (a rotated certificate needs no restart), a file that no longer parses is
//!   reported and the last good material kept.
//!
//! Plain loopback stays the local default: empty settings mean no TLS. Handshake refusals
//! are counted in `apex_tls_handshake_failures_total{reason}`, reloads in
//! `apex_tls_reloads_total{side, result}`.

mod client;
pub mod local;
mod server;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Arc, LazyLock};

use prometheus::{IntCounterVec, Opts};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

pub use client::{ClientMaterial, ClientTls, config_for};
pub use server::{ServerTls, TlsIncoming};

/// How often certificate files are read again unless configured otherwise.
pub const DEFAULT_RELOAD_SECS: u64 = 10;

/// TLS of a gRPC server (`APEX_<SERVICE>__TLS__…`). Empty `cert` = plaintext.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ServerTlsSettings {
    /// PEM file with the certificate chain the server presents (leaf first).
    pub cert: String,
    /// PEM file with its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// PEM file with the CA(s) client certificates must chain to; set = mutual TLS.
    pub client_ca: String,
    /// Seconds between reads of the files; 0 = read once at start.
    pub reload_secs: u64,
}

impl Default for ServerTlsSettings {
    fn default() -> Self {
        Self {
            cert: String::new(),
            key: String::new(),
            client_ca: String::new(),
            reload_secs: DEFAULT_RELOAD_SECS,
        }
    }
}

impl ServerTlsSettings {
    pub fn enabled(&self) -> bool {
        !self.cert.trim().is_empty()
    }

    /// Problems with these values, each naming its key under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut p = Vec::new();
        let (cert, key) = (self.cert.trim(), self.key.trim());
        if cert.is_empty() != key.is_empty() {
            p.push(format!("{at}.cert and {at}.key must be set together"));
        }
        if cert.is_empty() && !self.client_ca.trim().is_empty() {
            p.push(format!(
                "{at}.client_ca (mutual TLS) needs {at}.cert and {at}.key: a server without TLS cannot ask for client certificates"
            ));
        }
        p
    }
}

/// TLS of a gRPC client (`…__TLS__…` under the settings that name the services' addresses).
/// It applies to `https://` addresses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClientTlsSettings {
    /// PEM file with the CA(s) server certificates must chain to; empty = the system's roots.
    pub ca: String,
    /// PEM file with the client certificate chain for mutual TLS; set together with `key`.
    pub cert: String,
    pub key: String,
    /// The name server certificates must carry; empty = the host of each address.
    pub server_name: String,
    /// Seconds between reads of the files; 0 = read once at start.
    pub reload_secs: u64,
}

impl Default for ClientTlsSettings {
    fn default() -> Self {
        Self {
            ca: String::new(),
            cert: String::new(),
            key: String::new(),
            server_name: String::new(),
            reload_secs: DEFAULT_RELOAD_SECS,
        }
    }
}

impl ClientTlsSettings {
    /// Whether anything is configured (the system's roots serve `https://` otherwise).
    pub fn configured(&self) -> bool {
        [&self.ca, &self.cert, &self.key, &self.server_name]
            .iter()
            .any(|v| !v.trim().is_empty())
    }

    /// Problems with these values, each naming its key under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.cert.trim().is_empty() != self.key.trim().is_empty() {
            p.push(format!("{at}.cert and {at}.key must be set together"));
        }
        let name = self.server_name.trim();
        if !name.is_empty() && rustls::pki_types::ServerName::try_from(name).is_err() {
            p.push(format!(
                "{at}.server_name `{name}` is neither a DNS name nor an IP address"
            ));
        }
        p
    }
}

/// `apex_tls_handshake_failures_total{reason}`.
static HANDSHAKE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "apex_tls_handshake_failures_total",
        "TLS handshakes a server refused or that failed, by reason",
        &["reason"],
    )
});

/// `apex_tls_reloads_total{side, result}`.
static RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "apex_tls_reloads_total",
        "Certificate files read again and found changed, by side and result",
        &["side", "result"],
    )
});

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    let _ = prometheus::default_registry().register(Box::new(c.clone()));
    c
}

/// Handshakes refused so far for `reason` (tests read it).
pub fn handshake_failures(reason: &str) -> u64 {
    HANDSHAKE_FAILURES.with_label_values(&[reason]).get()
}

/// The crypto provider every TLS config of the mesh uses.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A PEM file's bytes; the error names the setting and the file.
fn read(what: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(Path::new(path.trim()))
        .map_err(|e| anyhow::anyhow!("cannot read the {what} file {path}: {e}"))
}

/// Every certificate in a PEM file; none is an error.
fn certificates(
    what: &str,
    path: &str,
    pem: &[u8],
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("the {what} file {path} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!(
            "the {what} file {path} holds no certificate (expected a PEM CERTIFICATE block)"
        );
    }
    Ok(certs)
}

/// The private key in a PEM file.
fn private_key(path: &str, pem: &[u8]) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        anyhow::anyhow!(
            "the key file {path} holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"
        )
    })
}

/// A root store of every certificate in a CA file.
fn roots(what: &str, path: &str, pem: &[u8]) -> anyhow::Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certificates(what, path, pem)? {
        store
            .add(cert)
            .map_err(|e| anyhow::anyhow!("the {what} file {path}: unusable CA certificate: {e}"))?;
    }
    Ok(store)
}
