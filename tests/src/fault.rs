//! Fault injection for tests: a TCP proxy on 127.0.0.1 in front of a real server that a
//! test can cut. It can refuse every connection (the server is down), or cut everything
//! the moment a client sends bytes containing a pattern (the server dies in the middle of a
//! call). Bytes containing the pattern are not forwarded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Default)]
struct Mode {
    refusing: bool,
    cut_on: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// Bumped on every cut: live connections end when it changes.
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(mode: &Mutex<Mode>) -> std::sync::MutexGuard<'_, Mode> {
    mode.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

impl Proxy {
    /// A proxy on a free 127.0.0.1 port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mode = Arc::new(Mutex::new(Mode::default()));
        let (generation, _) = watch::channel(0u64);
        let task = {
            let mode = Arc::clone(&mode);
            let generation = generation.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if lock(&mode).refusing {
                        drop(client);
                        continue;
                    }
                    tokio::spawn(pipe(client, target, Arc::clone(&mode), generation.clone()));
                }
            })
        };
        Ok(Self {
            addr,
            mode,
            generation,
            task,
        })
    }

    /// `host:port` of the proxy.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// The store is down: live connections end and new ones are closed at once.
    pub fn refuse(&self) {
        lock(&self.mode).refusing = true;
        self.generation.send_modify(|g| *g += 1);
    }

    /// The store dies as soon as a client sends `pattern` (which is not forwarded).
    pub fn cut_on(&self, pattern: &str) {
        lock(&self.mode).cut_on = Some(pattern.as_bytes().to_vec());
    }

    /// The store is back.
    pub fn restore(&self) {
        let mut mode = lock(&self.mode);
        mode.refusing = false;
        mode.cut_on = None;
    }
}

async fn pipe(
    mut client: TcpStream,
    target: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    generation: watch::Sender<u64>,
) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let mut cut = generation.subscribe();
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = cut.changed() => return,
            n = cr.read(&mut up) => {
                let Ok(n) = n else { return };
                if n == 0 {
                    return;
                }
                let pattern = lock(&mode).cut_on.clone();
                if let Some(p) = pattern
                    && contains(&up[..n], &p)
                {
                    {
                        let mut m = lock(&mode);
                        m.refusing = true;
                        m.cut_on = None;
                    }
                    generation.send_modify(|g| *g += 1);
                    return;
                }
                if sw.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            n = sr.read(&mut down) => {
                let Ok(n) = n else { return };
                if n == 0 || cw.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
