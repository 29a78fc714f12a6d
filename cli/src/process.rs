//! Starting, finding and stopping the background processes of the local stack. Each process
//! gets a pid file under `<state>/run` and a log under `<state>/logs`.

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use nix::{sys::signal::Signal, unistd::Pid};

/// Paths of one component's pid file and log.
#[derive(Debug, Clone)]
pub struct Files {
    pub pid: PathBuf,
    pub log: PathBuf,
}

impl Files {
    pub fn new(state: &Path, name: &str) -> Self {
        Self {
            pid: state.join("run").join(format!("{name}.pid")),
            log: state.join("logs").join(format!("{name}.log")),
        }
    }

    /// The pid in the pid file if that process is still alive.
    pub fn running_pid(&self) -> Option<i32> {
        let pid: i32 = fs::read_to_string(&self.pid).ok()?.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    if nix::sys::signal::kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    // A zombie still answers signal 0; its /proc status says so.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Spawns `cmd` detached from this process group, logging to `files.log`, and records its pid.
pub fn spawn(mut cmd: Command, files: &Files) -> anyhow::Result<i32> {
    for dir in [files.pid.parent(), files.log.parent()]
        .into_iter()
        .flatten()
    {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
        .with_context(|| format!("cannot open {}", files.log.display()))?;
    let program = format!("{:?}", cmd.get_program());
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let pid = i32::try_from(child.id())?;
    fs::write(&files.pid, pid.to_string())?;
    Ok(pid)
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL. Removes the pid file.
pub fn stop(files: &Files, grace: Duration) -> anyhow::Result<bool> {
    let Some(pid) = files.running_pid() else {
        let _ = fs::remove_file(&files.pid);
        return Ok(false);
    };
    let target = Pid::from_raw(pid);
    nix::sys::signal::kill(target, Signal::SIGTERM).ok();
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        nix::sys::signal::kill(target, Signal::SIGKILL).ok();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            bail!("process {pid} survived SIGKILL");
        }
    }
    let _ = fs::remove_file(&files.pid);
    Ok(true)
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
