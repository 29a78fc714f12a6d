//! Finding the local stack and gating the tests that need it.
//!
//! The stack is found from [`StackSettings`], the settings `apex up` starts it with, so a
//! stack moved to other ports (`APEX_STACK__POSTGRES_PORT=…`) is found where it runs. A test
//! that needs the stack starts with
//!
//! ```ignore
//! let Some(stack) = apex_e2e::stack() else { return };
//! ```
//!
//! Without a stack it returns at once; the first such test prints one line saying what is
//! missing and how to run these tests. With `APEX_REQUIRE_STACK=1` (set by `make test`, so CI
//! never passes by skipping) a missing stack fails the test instead.
//!
//! Most tests share the stack; the few that stop and restart a piece of it take it
//! exclusively ([`stack_exclusive`]), so no other test sees that piece go away.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use apex_common::settings::{Source, load};
pub use apex_common::stack::StackSettings;

/// The environment variable that turns a missing stack from a skip into a failure.
pub const REQUIRE: &str = "APEX_REQUIRE_STACK";

/// The running local stack, as its settings describe it.
#[derive(Debug)]
pub struct Stack {
    pub settings: StackSettings,
}

impl Stack {
    pub fn postgres_url(&self) -> String {
        self.settings.postgres_url()
    }

    pub fn redis_url(&self) -> String {
        self.settings.redis_url()
    }

    /// FalkorDB speaks the Redis protocol.
    pub fn graph_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.settings.graph_port)
    }

    pub fn vectors_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.settings.vectors_port)
    }

    pub fn temporal_address(&self) -> String {
        self.settings.temporal_address()
    }

    pub fn gateway_url(&self) -> String {
        self.settings.gateway_url()
    }

    /// A client builder whose requests carry the stack's admin API key (`apex up` writes
    /// it; `APEX_API_KEY` overrides it).
    pub fn gateway_http(&self) -> reqwest::ClientBuilder {
        apex_common::api_key::authorized(
            reqwest::Client::builder(),
            apex_common::api_key::find(&self.settings).as_deref(),
        )
    }

    pub fn writer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.settings.writer_port)
    }

    /// The blob store the stack's services read and write.
    pub fn blob_dir(&self) -> PathBuf {
        self.settings.blob_dir()
    }

    /// The trace viewer's REST API (Arize Phoenix).
    pub fn traces_url(&self) -> String {
        self.settings.traces_url()
    }

    /// The `temporal` CLI that bootstrap installed (dev servers of the worker tests).
    pub fn temporal_cli(&self) -> PathBuf {
        self.settings.venv_bin("temporal")
    }

    /// Every component the tests use, by the name `apex status` gives it.
    fn components(&self) -> Vec<(&'static str, u16)> {
        let s = &self.settings;
        vec![
            ("postgres", s.postgres_port),
            ("redis", s.redis_port),
            ("graph", s.graph_port),
            ("vectors", s.vectors_port),
            ("traces", s.otlp_port),
            ("temporal", s.temporal_port),
            ("parser", s.parser_port),
            ("extractor", s.extractor_port),
            ("embedder", s.embedder_port),
            ("writer", s.writer_port),
            ("worker", s.worker_metrics_port),
            ("gateway", s.gateway_port),
            ("prometheus", s.prometheus_port),
            ("alertmanager", s.alertmanager_port),
            ("alert-receiver", s.alert_receiver_port),
        ]
    }

    /// The components that do not accept a connection.
    fn unreachable(&self) -> Vec<String> {
        self.components()
            .into_iter()
            .filter(|(_, port)| {
                let addr = SocketAddr::from(([127, 0, 0, 1], *port));
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
            })
            .map(|(name, port)| format!("{name} (127.0.0.1:{port})"))
            .collect()
    }
}

/// A test's hold on the stack: shared with other tests, or exclusive for a test that takes
/// a piece of the stack away. Released when dropped.
#[derive(Debug)]
pub struct StackGuard {
    stack: &'static Stack,
    _hold: Hold,
}

#[derive(Debug)]
enum Hold {
    // The guards are held for their drop only.
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

impl Deref for StackGuard {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        self.stack
    }
}

static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();
static HOLD: RwLock<()> = RwLock::new(());

/// The stack, shared with other tests; `None` (after one line on stderr) when it is not
/// running and `APEX_REQUIRE_STACK` is not set.
pub fn stack() -> Option<StackGuard> {
    let stack = found()?;
    let hold = Hold::Shared(HOLD.read().unwrap_or_else(PoisonError::into_inner));
    Some(StackGuard { stack, _hold: hold })
}

/// The stack for this test alone: waits until no other test holds it.
pub fn stack_exclusive() -> Option<StackGuard> {
    let stack = found()?;
    let hold = Hold::Exclusive(HOLD.write().unwrap_or_else(PoisonError::into_inner));
    Some(StackGuard { stack, _hold: hold })
}

/// The stack's settings when bootstrap's tools are installed (the `temporal` CLI that runs
/// a test's own dev server), for tests that need those but not the running stack.
pub fn tools() -> Option<StackSettings> {
    let settings = settings().ok()?;
    let cli = settings.venv_bin("temporal");
    if cli.is_file() {
        return Some(settings);
    }
    skip(&format!(
        "{} is missing (run deploy/local/bootstrap)",
        cli.display()
    ));
    None
}

fn settings() -> Result<StackSettings, String> {
    load::<StackSettings>(&Source::from_env::<StackSettings>())
        .map_err(|e| format!("the stack's settings (APEX_STACK__…) are invalid: {e}"))
}

fn found() -> Option<&'static Stack> {
    let state = STACK.get_or_init(|| {
        let stack = Stack {
            settings: settings()?,
        };
        let missing = stack.unreachable();
        if missing.is_empty() {
            Ok(stack)
        } else {
            Err(format!("not reachable: {}", missing.join(", ")))
        }
    });
    match state {
        Ok(stack) => Some(stack),
        Err(why) => {
            skip(&format!("the local stack is not running ({why})"));
            None
        }
    }
}

/// Fails the test when the stack is required; otherwise says once, on the real stderr (not
/// the test's captured output, which a passing test never shows), what is skipped and why.
fn skip(why: &str) {
    if required() {
        panic!("{why}; {REQUIRE}=1 requires it: run `apex up` (make test starts it)");
    }
    static SAID: OnceLock<()> = OnceLock::new();
    SAID.get_or_init(|| {
        if first_in_this_run() {
            let _ = writeln!(
                std::io::stderr(),
                "apex-e2e: skipping the stack tests: {why}. `make test` starts the stack and \
                 runs them; `apex up` then `cargo test -p apex-e2e` does too."
            );
        }
    });
}

/// Whether no other test binary of this `cargo test` run has said it yet: cargo runs the
/// binaries one after another as its children, so the first to create a marker named by
/// their common parent speaks for all of them.
fn first_in_this_run() -> bool {
    let marker = std::env::temp_dir().join(format!(
        "apex-e2e-skipped-{}",
        std::os::unix::process::parent_id()
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .is_ok()
}

fn required() -> bool {
    std::env::var(REQUIRE).is_ok_and(|v| !v.is_empty() && v != "0")
}
