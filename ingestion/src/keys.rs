//! The gateway's API keys in PostgreSQL (shared by the gateway, which verifies them, and
//! `apex keys`, which manages them): created with a name, scopes and an optional expiry, shown once,
//! stored as the SHA-256 of their secret, listed, revoked and verified.
//!
//! A key reads `apex_<id>_<secret>`: the id (12 hex digits) finds the row and may be shown
//! anywhere (`apex keys list`, logs, metrics); the secret (64 hex digits, 244 random bits
//! from the operating system) is never stored or shown again. The secret is long and random,
//! so one SHA-256 is the right hash: there is nothing to brute-force that a slow hash would
//! protect. The stored hash is compared in constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Ingest,
    Read,
    Delete,
    /// The rollout and the keys; holds every other scope too.
    Admin,
}

impl Scope {
    pub const NAMES: [&'static str; 4] = ["ingest", "read", "delete", "admin"];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Delete => "delete",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "delete" => Some(Scope::Delete),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    /// `ingest,read` → the scopes, or an error naming the one that is not a scope.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, String> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                Self::parse(s).ok_or_else(|| {
                    format!(
                        "`{}` is not a scope; scopes: {}",
                        s.trim(),
                        Self::NAMES.join(", ")
                    )
                })
            })
            .collect()
    }
}

const TABLE: &str = "CREATE TABLE IF NOT EXISTS apex_api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    scopes TEXT[] NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
)";

/// What `apex keys list` shows of a key: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A key that was just created: its description and the key itself, shown this once.
pub struct Created {
    pub info: KeyInfo,
    pub key: String,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("info", &self.info)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Why a presented key was not accepted (the metric label and the error's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Not of the `apex_<id>_<secret>` form.
    Malformed,
    /// No such id, or the secret does not match.
    Unknown,
    Revoked,
    Expired,
}

impl Rejected {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Malformed => "malformed",
            Rejected::Unknown => "unknown",
            Rejected::Revoked => "revoked",
            Rejected::Expired => "expired",
        }
    }
}

/// A key that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
}

pub use apex_common::settings::redact_url as redact;

/// The keys' table.
#[derive(Debug, Clone)]
pub struct KeyStore {
    pool: PgPool,
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equal in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 122 random bits from the operating system per UUID v4.
fn random_hex(uuids: usize) -> String {
    (0..uuids)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect()
}

/// `(id, secret)` of a presented key, if it has the form.
fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("apex_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 12) && hex(secret, 64)).then_some((id, secret))
}

impl KeyStore {
    /// Connects (lazily) and makes sure the table exists.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let store = Self::lazy(url)?;
        store.ensure_table().await?;
        Ok(store)
    }

    /// Connects when first used: a gateway starts while PostgreSQL is away, and answers 503
    /// to what needs a key until it is back.
    pub fn lazy(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url)
            .map_err(|e| anyhow::anyhow!("auth.database_url {}: {e}", redact(url)))?;
        Ok(Self { pool })
    }

    /// Creates the table if it is not there.
    pub async fn ensure_table(&self) -> anyhow::Result<()> {
        match sqlx::query(TABLE).execute(&self.pool).await {
            Ok(_) => Ok(()),
            // Two gateways creating it at once: the other one won.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => Ok(()),
            Err(e) => Err(anyhow::anyhow!("creating the API key table: {e}")),
        }
    }

    /// A new key named `name` with `scopes`, expiring after `ttl` if given.
    pub async fn create(
        &self,
        name: &str,
        scopes: &[Scope],
        ttl: Option<Duration>,
    ) -> anyhow::Result<Created> {
        if name.trim().is_empty() {
            anyhow::bail!("a key needs a name (who or what uses it)");
        }
        if scopes.is_empty() {
            anyhow::bail!(
                "a key needs at least one scope: {}",
                Scope::NAMES.join(", ")
            );
        }
        let id = random_hex(1)[..12].to_owned();
        let secret = random_hex(2);
        let created_at = now_secs();
        let expires_at = ttl.map(|t| created_at + t.as_secs() as i64);
        let scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
        sqlx::query(
            "INSERT INTO apex_api_keys (id, name, secret_sha256, scopes, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(name.trim())
        .bind(sha256_hex(&secret))
        .bind(&scopes)
        .bind(created_at)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| anyhow::anyhow!("storing the key: {e}"))?;
        Ok(Created {
            key: format!("apex_{id}_{secret}"),
            info: KeyInfo {
                id,
                name: name.trim().to_owned(),
                scopes,
                created_at,
                last_used_at: None,
                expires_at,
                revoked_at: None,
            },
        })
    }

    /// Every key, newest first.
    pub async fn list(&self) -> anyhow::Result<Vec<KeyInfo>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, name, scopes, created_at, last_used_at, expires_at, revoked_at
             FROM apex_api_keys ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| anyhow::anyhow!("listing keys: {e}"))?;
        Ok(rows.into_iter().map(KeyRow::info).collect())
    }

    /// Revokes key `id`; `false` when there is no such key (revoking twice is fine).
    pub async fn revoke(&self, id: &str) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE apex_api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(now_secs())
        .execute(&self.pool)
        .await
        .map_err(|e| anyhow::anyhow!("revoking {id}: {e}"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Judges a presented key. `Err` only when PostgreSQL could not be asked.
    pub async fn verify(&self, key: &str) -> Result<Result<Verified, Rejected>, sqlx::Error> {
        let Some((id, secret)) = split(key) else {
            return Ok(Err(Rejected::Malformed));
        };
        let row: Option<StoredKey> = sqlx::query_as(
            "SELECT name, secret_sha256, scopes, expires_at, revoked_at FROM apex_api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .or_else(|e| {
            // No table yet: no key was ever created, so none is known.
            let no_table = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01"));
            if no_table { Ok(None) } else { Err(e) }
        })?;
        // A missing id costs a hash comparison too, so timing does not tell ids apart.
        let (name, stored, scopes, expires_at, revoked_at) = row.unwrap_or_default();
        if !same(sha256_hex(secret).as_bytes(), stored.as_bytes()) {
            return Ok(Err(Rejected::Unknown));
        }
        if revoked_at.is_some() {
            return Ok(Err(Rejected::Revoked));
        }
        if expires_at.is_some_and(|t| t <= now_secs()) {
            return Ok(Err(Rejected::Expired));
        }
        Ok(Ok(Verified {
            id: id.to_owned(),
            name,
            scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        }))
    }

    /// Records that key `id` was used now.
    pub async fn touch(&self, id: &str) {
        let _ = sqlx::query("UPDATE apex_api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_secs())
            .execute(&self.pool)
            .await;
    }
}

/// `(name, secret_sha256, scopes, expires_at, revoked_at)`.
type StoredKey = (String, String, Vec<String>, Option<i64>, Option<i64>);

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    scopes: Vec<String>,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl KeyRow {
    fn info(self) -> KeyInfo {
        KeyInfo {
            id: self.id,
            name: self.name,
            scopes: self.scopes,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_form_is_split() {
        let key = format!("apex_{}_{}", "a".repeat(12), "0".repeat(64));
        assert_eq!(
            split(&key),
            Some(("a".repeat(12).as_str(), "0".repeat(64).as_str()))
        );
        for bad in [
            "",
            "Bearer x",
            "apex_",
            &format!("apex_{}_{}", "a".repeat(11), "0".repeat(64)),
            &format!("apex_{}_{}", "g".repeat(12), "0".repeat(64)),
            &format!("apex_{}_{}", "a".repeat(12), "0".repeat(63)),
            &format!("key_{}_{}", "a".repeat(12), "0".repeat(64)),
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }

    #[test]
    fn random_parts_are_hex_of_the_right_length_and_differ() {
        let a = random_hex(2);
        let b = random_hex(2);
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn comparison_is_by_every_byte() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn a_created_key_does_not_show_its_secret_in_debug_output() {
        let created = Created {
            info: KeyInfo {
                id: "0123456789ab".into(),
                name: "ci".into(),
                scopes: vec!["read".into()],
                created_at: 0,
                last_used_at: None,
                expires_at: None,
                revoked_at: None,
            },
            key: "apex_0123456789ab_secretsecret".into(),
        };
        let shown = format!("{created:?}");
        assert!(!shown.contains("secretsecret"), "{shown}");
        assert!(shown.contains("0123456789ab"), "{shown}");
    }
}
