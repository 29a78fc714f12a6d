//! PDF: the text layer page by page (page numbers kept), document info as metadata.
//! Encrypted files are refused; Flate streams are inflated with a cap before text
//! extraction so a decompression bomb is refused instead of exhausting memory. A PDF with no
//! text at all (a scan) yields no text, no chunks and `no_text_layer` (there is no OCR).

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use apex_proto::parser::v1::Page;
use flate2::read::ZlibDecoder;
use lopdf::{Document, Object};

use crate::ParserSettings;
use crate::model::{Deadline, Extracted, ParseError, TextBuilder};

const FORMAT: &str = "pdf";

fn info_string(doc: &Document, key: &[u8]) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let dict = match info {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(d) => d,
        _ => return None,
    };
    match dict.get(key).ok()? {
        Object::String(bytes, _) => {
            let text = if bytes.starts_with(&[0xFE, 0xFF]) {
                let units: Vec<u16> = bytes[2..]
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            } else {
                bytes.iter().map(|b| char::from(*b)).collect()
            };
            let text = text.trim().to_owned();
            (!text.is_empty()).then_some(text)
        }
        _ => None,
    }
}

/// `D:20260315093000+01'00'` → `2026-03-15T09:30:00`.
fn pdf_date(raw: &str) -> String {
    let d = raw.trim_start_matches("D:");
    if d.len() >= 14 && d[..14].bytes().all(|b| b.is_ascii_digit()) {
        format!(
            "{}-{}-{}T{}:{}:{}",
            &d[..4],
            &d[4..6],
            &d[6..8],
            &d[8..10],
            &d[10..12],
            &d[12..14]
        )
    } else if d.len() >= 8 && d[..8].bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8])
    } else {
        raw.to_owned()
    }
}

fn is_flate(filter: Option<&Object>) -> bool {
    match filter {
        Some(Object::Name(n)) => n == b"FlateDecode",
        Some(Object::Array(a)) => a
            .iter()
            .any(|f| matches!(f, Object::Name(n) if n == b"FlateDecode")),
        _ => false,
    }
}

/// Inflates every Flate stream with a cap; refuses the document past `max` bytes in total.
fn check_streams(doc: &Document, max: u64, deadline: &Deadline) -> Result<(), ParseError> {
    let mut total = 0u64;
    for object in doc.objects.values() {
        let Object::Stream(stream) = object else {
            continue;
        };
        if !is_flate(stream.dict.get(b"Filter").ok()) {
            continue;
        }
        deadline.check()?;
        let budget = max.saturating_sub(total) + 1;
        let mut sink = std::io::sink();
        // A corrupt stream is the text extractor's problem; only the size matters here.
        let inflated = std::io::copy(
            &mut ZlibDecoder::new(stream.content.as_slice()).take(budget),
            &mut sink,
        )
        .unwrap_or(0);
        total += inflated;
        if total > max {
            return Err(ParseError::invalid(
                FORMAT,
                format!("streams inflate beyond {max} bytes: refused as a decompression bomb"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn parse(
    bytes: &[u8],
    s: &ParserSettings,
    deadline: &Deadline,
) -> Result<Extracted, ParseError> {
    let doc = Document::load_mem(bytes).map_err(|e| {
        let reason = e.to_string();
        if reason.to_ascii_lowercase().contains("encrypt")
            || reason.to_ascii_lowercase().contains("decrypt")
        {
            ParseError::invalid(FORMAT, "the document is encrypted")
        } else {
            ParseError::invalid(FORMAT, format!("corrupt PDF: {reason}"))
        }
    })?;
    if doc.is_encrypted() || doc.trailer.get(b"Encrypt").is_ok() {
        return Err(ParseError::invalid(FORMAT, "the document is encrypted"));
    }
    check_streams(&doc, s.max_unzipped_bytes, deadline)?;
    let page_count = doc.get_pages().len();
    let mut out = Extracted::default();
    for (key, name) in [
        (&b"Title"[..], "title"),
        (b"Author", "author"),
        (b"Subject", "subject"),
        (b"Producer", "producer"),
    ] {
        if let Some(v) = info_string(&doc, key) {
            out.metadata.insert(name.to_owned(), v);
        }
    }
    if let Some(created) = info_string(&doc, b"CreationDate") {
        out.metadata
            .insert("created".to_owned(), pdf_date(&created));
    }
    out.metadata
        .insert("page_count".to_owned(), page_count.to_string());
    deadline.check()?;
    // Text page by page from the document already loaded (and checked) above.
    let mut b = TextBuilder::new();
    let mut failed: Vec<(usize, String)> = Vec::new();
    for i in 0..page_count {
        deadline.check()?;
        let mut text = String::new();
        // pdf-extract panics on some malformed pages (missing fonts, boxes, objects); that
        // is a property of the input: the page is skipped with a warning, not an internal
        // error (and a PDF with no readable page at all is refused as corrupt).
        let page = catch_unwind(AssertUnwindSafe(|| {
            let mut output = pdf_extract::PlainTextOutput::new(&mut text);
            pdf_extract::output_doc_page(&doc, &mut output, i as u32 + 1).map_err(|e| e.to_string())
        }))
        .unwrap_or_else(|panic| {
            Err(panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the text extractor panicked".to_owned()))
        });
        if let Err(reason) = page {
            // One unreadable page does not cost the others: it is skipped and said so. Only
            // a document none of whose pages can be read is refused (below).
            failed.push((i + 1, reason));
            continue;
        }
        if let Some((start, end)) = b.push_block(&text) {
            out.pages.push(Page {
                number: i as u32 + 1,
                char_start: start,
                char_end: end,
            });
        }
    }
    if !failed.is_empty() && failed.len() == page_count {
        let (page, reason) = &failed[0];
        return Err(ParseError::invalid(
            FORMAT,
            format!("corrupt PDF: the text of no page can be extracted (page {page}: {reason})"),
        ));
    }
    for (page, reason) in &failed {
        out.warnings.push(format!(
            "page_skipped: the text of page {page} cannot be extracted ({reason}); the other pages are read"
        ));
    }
    out.text = b.finish();
    if out.text.is_empty() {
        out.no_text_layer = true;
        out.warnings.push(format!(
            "no_text_layer: none of the {page_count} page(s) has a text layer (a scan?); there is no OCR, so there are no chunks"
        ));
    }
    Ok(out)
}
