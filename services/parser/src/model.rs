//! What a format parser produces, the text builder that keeps character offsets right, and
//! the parser's error type.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apex_common::ServiceError;
use apex_proto::parser::v1::{Page, Record, Section, Table};

use crate::text::normalize;

/// The output of one format parser, before chunking.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    pub(crate) text: String,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) pages: Vec<Page>,
    pub(crate) sections: Vec<Section>,
    pub(crate) tables: Vec<Table>,
    pub(crate) records: Vec<Record>,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) warnings: Vec<String>,
    pub(crate) no_text_layer: bool,
}

/// A document inside a document (an email attachment), parsed on its own afterwards.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub(crate) name: String,
    pub(crate) mime_type: String,
    pub(crate) bytes: Vec<u8>,
}

/// Builds the normalised text block by block, tracking character offsets so that pages and
/// sections point at the right place.
#[derive(Debug, Default)]
pub(crate) struct TextBuilder {
    text: String,
    chars: u64,
}

impl TextBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends a block (normalised; separated from the previous one by a blank line) and
    /// returns its character range, or `None` when it is empty after normalisation.
    pub(crate) fn push_block(&mut self, block: &str) -> Option<(u64, u64)> {
        let block = normalize(block);
        if block.is_empty() {
            return None;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
            self.chars += 2;
        }
        let start = self.chars;
        self.chars += block.chars().count() as u64;
        self.text.push_str(&block);
        Some((start, self.chars))
    }

    pub(crate) fn len_chars(&self) -> u64 {
        self.chars
    }

    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// Sets each section's end: where the next section of the same or a higher level starts, or
/// the end of the text.
pub(crate) fn close_sections(sections: &mut [Section], text_chars: u64) {
    for i in 0..sections.len() {
        let level = sections[i].level;
        let end = sections[i + 1..]
            .iter()
            .find(|s| s.level <= level)
            .map_or(text_chars, |s| s.char_start);
        sections[i].char_end = end.max(sections[i].char_start);
    }
}

/// Why a document could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("input is {size} bytes, over the parser's limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    /// Corrupt, encrypted or hostile input (zip bomb, DTD, excessive nesting).
    #[error("{format}: {reason}")]
    Invalid {
        format: &'static str,
        reason: String,
    },
    #[error("unsupported format: {0}")]
    Unsupported(String),
    #[error("parsing did not finish within the {0:?} deadline")]
    Deadline(Duration),
    /// A parser failed in a way it should not (a contained panic).
    #[error("internal parser failure on {format}: {reason}")]
    Internal {
        format: &'static str,
        reason: String,
    },
}

impl ParseError {
    pub(crate) fn invalid(format: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            format,
            reason: reason.into(),
        }
    }
}

impl From<ParseError> for ServiceError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::TooLarge { .. } => ServiceError::TooLarge(e.to_string()),
            ParseError::Invalid { .. } | ParseError::Unsupported(_) => {
                ServiceError::invalid_field("content", e.to_string())
            }
            ParseError::Deadline(_) => ServiceError::Timeout(e.to_string()),
            ParseError::Internal { .. } => ServiceError::Internal(anyhow::anyhow!(e.to_string())),
        }
    }
}

/// A deadline that long-running loops check cooperatively.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    pub(crate) fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
            budget,
        }
    }

    pub(crate) fn check(&self) -> Result<(), ParseError> {
        if Instant::now() >= self.at {
            Err(ParseError::Deadline(self.budget))
        } else {
            Ok(())
        }
    }

    /// Time left before the deadline (zero once passed).
    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_normalised_and_offsets_count_characters() {
        let mut b = TextBuilder::new();
        assert_eq!(b.push_block("Grüße\r\n"), Some((0, 5)));
        assert_eq!(b.push_block("   \n"), None);
        assert_eq!(b.push_block("zwei"), Some((7, 11)));
        let text = b.finish();
        assert_eq!(text, "Grüße\n\nzwei");
        assert_eq!(text.chars().skip(7).take(4).collect::<String>(), "zwei");
    }

    #[test]
    fn sections_end_at_the_next_heading_of_the_same_level() {
        let s = |heading: &str, level, char_start| Section {
            heading: heading.to_owned(),
            level,
            char_start,
            char_end: 0,
        };
        let mut sections = vec![
            s("A", 1, 0),
            s("A.1", 2, 10),
            s("A.2", 2, 20),
            s("B", 1, 30),
        ];
        close_sections(&mut sections, 40);
        let ends: Vec<u64> = sections.iter().map(|s| s.char_end).collect();
        assert_eq!(ends, [30, 20, 30, 40]);
    }
}
