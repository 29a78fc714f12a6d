//! PDF: the text layer page by page (page numbers kept), document info as metadata, and OCR
//! for pages without a text layer (scans) when it is on. Two engines: PDFium (`pdfium`, the
//! default when its library loads) and `pdf-extract` on `lopdf` (`extract`, pure Rust, about
//! ten times slower). Before either reads anything, every Flate stream is inflated with a cap
//! so that a decompression bomb is refused instead of exhausting memory.

mod extract;
pub(crate) mod pdfium;
mod streams;

use std::path::PathBuf;

use apex_proto::parser::v1::Page;
use pdfium_render::prelude::PdfDocumentMetadataTagType as Tag;
use serde::{Deserialize, Serialize};

use crate::ParserSettings;
use crate::model::{Deadline, Extracted, ParseError, TextBuilder};
use crate::ocr;

pub(crate) const FORMAT: &str = "pdf";

/// Which engine reads PDFs (`APEX_PARSER__PDF__ENGINE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PdfEngine {
    /// PDFium when `pdfium_library` loads, else `pdf-extract` (said once in the log).
    #[default]
    Auto,
    /// PDFium, and the parser does not start without it.
    Pdfium,
    /// The pure-Rust `pdf-extract` (no OCR: it cannot render pages).
    PdfExtract,
}

/// PDF settings (`APEX_PARSER__PDF__…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PdfSettings {
    pub engine: PdfEngine,
    /// PDFium's shared library (bootstrap links the one PyPI's `pypdfium2` wheel ships).
    pub pdfium_library: PathBuf,
}

impl Default for PdfSettings {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self {
            engine: PdfEngine::Auto,
            pdfium_library: home.join(".cache/apex/tools/lib/libpdfium.so"),
        }
    }
}

/// The engine `settings` select in this process, loading PDFium if needed: `Ok(true)` for
/// PDFium, `Ok(false)` for pdf-extract; an error only when PDFium is required and missing.
pub(crate) fn use_pdfium(settings: &PdfSettings) -> Result<bool, String> {
    match settings.engine {
        PdfEngine::PdfExtract => Ok(false),
        PdfEngine::Pdfium => pdfium::engine(&settings.pdfium_library).map(|_| true),
        PdfEngine::Auto => Ok(pdfium::engine(&settings.pdfium_library).is_ok()),
    }
}

/// What `use_pdfium` could not load, for the start-up log in `auto` mode.
pub(crate) fn pdfium_problem(settings: &PdfSettings) -> Option<String> {
    pdfium::engine(&settings.pdfium_library).err()
}

pub(crate) fn parse(
    bytes: &[u8],
    s: &ParserSettings,
    deadline: &Deadline,
) -> Result<Extracted, ParseError> {
    streams::check(bytes, s.max_unzipped_bytes, deadline)?;
    match use_pdfium(&s.pdf) {
        Ok(true) => {}
        Ok(false) => return extract::parse(bytes, deadline),
        Err(reason) => return Err(internal(reason)),
    }
    let engine = pdfium::engine(&s.pdf.pdfium_library).map_err(internal)?;
    let doc = pdfium::open(engine, bytes)?;
    let page_count = usize::try_from(doc.pages().len()).unwrap_or(0);
    let mut out = Extracted::default();
    for (tag, name) in [
        (Tag::Title, "title"),
        (Tag::Author, "author"),
        (Tag::Subject, "subject"),
        (Tag::Producer, "producer"),
    ] {
        if let Some(v) = pdfium::meta(&doc, tag) {
            out.metadata.insert(name.to_owned(), v);
        }
    }
    if let Some(created) = pdfium::meta(&doc, Tag::CreationDate) {
        out.metadata
            .insert("created".to_owned(), pdf_date(&created));
    }
    out.metadata
        .insert("page_count".to_owned(), page_count.to_string());

    let mut b = TextBuilder::new();
    let mut ocr = ocr::Session::new(&s.ocr);
    let mut skipped = Vec::new();
    for i in 0..page_count {
        deadline.check()?;
        let page = i32::try_from(i).ok().and_then(|i| doc.pages().get(i).ok());
        let Some((page, text)) = page.and_then(|p| pdfium::page_text(&p).ok().map(|t| (p, t)))
        else {
            skipped.push(i + 1);
            continue;
        };
        let number = i as u32 + 1;
        if !text.trim().is_empty() {
            if let Some((start, end)) = b.push_block(&text) {
                out.pages.push(text_layer_page(number, start, end));
            }
            continue;
        }
        // No text layer: a scanned page, read by OCR when it is on and within its bounds.
        let Some(read) = ocr.page(number, deadline, |dpi, max_pixels| {
            let (w, h) = (page.width().value, page.height().value);
            let (width, height) = ocr::pixels_for(w, h, dpi, max_pixels)?;
            pdfium::render_grey(&page, width, height)
                .map(|grey| (ocr::pgm(width, height, &grey), width, height))
        }) else {
            continue;
        };
        if let Some((start, end)) = b.push_block(&read.text) {
            out.pages.push(Page {
                number,
                char_start: start,
                char_end: end,
                text_source: ocr::SOURCE.to_owned(),
                ocr_confidence: read.confidence,
            });
        }
    }
    if !skipped.is_empty() && skipped.len() == page_count {
        return Err(ParseError::invalid(
            FORMAT,
            "corrupt PDF: no page can be loaded",
        ));
    }
    for page in &skipped {
        out.warnings.push(format!(
            "page_skipped: page {page} cannot be loaded; the other pages are read"
        ));
    }
    out.warnings.extend(ocr.finish(&mut out.metadata));
    out.text = b.finish();
    if out.text.is_empty() && page_count > 0 {
        out.no_text_layer = true;
        out.warnings.push(format!(
            "no_text_layer: none of the {page_count} page(s) has a text layer and OCR found no text ({}), so there are no chunks",
            if s.ocr.enabled { "OCR is on" } else { "OCR is off" }
        ));
    }
    Ok(out)
}

fn internal(reason: String) -> ParseError {
    ParseError::Internal {
        format: FORMAT,
        reason,
    }
}

fn text_layer_page(number: u32, start: u64, end: u64) -> Page {
    Page {
        number,
        char_start: start,
        char_end: end,
        text_source: "text_layer".to_owned(),
        ocr_confidence: 0.0,
    }
}

/// `D:20260315093000+01'00'` → `2026-03-15T09:30:00`.
pub(crate) fn pdf_date(raw: &str) -> String {
    let d = raw.trim_start_matches("D:");
    let digits = |n: usize| d.len() >= n && d.as_bytes()[..n].iter().all(u8::is_ascii_digit);
    if digits(14) {
        format!(
            "{}-{}-{}T{}:{}:{}",
            &d[..4],
            &d[4..6],
            &d[6..8],
            &d[8..10],
            &d[10..12],
            &d[12..14]
        )
    } else if digits(8) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8])
    } else {
        raw.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_read_when_well_formed_and_are_kept_raw_otherwise() {
        assert_eq!(
            super::pdf_date("D:20260315093000+01'00'"),
            "2026-03-15T09:30:00"
        );
        assert_eq!(super::pdf_date("D:20260315"), "2026-03-15");
        // Found by the fuzzer: a multi-byte character where the digits should be.
        let odd = "2Ñł·‘×9'Ãbs;0260315093000Z";
        assert_eq!(super::pdf_date(odd), odd);
    }
}
