//! The Apex Ingest parser: raw documents in, normalised text, metadata, structure and chunks
//! out (`apex.parser.v1`). Detection is by content; every format parser runs with the
//! configured limits, a cooperative deadline, and inside a panic boundary.

#[cfg(feature = "devtools")]
pub mod bench;
#[cfg(feature = "devtools")]
pub mod bench_corpus;
pub mod chunk;
#[cfg(feature = "testsuite")]
pub mod corpus;
pub mod detect;
mod formats;
#[cfg(feature = "testsuite")]
pub mod fuzz;
mod lang;
pub mod metrics;
mod model;
mod ocr;
#[cfg(feature = "testsuite")]
pub mod quality;
mod service;
mod text;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use apex_common::{Settings, Shutdown, service::ServiceSettings};
use apex_proto::common::v1::DocumentRef;
use apex_proto::parser::v1::{ParseOptions, ParsedDocument, Structure};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

pub use chunk::{ChunkOptions, Chunker};
pub use detect::Format;
pub use formats::pdf::{PdfEngine, PdfSettings};
pub use model::ParseError;
pub use ocr::OcrSettings;
pub use service::{ARTIFACT_CONTENT_TYPE, ParserGrpc};

use crate::detect::Undetected;
use crate::model::{Deadline, Extracted};

/// Settings of the parser (`APEX_PARSER__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ParserSettings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// The embedding model's `tokenizer.json` (chunks are sized in its tokens).
    pub tokenizer_path: PathBuf,
    /// Largest input accepted, in bytes.
    pub max_input_bytes: u64,
    /// Default chunk size in tokens, [CLS] and [SEP] included.
    pub max_chunk_tokens: u32,
    /// Default overlap between consecutive chunks, in tokens.
    pub overlap_tokens: u32,
    /// Per-document parsing deadline.
    pub parse_timeout_secs: u64,
    /// Deepest nesting accepted in HTML and JSON.
    pub max_depth: usize,
    /// Zip containers (DOCX, XLSX): most entries, most bytes after decompression, and the
    /// highest compression ratio of any entry.
    pub max_zip_entries: usize,
    pub max_unzipped_bytes: u64,
    pub max_zip_ratio: u64,
    /// How deep attachments may nest (an email in an email in …).
    pub max_part_depth: u32,
    /// The service parses inputs up to this size on the thread that received them, when
    /// they cannot need OCR (not a PDF or an image, nothing base64-encoded inside): a
    /// few milliseconds of work, done without handing the document to another thread and
    /// its reply back (10–15 % of a small document's round trip). Larger inputs and those
    /// that may need OCR go to the blocking pool. 0: always the pool.
    pub inline_max_bytes: u64,
    /// The PDF engine (`APEX_PARSER__PDF__ENGINE`, `…__PDFIUM_LIBRARY`).
    pub pdf: PdfSettings,
    /// OCR of scans and images (`APEX_PARSER__OCR__ENABLED`, `…__LANGUAGES`, …).
    pub ocr: OcrSettings,
}

/// Where bootstrap puts the model (`deploy/local/bootstrap`).
fn default_tokenizer() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/apex/tools/models/all-MiniLM-L6-v2/tokenizer.json")
}

impl Default for ParserSettings {
    fn default() -> Self {
        Self {
            service: ServiceSettings::with_ports(apex_common::ports::PARSER),
            tokenizer_path: default_tokenizer(),
            max_input_bytes: 64 * 1024 * 1024,
            max_chunk_tokens: 256,
            overlap_tokens: 32,
            parse_timeout_secs: 30,
            max_depth: 256,
            max_zip_entries: 10_000,
            max_unzipped_bytes: 512 * 1024 * 1024,
            max_zip_ratio: 200,
            max_part_depth: 4,
            inline_max_bytes: 1024 * 1024,
            pdf: PdfSettings::default(),
            ocr: OcrSettings::default(),
        }
    }
}

impl Settings for ParserSettings {
    const ENV_PREFIX: &'static str = "APEX_PARSER";

    fn validate(&self) -> Vec<String> {
        let mut p = self.service.validate();
        if self.max_input_bytes == 0 {
            p.push("max_input_bytes must be at least 1".to_owned());
        }
        if !(16..=8192).contains(&self.max_chunk_tokens) {
            p.push(format!(
                "max_chunk_tokens must be between 16 and 8192, not {}",
                self.max_chunk_tokens
            ));
        }
        if self.overlap_tokens >= self.max_chunk_tokens / 2 {
            p.push(format!(
                "overlap_tokens ({}) must be less than half of max_chunk_tokens ({})",
                self.overlap_tokens, self.max_chunk_tokens
            ));
        }
        if self.parse_timeout_secs == 0 {
            p.push("parse_timeout_secs must be at least 1".to_owned());
        }
        if self.max_depth < 8 {
            p.push("max_depth must be at least 8".to_owned());
        }
        p.extend(self.ocr.validate());
        p
    }
}

/// Parses documents; shared by the gRPC service, the benchmark and tests.
#[derive(Debug)]
pub struct Parser {
    settings: ParserSettings,
    chunker: Chunker,
}

/// What the caller says about a document besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hints<'a> {
    pub file_name: &'a str,
    pub mime_type: &'a str,
    pub document: Option<&'a DocumentRef>,
    pub options: Option<&'a ParseOptions>,
}

impl Parser {
    /// Loads the tokenizer named in `settings`.
    pub fn new(settings: ParserSettings) -> anyhow::Result<Self> {
        let chunker = Chunker::load(&settings.tokenizer_path)?;
        // The PDF engine is chosen (and PDFium loaded) once, at start.
        match formats::pdf::use_pdfium(&settings.pdf) {
            Ok(true) => {
                tracing::info!(library = %settings.pdf.pdfium_library.display(), "PDF engine: PDFium")
            }
            Ok(false) if settings.pdf.engine == PdfEngine::Auto => tracing::warn!(
                problem = formats::pdf::pdfium_problem(&settings.pdf).unwrap_or_default(),
                "PDF engine: pdf-extract, because PDFium cannot be loaded (slower, and no OCR of scanned PDF pages); run deploy/local/bootstrap or set APEX_PARSER__PDF__PDFIUM_LIBRARY"
            ),
            Ok(false) => tracing::info!("PDF engine: pdf-extract (pdf.engine)"),
            Err(problem) => anyhow::bail!("pdf.engine is pdfium but {problem}"),
        }
        Ok(Self { settings, chunker })
    }

    pub fn settings(&self) -> &ParserSettings {
        &self.settings
    }

    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    fn chunk_options(&self, options: Option<&ParseOptions>) -> ChunkOptions {
        let max_tokens = options
            .map(|o| o.max_chunk_tokens)
            .filter(|t| *t > 0)
            .unwrap_or(self.settings.max_chunk_tokens);
        let overlap_tokens = options
            .map(|o| o.overlap_tokens)
            .filter(|t| *t > 0)
            .unwrap_or(self.settings.overlap_tokens);
        ChunkOptions {
            max_tokens,
            overlap_tokens,
        }
    }

    /// Parses one document (and its attachments), blocking; call it off the async runtime.
    pub fn parse(&self, bytes: &[u8], hints: Hints<'_>) -> Result<ParsedDocument, ParseError> {
        let size = bytes.len() as u64;
        if size > self.settings.max_input_bytes {
            return Err(ParseError::TooLarge {
                size,
                limit: self.settings.max_input_bytes,
            });
        }
        if let Some(o) = hints.options
            && o.max_chunk_tokens > 0
            && !(16..=8192).contains(&o.max_chunk_tokens)
        {
            return Err(ParseError::invalid(
                "options",
                format!(
                    "max_chunk_tokens must be between 16 and 8192, not {}",
                    o.max_chunk_tokens
                ),
            ));
        }
        let deadline = Deadline::after(Duration::from_secs(self.settings.parse_timeout_secs));
        // Format parsers have their own boundary (naming the format); this one covers
        // detection, decoding and chunking too, so no input can take the process down.
        catch_unwind(AssertUnwindSafe(|| {
            let sha256 = hex::encode(Sha256::digest(bytes));
            let ids = chunk::ChunkIds::for_document(hints.document, &sha256);
            self.parse_part(bytes, sha256, hints, String::new(), &ids, 0, &deadline)
        }))
        .map_err(|panic| ParseError::Internal {
            format: "document",
            reason: panic_reason(panic.as_ref()),
        })?
    }

    /// Detection and text extraction only (no chunking, no attachments): what the
    /// benchmark compares with single-purpose libraries.
    pub fn extract_text(
        &self,
        bytes: &[u8],
        hints: Hints<'_>,
    ) -> Result<(Format, String), ParseError> {
        let deadline = Deadline::after(Duration::from_secs(self.settings.parse_timeout_secs));
        let (format, extracted, _) = self.detect_and_extract(bytes, hints, &deadline)?;
        Ok((format, extracted.text))
    }

    /// Detection, then the format's parser behind its panic boundary. Also returns the
    /// hint-mismatch warning, if any.
    fn detect_and_extract(
        &self,
        bytes: &[u8],
        hints: Hints<'_>,
        deadline: &Deadline,
    ) -> Result<(Format, Extracted, Option<String>), ParseError> {
        let detection = detect::detect(bytes, hints.file_name, hints.mime_type).map_err(|u| {
            ParseError::Unsupported(match u {
                Undetected::OtherZip => "a zip archive that is neither DOCX nor XLSX".to_owned(),
                Undetected::Binary => "binary content of no supported format".to_owned(),
                Undetected::LegacyOffice => {
                    "a legacy binary Office file (.doc/.xls); save it as DOCX/XLSX".to_owned()
                }
                Undetected::EmptyBinary(f) => {
                    return ParseError::invalid(f.name(), "the file is empty (0 bytes)");
                }
                Undetected::EncryptedOffice => {
                    return ParseError::invalid(
                        "office",
                        "the document is encrypted (password-protected Office file)",
                    );
                }
            })
        })?;
        let format = detection.format;
        let settings = &self.settings;
        let event_source = hints
            .document
            .and_then(|d| {
                d.source
                    .strip_prefix("webhook:")
                    .or_else(|| d.source.strip_prefix("poll:"))
            })
            .filter(|_| format == Format::Json);
        let extracted = contain(format, || match event_source {
            Some(source) => {
                formats::extract_event(source, bytes, detection.decoded.as_ref(), settings)
            }
            None => formats::extract(
                format,
                bytes,
                detection.decoded.as_ref(),
                settings,
                deadline,
            ),
        })?;
        Ok((format, extracted, detection.warning))
    }

    /// One document or attachment; `sha256` is the hex digest of `bytes`.
    #[allow(clippy::too_many_arguments)]
    fn parse_part(
        &self,
        bytes: &[u8],
        sha256: String,
        hints: Hints<'_>,
        name: String,
        ids: &chunk::ChunkIds,
        depth: u32,
        deadline: &Deadline,
    ) -> Result<ParsedDocument, ParseError> {
        let (format, extracted, mismatch) = self.detect_and_extract(bytes, hints, deadline)?;
        deadline.check()?;
        let Extracted {
            text,
            metadata,
            pages,
            sections,
            tables,
            records,
            attachments,
            mut warnings,
            no_text_layer,
        } = extracted;
        warnings.extend(mismatch);
        let mut metadata = metadata;
        if !metadata.contains_key("language")
            && let Some(language) = lang::guess(&text)
        {
            metadata.insert("language".to_owned(), language.to_owned());
        }
        let mut chunks = self.chunker.chunk(
            &text,
            &pages,
            &sections,
            self.chunk_options(hints.options),
            ids,
            deadline,
            &mut warnings,
        )?;
        ocr::mark_chunks(&mut chunks, &pages, &metadata);
        let mut parts = Vec::new();
        for (index, attachment) in attachments.into_iter().enumerate() {
            if depth + 1 > self.settings.max_part_depth {
                warnings.push(format!(
                    "attachment `{}` not parsed: attachments nest deeper than {}",
                    attachment.name, self.settings.max_part_depth
                ));
                continue;
            }
            let part_hints = Hints {
                file_name: &attachment.name,
                mime_type: &attachment.mime_type,
                document: None,
                options: hints.options,
            };
            match self.parse_part(
                &attachment.bytes,
                hex::encode(Sha256::digest(&attachment.bytes)),
                part_hints,
                attachment.name.clone(),
                &ids.part(index),
                depth + 1,
                deadline,
            ) {
                Ok(part) => parts.push(part),
                Err(ParseError::Deadline(d)) => return Err(ParseError::Deadline(d)),
                Err(e) => {
                    warnings.push(format!("attachment `{}` not parsed: {e}", attachment.name))
                }
            }
        }
        Ok(ParsedDocument {
            text,
            format: format.name().to_owned(),
            metadata: metadata.into_iter().collect(),
            chunks,
            sha256,
            warnings,
            structure: Some(Structure {
                pages,
                sections,
                tables,
            }),
            no_text_layer,
            records,
            parts,
            name,
        })
    }
}

/// Runs a format parser behind a panic boundary: a panic in third-party code becomes an
/// `Internal` error naming the format, and the process keeps serving.
fn contain(
    format: Format,
    f: impl FnOnce() -> Result<Extracted, ParseError>,
) -> Result<Extracted, ParseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| ParseError::Internal {
        format: format.name(),
        reason: panic_reason(panic.as_ref()),
    })?
}

fn panic_reason(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the parser panicked".to_owned())
}

/// Runs the parser service on `listener` until `shutdown`.
pub async fn run(
    settings: ParserSettings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    service::serve(settings, listener, metrics, shutdown).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use apex_common::ServiceError;

    use super::*;

    #[test]
    fn a_panicking_parser_is_contained_and_reported() {
        let err = contain(Format::Pdf, || panic!("bad font table")).expect_err("contained");
        assert!(
            matches!(&err, ParseError::Internal { format: "pdf", reason } if reason == "bad font table"),
            "{err}"
        );
        assert!(matches!(ServiceError::from(err), ServiceError::Internal(_)));
    }

    #[test]
    fn an_expired_deadline_stops_parsing_with_a_timeout() {
        let deadline = Deadline::after(Duration::ZERO);
        std::thread::yield_now();
        let settings = ParserSettings::default();
        let csv = "a,b\n1,2\n";
        let decoded = text::decode(csv.as_bytes());
        let err = formats::extract(
            Format::Csv,
            csv.as_bytes(),
            Some(&decoded),
            &settings,
            &deadline,
        )
        .expect_err("deadline passed");
        assert!(matches!(err, ParseError::Deadline(_)), "{err}");
        assert!(matches!(ServiceError::from(err), ServiceError::Timeout(_)));
    }
}
