//! The LLM's answer: its JSON schema, its validation against the allowed types, and its
//! merge with the exact layer (names the text does not contain are dropped).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::LlmError;
use super::{LLM_ENTITY_TYPES, LLM_RELATION_TYPES};
use crate::engine::{Found, push_unless_overlapping};
use crate::gazetteer::Gazetteer;
use crate::named;

/// One entity in the LLM's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerEntity {
    #[serde(rename = "type")]
    pub entity_type: String,
    pub text: String,
}

/// One relation in the LLM's answer (ends are texts from the chunk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRelation {
    pub from: String,
    #[serde(rename = "type")]
    pub relation_type: String,
    pub to: String,
}

/// The validated JSON the LLM returns for one chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub entities: Vec<AnswerEntity>,
    pub relations: Vec<AnswerRelation>,
}

/// The JSON schema sent as `response_format`.
pub fn answer_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["entities", "relations"],
        "properties": {
            "entities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["type", "text"],
                    "properties": {
                        "type": {"type": "string", "enum": LLM_ENTITY_TYPES},
                        "text": {"type": "string"}
                    }
                }
            },
            "relations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["from", "type", "to"],
                    "properties": {
                        "from": {"type": "string"},
                        "type": {"type": "string", "enum": LLM_RELATION_TYPES},
                        "to": {"type": "string"}
                    }
                }
            }
        }
    })
}

/// Checks an answer's JSON against the schema (types from the allowed sets).
pub fn validate_answer(content: &str) -> Result<Answer, LlmError> {
    let answer: Answer =
        serde_json::from_str(content).map_err(|e| LlmError::InvalidAnswer(e.to_string()))?;
    for e in &answer.entities {
        if !LLM_ENTITY_TYPES.contains(&e.entity_type.as_str()) {
            return Err(LlmError::InvalidAnswer(format!(
                "entity type {:?} is not one of {LLM_ENTITY_TYPES:?}",
                e.entity_type
            )));
        }
    }
    for r in &answer.relations {
        if !LLM_RELATION_TYPES.contains(&r.relation_type.as_str()) {
            return Err(LlmError::InvalidAnswer(format!(
                "relation type {:?} is not one of {LLM_RELATION_TYPES:?}",
                r.relation_type
            )));
        }
    }
    Ok(answer)
}

/// Occurrences of `needle` in `text` on word boundaries (exact case first, then ASCII
/// case-insensitive), as byte ranges.
fn occurrences(text: &str, needle: &str) -> Vec<(usize, usize)> {
    let needle = needle.trim();
    if needle.is_empty() {
        return Vec::new();
    }
    let boundary = |i: usize| {
        let before = text[..i].chars().next_back();
        !before.is_some_and(char::is_alphanumeric)
    };
    let boundary_after = |i: usize| !text[i..].chars().next().is_some_and(char::is_alphanumeric);
    let scan = |hay: &str, pat: &str| -> Vec<(usize, usize)> {
        hay.match_indices(pat)
            .map(|(i, m)| (i, i + m.len()))
            .filter(|(s, e)| boundary(*s) && boundary_after(*e))
            .collect()
    };
    let exact = scan(text, needle);
    if !exact.is_empty() || !needle.is_ascii() {
        return exact;
    }
    // ASCII lower-casing keeps byte offsets.
    scan(&text.to_ascii_lowercase(), &needle.to_ascii_lowercase())
}

/// The canonical key of an LLM entity (the same key the rule layer would give).
fn llm_key(entity_type: &str, text: &str) -> String {
    match entity_type {
        "ORGANIZATION" => named::org_key(text),
        "LOCATION" => Gazetteer::location_key(text)
            .unwrap_or_else(|| format!("place:{}", named::key(text).replace(' ', "-"))),
        _ => named::key(text),
    }
}

/// Merges an answer into a chunk's exact-layer entities: LLM entities where they do not
/// overlap, and relations whose ends name entities of the chunk. Returns the entities,
/// the relations (indexes into them) and how many LLM entities were not in the text.
pub fn merge_answer(
    text: &str,
    mut found: Vec<Found>,
    answer: &Answer,
) -> (Vec<Found>, Vec<(usize, usize, String)>, usize) {
    let mut dropped = 0;
    let mut seen = HashSet::new();
    for e in &answer.entities {
        if !seen.insert((e.entity_type.as_str(), e.text.trim())) {
            continue;
        }
        let spans = occurrences(text, &e.text);
        if spans.is_empty() {
            dropped += 1;
            continue;
        }
        let key = llm_key(&e.entity_type, e.text.trim());
        if key.is_empty() || key == "place:" {
            dropped += 1;
            continue;
        }
        for (start, end) in spans {
            push_unless_overlapping(
                &mut found,
                Found {
                    entity_type: e.entity_type.clone(),
                    canonical_key: key.clone(),
                    display_name: e.text.trim().to_owned(),
                    byte_start: start,
                    byte_end: end,
                    confidence: 0.85,
                },
            );
        }
    }
    let index_of = |name: &str| {
        let name = name.trim();
        found.iter().position(|f| {
            text[f.byte_start..f.byte_end].eq_ignore_ascii_case(name)
                || f.display_name.eq_ignore_ascii_case(name)
        })
    };
    let relations = answer
        .relations
        .iter()
        .filter_map(|r| {
            Some((
                index_of(&r.from)?,
                index_of(&r.to)?,
                r.relation_type.clone(),
            ))
        })
        .collect();
    (found, relations, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    #[test]
    fn answers_are_validated_against_the_schema() {
        let ok =
            validate_answer(r#"{"entities":[{"type":"PERSON","text":"Ana Ruiz"}],"relations":[]}"#)
                .expect("valid");
        assert_eq!(ok.entities[0].text, "Ana Ruiz");
        for bad in [
            "not json",
            r#"{"entities":[]}"#,
            r#"{"entities":[{"type":"WEAPON","text":"x"}],"relations":[]}"#,
            r#"{"entities":[],"relations":[{"from":"a","type":"LOVES","to":"b"}]}"#,
            r#"{"entities":[{"type":"PERSON","text":"x","extra":1}],"relations":[]}"#,
        ] {
            assert!(
                matches!(validate_answer(bad), Err(LlmError::InvalidAnswer(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn merged_answers_keep_the_exact_layer_and_drop_invented_names() {
        let text = "Load LD-4471 for Lone Star Grocers, driver Ana Ruiz, from Laredo.";
        let engine = Engine::default();
        let answer = Answer {
            entities: vec![
                AnswerEntity {
                    entity_type: "ORGANIZATION".into(),
                    text: "Lone Star Grocers".into(),
                },
                AnswerEntity {
                    entity_type: "PERSON".into(),
                    text: "ana ruiz".into(),
                },
                AnswerEntity {
                    entity_type: "LOCATION".into(),
                    text: "Laredo".into(),
                },
                AnswerEntity {
                    entity_type: "ORGANIZATION".into(),
                    text: "Imaginary Corp".into(),
                },
                // Overlaps the pattern layer's load number: the pattern wins.
                AnswerEntity {
                    entity_type: "FACILITY".into(),
                    text: "LD-4471".into(),
                },
            ],
            relations: vec![
                AnswerRelation {
                    from: "LD-4471".into(),
                    relation_type: "DELIVERED_TO".into(),
                    to: "Lone Star Grocers".into(),
                },
                AnswerRelation {
                    from: "Nobody".into(),
                    relation_type: "WORKS_FOR".into(),
                    to: "Lone Star Grocers".into(),
                },
            ],
        };
        let (found, relations, dropped) = merge_answer(text, engine.find_exact(text), &answer);
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.entity_type.as_str(), f.canonical_key.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("LOAD_NUMBER", "LD-4471"),
                ("ORGANIZATION", "lone star grocers"),
                ("PERSON", "ana ruiz"),
                ("LOCATION", "city:laredo-us"),
            ]
        );
        assert_eq!(dropped, 1);
        assert_eq!(relations, [(0, 1, "DELIVERED_TO".to_owned())]);
    }
}
