//! Chunking in tokens of the embedding model's own tokenizer (`tokenizer.json` of
//! all-MiniLM-L6-v2). Chunks hold whole words only, never cross a page, overlap by up to
//! `overlap` tokens and carry their page, section and character offsets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{PoisonError, RwLock};

use apex_proto::common::v1::{Chunk, ChunkLocation, DocumentRef};
use apex_proto::parser::v1::{Page, Section};
use tokenizers::Tokenizer;
use uuid::Uuid;

use crate::model::{Deadline, ParseError};

/// Tokens the model adds around every input ([CLS] and [SEP]); a chunk of `max_tokens`
/// leaves room for them so the embedder never truncates it.
pub const SPECIAL_TOKENS: u32 = 2;

/// The model's tokenizer, with truncation and padding off, and a cache of token counts per
/// word. BERT's normaliser works character by character and its pre-tokenizer splits at
/// whitespace, so a text's token count is the sum of its whitespace-separated words' counts:
/// counting each distinct word once gives the model's exact count much faster than
/// tokenizing the whole text.
#[derive(Debug)]
pub struct Chunker {
    tokenizer: Tokenizer,
    cache: RwLock<HashMap<Box<str>, u32>>,
}

/// Cached words before the cache is cleared (bounds memory at a few tens of MB).
const CACHE_WORDS: usize = 500_000;

/// Chunk sizes for one request.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOptions {
    /// Maximum tokens per chunk, [CLS] and [SEP] included.
    pub max_tokens: u32,
    /// Tokens shared by consecutive chunks (whole words, at most this many).
    pub overlap_tokens: u32,
}

struct Word {
    char_start: u64,
    char_end: u64,
    byte_start: usize,
    byte_end: usize,
    tokens: u32,
}

fn words_of(text: &str, char_base: u64) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    for (ci, (bi, c)) in text.char_indices().enumerate() {
        let ci = ci as u64 + char_base;
        if c.is_whitespace() {
            if let Some(w) = current.take() {
                words.push(w);
            }
        } else {
            match current.as_mut() {
                Some(w) => {
                    w.char_end = ci + 1;
                    w.byte_end = bi + c.len_utf8();
                }
                None => {
                    current = Some(Word {
                        char_start: ci,
                        char_end: ci + 1,
                        byte_start: bi,
                        byte_end: bi + c.len_utf8(),
                        tokens: 0,
                    });
                }
            }
        }
    }
    words.extend(current);
    words
}

impl Chunker {
    /// Loads `tokenizer.json`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("cannot load tokenizer {}: {e}", path.display()))?;
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        tokenizer.with_padding(None);
        Ok(Self {
            tokenizer,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// Token counts of `words` (no whitespace inside any of them), from the cache where
    /// known; the unknown ones are tokenized together in one call.
    fn word_counts(&self, words: &[&str]) -> Result<Vec<u32>, ParseError> {
        let mut counts = vec![0u32; words.len()];
        let mut missing: Vec<usize> = Vec::new();
        {
            let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            for (i, w) in words.iter().enumerate() {
                match cache.get(*w) {
                    Some(n) => counts[i] = *n,
                    None => missing.push(i),
                }
            }
        }
        if missing.is_empty() {
            return Ok(counts);
        }
        // Distinct unknown words, joined by spaces, tokenized once; each token belongs to the
        // word its byte offset falls in.
        let mut distinct: Vec<&str> = missing.iter().map(|i| words[*i]).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut joined = String::with_capacity(distinct.iter().map(|w| w.len() + 1).sum());
        let mut starts = Vec::with_capacity(distinct.len());
        for w in &distinct {
            starts.push(joined.len());
            joined.push_str(w);
            joined.push(' ');
        }
        let encoding =
            self.tokenizer
                .encode(joined.as_str(), false)
                .map_err(|e| ParseError::Internal {
                    format: "tokenizer",
                    reason: e.to_string(),
                })?;
        let mut found = vec![0u32; distinct.len()];
        for &(start, _) in encoding.get_offsets() {
            let at = starts.partition_point(|s| *s <= start).saturating_sub(1);
            found[at] += 1;
        }
        {
            let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
            if cache.len() + distinct.len() > CACHE_WORDS {
                cache.clear();
            }
            for (w, n) in distinct.iter().zip(&found) {
                cache.insert((*w).into(), *n);
            }
        }
        for i in missing {
            let at = distinct.binary_search(&words[i]).unwrap_or_default();
            counts[i] = found[at];
        }
        Ok(counts)
    }

    /// Tokens of `text` without the special tokens.
    pub fn count_tokens(&self, text: &str) -> Result<u32, ParseError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ParseError::Internal {
                format: "tokenizer",
                reason: e.to_string(),
            })?;
        Ok(encoding.len() as u32)
    }

    /// Splits `text` into chunks; `pages` (if any) are hard boundaries.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn chunk(
        &self,
        text: &str,
        pages: &[Page],
        sections: &[Section],
        options: ChunkOptions,
        ids: &ChunkIds,
        deadline: &Deadline,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Chunk>, ParseError> {
        let budget = options.max_tokens.saturating_sub(SPECIAL_TOKENS).max(1);
        let overlap = options.overlap_tokens.min(budget / 2);
        // Regions: each page, or the whole text.
        let total_chars = text.chars().count() as u64;
        let regions: Vec<(u32, u64, u64)> = if pages.is_empty() {
            vec![(0, 0, total_chars)]
        } else {
            pages
                .iter()
                .map(|p| (p.number, p.char_start, p.char_end))
                .collect()
        };
        let char_to_byte: Vec<usize> = {
            let mut v: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
            v.push(text.len());
            v
        };
        let mut chunks = Vec::new();
        let mut oversized = 0usize;
        for (page, start, end) in regions {
            deadline.check()?;
            let (bs, be) = (char_to_byte[start as usize], char_to_byte[end as usize]);
            let region = &text[bs..be];
            let mut words = words_of(region, start);
            if words.is_empty() {
                continue;
            }
            let texts: Vec<&str> = words
                .iter()
                .map(|w| &region[w.byte_start..w.byte_end])
                .collect();
            let counts = self.word_counts(&texts)?;
            for (w, n) in words.iter_mut().zip(counts) {
                w.tokens = n;
            }
            deadline.check()?;
            let mut first = 0usize;
            while first < words.len() {
                let mut last = first;
                let mut tokens = 0u32;
                while last < words.len() && tokens + words[last].tokens <= budget {
                    tokens += words[last].tokens;
                    last += 1;
                }
                if last == first {
                    // A single word longer than a chunk: kept whole, never cut.
                    tokens = words[first].tokens;
                    last = first + 1;
                    oversized += 1;
                }
                let (a, z) = (&words[first], &words[last - 1]);
                let ordinal = chunks.len() as u32;
                chunks.push(Chunk {
                    chunk_id: ids.id(ordinal),
                    ordinal,
                    text: region[a.byte_start..z.byte_end].to_owned(),
                    token_count: tokens,
                    location: Some(ChunkLocation {
                        page,
                        section: section_path(sections, a.char_start),
                        char_start: a.char_start,
                        char_end: z.char_end,
                    }),
                    metadata: Default::default(),
                });
                if last >= words.len() {
                    break;
                }
                // Step back over whole words worth at most `overlap` tokens.
                let mut next = last;
                let mut shared = 0u32;
                while next > first + 1 && shared + words[next - 1].tokens <= overlap {
                    next -= 1;
                    shared += words[next].tokens;
                }
                first = next;
            }
        }
        if oversized > 0 {
            warnings.push(format!(
                "{oversized} word(s) are longer than a chunk of {} tokens and were kept whole; \
                 the embedder will truncate those chunks",
                options.max_tokens
            ));
        }
        Ok(chunks)
    }
}

/// How a document's chunk ids are made: `UUIDv5(document id, "version/ordinal")` for the
/// document itself and `UUIDv5(document id, "version/part path/ordinal")` for its
/// attachments (part path = attachment indexes, `0`, `0.1`, …), so ids are stable across
/// re-parses of one version and distinct between a document and its parts. Without a
/// document id the namespace is derived from the content hash instead.
#[derive(Debug, Clone)]
pub struct ChunkIds {
    namespace: Uuid,
    version: u64,
    part: String,
}

impl ChunkIds {
    /// The ids of a top-level document (`sha256` of its bytes, used without a document id).
    pub fn for_document(document: Option<&DocumentRef>, sha256: &str) -> Self {
        let (namespace, version) = match document {
            Some(d) if !d.document_id.is_empty() => (
                Uuid::parse_str(&d.document_id).unwrap_or_else(|_| {
                    Uuid::new_v5(&Uuid::NAMESPACE_URL, d.document_id.as_bytes())
                }),
                d.version,
            ),
            _ => (
                Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("sha256:{sha256}").as_bytes()),
                0,
            ),
        };
        Self {
            namespace,
            version,
            part: String::new(),
        }
    }

    /// The ids of attachment `index` of this (part of a) document.
    pub fn part(&self, index: usize) -> Self {
        Self {
            namespace: self.namespace,
            version: self.version,
            part: if self.part.is_empty() {
                index.to_string()
            } else {
                format!("{}.{index}", self.part)
            },
        }
    }

    pub fn id(&self, ordinal: u32) -> String {
        let name = if self.part.is_empty() {
            format!("{}/{ordinal}", self.version)
        } else {
            format!("{}/{}/{ordinal}", self.version, self.part)
        };
        Uuid::new_v5(&self.namespace, name.as_bytes()).to_string()
    }
}

/// The headings that contain `at`, outermost first, joined by " > ".
fn section_path(sections: &[Section], at: u64) -> String {
    let mut path: Vec<&Section> = sections
        .iter()
        .filter(|s| s.char_start <= at && at < s.char_end.max(s.char_start + 1))
        .collect();
    path.sort_by_key(|s| s.level);
    path.iter()
        .map(|s| s.heading.as_str())
        .collect::<Vec<_>>()
        .join(" > ")
}
