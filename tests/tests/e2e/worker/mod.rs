//! The worker's end-to-end tests and their harness: a real Temporal dev server and real
//! `apex-worker` processes on free loopback ports, each test on its own task queue.

#![allow(dead_code, unreachable_pub)]

mod hello;
mod ingest;
mod lifecycle;
pub mod services;
mod temporal_tls;
mod versions;

use std::{
    io::{BufRead, BufReader},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Mutex, PoisonError, mpsc},
    time::{Duration, Instant},
};

use apex_worker::greeting::{GreetingHandle, GreetingInput, GreetingWorkflow};
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowFetchHistoryOptions, WorkflowQueryOptions,
    WorkflowStartOptions,
};
use temporalio_common::protos::temporal::api::{
    enums::v1::PendingActivityState, history::v1::history_event::Attributes,
};

/// A free loopback port (bound then released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The `temporal` CLI bootstrap installed (tests check [`apex_e2e::tools`] first).
pub fn temporal_cli() -> PathBuf {
    apex_e2e::tools()
        .expect("bootstrap's tools (run deploy/local/bootstrap)")
        .venv_bin("temporal")
}

/// Dev servers of one test binary start one at a time: a server picks its internal ports
/// itself, and could take a port another test has picked but not bound yet (then the other
/// test's client reaches the wrong service). Holding this until the frontend listens closes
/// that window.
static STARTING: Mutex<()> = Mutex::new(());

/// A Temporal dev server with its own SQLite file, on its own ports.
pub struct DevServer {
    pub port: u16,
    http_port: u16,
    metrics_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl DevServer {
    pub fn start() -> Self {
        let _one_at_a_time = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
        let mut s = Self {
            port: 0,
            http_port: 0,
            metrics_port: 0,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        // A server that cannot bind its ports exits; try again on fresh ones.
        for _ in 0..3 {
            s.port = free_port();
            s.http_port = free_port();
            s.metrics_port = free_port();
            s.spawn();
            if s.wait_listening() {
                return s;
            }
        }
        panic!(
            "the dev server did not start on three sets of ports; its log:\n{}",
            s.log_tail()
        );
    }

    /// Waits until the frontend port accepts connections while our server is alive;
    /// `false` when the server exited first.
    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return false;
            }
            // The frontend and the HTTP port both accept, and the server still runs: a
            // server that bound the first and then lost another port to someone else exits,
            // and the frontend port alone could be a neighbour's.
            let accepts = |port: u16| TcpStream::connect(("127.0.0.1", port)).is_ok();
            if accepts(self.port) && accepts(self.http_port) {
                let running = self
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
                if running {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log");
        let child = Command::new(temporal_cli())
            .args([
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--log-level",
                "error",
            ])
            .args(["--port", &self.port.to_string()])
            .args(["--http-port", &self.http_port.to_string()])
            .args(["--metrics-port", &self.metrics_port.to_string()])
            .arg("--db-filename")
            .arg(self.dir.path().join("temporal.db"))
            .args(
                apex_ingestion::workflows::DEV_SERVER_DYNAMIC_CONFIG
                    .iter()
                    .flat_map(|v| ["--dynamic-config-value", v]),
            )
            .args(
                apex_ingestion::workflows::DEV_SERVER_SQLITE_PRAGMAS
                    .iter()
                    .flat_map(|p| ["--sqlite-pragma", p]),
            )
            .args([
                "--search-attribute",
                "Source=Keyword",
                "--search-attribute",
                "Status=Keyword",
                "--search-attribute",
                "Priority=Int",
                "--search-attribute",
                "DocumentId=Keyword",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start temporal dev server");
        self.child = Some(child);
    }

    /// Waits until a client can connect.
    pub async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match apex_worker::client(&self.address(), "default").await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("dev server never answered: {e:#}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// Stops the server and starts it again on the same ports and database.
    ///
    /// While it was down, another test's socket may have taken one of its ports for a
    /// moment (a client's ephemeral port, or the server's own internal ports): a server that
    /// cannot bind exits at once, so a few attempts are made before giving up, each attempt's
    /// exit left in the server's log, which the failure prints.
    pub fn restart(&mut self) {
        self.stop();
        let _one_at_a_time = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
        for attempt in 1..=5 {
            self.spawn();
            if self.wait_listening() {
                return;
            }
            eprintln!(
                "dev server exited on restart attempt {attempt} (port {})",
                self.port
            );
        }
        panic!(
            "the dev server did not come back on port {} in five attempts; its log:\n{}",
            self.port,
            self.log_tail()
        );
    }

    /// The last lines of the server's log (stdout and stderr of every start).
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn terminate(child: &mut Child) -> Option<ExitStatus> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// An `apex-worker` process; its log lines are forwarded to a channel so tests can wait for
/// a line instead of sleeping.
pub struct WorkerProc {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line printed so far, and the thread reading them.
    printed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub metrics_port: u16,
}

impl WorkerProc {
    pub fn spawn(address: &str, task_queue: &str) -> Self {
        Self::spawn_with(address, task_queue, &[])
    }

    pub fn spawn_with(address: &str, task_queue: &str, extra: &[(&str, &str)]) -> Self {
        let metrics_port = free_port();
        let mut cmd = Command::new(apex_e2e::bins::bin("apex-worker"));
        cmd.env("APEX_WORKER__TEMPORAL__ADDRESS", address)
            .env("APEX_WORKER__TEMPORAL__TASK_QUEUE", task_queue)
            .env(
                "APEX_WORKER__METRICS_ADDR",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("APEX_WORKER__TELEMETRY__LOG_FORMAT", "json")
            .env("APEX_WORKER__CONNECT_MAX_BACKOFF_SECS", "1");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start apex-worker");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = printed.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[worker] {line}");
                keep.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line.clone());
                // The receiver may be gone; every line is kept all the same.
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            printed,
            reader: Some(reader),
            metrics_port,
        }
    }

    /// Blocks until a log line contains `needle`; panics after `within`.
    pub fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("worker never logged `{needle}` within {within:?}"),
            }
        }
    }

    /// SIGKILL: the worker dies mid-task, as in a crash; waits until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("sigterm");
    }

    /// Stops the worker (SIGTERM), waits until it has exited and its output is read, and
    /// returns every line it printed.
    pub fn finish(mut self) -> Vec<String> {
        self.sigterm();
        self.wait_exit(Duration::from_secs(60));
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.printed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// A task queue name no other test uses.
/// A worker on a task queue of its own (named after `prefix`), in front of the running
/// stack's services and blob store, with `extra` in its environment. Returns it once it
/// polls, and its queue.
pub fn mesh_worker(
    stack: &apex_e2e::Stack,
    prefix: &str,
    extra: &[(&str, &str)],
) -> (WorkerProc, String) {
    let queue = unique_queue(prefix);
    let worker = mesh_worker_on(stack, &queue, extra);
    (worker, queue)
}

/// A worker like [`mesh_worker`]'s on `queue` (a second one, or one replacing a killed one).
pub fn mesh_worker_on(stack: &apex_e2e::Stack, queue: &str, extra: &[(&str, &str)]) -> WorkerProc {
    let service = |port: u16| format!("http://127.0.0.1:{port}");
    let ports = &stack.settings;
    let blobs = stack.blob_dir().display().to_string();
    let addresses = [
        (
            "APEX_WORKER__INGEST__PARSER_ADDR",
            service(ports.parser_port),
        ),
        (
            "APEX_WORKER__INGEST__EXTRACTOR_ADDR",
            service(ports.extractor_port),
        ),
        (
            "APEX_WORKER__INGEST__EMBEDDER_ADDR",
            service(ports.embedder_port),
        ),
        (
            "APEX_WORKER__INGEST__WRITER_ADDR",
            service(ports.writer_port),
        ),
        ("APEX_WORKER__INGEST__BLOB_URL", blobs),
    ];
    let mut env: Vec<(&str, &str)> = addresses.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    let worker = WorkerProc::spawn_with(&stack.temporal_address(), queue, &env);
    worker.wait_for_line("worker polling", Duration::from_secs(60));
    worker
}

pub fn unique_queue(prefix: &str) -> String {
    apex_e2e::Names::new().queue(prefix)
}

/// Starts a greeting on `queue` under a fresh workflow id.
pub async fn start(client: &Client, queue: &str, input: GreetingInput) -> GreetingHandle {
    let id = format!("test-{}", uuid::Uuid::new_v4().simple());
    client
        .start_workflow(
            GreetingWorkflow::run,
            input.into(),
            WorkflowStartOptions::new(queue, &id).build(),
        )
        .await
        .expect("start workflow")
}

/// With `APEX_RECORD_HISTORIES=1`, saves the workflow's history as
/// `worker/tests/histories/<name>.json` (the SDK's JSON form) for the replay test, which
/// checks every later change of the workflow code against it.
pub async fn record_history<W>(handle: &temporalio_client::WorkflowHandle<Client, W>, name: &str)
where
    W: temporalio_common::HasWorkflowDefinition,
{
    if std::env::var("APEX_RECORD_HISTORIES").as_deref() != Ok("1") {
        return;
    }
    let json = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
        .expect("history as JSON");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../worker/tests/histories");
    std::fs::create_dir_all(&dir).expect("histories dir");
    std::fs::write(dir.join(format!("{name}.json")), json).expect("write history");
}

/// The attributes of every event in the workflow's history (any workflow type).
pub async fn history<W: temporalio_common::HasWorkflowDefinition>(
    handle: &temporalio_client::WorkflowHandle<Client, W>,
) -> Vec<Attributes> {
    handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .expect("history")
        .into_iter()
        .filter_map(|e| e.attributes)
        .collect()
}

/// Polls `describe` until the greeting's activity is running on a worker.
pub async fn wait_activity_started(handle: &GreetingHandle) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let desc = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("describe");
        let started = desc
            .raw()
            .pending_activities
            .iter()
            .any(|p| p.state == PendingActivityState::Started as i32);
        if started {
            return;
        }
        assert!(Instant::now() < deadline, "activity never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workflow's `get_status` answer.
pub async fn status(handle: &GreetingHandle) -> apex_worker::greeting::GreetingStatus {
    handle
        .query(
            GreetingWorkflow::get_status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("query")
}
