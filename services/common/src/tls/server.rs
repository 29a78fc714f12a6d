//! The server side: a rustls configuration read from the settings' files, read again while
//! serving, and the stream of TLS connections a tonic server is fed with.

use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::Stream;

use super::{HANDSHAKE_FAILURES, RELOADS, ServerTlsSettings};

/// A handshake not finished in this long is dropped (a client that connects and says
/// nothing holds no task for longer).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What was built from the files, and the files' bytes it was built from.
struct Loaded {
    config: Arc<ServerConfig>,
    files: Vec<Vec<u8>>,
}

/// A server's TLS: the current configuration, replaced when the files change.
#[derive(Clone)]
pub struct ServerTls {
    settings: ServerTlsSettings,
    current: Arc<RwLock<Loaded>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.settings.cert)
            .field("mutual", &self.mutual())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The TLS `settings` ask for, read from their files; `None` when TLS is off. The error
    /// names the file and what is wrong with it.
    pub fn load(settings: &ServerTlsSettings) -> anyhow::Result<Option<Self>> {
        if !settings.enabled() {
            return Ok(None);
        }
        let files = read_files(settings)?;
        let config = build(settings, &files)?;
        Ok(Some(Self {
            settings: settings.clone(),
            current: Arc::new(RwLock::new(Loaded { config, files })),
        }))
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        !self.settings.client_ca.trim().is_empty()
    }

    /// The configuration new connections are accepted with.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .config
            .clone()
    }

    /// Reads the files again; when they changed and still make a configuration, new
    /// connections use it (true). Unchanged: false. Changed but unusable: the error, and
    /// the configuration in use stays.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let files = read_files(&self.settings)?;
        let same = {
            let current = self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            current.files == files
        };
        if same {
            return Ok(false);
        }
        let config = match build(&self.settings, &files) {
            Ok(c) => c,
            Err(e) => {
                RELOADS.with_label_values(&["server", "failed"]).inc();
                return Err(e);
            }
        };
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Loaded { config, files };
        RELOADS.with_label_values(&["server", "ok"]).inc();
        Ok(true)
    }

    /// The TLS connections `listener` accepts, handshakes done (each in its own task, so a
    /// slow client delays nobody); files are read again every `reload_secs`. Dropping the
    /// stream stops accepting.
    pub fn incoming(&self, listener: TcpListener) -> TlsIncoming {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(self.clone(), listener, tx));
        TlsIncoming { rx, task }
    }
}

fn read_files(s: &ServerTlsSettings) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut files = vec![
        super::read("certificate", &s.cert)?,
        super::read("key", &s.key)?,
    ];
    if !s.client_ca.trim().is_empty() {
        files.push(super::read("client CA", &s.client_ca)?);
    }
    Ok(files)
}

fn build(s: &ServerTlsSettings, files: &[Vec<u8>]) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = super::certificates("certificate", &s.cert, &files[0])?;
    let key = super::private_key(&s.key, &files[1])?;
    let builder = ServerConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()?;
    let builder = match files.get(2) {
        Some(ca) => {
            let roots = super::roots("client CA", &s.client_ca, ca)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider())
                    .build()
                    .map_err(|e| anyhow::anyhow!("client CA {}: {e}", s.client_ca))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        anyhow::anyhow!(
            "the certificate {} and the key {} do not make a usable pair: {e}",
            s.cert,
            s.key
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

async fn accept_loop(
    tls: ServerTls,
    listener: TcpListener,
    tx: mpsc::Sender<std::io::Result<TlsStream<TcpStream>>>,
) {
    let every = Duration::from_secs(tls.settings.reload_secs.max(1));
    let reloading = tls.settings.reload_secs > 0;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let acceptor = TlsAcceptor::from(tls.config());
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                let _ = tx.send(Ok(stream)).await;
                            }
                            Ok(Err(e)) => refused(peer, reason_of(&e), &e.to_string()),
                            Err(_) => refused(peer, "timeout", "no handshake within 10 s"),
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = tick.tick(), if reloading => match tls.reload() {
                Ok(true) => tracing::info!(cert = %tls.settings.cert, "TLS certificates read again: new connections use them"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "TLS certificates changed but cannot be used; the previous ones stay"),
            },
            () = tx.closed() => return,
        }
    }
}

fn refused(peer: std::net::SocketAddr, reason: &'static str, detail: &str) {
    HANDSHAKE_FAILURES.with_label_values(&[reason]).inc();
    tracing::warn!(%peer, reason, detail, "TLS handshake refused");
}

/// A small, fixed set of reasons (a metric label).
fn reason_of(e: &std::io::Error) -> &'static str {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::NoCertificatesPresented) => "no_client_certificate",
        Some(rustls::Error::InvalidCertificate(_)) => "bad_certificate",
        Some(rustls::Error::AlertReceived(_)) => "alert_received",
        Some(_) => "protocol",
        None => "io",
    }
}

/// TLS connections for [`tonic::transport::server::Router::serve_with_incoming_shutdown`].
pub struct TlsIncoming {
    rx: mpsc::Receiver<std::io::Result<TlsStream<TcpStream>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TlsIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIncoming").finish_non_exhaustive()
    }
}

impl Stream for TlsIncoming {
    type Item = std::io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}
