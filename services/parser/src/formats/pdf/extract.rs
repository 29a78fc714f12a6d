//! The pure-Rust PDF engine (`pdf.engine = "pdf-extract"`, or `auto` without PDFium):
//! `pdf-extract` on a `lopdf` document, page by page. Encrypted files are refused. It cannot
//! render pages, so a PDF with no text at all (a scan) yields no text, no chunks and
//! `no_text_layer`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use lopdf::{Document, Object};

use crate::model::{Deadline, Extracted, ParseError, TextBuilder};

use super::{FORMAT, pdf_date};

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

pub(crate) fn parse(bytes: &[u8], deadline: &Deadline) -> Result<Extracted, ParseError> {
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
            out.pages
                .push(super::text_layer_page(i as u32 + 1, start, end));
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
            "no_text_layer: none of the {page_count} page(s) has a text layer (a scan?) and the pdf-extract engine cannot OCR, so there are no chunks"
        ));
    }
    Ok(out)
}
