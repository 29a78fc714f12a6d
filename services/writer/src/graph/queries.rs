//! Every Cypher query the writer runs, in the subset FalkorDB and Neo4j both accept:
//! `MERGE` on `id`, batched with `UNWIND` over a list of maps, parameters only (no values
//! in the text), no `CALL {}` subqueries, no APOC, no pattern predicates.

use serde_json::Value;
use uuid::Uuid;

/// One query with its parameters and the names of the columns it returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Cypher {
    pub text: &'static str,
    pub params: Vec<(&'static str, Value)>,
    pub columns: &'static [&'static str],
}

impl Cypher {
    fn new(text: &'static str) -> Self {
        Self {
            text,
            params: Vec::new(),
            columns: &[],
        }
    }

    fn param(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.params.push((name, value.into()));
        self
    }

    fn returns(mut self, columns: &'static [&'static str]) -> Self {
        self.columns = columns;
        self
    }
}

fn doc(id: Uuid) -> Value {
    Value::String(id.to_string())
}

fn version(v: u64) -> Value {
    Value::from(v as i64)
}

/// Entities the document links to now: through its chunks' mentions or itself. Every
/// endpoint of the document's relations is one of them (each entity of a version is
/// mentioned by a chunk or linked to the document).
pub fn linked_entities(document_id: Uuid) -> Cypher {
    Cypher::new(
        "MATCH (:Document {id: $doc})-[:HAS_CHUNK]->(:Chunk)-[:MENTIONS]->(e:Entity) \
         RETURN e.id AS id \
         UNION \
         MATCH (:Document {id: $doc})-[:MENTIONS]->(e:Entity) RETURN e.id AS id",
    )
    .param("doc", doc(document_id))
    .returns(&["id"])
}

/// The document's relation edges, found from its entities (`ids`, an index lookup each)
/// rather than by scanning every edge.
fn relations_of(text: &'static str, document_id: Uuid, ids: Vec<Value>) -> Cypher {
    Cypher::new(text)
        .param("doc", doc(document_id))
        .param("ids", ids)
}

/// Removes what another version of the document left: its relations (found from `linked`,
/// the entities linked before), its chunks with their mention edges, and the
/// document-level mentions (rewritten by every write).
pub fn clear_other_versions(document_id: Uuid, v: u64, linked: Vec<Value>) -> Vec<Cypher> {
    vec![
        relations_of(
            "UNWIND $ids AS id \
             MATCH (:Entity {id: id})-[r:RELATED_TO]->(:Entity) \
             WHERE r.document_id = $doc AND r.version <> $version DELETE r",
            document_id,
            linked,
        )
        .param("version", version(v)),
        Cypher::new(
            "MATCH (:Document {id: $doc})-[:HAS_CHUNK]->(c:Chunk) WHERE c.version <> $version \
             DETACH DELETE c",
        )
        .param("doc", doc(document_id))
        .param("version", version(v)),
        Cypher::new("MATCH (:Document {id: $doc})-[m:MENTIONS]->(:Entity) DELETE m")
            .param("doc", doc(document_id)),
    ]
}

pub fn upsert_document(document_id: Uuid, source: &str, v: u64) -> Cypher {
    Cypher::new("MERGE (d:Document {id: $doc}) SET d.source = $source, d.version = $version")
        .param("doc", doc(document_id))
        .param("source", source)
        .param("version", version(v))
}

/// `rows`: `{id, ordinal}` per chunk.
pub fn upsert_chunks(document_id: Uuid, v: u64, rows: Vec<Value>) -> Cypher {
    Cypher::new(
        "MATCH (d:Document {id: $doc}) \
         UNWIND $rows AS row \
         MERGE (c:Chunk {id: row.id}) \
         SET c.document_id = $doc, c.version = $version, c.ordinal = row.ordinal \
         MERGE (d)-[:HAS_CHUNK]->(c)",
    )
    .param("doc", doc(document_id))
    .param("version", version(v))
    .param("rows", rows)
}

/// `rows`: `{id, type, key, name}` per entity.
pub fn upsert_entities(rows: Vec<Value>) -> Cypher {
    Cypher::new(
        "UNWIND $rows AS row \
         MERGE (e:Entity {id: row.id}) \
         SET e.type = row.type, e.key = row.key, e.name = row.name",
    )
    .param("rows", rows)
}

/// `rows`: `{chunk, entity, count}` per (chunk, entity) pair.
pub fn upsert_mentions(rows: Vec<Value>) -> Cypher {
    Cypher::new(
        "UNWIND $rows AS row \
         MATCH (c:Chunk {id: row.chunk}) \
         MATCH (e:Entity {id: row.entity}) \
         MERGE (c)-[m:MENTIONS]->(e) \
         SET m.count = row.count",
    )
    .param("rows", rows)
}

/// `ids`: entities no chunk mentions.
pub fn link_document_entities(document_id: Uuid, ids: Vec<Value>) -> Cypher {
    Cypher::new(
        "MATCH (d:Document {id: $doc}) \
         UNWIND $ids AS id \
         MATCH (e:Entity {id: id}) \
         MERGE (d)-[:MENTIONS]->(e)",
    )
    .param("doc", doc(document_id))
    .param("ids", ids)
}

/// `rows`: `{from, to, type, weight}` per relation.
pub fn upsert_relations(document_id: Uuid, v: u64, rows: Vec<Value>) -> Cypher {
    Cypher::new(
        "UNWIND $rows AS row \
         MATCH (a:Entity {id: row.from}) \
         MATCH (b:Entity {id: row.to}) \
         MERGE (a)-[r:RELATED_TO {document_id: $doc, type: row.type}]->(b) \
         SET r.weight = row.weight, r.version = $version",
    )
    .param("doc", doc(document_id))
    .param("version", version(v))
    .param("rows", rows)
}

/// Deletes those of `ids` that have no edge left.
pub fn prune_entities(ids: Vec<Value>) -> Cypher {
    Cypher::new(
        "UNWIND $ids AS id \
         MATCH (e:Entity {id: id}) \
         OPTIONAL MATCH (e)-[r]-() \
         WITH e, count(r) AS edges \
         WHERE edges = 0 \
         DELETE e",
    )
    .param("ids", ids)
}

/// Removes the document: its relations (found from `linked`), its chunks, itself.
pub fn delete_document(document_id: Uuid, linked: Vec<Value>) -> Vec<Cypher> {
    vec![
        relations_of(
            "UNWIND $ids AS id \
             MATCH (:Entity {id: id})-[r:RELATED_TO]->(:Entity) \
             WHERE r.document_id = $doc DELETE r",
            document_id,
            linked,
        ),
        Cypher::new("MATCH (:Document {id: $doc})-[:HAS_CHUNK]->(c:Chunk) DETACH DELETE c")
            .param("doc", doc(document_id)),
        Cypher::new("MATCH (d:Document {id: $doc}) DETACH DELETE d").param("doc", doc(document_id)),
    ]
}

pub fn document_version(document_id: Uuid) -> Cypher {
    Cypher::new("MATCH (d:Document {id: $doc}) RETURN d.version AS version")
        .param("doc", doc(document_id))
        .returns(&["version"])
}

pub fn count_chunks(document_id: Uuid) -> Cypher {
    Cypher::new("MATCH (:Document {id: $doc})-[:HAS_CHUNK]->(c:Chunk) RETURN count(c) AS n")
        .param("doc", doc(document_id))
        .returns(&["n"])
}

pub fn count_relations(document_id: Uuid, linked: Vec<Value>) -> Cypher {
    relations_of(
        "UNWIND $ids AS id \
         MATCH (:Entity {id: id})-[r:RELATED_TO]->(:Entity) \
         WHERE r.document_id = $doc RETURN count(r) AS n",
        document_id,
        linked,
    )
    .returns(&["n"])
}

/// One row per entity node whose id is in `ids`.
pub fn entity_nodes(ids: Vec<Value>) -> Cypher {
    Cypher::new("UNWIND $ids AS id MATCH (e:Entity {id: id}) RETURN e.id AS id")
        .param("ids", ids)
        .returns(&["id"])
}

/// The labels whose `id` is unique.
pub const LABELS: [&str; 3] = ["Document", "Chunk", "Entity"];

#[cfg(test)]
mod tests {
    use super::*;

    fn all_queries() -> Vec<Cypher> {
        let d = Uuid::new_v4();
        let mut q = vec![linked_entities(d)];
        q.extend(clear_other_versions(d, 2, vec![]));
        q.push(upsert_document(d, "s", 2));
        q.push(upsert_chunks(
            d,
            2,
            vec![serde_json::json!({"id": "c", "ordinal": 0})],
        ));
        q.push(upsert_entities(vec![]));
        q.push(upsert_mentions(vec![]));
        q.push(link_document_entities(d, vec![]));
        q.push(upsert_relations(d, 2, vec![]));
        q.push(prune_entities(vec![]));
        q.extend(delete_document(d, vec![]));
        q.push(document_version(d));
        q.push(count_chunks(d));
        q.push(count_relations(d, vec![]));
        q.push(entity_nodes(vec![]));
        q
    }

    /// Every `$name` in a query's text is one of its parameters and every parameter is
    /// used, so a backend never sends a query with a missing value.
    #[test]
    fn parameters_and_placeholders_match() {
        for q in all_queries() {
            let mut used: Vec<&str> = Vec::new();
            for (i, _) in q.text.match_indices('$') {
                let rest = &q.text[i + 1..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                used.push(&rest[..end]);
            }
            for name in &used {
                assert!(
                    q.params.iter().any(|(p, _)| p == name),
                    "${name} has no value in {}",
                    q.text
                );
            }
            for (p, _) in &q.params {
                assert!(used.contains(p), "{p} is not used in {}", q.text);
            }
        }
    }

    /// Constructs outside the FalkorDB/Neo4j common subset never appear.
    #[test]
    fn queries_stay_in_the_common_subset() {
        for q in all_queries() {
            for banned in ["apoc.", "CALL {", "FOREACH", "LOAD CSV", "exists(", "=~"] {
                assert!(!q.text.contains(banned), "{banned} in {}", q.text);
            }
            assert!(!q.text.contains('\''), "literal string in {}", q.text);
            // Relation edges are reached from indexed entity ids, never by a scan of all edges.
            assert!(
                !q.text.contains("MATCH (:Entity)-[r:RELATED_TO]"),
                "edge scan in {}",
                q.text
            );
            if q.text.contains("RETURN") {
                assert!(!q.columns.is_empty(), "{} returns no named columns", q.text);
            }
        }
    }

    #[test]
    fn writes_merge_on_ids_and_versions_fence_the_replacement() {
        let d = Uuid::new_v4();
        let chunks = upsert_chunks(d, 7, vec![]);
        assert!(chunks.text.contains("MERGE (c:Chunk {id: row.id})"));
        assert!(chunks.params.contains(&("version", Value::from(7))));
        let clear = clear_other_versions(d, 7, vec![]);
        assert!(clear[0].text.contains("r.version <> $version"));
        assert!(clear[1].text.contains("c.version <> $version"));
        let rel = upsert_relations(d, 7, vec![]);
        assert!(
            rel.text
                .contains("RELATED_TO {document_id: $doc, type: row.type}")
        );
    }
}
