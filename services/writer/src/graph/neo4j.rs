//! Neo4j through `neo4rs` (Bolt 4.4/5.x): the production graph. The same queries as the
//! FalkorDB backend; exercised by the integration tests when `APEX_NEO4J_URI` is set.

use apex_common::ServiceError;
use neo4rs::{BoltType, ConfigBuilder, Graph, query};
use serde_json::Value;

use super::{Cypher, GraphStore, queries::LABELS};

pub struct Neo4jStore {
    graph: Graph,
    uri: String,
}

impl std::fmt::Debug for Neo4jStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jStore")
            .field("uri", &self.uri)
            .finish()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Unavailable(format!("graph (neo4j): {what}: {e}"))
}

impl Neo4jStore {
    pub async fn connect(
        uri: &str,
        user: &str,
        password: &str,
        database: &str,
        max_connections: usize,
    ) -> Result<Self, ServiceError> {
        let mut config = ConfigBuilder::default()
            .uri(uri)
            .user(user)
            .password(password)
            .max_connections(max_connections.max(1));
        if !database.is_empty() {
            config = config.db(database);
        }
        let config = config
            .build()
            .map_err(|e| ServiceError::invalid_field("graph.url", format!("{uri}: {e}")))?;
        let graph = Graph::connect(config)
            .await
            .map_err(|e| unavailable("connect", e))?;
        Ok(Self {
            graph,
            uri: uri.to_owned(),
        })
    }
}

/// JSON parameter → Bolt value.
pub fn to_bolt(v: &Value) -> BoltType {
    match v {
        Value::Null => BoltType::Null(neo4rs::BoltNull),
        Value::Bool(b) => BoltType::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => BoltType::from(i),
            None => BoltType::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => BoltType::from(s.as_str()),
        Value::Array(a) => BoltType::List(neo4rs::BoltList {
            value: a.iter().map(to_bolt).collect(),
        }),
        Value::Object(o) => {
            let mut map = neo4rs::BoltMap::default();
            for (k, v) in o {
                map.put(neo4rs::BoltString::from(k.as_str()), to_bolt(v));
            }
            BoltType::Map(map)
        }
    }
}

/// The constraint statements (Neo4j 5 syntax; 4.4 accepts `IF NOT EXISTS … REQUIRE` too).
pub fn constraint_statements() -> Vec<String> {
    LABELS
        .iter()
        .map(|label| {
            format!(
                "CREATE CONSTRAINT apex_{}_id IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE",
                label.to_lowercase()
            )
        })
        .collect()
}

#[async_trait::async_trait]
impl GraphStore for Neo4jStore {
    fn kind(&self) -> &'static str {
        "neo4j"
    }

    async fn ensure_schema(&self) -> Result<(), ServiceError> {
        for statement in constraint_statements() {
            self.graph
                .run(query(&statement))
                .await
                .map_err(|e| unavailable("create constraint", e))?;
        }
        Ok(())
    }

    async fn run(&self, q: &Cypher) -> Result<Vec<Vec<Value>>, ServiceError> {
        let mut bolt = query(q.text);
        for (name, value) in &q.params {
            bolt = bolt.param(name, to_bolt(value));
        }
        let mut stream = self
            .graph
            .execute(bolt)
            .await
            .map_err(|e| unavailable("query", e))?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await.map_err(|e| unavailable("rows", e))? {
            let mut out = Vec::with_capacity(q.columns.len());
            for column in q.columns {
                out.push(row.get::<Value>(column).unwrap_or(Value::Null));
            }
            rows.push(out);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_bolt_values_of_the_same_shape() {
        let v = serde_json::json!({"rows": [{"id": "a", "ordinal": 3, "weight": 0.5}], "ok": true});
        let BoltType::Map(map) = to_bolt(&v) else {
            panic!("a map")
        };
        let rows = map.get::<BoltType>("rows").expect("rows");
        let BoltType::List(list) = rows else {
            panic!("a list")
        };
        let BoltType::Map(row) = &list.value[0] else {
            panic!("a map row")
        };
        assert_eq!(row.get::<i64>("ordinal").expect("int"), 3);
        assert_eq!(row.get::<String>("id").expect("string"), "a");
        assert!((row.get::<f64>("weight").expect("float") - 0.5).abs() < 1e-9);
    }

    #[test]
    fn constraints_cover_every_label_idempotently() {
        let s = constraint_statements();
        assert_eq!(s.len(), LABELS.len());
        assert!(
            s.iter()
                .all(|q| q.contains("IF NOT EXISTS") && q.contains("n.id IS UNIQUE"))
        );
    }
}
