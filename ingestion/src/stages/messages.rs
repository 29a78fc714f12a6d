//! What each stage takes and gives back (the activities' inputs and results, serialised in
//! workflow histories, so a field's name and default matter).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::input::{Blob, DocRef};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct FetchInput {
    pub location: String,
    pub mime_type: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Fetched {
    pub blob: Blob,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ParseInput {
    pub source: Blob,
    pub file_name: String,
    pub mime_type: String,
    pub document: DocRef,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Parsed {
    pub artifact: Blob,
    pub format: String,
    pub chunk_count: u32,
    pub text_chars: u64,
    pub warnings: Vec<String>,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ArtifactInput {
    pub parsed: Blob,
    pub document: DocRef,
    pub metadata: BTreeMap<String, String>,
    /// Characters of text in the parsed document (a document with text and no entities
    /// is counted).
    pub text_chars: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Extracted {
    pub artifact: Blob,
    pub entity_count: u32,
    pub mention_count: u32,
    pub relation_count: u32,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Embedded {
    pub artifact: Blob,
    pub vector_count: u32,
    pub model_id: String,
    pub dimension: u32,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct WriteInput {
    pub document: DocRef,
    pub metadata: BTreeMap<String, String>,
    pub content_sha256: String,
    pub parsed: Blob,
    pub entities: Option<Blob>,
    pub vectors: Option<Blob>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Written {
    pub replayed: bool,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Stored {
    pub present: bool,
    pub version: u64,
    pub content_sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Deleted {
    pub existed: bool,
}
