//! The knowledge graph: `(:Document)-[:HAS_CHUNK]->(:Chunk)-[:MENTIONS]->(:Entity)`,
//! `(:Document)-[:MENTIONS]->(:Entity)` for entities no chunk mentions (metadata), and
//! `(:Entity)-[:RELATED_TO {type, weight, document_id, version}]->(:Entity)`, one edge per
//! document so a document can be replaced or removed exactly.
//!
//! The queries are written once ([`queries`]) in the Cypher subset FalkorDB and Neo4j both
//! accept; a [`GraphStore`] backend only runs a query with JSON parameters and returns rows.

pub mod falkor;
pub mod neo4j;
pub mod queries;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use apex_common::ServiceError;
use serde_json::Value;
use uuid::Uuid;

use crate::model::DocumentData;
pub use queries::Cypher;

/// A graph database that runs Cypher.
#[async_trait::async_trait]
pub trait GraphStore: Send + Sync + std::fmt::Debug {
    /// "falkordb" or "neo4j".
    fn kind(&self) -> &'static str;
    /// Creates the indexes and uniqueness constraints on `id` (idempotent).
    async fn ensure_schema(&self) -> Result<(), ServiceError>;
    /// Runs one query; each row holds the query's `columns`, in order.
    async fn run(&self, query: &Cypher) -> Result<Vec<Vec<Value>>, ServiceError>;
}

/// The graph's view of a document for `InspectDocument`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GraphView {
    pub version: u64,
    pub chunks: u32,
    pub entities: u32,
    pub relations: u32,
}

/// The document operations, over any backend.
#[derive(Debug, Clone)]
pub struct Graph {
    store: Arc<dyn GraphStore>,
    batch_rows: usize,
}

fn ids(rows: Vec<Vec<Value>>) -> BTreeSet<String> {
    rows.into_iter()
        .filter_map(|r| r.into_iter().next())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn first_int(rows: &[Vec<Value>]) -> Option<i64> {
    rows.first().and_then(|r| r.first()).and_then(Value::as_i64)
}

impl Graph {
    pub fn new(store: Arc<dyn GraphStore>, batch_rows: usize) -> Self {
        Self {
            store,
            batch_rows: batch_rows.max(1),
        }
    }

    pub fn kind(&self) -> &'static str {
        self.store.kind()
    }

    pub async fn ensure_schema(&self) -> Result<(), ServiceError> {
        self.store.ensure_schema().await
    }

    /// Entities linked to the document now: candidates for removal once unlinked.
    async fn linked_entities(&self, document_id: Uuid) -> Result<BTreeSet<String>, ServiceError> {
        Ok(ids(self
            .store
            .run(&queries::linked_entities(document_id))
            .await?))
    }

    /// Makes the graph hold exactly `doc`'s version of the document: its chunks, mentions
    /// and relations replace those of any other version; entities left unlinked by the
    /// replacement are removed. Idempotent.
    pub async fn write(&self, doc: &DocumentData) -> Result<(), ServiceError> {
        let before = self.linked_entities(doc.document_id).await?;
        let linked: Vec<Value> = before.iter().cloned().map(Value::String).collect();
        for q in queries::clear_other_versions(doc.document_id, doc.version, linked) {
            self.store.run(&q).await?;
        }
        let chunks: Vec<Value> = doc
            .chunks
            .iter()
            .map(|c| serde_json::json!({"id": c.id.to_string(), "ordinal": c.ordinal}))
            .collect();
        // The document node first, so it exists even without chunks.
        self.store
            .run(&queries::upsert_document(
                doc.document_id,
                &doc.source,
                doc.version,
            ))
            .await?;
        for batch in chunks.chunks(self.batch_rows) {
            self.store
                .run(&queries::upsert_chunks(
                    doc.document_id,
                    doc.version,
                    batch.to_vec(),
                ))
                .await?;
        }
        let entities: Vec<Value> = doc
            .entities
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id.to_string(), "type": e.entity_type,
                    "key": e.canonical_key, "name": e.display_name,
                })
            })
            .collect();
        for batch in entities.chunks(self.batch_rows) {
            self.store
                .run(&queries::upsert_entities(batch.to_vec()))
                .await?;
        }
        let mentions: Vec<Value> = doc
            .mention_edges()
            .into_iter()
            .map(|(c, e, n)| {
                serde_json::json!({"chunk": c.to_string(), "entity": e.to_string(), "count": n})
            })
            .collect();
        for batch in mentions.chunks(self.batch_rows) {
            self.store
                .run(&queries::upsert_mentions(batch.to_vec()))
                .await?;
        }
        let doc_level: Vec<Value> = doc
            .document_level_entities()
            .into_iter()
            .map(|id| Value::String(id.to_string()))
            .collect();
        for batch in doc_level.chunks(self.batch_rows) {
            self.store
                .run(&queries::link_document_entities(
                    doc.document_id,
                    batch.to_vec(),
                ))
                .await?;
        }
        let relations: Vec<Value> = doc
            .relations
            .iter()
            .map(|r| {
                serde_json::json!({
                    "from": r.from.to_string(), "to": r.to.to_string(),
                    "type": r.relation_type, "weight": f64::from(r.weight),
                })
            })
            .collect();
        for batch in relations.chunks(self.batch_rows) {
            self.store
                .run(&queries::upsert_relations(
                    doc.document_id,
                    doc.version,
                    batch.to_vec(),
                ))
                .await?;
        }
        let now: BTreeSet<String> = doc.entities.iter().map(|e| e.id.to_string()).collect();
        self.prune(before.difference(&now).cloned().collect()).await
    }

    async fn prune(&self, candidates: Vec<String>) -> Result<(), ServiceError> {
        for batch in candidates.chunks(self.batch_rows) {
            let ids = batch.iter().cloned().map(Value::String).collect();
            self.store.run(&queries::prune_entities(ids)).await?;
        }
        Ok(())
    }

    /// Removes the document, its chunks, its edges and the entities only it linked.
    /// Absent = done. Returns whether the document node existed.
    pub async fn delete(&self, document_id: Uuid) -> Result<bool, ServiceError> {
        let existed = self.inspect(document_id).await?.is_some();
        let before = self.linked_entities(document_id).await?;
        let linked: Vec<Value> = before.iter().cloned().map(Value::String).collect();
        for q in queries::delete_document(document_id, linked) {
            self.store.run(&q).await?;
        }
        self.prune(before.into_iter().collect()).await?;
        Ok(existed)
    }

    /// What the graph holds for a document.
    pub async fn inspect(&self, document_id: Uuid) -> Result<Option<GraphView>, ServiceError> {
        let rows = self
            .store
            .run(&queries::document_version(document_id))
            .await?;
        let Some(version) = first_int(&rows) else {
            return Ok(None);
        };
        let chunks =
            first_int(&self.store.run(&queries::count_chunks(document_id)).await?).unwrap_or(0);
        let linked = self.linked_entities(document_id).await?;
        let entities = linked.len();
        let linked: Vec<Value> = linked.into_iter().map(Value::String).collect();
        let relations = first_int(
            &self
                .store
                .run(&queries::count_relations(document_id, linked))
                .await?,
        )
        .unwrap_or(0);
        Ok(Some(GraphView {
            version: version.max(0) as u64,
            chunks: chunks as u32,
            entities: entities as u32,
            relations: relations as u32,
        }))
    }

    /// How many entity nodes carry each of `ids` (uniqueness checks).
    pub async fn entity_node_counts(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, u32>, ServiceError> {
        let list = ids.iter().map(|i| Value::String(i.to_string())).collect();
        let rows = self.store.run(&queries::entity_nodes(list)).await?;
        let mut out: HashMap<Uuid, u32> = ids.iter().map(|i| (*i, 0)).collect();
        for row in rows {
            if let Some(id) = row
                .first()
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                *out.entry(id).or_default() += 1;
            }
        }
        Ok(out)
    }
}
