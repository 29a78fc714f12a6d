//! `apex keys create|list|revoke`: the gateway's API keys, in PostgreSQL. A key is shown
//! once, when it is created; only its SHA-256 is stored. `apex up` makes sure the local
//! stack has an admin key in `.apex/admin.key` (mode 0600), which the CLI sends when
//! `APEX_API_KEY` is not set.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use apex_ingestion::keys::Scope;
use apex_ingestion::keys::{KeyInfo, KeyStore, now_secs};
use clap::Subcommand;

use crate::settings::StackSettings;

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// A new key; it is printed once and never again.
    Create {
        /// Who or what uses it (`ci`, `billing-webhooks`).
        #[arg(long)]
        name: String,
        /// Comma-separated: ingest, read, delete, admin (admin holds every scope).
        #[arg(long)]
        scopes: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    /// Every key: id, name, scopes, when created, last used, expires, revoked.
    List,
    /// Revokes a key by its id (the gateway refuses it within `auth.cache_secs`).
    Revoke { id: String },
}

pub async fn run(cmd: &KeysCmd, database_url: &str) -> anyhow::Result<bool> {
    let store = KeyStore::connect(database_url).await.with_context(|| {
        format!(
            "cannot reach the key database at {}",
            apex_ingestion::keys::redact(database_url)
        )
    })?;
    match cmd {
        KeysCmd::Create {
            name,
            scopes,
            expires_in_days,
        } => {
            let scopes = Scope::parse_list(scopes).map_err(anyhow::Error::msg)?;
            let ttl = expires_in_days.map(|d| Duration::from_secs(d * 86_400));
            let created = store.create(name, &scopes, ttl).await?;
            println!("{}", created.key);
            eprintln!(
                "key {} ({}) created with scopes {}; this is the only time it is shown",
                created.info.id,
                created.info.name,
                created.info.scopes.join(",")
            );
            Ok(true)
        }
        KeysCmd::List => {
            print(&store.list().await?);
            Ok(true)
        }
        KeysCmd::Revoke { id } => {
            if store.revoke(id).await? {
                println!("revoked {id}");
                Ok(true)
            } else {
                eprintln!("no key has the id {id} (see `apex keys list`)");
                Ok(false)
            }
        }
    }
}

fn ago(t: Option<i64>) -> String {
    match t {
        None => "-".to_owned(),
        Some(t) if t > now_secs() => format!("in {} s", t - now_secs()),
        Some(t) => format!("{} s ago", now_secs() - t),
    }
}

fn print(keys: &[KeyInfo]) {
    println!(
        "  {:<12}  {:<20}  {:<24}  {:<12}  {:<12}  {:<12}  revoked",
        "id", "name", "scopes", "created", "last used", "expires"
    );
    for k in keys {
        println!(
            "  {:<12}  {:<20}  {:<24}  {:<12}  {:<12}  {:<12}  {}",
            k.id,
            k.name,
            k.scopes.join(","),
            ago(Some(k.created_at)),
            ago(k.last_used_at),
            ago(k.expires_at),
            ago(k.revoked_at)
        );
    }
}

/// Makes sure `.apex/admin.key` holds a working admin key for the local stack: keeps it
/// when the database accepts it, else creates one and writes it (mode 0600).
pub async fn ensure_local_admin(s: &StackSettings) -> anyhow::Result<()> {
    let path = s.api_key_file();
    let store = KeyStore::connect(&s.postgres_url())
        .await
        .context("creating the local admin API key")?;
    if let Ok(existing) = std::fs::read_to_string(&path)
        && let Ok(Ok(_)) = store.verify(existing.trim()).await
    {
        return Ok(());
    }
    let created = store
        .create("local-admin", &[Scope::Admin], None)
        .await
        .context("creating the local admin API key")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{}", created.key)?;
    #[cfg(unix)]
    std::fs::set_permissions(
        &path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )?;
    println!(
        "  {:<11} created           {}  admin key {} for the CLI (APEX_API_KEY overrides it)",
        "api key",
        path.display(),
        created.info.id
    );
    Ok(())
}
