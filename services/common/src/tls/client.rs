//! The client side: what a client trusts and presents, read from the settings' files and
//! read again while running; balanced channels ([`crate::grpc::balance`]) build every
//! replica's connection from the material current when it connects.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::{ClientTlsSettings, RELOADS};

/// The PEM bytes a client's TLS is made of.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientMaterial {
    /// CA certificates to trust; `None` = the system's roots.
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain and key (mutual TLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMaterial")
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

/// A client's TLS, current while the files change (cheap to clone).
#[derive(Clone, Debug)]
pub struct ClientTls {
    settings: ClientTlsSettings,
    material: watch::Receiver<Arc<ClientMaterial>>,
    publish: Arc<watch::Sender<Arc<ClientMaterial>>>,
}

impl ClientTls {
    /// Reads the files `settings` name (none: the system's roots, no client certificate).
    /// Within a Tokio runtime and with `reload_secs` > 0, the files are read again in a task
    /// for as long as a clone of this lives.
    pub fn load(settings: &ClientTlsSettings) -> anyhow::Result<Self> {
        let material = read(settings)?;
        let (publish, receiver) = watch::channel(Arc::new(material));
        let tls = Self {
            settings: settings.clone(),
            material: receiver,
            publish: Arc::new(publish),
        };
        if settings.reload_secs > 0 && tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(reload_loop(
                settings.clone(),
                Arc::downgrade(&tls.publish),
                Duration::from_secs(settings.reload_secs),
            ));
        }
        Ok(tls)
    }

    /// The material in use now.
    pub fn material(&self) -> Arc<ClientMaterial> {
        self.material.borrow().clone()
    }

    /// A receiver that sees every change of the material.
    pub fn watch(&self) -> watch::Receiver<Arc<ClientMaterial>> {
        self.material.clone()
    }

    /// Reads the files again: true when they changed and were taken.
    pub fn reload(&self) -> anyhow::Result<bool> {
        reload_into(&self.settings, &self.publish)
    }

    /// The tonic TLS configuration for a server reached as `host` (the setting's
    /// `server_name` wins over it).
    pub fn config(&self, host: &str) -> ClientTlsConfig {
        let name = match self.settings.server_name.trim() {
            "" => host,
            name => name,
        };
        config_for(&self.material(), name)
    }
}

/// The tonic configuration of `material` for a server that must prove to be `name`.
pub fn config_for(material: &ClientMaterial, name: &str) -> ClientTlsConfig {
    let mut config = ClientTlsConfig::new()
        .domain_name(name.to_owned())
        .timeout(Duration::from_secs(10));
    config = match &material.ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
        None => config.with_native_roots(),
    };
    if let Some((cert, key)) = &material.identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    config
}

/// Reads and checks the files of `s`.
fn read(s: &ClientTlsSettings) -> anyhow::Result<ClientMaterial> {
    let ca = match s.ca.trim() {
        "" => None,
        path => {
            let pem = super::read("CA", path)?;
            super::roots("CA", path, &pem)?;
            Some(pem)
        }
    };
    let identity = match (s.cert.trim(), s.key.trim()) {
        ("", "") => None,
        (cert, key) if !cert.is_empty() && !key.is_empty() => {
            let cert_pem = super::read("client certificate", cert)?;
            super::certificates("client certificate", cert, &cert_pem)?;
            let key_pem = super::read("client key", key)?;
            super::private_key(key, &key_pem)?;
            Some((cert_pem, key_pem))
        }
        _ => anyhow::bail!("a client certificate needs both tls.cert and tls.key"),
    };
    Ok(ClientMaterial { ca, identity })
}

fn reload_into(
    s: &ClientTlsSettings,
    publish: &watch::Sender<Arc<ClientMaterial>>,
) -> anyhow::Result<bool> {
    let material = match read(s) {
        Ok(m) => m,
        Err(e) => {
            RELOADS.with_label_values(&["client", "failed"]).inc();
            return Err(e);
        }
    };
    let changed = publish.send_if_modified(|current| {
        if **current == material {
            false
        } else {
            *current = Arc::new(material);
            true
        }
    });
    if changed {
        RELOADS.with_label_values(&["client", "ok"]).inc();
    }
    Ok(changed)
}

async fn reload_loop(
    settings: ClientTlsSettings,
    publish: std::sync::Weak<watch::Sender<Arc<ClientMaterial>>>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let Some(publish) = publish.upgrade() else {
            return;
        };
        match reload_into(&settings, &publish) {
            Ok(true) => tracing::info!(
                ca = %settings.ca,
                cert = %settings.cert,
                "client TLS files read again: new connections use them"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "client TLS files changed but cannot be used; the previous ones stay"
            ),
        }
    }
}
