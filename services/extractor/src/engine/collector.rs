//! The collector: one document's entities (deduplicated by type and key), mentions,
//! co-occurrence pairs and typed relations, gathered chunk by chunk.

use std::collections::{BTreeMap, HashMap};

use apex_proto::common::v1::{Entity, Mention, Relation, Span};
use apex_proto::extractor::v1::ExtractionResult;

use super::Found;

/// Entity types that are values rather than things: they get mentions, not relations.
const VALUE_TYPES: &[&str] = &["DATE", "DATETIME", "TIME", "MONEY", "PERCENT"];

/// Most entities per chunk taken into co-occurrence pairs (bounds the quadratic part).
const MAX_PAIRED_PER_CHUNK: usize = 40;

/// Character offset of byte offset `byte` in `text`.
fn char_offset(text: &str, byte: usize) -> u64 {
    text[..byte].chars().count() as u64
}

/// Accumulates one document's entities, mentions and relations chunk by chunk.
#[derive(Debug, Default)]
pub struct Collector {
    entities: Vec<Entity>,
    index: HashMap<(String, String), u32>,
    mentions: Vec<Mention>,
    pairs: BTreeMap<(u32, u32), u32>,
    typed: Vec<Relation>,
    empty_chunks: u32,
}

impl Collector {
    pub fn empty_chunk(&mut self) {
        self.empty_chunks += 1;
    }

    /// The index of the entity (type, key), added if new.
    pub fn intern(&mut self, entity_type: &str, key: &str, display: &str, confidence: f32) -> u32 {
        if let Some(i) = self.index.get(&(entity_type.to_owned(), key.to_owned())) {
            return *i;
        }
        self.entities.push(Entity {
            entity_type: entity_type.to_owned(),
            canonical_key: key.to_owned(),
            display_name: display.to_owned(),
            confidence,
        });
        let i = self.entities.len() as u32 - 1;
        self.index
            .insert((entity_type.to_owned(), key.to_owned()), i);
        i
    }

    /// Records a chunk's entities (sorted or not), their mentions and co-occurrence, plus
    /// typed relations given as (from, to, type) indexes into `found`.
    pub fn add_chunk(
        &mut self,
        chunk_id: &str,
        text: &str,
        mut found: Vec<Found>,
        relations: &[(usize, usize, String)],
    ) {
        let order: Vec<usize> = {
            let mut o: Vec<usize> = (0..found.len()).collect();
            o.sort_by_key(|i| found[*i].byte_start);
            o
        };
        let mut slot_of = vec![0u32; found.len()];
        let mut in_chunk: Vec<u32> = Vec::new();
        for i in order {
            let f = &mut found[i];
            let slot = self.intern(
                &f.entity_type,
                &f.canonical_key,
                &f.display_name,
                f.confidence,
            );
            slot_of[i] = slot;
            let char_start = char_offset(text, f.byte_start);
            let surface = &text[f.byte_start..f.byte_end];
            self.mentions.push(Mention {
                chunk_id: chunk_id.to_owned(),
                entity_index: slot,
                span: Some(Span {
                    char_start,
                    char_end: char_start + surface.chars().count() as u64,
                }),
                text: surface.to_owned(),
            });
            if !VALUE_TYPES.contains(&f.entity_type.as_str()) && !in_chunk.contains(&slot) {
                in_chunk.push(slot);
            }
        }
        in_chunk.truncate(MAX_PAIRED_PER_CHUNK);
        for (a, x) in in_chunk.iter().enumerate() {
            for y in &in_chunk[a + 1..] {
                let key = if x < y { (*x, *y) } else { (*y, *x) };
                *self.pairs.entry(key).or_insert(0) += 1;
            }
        }
        for (from, to, kind) in relations {
            if let (Some(from), Some(to)) = (slot_of.get(*from), slot_of.get(*to)) {
                self.relate(*from, *to, kind);
            }
        }
    }

    /// A typed relation (kept once per (from, to, type)).
    pub fn relate(&mut self, from: u32, to: u32, kind: &str) {
        if from == to
            || self.typed.iter().any(|r| {
                r.from_entity_index == from && r.to_entity_index == to && r.relation_type == kind
            })
        {
            return;
        }
        self.typed.push(Relation {
            from_entity_index: from,
            to_entity_index: to,
            relation_type: kind.to_owned(),
            weight: 1.0,
        });
    }

    pub fn finish(self) -> ExtractionResult {
        let mut relations: Vec<Relation> = self
            .pairs
            .into_iter()
            .map(|((from, to), shared)| Relation {
                from_entity_index: from,
                to_entity_index: to,
                relation_type: "CO_OCCURS".to_owned(),
                weight: shared as f32,
            })
            .collect();
        relations.extend(self.typed);
        ExtractionResult {
            entities: self.entities,
            mentions: self.mentions,
            relations,
            empty_chunks: self.empty_chunks,
            ..ExtractionResult::default()
        }
    }

    /// Continues an existing result (to add structured relations to it).
    pub fn resume(result: ExtractionResult) -> Self {
        let index = result
            .entities
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.entity_type.clone(), e.canonical_key.clone()), i as u32))
            .collect();
        let mut typed = Vec::new();
        let mut pairs = BTreeMap::new();
        for r in result.relations {
            if r.relation_type == "CO_OCCURS" {
                pairs.insert((r.from_entity_index, r.to_entity_index), r.weight as u32);
            } else {
                typed.push(r);
            }
        }
        Self {
            entities: result.entities,
            index,
            mentions: result.mentions,
            pairs,
            typed,
            empty_chunks: result.empty_chunks,
        }
    }
}
