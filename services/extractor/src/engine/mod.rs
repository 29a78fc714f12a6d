//! The default engine: pattern entities, user gazetteer names, organisations and people by
//! rule and built-in locations per chunk, deduplicated by (type, canonical key) across the
//! document, with mentions (chunk id, character span) and co-occurrence relations weighted
//! by the number of chunks two entities share. Structured sources (EDI records, webhook
//! metadata) add typed relations between the same nodes.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use apex_proto::common::v1::{Chunk, Entity, Mention, Relation, Span};
use apex_proto::extractor::v1::ExtractionResult;
use apex_proto::parser::v1::Record;

use crate::gazetteer::{Entry, Gazetteer};
use crate::{edi, named, patterns, tables};

/// Entity types that are values rather than things: they get mentions, not relations.
const VALUE_TYPES: &[&str] = &["DATE", "DATETIME", "TIME", "MONEY", "PERCENT"];

/// Most entities per chunk taken into co-occurrence pairs (bounds the quadratic part).
const MAX_PAIRED_PER_CHUNK: usize = 40;

/// Confidence by how an entity was found.
pub fn confidence(entity_type: &str) -> f32 {
    match entity_type {
        "CONTAINER_NUMBER" | "VIN" | "IBAN" | "EMAIL" | "URL" => 0.99,
        "PHONE" | "DATE" | "DATETIME" | "MONEY" | "PERCENT" | "TIME" => 0.95,
        "LOCATION" | "ORGANIZATION" => 0.8,
        "PERSON" => 0.75,
        _ => 0.9,
    }
}

/// An entity found in one chunk, with byte offsets into the chunk text.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub entity_type: String,
    pub canonical_key: String,
    pub display_name: String,
    pub byte_start: usize,
    pub byte_end: usize,
    pub confidence: f32,
}

impl Found {
    fn overlaps(&self, start: usize, end: usize) -> bool {
        start < self.byte_end && self.byte_start < end
    }
}

/// Adds `candidate` unless it overlaps something already found (earlier finders win).
pub fn push_unless_overlapping(found: &mut Vec<Found>, candidate: Found) {
    if !found
        .iter()
        .any(|f| f.overlaps(candidate.byte_start, candidate.byte_end))
    {
        found.push(candidate);
    }
}

/// The deadline passed before every chunk was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    pub chunks_done: usize,
}

/// Deterministic, network-free extraction.
#[derive(Debug)]
pub struct Engine {
    locations: Gazetteer,
    organizations: Gazetteer,
    user: Gazetteer,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// Character offset of byte offset `byte` in `text`.
fn char_offset(text: &str, byte: usize) -> u64 {
    text[..byte].chars().count() as u64
}

impl Engine {
    /// The default engine with user gazetteer entries (customers, carriers, facilities, …).
    pub fn new(user_entries: Vec<Entry>) -> Self {
        Self {
            locations: Gazetteer::locations(),
            organizations: Gazetteer::organizations(),
            user: Gazetteer::build(user_entries, false),
        }
    }

    /// Surface forms in the user gazetteer.
    pub fn user_gazetteer_len(&self) -> usize {
        self.user.len()
    }

    /// The exact layer every engine shares: X12 elements, table columns and JSON keys,
    /// pattern entities, then user gazetteer names that do not overlap them.
    pub fn find_exact(&self, text: &str) -> Vec<Found> {
        // Structure first (X12 element positions, table columns, JSON keys), then patterns.
        let mut found: Vec<Found> = Vec::new();
        for f in edi::find(text).into_iter().chain(tables::find(text)) {
            push_unless_overlapping(&mut found, f);
        }
        for m in patterns::find(text) {
            push_unless_overlapping(
                &mut found,
                Found {
                    confidence: confidence(m.entity_type),
                    entity_type: m.entity_type.to_owned(),
                    canonical_key: m.canonical_key,
                    display_name: text[m.byte_start..m.byte_end].to_owned(),
                    byte_start: m.byte_start,
                    byte_end: m.byte_end,
                },
            );
        }
        for hit in self.user.find(text) {
            push_unless_overlapping(
                &mut found,
                Found {
                    entity_type: hit.entity_type,
                    canonical_key: hit.canonical_key,
                    display_name: hit.display_name,
                    byte_start: hit.byte_start,
                    byte_end: hit.byte_end,
                    confidence: 0.95,
                },
            );
        }
        found
    }

    /// The rule-based layer (organisations, people, built-in locations), added where it
    /// does not overlap what is already found. The LLM engine replaces this layer.
    pub fn add_named(&self, text: &str, found: &mut Vec<Found>) {
        // Rules and the well-known organisations compete: the longer name wins
        // ("PKO Bank Polski" over "PKO Bank", "Maersk A/S" over "Maersk").
        let mut candidates: Vec<Found> = named::find(text)
            .into_iter()
            .map(|n| Found {
                confidence: confidence(n.entity_type),
                entity_type: n.entity_type.to_owned(),
                canonical_key: n.canonical_key,
                display_name: n.display_name,
                byte_start: n.byte_start,
                byte_end: n.byte_end,
            })
            .chain(self.organizations.find(text).into_iter().map(|hit| Found {
                confidence: 0.9,
                entity_type: hit.entity_type,
                canonical_key: hit.canonical_key,
                display_name: hit.display_name,
                byte_start: hit.byte_start,
                byte_end: hit.byte_end,
            }))
            .collect();
        candidates.sort_by_key(|f| (std::cmp::Reverse(f.byte_end - f.byte_start), f.byte_start));
        for candidate in candidates {
            push_unless_overlapping(found, candidate);
        }
        for hit in self.locations.find(text) {
            push_unless_overlapping(
                found,
                Found {
                    confidence: confidence(&hit.entity_type),
                    entity_type: hit.entity_type,
                    canonical_key: hit.canonical_key,
                    display_name: hit.display_name,
                    byte_start: hit.byte_start,
                    byte_end: hit.byte_end,
                },
            );
        }
    }

    /// Every entity the default engine finds in one chunk, by position.
    pub fn find(&self, text: &str) -> Vec<Found> {
        let mut found = self.find_exact(text);
        self.add_named(text, &mut found);
        found.sort_by_key(|f| f.byte_start);
        found
    }

    /// Extracts from every chunk (no deadline).
    pub fn extract(&self, chunks: &[Chunk]) -> ExtractionResult {
        match self.extract_until(chunks, None) {
            Ok(result) => result,
            Err(_) => unreachable!("no deadline"),
        }
    }

    /// Extracts from every chunk, checking `deadline` between chunks.
    pub fn extract_until(
        &self,
        chunks: &[Chunk],
        deadline: Option<Instant>,
    ) -> Result<ExtractionResult, TimedOut> {
        let mut collector = Collector::default();
        for (done, chunk) in chunks.iter().enumerate() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(TimedOut { chunks_done: done });
            }
            if chunk.text.trim().is_empty() {
                collector.empty_chunk();
                continue;
            }
            let found = self.find(&chunk.text);
            collector.add_chunk(&chunk.chunk_id, &chunk.text, found, &[]);
        }
        Ok(collector.finish())
    }
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

/// Identifiers a structured source can name; the first present is the anchor the parties
/// hang off, the rest are `REFERENCES` from it.
const IDENTIFIER_FIELDS: &[(&[&str], &str)] = &[
    (
        &["shipment_id", "shipment_number", "shipment"],
        "SHIPMENT_NUMBER",
    ),
    (&["load_id", "load_number", "load"], "LOAD_NUMBER"),
    (&["bol_number", "bol", "bill_of_lading"], "BOL_NUMBER"),
    (&["pro_number", "pro"], "PRO_NUMBER"),
    (&["po_number", "po", "purchase_order"], "PO_NUMBER"),
    (
        &["invoice_number", "invoice_id", "invoice"],
        "INVOICE_NUMBER",
    ),
    (&["container_number", "container"], "CONTAINER_NUMBER"),
];

/// Parties and places: (field names, entity type, relation from the anchor).
const PARTY_FIELDS: &[(&[&str], &str, &str)] = &[
    (&["shipper", "shipper_name"], "ORGANIZATION", "SHIPPED_BY"),
    (
        &["consignee", "consignee_name"],
        "ORGANIZATION",
        "DELIVERED_TO",
    ),
    (
        &["bill_to", "bill_to_name", "customer", "customer_name"],
        "ORGANIZATION",
        "BILLED_TO",
    ),
    (&["carrier", "carrier_name"], "ORGANIZATION", "CARRIED_BY"),
    (&["scac", "carrier_scac"], "SCAC", "CARRIED_BY"),
    (&["driver", "driver_name"], "PERSON", "DRIVEN_BY"),
    (&["origin", "origin_city"], "LOCATION", "ORIGINATES_IN"),
    (
        &["destination", "destination_city"],
        "LOCATION",
        "DESTINED_FOR",
    ),
];

/// The canonical key of a structured value of `entity_type` (the same key the text
/// finders give, so both land on one node).
fn structured_key(entity_type: &str, value: &str) -> Option<String> {
    let key = match entity_type {
        "ORGANIZATION" => named::org_key(value),
        "PERSON" => named::key(value),
        "LOCATION" => Gazetteer::location_key(value)
            .unwrap_or_else(|| format!("place:{}", named::key(value).replace(' ', "-"))),
        "CONTAINER_NUMBER" => value
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase(),
        "EMAIL" => value.to_lowercase(),
        _ => value.to_ascii_uppercase(),
    };
    (!key.is_empty() && key != "place:").then_some(key)
}

/// A metadata or record field name in one form: lower case, `_` for `-`, `.` and spaces.
pub fn field_name(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            '-' | '.' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Entities and typed relations named by structured fields (EDI parties, webhook metadata):
/// the shipment (or load, BOL, PRO) is the anchor, `SHIPPED_BY` its shipper,
/// `DELIVERED_TO` its consignee, `CARRIED_BY` its carrier and SCAC, `BILLED_TO` its
/// bill-to party, `SHIPS_TO` from shipper to consignee; other identifiers are
/// `REFERENCES`. Fields not in the table are ignored. Entities are shared with the
/// text's (same type and key).
pub fn add_structured(collector: &mut Collector, fields: &HashMap<String, String>) {
    let normalised: HashMap<String, &str> = fields
        .iter()
        .map(|(k, v)| (field_name(k), v.trim()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let value = |names: &[&str]| names.iter().find_map(|n| normalised.get(*n).copied());
    let intern = |collector: &mut Collector, entity_type: &str, v: &str| {
        structured_key(entity_type, v).map(|key| collector.intern(entity_type, &key, v, 0.99))
    };
    let mut anchor = None;
    for (names, entity_type) in IDENTIFIER_FIELDS {
        if let Some(v) = value(names)
            && let Some(i) = intern(collector, entity_type, v)
        {
            match anchor {
                None => anchor = Some(i),
                Some(a) => collector.relate(a, i, "REFERENCES"),
            }
        }
    }
    let mut shipper = None;
    let mut consignee = None;
    for (names, entity_type, relation) in PARTY_FIELDS {
        let Some(v) = value(names) else { continue };
        let Some(i) = intern(collector, entity_type, v) else {
            continue;
        };
        match *relation {
            "SHIPPED_BY" => shipper = Some(i),
            "DELIVERED_TO" => consignee = Some(i),
            _ => {}
        }
        if let Some(a) = anchor {
            collector.relate(a, i, relation);
        }
    }
    if let (Some(s), Some(c)) = (shipper, consignee) {
        collector.relate(s, c, "SHIPS_TO");
    }
    for names in [&["sender", "sender_email", "from", "reply_to"][..]] {
        if let Some(v) = value(names).filter(|v| patterns::is_email(v)) {
            let i = intern(collector, "EMAIL", v);
            if let (Some(a), Some(i)) = (anchor, i) {
                collector.relate(a, i, "REPORTED_BY");
            }
        }
    }
}

/// Typed relations from structured records (EDI transaction sets) and request metadata.
pub fn add_structured_sources(
    result: ExtractionResult,
    records: &[Record],
    metadata: &HashMap<String, String>,
) -> ExtractionResult {
    if metadata.is_empty() && !records.iter().any(|r| r.kind.starts_with("edi-x12/")) {
        return result;
    }
    let extra = (result.llm_chunks, result.fallback_chunks);
    let mut collector = Collector::resume(result);
    for record in records.iter().filter(|r| r.kind.starts_with("edi-x12/")) {
        add_structured(&mut collector, &record.fields);
    }
    add_structured(&mut collector, metadata);
    let mut result = collector.finish();
    (result.llm_chunks, result.fallback_chunks) = extra;
    result
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
    fn a_passed_deadline_stops_between_chunks() {
        let chunks = [chunk("a", "ops@apex.example"), chunk("b", "more")];
        let past = Instant::now();
        assert_eq!(
            Engine::default().extract_until(&chunks, Some(past)),
            Err(TimedOut { chunks_done: 0 })
        );
        let later = Instant::now() + std::time::Duration::from_secs(60);
        assert!(
            Engine::default()
                .extract_until(&chunks, Some(later))
                .is_ok()
        );
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
        let result = Engine::default().extract(&[Chunk {
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
        let result = add_structured_sources(
            result,
            &[Record {
                kind: "edi-x12/214".to_owned(),
                fields,
                json: String::new(),
            }],
            &HashMap::new(),
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
