//! PostgreSQL for the local stack: its own cluster, started with `pg_ctl` (as the
//! `postgres` user when `apex up` runs as root), with the stack's role and database.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use crate::process::{self, Files};
use crate::settings::StackSettings;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Directory of the newest installed PostgreSQL server binaries.
pub fn postgres_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, p)| p)
}

/// PostgreSQL refuses to run as root, and its data directory must be reachable by the
/// `postgres` user, which a private checkout (mode 700) is not; as root the cluster lives
/// under /var/lib/apex instead of the state directory.
fn postgres_data(s: &StackSettings, state: &Path) -> PathBuf {
    if is_root() {
        PathBuf::from(format!("/var/lib/apex/postgres-{}", s.postgres_port))
    } else {
        state.join("postgres")
    }
}

/// The server log; beside the data directory when that lives outside the state directory,
/// since the `postgres` user cannot write into a private checkout either.
pub(super) fn postgres_log(s: &StackSettings, state: &Path) -> PathBuf {
    if is_root() {
        PathBuf::from(format!("/var/lib/apex/postgres-{}.log", s.postgres_port))
    } else {
        Files::new(state, "postgres").log
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut cmd = if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    // The caller's directory may be unreadable for the postgres user.
    cmd.current_dir("/");
    cmd
}

fn run_checked(mut cmd: Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(super) fn start_postgres(s: &StackSettings, state: &Path) -> anyhow::Result<()> {
    let bin = postgres_bin().context("PostgreSQL is not installed: run deploy/local/bootstrap")?;
    let data = postgres_data(s, state);
    if !data.join("PG_VERSION").exists() {
        fs::create_dir_all(&data)?;
        if is_root() {
            run_checked(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"])
                        .arg(data.parent().unwrap_or(&data));
                    c
                },
                "chown",
            )?;
        }
        let mut init = as_postgres(&bin.join("initdb"));
        init.arg("-D").arg(&data).args([
            "--username=postgres",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]);
        run_checked(init, "initdb")?;
    }
    let log = postgres_log(s, state);
    fs::create_dir_all(log.parent().unwrap_or(state))?;
    if is_root() {
        // The server (running as postgres) appends to this log.
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let _ = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&log)
            .status();
    }
    let mut ctl = as_postgres(&bin.join("pg_ctl"));
    ctl.arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            s.postgres_port,
            data.display()
        ));
    ctl.args(["-w", "-t", "60", "start"]);
    run_checked(ctl, "pg_ctl start")
        .map(|_| ())
        .with_context(|| process::tail(&log, 20))
}

pub(super) fn ensure_postgres_role(s: &StackSettings, state: &Path) -> anyhow::Result<()> {
    let bin = postgres_bin().context("PostgreSQL is not installed")?;
    let data = postgres_data(s, state);
    let psql = |sql: &str| {
        let mut c = as_postgres(&bin.join("psql"));
        c.arg("-h")
            .arg(&data)
            .args(["-p", &s.postgres_port.to_string(), "-U", "postgres"]);
        c.args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc", sql]);
        run_checked(c, "psql")
    };
    let user = &s.postgres_user;
    let password = s.postgres_password.replace('\'', "''");
    if psql(&format!("SELECT 1 FROM pg_roles WHERE rolname = '{user}'"))?.trim() != "1" {
        psql(&format!(
            "CREATE ROLE \"{user}\" LOGIN CREATEDB PASSWORD '{password}'"
        ))?;
    } else {
        psql(&format!("ALTER ROLE \"{user}\" PASSWORD '{password}'"))?;
    }
    let db = &s.postgres_db;
    if psql(&format!("SELECT 1 FROM pg_database WHERE datname = '{db}'"))?.trim() != "1" {
        psql(&format!("CREATE DATABASE \"{db}\" OWNER \"{user}\""))?;
    }
    Ok(())
}

pub(super) fn stop_postgres(s: &StackSettings, state: &Path) -> anyhow::Result<bool> {
    let Some(bin) = postgres_bin() else {
        return Ok(false);
    };
    let data = postgres_data(s, state);
    if !data.join("postmaster.pid").exists() {
        return Ok(false);
    }
    let mut ctl = as_postgres(&bin.join("pg_ctl"));
    ctl.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
    run_checked(ctl, "pg_ctl stop")?;
    Ok(true)
}
