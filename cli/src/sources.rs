//! `apex sources`: the webhook sources the gateway verifies, and the polling accounts
//! (stored in PostgreSQL, each polled by its `PollingWorkflow`). Secrets are never stored
//! with an account: `apex sources secret` writes one to a file under the local stack's
//! `.apex/secrets` (mode 0600), where the gateway and the worker read them; a deployment
//! mounts them, or sets the environment variables the errors name.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use apex_ingestion::polling::{
    Account, AccountStore, PollInput, PollSignal, PollStats, Polling, PollingStats, Provider,
    polling_workflow_id, secret_env_name,
};
use clap::Subcommand;
use temporalio_client::{
    Client, WorkflowIdConflictPolicy, WorkflowQueryOptions, WorkflowSignalOptions,
    WorkflowStartOptions, WorkflowTerminateOptions,
};

#[derive(Debug, Subcommand)]
pub enum SourcesCmd {
    /// Webhook sources (verified, or refusing for want of a secret) and polling accounts
    /// with their poller's state.
    List,
    /// A polling account: stored, and its poller started.
    Add {
        /// Lower-case letters, digits and `-` (the poller is the workflow `poll-<name>`).
        name: String,
        /// plaid, hubspot or stripe.
        #[arg(long)]
        provider: String,
        /// The API's address (default: the provider's production API).
        #[arg(long, default_value = "")]
        base_url: String,
        /// `key=value`, repeatable: client_id (plaid), object (hubspot), page_size, parallel.
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// Seconds between polls.
        #[arg(long, default_value_t = 900)]
        interval_secs: u64,
    },
    /// Stops polling after the current poll.
    Pause { name: String },
    /// Polls again, at once.
    Resume { name: String },
    /// Polls at once instead of at the end of the interval.
    Poll { name: String },
    /// The poller's counts, cursor, last error and lag.
    Stats { name: String },
    /// Stops the poller and forgets the account (its documents stay).
    Remove { name: String },
    /// Writes a secret read from standard input: a webhook source's (`--webhook`; `--add`
    /// keeps the current ones, for a rotation) or a polling account's secret `--name`.
    Secret {
        /// The webhook source or the polling account.
        target: String,
        #[arg(long, conflicts_with = "name")]
        webhook: bool,
        /// The account's secret: secret or access_token (plaid), token (hubspot), api_key
        /// (stripe).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        add: bool,
    },
}

/// Where the command acts.
#[derive(Debug)]
pub struct Target<'a> {
    pub database_url: &'a str,
    pub temporal: &'a str,
    pub namespace: &'a str,
    pub task_queue: &'a str,
    pub gateway_url: &'a str,
    pub secrets_dir: &'a Path,
}

pub async fn run(cmd: &SourcesCmd, t: &Target<'_>) -> anyhow::Result<bool> {
    match cmd {
        SourcesCmd::Secret {
            target,
            webhook,
            name,
            add,
        } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("reading the secret from standard input")?;
            let path = secret_path(t.secrets_dir, target, *webhook, name.as_deref())?;
            write_secret(&path, value.trim(), *add)?;
            eprintln!("secret written to {} (mode 0600)", path.display());
            return Ok(true);
        }
        SourcesCmd::List => return list(t).await,
        _ => {}
    }
    let store = AccountStore::connect(t.database_url).await?;
    let client = apex_ingestion::workflows::client(t.temporal, t.namespace).await?;
    match cmd {
        SourcesCmd::Add {
            name,
            provider,
            base_url,
            options,
            interval_secs,
        } => {
            let account = account(name, provider, base_url, options)?;
            add(&store, &client, t, account, *interval_secs).await
        }
        SourcesCmd::Pause { name } => signal(&store, &client, name, PollSignal::Pause).await,
        SourcesCmd::Resume { name } => signal(&store, &client, name, PollSignal::Resume).await,
        SourcesCmd::Poll { name } => signal(&store, &client, name, PollSignal::PollNow).await,
        SourcesCmd::Stats { name } => {
            let stats = stats(&client, name).await?;
            print_stats(name, &stats);
            Ok(true)
        }
        SourcesCmd::Remove { name } => {
            let handle = client.get_workflow_handle::<Polling>(polling_workflow_id(name));
            if let Err(e) = handle
                .terminate(
                    WorkflowTerminateOptions::builder()
                        .reason("apex sources remove".to_owned())
                        .build(),
                )
                .await
            {
                eprintln!("the poller of `{name}` was not running ({e})");
            }
            if !store.remove(name).await? {
                bail!("no polling account `{name}`");
            }
            eprintln!("account `{name}` removed; its documents stay");
            Ok(true)
        }
        SourcesCmd::List | SourcesCmd::Secret { .. } => Ok(true),
    }
}

/// The account `add` describes, checked.
pub fn account(
    name: &str,
    provider: &str,
    base_url: &str,
    options: &[String],
) -> anyhow::Result<Account> {
    let Some(provider) = Provider::parse(provider) else {
        bail!("unknown provider `{provider}`: plaid, hubspot or stripe");
    };
    let mut account = Account {
        name: name.trim().to_owned(),
        provider,
        base_url: base_url.trim().to_owned(),
        ..Account::default()
    };
    for option in options {
        let Some((k, v)) = option.split_once('=') else {
            bail!("option `{option}` is not key=value");
        };
        account
            .options
            .insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let problems = account.problems();
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(account)
}

async fn add(
    store: &AccountStore,
    client: &Client,
    t: &Target<'_>,
    account: Account,
    interval_secs: u64,
) -> anyhow::Result<bool> {
    if interval_secs == 0 {
        bail!("--interval-secs must be at least 1");
    }
    store.add(&account, interval_secs).await?;
    let name = account.name.clone();
    let secrets = account.provider.secret_names();
    let input = PollInput {
        account,
        interval_secs,
        ..PollInput::default()
    };
    let started = client
        .start_workflow(
            Polling,
            input.into(),
            WorkflowStartOptions::new(t.task_queue, polling_workflow_id(&name))
                .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
                .build(),
        )
        .await;
    if let Err(e) = started {
        store.remove(&name).await?;
        bail!("cannot start the poller of `{name}`: {e}");
    }
    println!("{}", polling_workflow_id(&name));
    eprintln!(
        "account `{name}` added; its poller runs every {interval_secs} s. The worker reads its secrets ({}) from {} or `apex sources secret {name} --name <secret>`",
        secrets.join(", "),
        secrets
            .iter()
            .map(|s| secret_env_name(&name, s))
            .collect::<Vec<_>>()
            .join(", "),
    );
    Ok(true)
}

async fn signal(
    store: &AccountStore,
    client: &Client,
    name: &str,
    signal: PollSignal,
) -> anyhow::Result<bool> {
    let paused = match signal {
        PollSignal::Pause => Some(true),
        PollSignal::Resume => Some(false),
        PollSignal::PollNow => None,
    };
    if let Some(p) = paused
        && !store.set_paused(name, p).await?
    {
        bail!("no polling account `{name}`");
    }
    client
        .get_workflow_handle::<Polling>(polling_workflow_id(name))
        .signal(signal, (), WorkflowSignalOptions::default())
        .await
        .with_context(|| format!("the poller of `{name}`"))?;
    let done = match signal {
        PollSignal::Pause => "pauses after its current poll",
        PollSignal::Resume => "resumed; it polls now",
        PollSignal::PollNow => "polls now",
    };
    eprintln!("the poller of `{name}` {done}");
    Ok(true)
}

pub async fn stats(client: &Client, name: &str) -> anyhow::Result<PollStats> {
    client
        .get_workflow_handle::<Polling>(polling_workflow_id(name))
        .query(PollingStats, (), WorkflowQueryOptions::default())
        .await
        .with_context(|| format!("the poller of `{name}`"))
}

fn ago(ms: u64) -> String {
    if ms == 0 {
        return "never".to_owned();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{} s ago", now.saturating_sub(ms) / 1000)
}

fn print_stats(name: &str, s: &PollStats) {
    println!("account        {name}");
    println!("status         {}", s.status);
    println!(
        "polls          {} ({} pages, {} runs)",
        s.polls, s.pages, s.runs
    );
    println!(
        "records        {} ingested, {} unchanged, {} deleted, {} failed",
        s.records, s.unchanged, s.deleted, s.failed
    );
    println!("restarts       {}", s.restarts);
    println!("cursor         {}", s.last_cursor);
    println!("last poll      {} (lag)", ago(s.last_poll_finished_ms));
    println!(
        "last error     {}",
        s.last_error.as_deref().unwrap_or("none")
    );
}

async fn list(t: &Target<'_>) -> anyhow::Result<bool> {
    let ready: Result<serde_json::Value, String> = async {
        reqwest::Client::new()
            .get(format!("{}/readyz", t.gateway_url))
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    println!("webhook sources (POST /v1/webhooks/<source>):");
    match ready {
        Err(e) => println!("  the gateway's /readyz did not answer: {e}"),
        Ok(body) => {
            for name in body["webhooks"]["configured"]
                .as_array()
                .into_iter()
                .flatten()
            {
                println!("  {:<14} verified", name.as_str().unwrap_or_default());
            }
            for (name, why) in body["webhooks"]["unconfigured"]
                .as_object()
                .into_iter()
                .flatten()
            {
                println!(
                    "  {name:<14} refusing every delivery: {}",
                    why.as_str().unwrap_or_default()
                );
            }
        }
    }
    println!("polling accounts:");
    let store = AccountStore::connect(t.database_url).await?;
    let accounts = store.list().await?;
    if accounts.is_empty() {
        println!("  none (apex sources add <name> --provider plaid|hubspot|stripe)");
        return Ok(true);
    }
    let client = apex_ingestion::workflows::client(t.temporal, t.namespace)
        .await
        .ok();
    for a in accounts {
        let state = match &client {
            Some(c) => match stats(c, &a.account.name).await {
                Ok(s) => format!(
                    "{}, {} polls, {} records, last poll {}{}",
                    s.status,
                    s.polls,
                    s.records,
                    ago(s.last_poll_finished_ms),
                    s.last_error
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                ),
                Err(e) => format!("poller not answering: {e:#}"),
            },
            None => "temporal unreachable".to_owned(),
        };
        println!(
            "  {:<14} {:<8} every {} s{}  {state}",
            a.account.name,
            a.account.provider.as_str(),
            a.interval_secs,
            if a.paused { " (paused)" } else { "" },
        );
    }
    Ok(true)
}

/// The file a secret goes to under the local stack's secrets directory.
pub fn secret_path(
    dir: &Path,
    target: &str,
    webhook: bool,
    name: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    if !safe(target) {
        bail!("`{target}` is not a source or account name (lower-case letters, digits, `-`)");
    }
    if webhook {
        return Ok(dir.join("webhooks").join(target));
    }
    let Some(name) = name.filter(|n| safe(n)) else {
        bail!(
            "say which secret of account `{target}`: --name secret|access_token|token|api_key (or --webhook)"
        );
    };
    Ok(dir.join("poll").join(target).join(name))
}

/// Writes `value` to `path` (mode 0600; its directory 0700), replacing it or, with `add`,
/// as one more line.
pub fn write_secret(path: &Path, value: &str, add: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if value.is_empty() || value.contains('\n') {
        bail!("the secret must be one non-empty line on standard input");
    }
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(add)
        .truncate(!add)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{value}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_checked_before_anything_is_stored() {
        let a = account("fleet-bank", "plaid", "", &["client_id=cid".into()]).expect("plaid");
        assert_eq!(a.options["client_id"], "cid");
        let err = |r: anyhow::Result<Account>| format!("{:#}", r.expect_err("refused"));
        assert!(err(account("x", "quickbooks", "", &[])).contains("unknown provider"));
        assert!(err(account("x", "plaid", "", &[])).contains("client_id"));
        assert!(err(account("x", "stripe", "", &["page_size".into()])).contains("key=value"));
        assert!(err(account("Bad Name", "stripe", "", &[])).contains("lower-case"));
    }

    #[test]
    fn secrets_are_written_0600_and_a_rotation_adds_a_line() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let hook = secret_path(dir.path(), "samsara", true, None).expect("path");
        write_secret(&hook, "old", false).expect("write");
        write_secret(&hook, "new", true).expect("add");
        assert_eq!(std::fs::read_to_string(&hook).expect("read"), "old\nnew\n");
        let mode = std::fs::metadata(&hook).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let poll = secret_path(dir.path(), "crm", false, Some("token")).expect("path");
        assert!(poll.ends_with("poll/crm/token"));
        assert!(secret_path(dir.path(), "crm", false, None).is_err());
        assert!(secret_path(dir.path(), "../etc", true, None).is_err());
        assert!(write_secret(&poll, "", false).is_err());
    }
}
