//! FalkorDB through the `falkordb` crate (openCypher over RESP): the local default, since
//! `neo4rs` speaks only Bolt 4.x and FalkorDB's Bolt endpoint only 5.1+.

use std::collections::HashMap;
use std::num::NonZeroU8;
use std::time::Duration;

use apex_common::ServiceError;
use falkordb::{
    AsyncGraph, ConnectionStrategy, EntityType, FalkorClientBuilder, FalkorConnectionInfo,
    FalkorDBError, FalkorValue,
};
use serde_json::Value;

use super::{Cypher, GraphStore, queries::LABELS};

pub struct FalkorStore {
    graph: AsyncGraph,
    name: String,
}

impl std::fmt::Debug for FalkorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FalkorStore")
            .field("graph", &self.name)
            .finish()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Unavailable(format!("graph (falkordb): {what}: {e}"))
}

impl FalkorStore {
    /// Connects to `url` (`redis://host:port` or `falkor://host:port`) and selects `graph`.
    pub async fn connect(
        url: &str,
        graph: &str,
        connections: u8,
        timeout: Duration,
    ) -> Result<Self, ServiceError> {
        let url = url.replacen("falkor://", "redis://", 1);
        let info: FalkorConnectionInfo = url
            .as_str()
            .try_into()
            .map_err(|e| ServiceError::invalid_field("graph.url", format!("{url}: {e}")))?;
        let client = FalkorClientBuilder::new_async()
            .with_connection_info(info)
            // A pool of plain connections: a broken one is replaced on its next use, so a
            // graph that went away fails fast instead of waiting out a reconnect loop.
            .with_connection_strategy(ConnectionStrategy::Pooled {
                size: NonZeroU8::new(connections.max(1)).unwrap_or(NonZeroU8::MIN),
            })
            .with_connect_timeout(Some(timeout))
            .with_response_timeout(Some(timeout))
            .build()
            .await
            .map_err(|e| unavailable("connect", e))?;
        Ok(Self {
            graph: client.select_graph(graph),
            name: graph.to_owned(),
        })
    }
}

fn to_falkor(v: &Value) -> FalkorValue {
    match v {
        Value::Null => FalkorValue::None,
        Value::Bool(b) => FalkorValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FalkorValue::I64(i),
            None => FalkorValue::F64(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => FalkorValue::String(s.clone()),
        Value::Array(a) => FalkorValue::Array(a.iter().map(to_falkor).collect()),
        Value::Object(o) => FalkorValue::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), to_falkor(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_json(v: FalkorValue) -> Value {
    match v {
        FalkorValue::String(s) => Value::String(s),
        FalkorValue::I64(i) => Value::from(i),
        FalkorValue::F64(f) => Value::from(f),
        FalkorValue::Bool(b) => Value::Bool(b),
        FalkorValue::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        FalkorValue::Map(m) => Value::Object(m.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        _ => Value::Null,
    }
}

#[async_trait::async_trait]
impl GraphStore for FalkorStore {
    fn kind(&self) -> &'static str {
        "falkordb"
    }

    async fn ensure_schema(&self) -> Result<(), ServiceError> {
        for label in LABELS {
            let mut graph = self.graph.clone();
            if let Err(e) = graph
                .create_unique_constraint(EntityType::Node, label.to_owned(), &["id"])
                .await
            {
                // Re-running on a graph that has them is fine.
                let text = e.to_string();
                if !(text.contains("already") || text.contains("exists")) {
                    return Err(unavailable(
                        &format!("unique constraint on :{label}(id)"),
                        text,
                    ));
                }
            }
        }
        Ok(())
    }

    async fn run(&self, query: &Cypher) -> Result<Vec<Vec<Value>>, ServiceError> {
        let params: Vec<(String, FalkorValue)> = query
            .params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), to_falkor(v)))
            .collect();
        // A multiplexed connection that broke reconnects on the next command: every query
        // here is idempotent (MERGE, DELETE, reads), so a connection error is retried twice.
        let mut attempt = 0u32;
        let result = loop {
            let mut graph = self.graph.clone();
            match graph
                .query(query.text)
                .with_params(params.clone())
                .execute()
                .await
            {
                Ok(r) => break r,
                Err(FalkorDBError::ConnectionDown | FalkorDBError::NoConnection) if attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(e) => return Err(unavailable("query", e)),
            }
        };
        Ok(result
            .data
            .into_values_lossy()
            .map(|row| row.into_iter().map(to_json).collect())
            .collect())
    }
}
