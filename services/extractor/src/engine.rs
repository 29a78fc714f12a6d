//! The default engine: pattern entities and gazetteer locations per chunk, deduplicated by
//! (type, canonical key) across the document, with mentions (chunk id, character span) and
//! co-occurrence relations weighted by the number of chunks two entities share.

use std::collections::{BTreeMap, HashMap};

use apex_proto::common::v1::{Chunk, Entity, Mention, Relation, Span};
use apex_proto::extractor::v1::ExtractionResult;
use apex_proto::parser::v1::Record;

use crate::gazetteer::Gazetteer;
use crate::{named, patterns};

/// Entity types that are values rather than things: they get mentions, not relations.
const VALUE_TYPES: &[&str] = &["DATE", "DATETIME", "TIME", "MONEY", "PERCENT"];

/// Most entities per chunk taken into co-occurrence pairs (bounds the quadratic part).
const MAX_PAIRED_PER_CHUNK: usize = 40;

/// Confidence by how an entity was found.
fn confidence(entity_type: &str) -> f32 {
    match entity_type {
        "CONTAINER_NUMBER" | "VIN" | "IBAN" | "EMAIL" | "URL" => 0.99,
        "PHONE" | "DATE" | "DATETIME" | "MONEY" | "PERCENT" | "TIME" => 0.95,
        "LOCATION" | "ORGANIZATION" => 0.8,
        "PERSON" => 0.75,
        _ => 0.9,
    }
}

/// Deterministic, network-free extraction.
#[derive(Debug)]
pub struct Engine {
    locations: Gazetteer,
}

impl Default for Engine {
    fn default() -> Self {
        Self {
            locations: Gazetteer::locations(),
        }
    }
}

/// Character offset of `byte` in `text` (counting from `from_byte`/`from_char`).
fn char_offset(text: &str, byte: usize) -> u64 {
    text[..byte].chars().count() as u64
}

impl Engine {
    pub fn extract(&self, chunks: &[Chunk]) -> ExtractionResult {
        let mut entities: Vec<Entity> = Vec::new();
        let mut index: HashMap<(String, String), u32> = HashMap::new();
        let mut mentions: Vec<Mention> = Vec::new();
        let mut pairs: BTreeMap<(u32, u32), u32> = BTreeMap::new();
        let mut empty_chunks = 0u32;
        for chunk in chunks {
            let text = chunk.text.as_str();
            if text.trim().is_empty() {
                empty_chunks += 1;
                continue;
            }
            let mut found: Vec<(&str, String, String, usize, usize)> = patterns::find(text)
                .into_iter()
                .map(|m| {
                    let display = text[m.byte_start..m.byte_end].to_owned();
                    (
                        m.entity_type,
                        m.canonical_key,
                        display,
                        m.byte_start,
                        m.byte_end,
                    )
                })
                .collect();
            for n in named::find(text) {
                let overlaps = found.iter().any(|f| n.byte_start < f.4 && f.3 < n.byte_end);
                if !overlaps {
                    found.push((
                        n.entity_type,
                        n.canonical_key,
                        n.display_name,
                        n.byte_start,
                        n.byte_end,
                    ));
                }
            }
            for hit in self.locations.find(text) {
                let overlaps = found
                    .iter()
                    .any(|f| hit.byte_start < f.4 && f.3 < hit.byte_end);
                if !overlaps {
                    found.push((
                        "LOCATION",
                        hit.canonical_key,
                        hit.display_name,
                        hit.byte_start,
                        hit.byte_end,
                    ));
                }
            }
            found.sort_by_key(|f| f.3);
            let mut in_chunk: Vec<u32> = Vec::new();
            for (entity_type, key, display, start, end) in found {
                let slot = index
                    .entry((entity_type.to_owned(), key.clone()))
                    .or_insert_with(|| {
                        entities.push(Entity {
                            entity_type: entity_type.to_owned(),
                            canonical_key: key,
                            display_name: display,
                            confidence: confidence(entity_type),
                        });
                        entities.len() as u32 - 1
                    });
                let i = *slot;
                let char_start = char_offset(text, start);
                mentions.push(Mention {
                    chunk_id: chunk.chunk_id.clone(),
                    entity_index: i,
                    span: Some(Span {
                        char_start,
                        char_end: char_start + text[start..end].chars().count() as u64,
                    }),
                    text: text[start..end].to_owned(),
                });
                if !VALUE_TYPES.contains(&entity_type) && !in_chunk.contains(&i) {
                    in_chunk.push(i);
                }
            }
            in_chunk.truncate(MAX_PAIRED_PER_CHUNK);
            for (a, x) in in_chunk.iter().enumerate() {
                for y in &in_chunk[a + 1..] {
                    let key = if x < y { (*x, *y) } else { (*y, *x) };
                    *pairs.entry(key).or_insert(0) += 1;
                }
            }
        }
        let relations = pairs
            .into_iter()
            .map(|((from, to), shared)| Relation {
                from_entity_index: from,
                to_entity_index: to,
                relation_type: "CO_OCCURS".to_owned(),
                weight: shared as f32,
            })
            .collect();
        ExtractionResult {
            entities,
            mentions,
            relations,
            empty_chunks,
        }
    }
}

/// Typed relations read from structured records (EDI transaction sets): who ships to whom,
/// who carries and who is billed. Entities are shared with the text's (same type and key).
pub fn add_record_relations(result: &mut ExtractionResult, records: &[Record]) {
    let mut index: HashMap<(String, String), u32> = result
        .entities
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.entity_type.clone(), e.canonical_key.clone()), i as u32))
        .collect();
    for record in records.iter().filter(|r| r.kind.starts_with("edi-x12/")) {
        let field = |name: &str| {
            record
                .fields
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let mut intern = |entity_type: &str, key: String, display: &str| -> u32 {
            *index
                .entry((entity_type.to_owned(), key.clone()))
                .or_insert_with(|| {
                    result.entities.push(Entity {
                        entity_type: entity_type.to_owned(),
                        canonical_key: key,
                        display_name: display.to_owned(),
                        confidence: 0.99,
                    });
                    result.entities.len() as u32 - 1
                })
        };
        let shipper = field("shipper").map(|n| intern("ORGANIZATION", named::key(n), n));
        let consignee = field("consignee").map(|n| intern("ORGANIZATION", named::key(n), n));
        let bill_to = field("bill_to").map(|n| intern("ORGANIZATION", named::key(n), n));
        let shipment =
            field("shipment_id").map(|id| intern("SHIPMENT_NUMBER", id.to_ascii_uppercase(), id));
        let carrier = field("scac").map(|scac| intern("SCAC", scac.to_ascii_uppercase(), scac));
        let mut relate = |from: Option<u32>, to: Option<u32>, kind: &str| {
            if let (Some(from), Some(to)) = (from, to)
                && from != to
            {
                result.relations.push(Relation {
                    from_entity_index: from,
                    to_entity_index: to,
                    relation_type: kind.to_owned(),
                    weight: 1.0,
                });
            }
        };
        relate(shipper, consignee, "SHIPS_TO");
        relate(shipment, shipper, "SHIPPED_BY");
        relate(shipment, consignee, "DELIVERED_TO");
        relate(shipment, carrier, "CARRIED_BY");
        relate(shipment, bill_to, "BILLED_TO");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str, text: &str) -> Chunk {
        Chunk {
            chunk_id: id.to_owned(),
            text: text.to_owned(),
            ..Chunk::default()
        }
    }

    #[test]
    fn entities_are_shared_across_chunks_with_mentions_and_cooccurrence() {
        let result = Engine::default().extract(&[
            chunk(
                "c1",
                "Shipment SHIP-42 left Chicago on 2026-03-15; contact ops@apex.example.",
            ),
            chunk("c2", "   \n "),
            chunk(
                "c3",
                "SHIP-42 delayed: shipment SHIP-42 now due in Dallas, ops@Apex.example says.",
            ),
        ]);
        assert_eq!(result.empty_chunks, 1);
        let find = |t: &str, k: &str| {
            result
                .entities
                .iter()
                .position(|e| e.entity_type == t && e.canonical_key == k)
                .unwrap_or_else(|| panic!("{t} {k} missing: {:?}", result.entities))
        };
        let ship = find("SHIPMENT_NUMBER", "SHIP-42");
        let email = find("EMAIL", "ops@apex.example");
        let chicago = find("LOCATION", "city:chicago-us");
        find("LOCATION", "city:dallas-us");
        find("DATE", "2026-03-15");
        // One entity, mentioned in both chunks, with spans that point at the text.
        let ship_mentions: Vec<&Mention> = result
            .mentions
            .iter()
            .filter(|m| m.entity_index as usize == ship)
            .collect();
        assert_eq!(ship_mentions.len(), 2);
        let m = ship_mentions[0];
        let span = m.span.expect("span");
        assert_eq!(m.chunk_id, "c1");
        assert_eq!(
            "Shipment SHIP-42 left"
                .chars()
                .skip(span.char_start as usize)
                .take((span.char_end - span.char_start) as usize)
                .collect::<String>(),
            "SHIP-42"
        );
        // Shipment and email share two chunks; dates make no relations.
        let weight = |a: usize, b: usize| {
            result
                .relations
                .iter()
                .find(|r| {
                    (r.from_entity_index as usize, r.to_entity_index as usize)
                        == (a.min(b), a.max(b))
                })
                .map(|r| r.weight)
        };
        assert_eq!(weight(ship, email), Some(2.0));
        assert_eq!(weight(ship, chicago), Some(1.0));
        let date = find("DATE", "2026-03-15");
        assert!(result
            .relations
            .iter()
            .all(|r| r.from_entity_index as usize != date && r.to_entity_index as usize != date));
    }

    #[test]
    fn nothing_in_nothing_out() {
        let result = Engine::default().extract(&[chunk("c", ""), chunk("d", "\t")]);
        assert_eq!(result.empty_chunks, 2);
        assert!(
            result.entities.is_empty() && result.mentions.is_empty() && result.relations.is_empty()
        );
    }
}

#[cfg(test)]
mod record_tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn edi_parties_become_typed_relations_sharing_text_entities() {
        let mut result = Engine::default().extract(&[Chunk {
            chunk_id: "c".to_owned(),
            text: "Shipment SHIP-42 for Lone Star Grocers LLC".to_owned(),
            ..Chunk::default()
        }]);
        let fields: HashMap<String, String> = [
            ("shipment_id", "SHIP-42"),
            ("scac", "ACME"),
            ("shipper", "Apex Foods"),
            ("consignee", "Lone Star Grocers"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        add_record_relations(
            &mut result,
            &[Record {
                kind: "edi-x12/214".to_owned(),
                fields,
                json: String::new(),
            }],
        );
        let idx = |t: &str, k: &str| {
            result
                .entities
                .iter()
                .position(|e| e.entity_type == t && e.canonical_key == k)
                .unwrap_or_else(|| panic!("{t} {k}: {:?}", result.entities)) as u32
        };
        let (ship, consignee, shipper, scac) = (
            idx("SHIPMENT_NUMBER", "SHIP-42"),
            idx("ORGANIZATION", "lone star grocers"),
            idx("ORGANIZATION", "apex foods"),
            idx("SCAC", "ACME"),
        );
        let has = |from: u32, to: u32, kind: &str| {
            result.relations.iter().any(|r| {
                r.from_entity_index == from && r.to_entity_index == to && r.relation_type == kind
            })
        };
        assert!(has(shipper, consignee, "SHIPS_TO"));
        assert!(has(ship, scac, "CARRIED_BY"));
        assert!(has(ship, consignee, "DELIVERED_TO"));
        assert!(has(ship, shipper, "SHIPPED_BY"));
        // The text's shipment and consignee are the same nodes as the record's.
        assert_eq!(
            result
                .entities
                .iter()
                .filter(|e| e.entity_type == "SHIPMENT_NUMBER")
                .count(),
            1
        );
        assert_eq!(
            result
                .entities
                .iter()
                .filter(|e| e.canonical_key == "lone star grocers")
                .count(),
            1
        );
    }
}
