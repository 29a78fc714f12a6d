//! The entities artifact as rows: one row per (type, key), mentions on the document's
//! chunks and one relation per (from, to, type).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use apex_common::ServiceError;
use apex_proto::common::v1::{Entity, Mention, Relation};
use apex_proto::extractor::v1::ExtractionResult;
use uuid::Uuid;

use super::{ChunkIds, EntityRow, MentionRow, RelationRow, chunk_of, entity_id};

type GraphRows = (Vec<EntityRow>, Vec<MentionRow>, Vec<RelationRow>);

/// Checks an extraction result against the document's chunks and turns it into rows.
pub(super) fn graph_rows(
    result: ExtractionResult,
    chunks: &ChunkIds,
) -> Result<GraphRows, ServiceError> {
    let (entity_rows, index_to_id) = entity_rows(result.entities)?;
    let mentions = mention_rows(result.mentions, chunks, &index_to_id)?;
    let relations = relation_rows(result.relations, &index_to_id)?;
    Ok((entity_rows, mentions, relations))
}

/// Equal (type, key) pairs share one row; the returned ids map the reply's indices.
fn entity_rows(entities: Vec<Entity>) -> Result<(Vec<EntityRow>, Vec<Uuid>), ServiceError> {
    let mut entity_rows: Vec<EntityRow> = Vec::new();
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    let mut index_to_id = Vec::with_capacity(entities.len());
    for (i, e) in entities.into_iter().enumerate() {
        if e.entity_type.trim().is_empty() || e.canonical_key.trim().is_empty() {
            return Err(ServiceError::invalid_field(
                "entities",
                format!("entity {i} has an empty type or canonical key"),
            ));
        }
        let id = entity_id(&e.entity_type, &e.canonical_key);
        index_to_id.push(id);
        match seen.get(&id) {
            Some(&at) => {
                let row = &mut entity_rows[at];
                row.confidence = row.confidence.max(e.confidence);
            }
            None => {
                seen.insert(id, entity_rows.len());
                entity_rows.push(EntityRow {
                    id,
                    display_name: if e.display_name.is_empty() {
                        e.canonical_key.clone()
                    } else {
                        e.display_name
                    },
                    entity_type: e.entity_type,
                    canonical_key: e.canonical_key,
                    confidence: e.confidence,
                });
            }
        }
    }
    Ok((entity_rows, index_to_id))
}

/// The id of entity `index` of the reply; `what` names the part that refers to it.
fn entity_at(index_to_id: &[Uuid], what: &str, index: u32) -> Result<Uuid, ServiceError> {
    index_to_id.get(index as usize).copied().ok_or_else(|| {
        ServiceError::invalid_field(
            "entities",
            format!(
                "{what} names entity {index}, but there are {} entities",
                index_to_id.len()
            ),
        )
    })
}

/// Mentions, each once, on a chunk of the document and with a span that does not end before
/// it starts.
fn mention_rows(
    mentions: Vec<Mention>,
    chunks: &ChunkIds,
    index_to_id: &[Uuid],
) -> Result<Vec<MentionRow>, ServiceError> {
    let mut rows = BTreeSet::new();
    for m in mentions {
        let (chunk_id, _) = chunk_of(chunks, "entities", &m.chunk_id)?;
        let span = m.span.unwrap_or_default();
        if span.char_end < span.char_start {
            return Err(ServiceError::invalid_field(
                "entities",
                format!(
                    "a mention in chunk {} ends ({}) before it starts ({})",
                    m.chunk_id, span.char_end, span.char_start
                ),
            ));
        }
        rows.insert(MentionRow {
            chunk_id,
            entity_id: entity_at(index_to_id, "a mention", m.entity_index)?,
            char_start: span.char_start,
            char_end: span.char_end,
            text: m.text,
        });
    }
    Ok(rows.into_iter().collect())
}

/// One edge per (from, to, type): repeated relations keep the largest weight.
fn relation_rows(
    relations: Vec<Relation>,
    index_to_id: &[Uuid],
) -> Result<Vec<RelationRow>, ServiceError> {
    let mut edges: BTreeMap<(Uuid, Uuid, String), f32> = BTreeMap::new();
    for r in relations {
        if r.relation_type.trim().is_empty() {
            return Err(ServiceError::invalid_field(
                "entities",
                "a relation has an empty type",
            ));
        }
        if !r.weight.is_finite() {
            return Err(ServiceError::invalid_field(
                "entities",
                format!(
                    "relation {} has a weight that is not finite",
                    r.relation_type
                ),
            ));
        }
        let key = (
            entity_at(index_to_id, "a relation", r.from_entity_index)?,
            entity_at(index_to_id, "a relation", r.to_entity_index)?,
            r.relation_type,
        );
        let w = edges.entry(key).or_insert(r.weight);
        *w = w.max(r.weight);
    }
    Ok(edges
        .into_iter()
        .map(|((from, to, relation_type), weight)| RelationRow {
            from,
            to,
            relation_type,
            weight,
        })
        .collect())
}
