//! The default engine: pattern entities, user gazetteer names, organisations and people by
//! rule and built-in locations per chunk, deduplicated by (type, canonical key) across the
//! document, with mentions (chunk id, character span) and co-occurrence relations weighted
//! by the number of chunks two entities share. Structured sources (EDI records, webhook
//! metadata) add typed relations between the same nodes.

mod collector;
mod structured;

use std::time::Instant;

use apex_proto::common::v1::Chunk;
use apex_proto::extractor::v1::ExtractionResult;

pub use collector::Collector;
pub use structured::{add_structured, add_structured_sources, field_name};

use crate::gazetteer::{Entry, Gazetteer};
use crate::{edi, named, patterns, tables};

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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod record_tests;
