//! Settings of the writer (`APEX_WRITER__…`, or a TOML file).

use apex_common::Settings;
use apex_common::service::ServiceSettings;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PostgresSettings {
    /// `postgres://user:password@host:port/db` (set `APEX_WRITER__POSTGRES__URL` outside dev).
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// Longest a PostgreSQL step may take.
    pub timeout_ms: u64,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            url: "postgres://apex:apex-dev@127.0.0.1:5432/apex".into(),
            max_connections: 16,
            acquire_timeout_ms: 5_000,
            timeout_ms: 15_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GraphBackend {
    Falkordb,
    Neo4j,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GraphSettings {
    pub backend: GraphBackend,
    /// FalkorDB: `redis://host:port` (RESP). Neo4j: `bolt://host:port` or `neo4j://…`.
    pub url: String,
    /// FalkorDB graph name, or Neo4j database (empty = the server's default).
    pub graph: String,
    /// Neo4j user; the password comes from `APEX_NEO4J_PASSWORD` or `password_file`.
    pub user: String,
    pub password_file: String,
    /// Connections (FalkorDB multiplexed sockets, at most 255; Neo4j pool size).
    pub connections: u32,
    pub timeout_ms: u64,
}

impl Default for GraphSettings {
    fn default() -> Self {
        Self {
            backend: GraphBackend::Falkordb,
            url: "redis://127.0.0.1:6380".into(),
            graph: "apex".into(),
            user: "neo4j".into(),
            password_file: String::new(),
            connections: 4,
            timeout_ms: 15_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct VectorSettings {
    /// Qdrant gRPC URL.
    pub url: String,
    /// Collections are `<prefix>_<model>_<dimension>`.
    pub collection_prefix: String,
    /// The API key comes from `APEX_QDRANT_API_KEY` or `api_key_file` (none locally).
    pub api_key_file: String,
    /// Points per upsert.
    pub batch_size: usize,
    pub timeout_ms: u64,
}

impl Default for VectorSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:6334".into(),
            collection_prefix: "apex_chunks".into(),
            api_key_file: String::new(),
            batch_size: 256,
            timeout_ms: 15_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RedisSettings {
    pub url: String,
    pub timeout_ms: u64,
    /// A crashed writer's lock frees itself after this long; a live one extends it.
    pub lock_ttl_ms: u64,
    /// How long a write waits for another write of the same document.
    pub lock_wait_ms: u64,
    /// How long an idempotency record answers retries.
    pub idempotency_ttl_secs: u64,
    /// How long the document state (`apex:doc:<id>`) lives without a new write.
    pub state_ttl_secs: u64,
    /// The embedder's `max_tokens` settings in use: a deleted document's cached
    /// embeddings are dropped under each.
    pub embedding_cache_token_limits: Vec<u32>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            timeout_ms: 5_000,
            lock_ttl_ms: 30_000,
            lock_wait_ms: 60_000,
            idempotency_ttl_secs: 7 * 24 * 3600,
            state_ttl_secs: 30 * 24 * 3600,
            embedding_cache_token_limits: vec![256],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct BreakerSettings {
    /// Consecutive failures of one store that open its breaker.
    pub failure_threshold: u32,
    /// How long an open breaker fails fast before it lets one probe through.
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            // Short: after a store returns, writes are refused until the next probe, and
            // the documents waiting for it resume only after a write gets through.
            open_ms: 2_000,
        }
    }
}

/// Settings of the writer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct WriterSettings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    pub postgres: PostgresSettings,
    pub graph: GraphSettings,
    pub vectors: VectorSettings,
    pub redis: RedisSettings,
    pub breaker: BreakerSettings,
    /// Rows per PostgreSQL statement and per graph `UNWIND` (1 = row by row).
    pub batch_rows: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            service: ServiceSettings::with_ports(apex_common::ports::WRITER),
            postgres: PostgresSettings::default(),
            graph: GraphSettings::default(),
            vectors: VectorSettings::default(),
            redis: RedisSettings::default(),
            breaker: BreakerSettings::default(),
            batch_rows: 1_000,
        }
    }
}

impl Settings for WriterSettings {
    const ENV_PREFIX: &'static str = "APEX_WRITER";

    fn validate(&self) -> Vec<String> {
        let mut p = self.service.validate();
        let mut positive = |name: &str, v: u64| {
            if v == 0 {
                p.push(format!("{name} must be at least 1"));
            }
        };
        positive(
            "postgres.max_connections",
            u64::from(self.postgres.max_connections),
        );
        positive("postgres.timeout_ms", self.postgres.timeout_ms);
        positive("graph.timeout_ms", self.graph.timeout_ms);
        positive("graph.connections", u64::from(self.graph.connections));
        positive("vectors.timeout_ms", self.vectors.timeout_ms);
        positive("vectors.batch_size", self.vectors.batch_size as u64);
        positive("redis.timeout_ms", self.redis.timeout_ms);
        positive(
            "redis.idempotency_ttl_secs",
            self.redis.idempotency_ttl_secs,
        );
        positive("redis.state_ttl_secs", self.redis.state_ttl_secs);
        positive(
            "breaker.failure_threshold",
            u64::from(self.breaker.failure_threshold),
        );
        positive("batch_rows", self.batch_rows as u64);
        if self.redis.lock_ttl_ms < 300 {
            p.push("redis.lock_ttl_ms must be at least 300".into());
        }
        if self.graph.connections > 255 && self.graph.backend == GraphBackend::Falkordb {
            p.push("graph.connections is at most 255 for FalkorDB".into());
        }
        for (name, url) in [
            ("postgres.url", &self.postgres.url),
            ("graph.url", &self.graph.url),
            ("vectors.url", &self.vectors.url),
            ("redis.url", &self.redis.url),
        ] {
            if url.trim().is_empty() {
                p.push(format!("{name} must not be empty"));
            }
        }
        if self.graph.graph.trim().is_empty() && self.graph.backend == GraphBackend::Falkordb {
            p.push("graph.graph (the FalkorDB graph name) must not be empty".into());
        }
        if self.vectors.collection_prefix.trim().is_empty() {
            p.push("vectors.collection_prefix must not be empty".into());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_limits_are_named() {
        assert!(WriterSettings::default().validate().is_empty());
        let mut s = WriterSettings::default();
        s.breaker.failure_threshold = 0;
        s.redis.lock_ttl_ms = 10;
        s.graph.url = String::new();
        let problems = s.validate().join("\n");
        assert!(problems.contains("breaker.failure_threshold"), "{problems}");
        assert!(problems.contains("redis.lock_ttl_ms"), "{problems}");
        assert!(problems.contains("graph.url"), "{problems}");
    }
}
