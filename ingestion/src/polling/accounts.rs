//! Polling accounts as `apex sources` keeps them, in PostgreSQL (`apex_poll_accounts`):
//! the account (provider, address, options), its interval and whether it is paused. No
//! secret is stored: the worker reads them from its environment or files
//! ([`super::Secrets`]). The poller of an account is the workflow `poll-<name>`; the row is
//! what it was started with and what `apex sources list` shows.

use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{Account, Provider};
use crate::keys::redact;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS apex_poll_accounts (
    name TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    base_url TEXT NOT NULL,
    options JSONB NOT NULL,
    interval_secs BIGINT NOT NULL,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
)";

/// An account with what the store keeps beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccount {
    pub account: Account,
    pub interval_secs: u64,
    pub paused: bool,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// The accounts table.
#[derive(Debug, Clone)]
pub struct AccountStore {
    pool: PgPool,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl AccountStore {
    /// Connects and makes sure the table exists.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach PostgreSQL at {}: {e}", redact(url)))?;
        match sqlx::query(TABLE).execute(&pool).await {
            Ok(_) => {}
            // Two clients creating it at once: the other one won.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
            Err(e) => anyhow::bail!("creating the polling accounts table: {e}"),
        }
        Ok(Self { pool })
    }

    /// Adds an account; an account of that name already there is an error naming it.
    pub async fn add(&self, account: &Account, interval_secs: u64) -> anyhow::Result<()> {
        let options = serde_json::to_value(&account.options)?;
        let inserted = sqlx::query(
            "INSERT INTO apex_poll_accounts (name, provider, base_url, options, interval_secs, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&account.name)
        .bind(account.provider.as_str())
        .bind(&account.base_url)
        .bind(options)
        .bind(interval_secs as i64)
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            anyhow::bail!("an account named `{}` already exists", account.name);
        }
        Ok(())
    }

    pub async fn get(&self, name: &str) -> anyhow::Result<Option<StoredAccount>> {
        let row = sqlx::query("SELECT * FROM apex_poll_accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| stored(&r)).transpose()
    }

    pub async fn list(&self) -> anyhow::Result<Vec<StoredAccount>> {
        sqlx::query("SELECT * FROM apex_poll_accounts ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(stored)
            .collect()
    }

    /// Marks an account paused or not; `false` when there is no such account.
    pub async fn set_paused(&self, name: &str, paused: bool) -> anyhow::Result<bool> {
        let n = sqlx::query(
            "UPDATE apex_poll_accounts SET paused = $2, updated_at = $3 WHERE name = $1",
        )
        .bind(name)
        .bind(paused)
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Removes an account; `false` when there was none.
    pub async fn remove(&self, name: &str) -> anyhow::Result<bool> {
        let n = sqlx::query("DELETE FROM apex_poll_accounts WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

fn stored(row: &sqlx::postgres::PgRow) -> anyhow::Result<StoredAccount> {
    let provider: String = row.try_get("provider")?;
    let options: serde_json::Value = row.try_get("options")?;
    Ok(StoredAccount {
        account: Account {
            name: row.try_get("name")?,
            provider: Provider::parse(&provider)
                .ok_or_else(|| anyhow::anyhow!("unknown provider `{provider}` in the table"))?,
            base_url: row.try_get("base_url")?,
            options: serde_json::from_value(options)?,
        },
        interval_secs: row.try_get::<i64, _>("interval_secs")?.max(0) as u64,
        paused: row.try_get("paused")?,
        created_at: row.try_get("created_at")?,
    })
}
