//! PDF through PDFium (the engine of Chromium), loaded at run time from `libpdfium.so`
//! (`pdf.pdfium_library`; bootstrap links the build that PyPI's `pypdfium2` wheel ships).
//! The text layer of every page in content order; pages without one are handed to OCR when
//! it is on. PDFium is not thread-safe: `pdfium-render`'s `thread_safe` feature serialises
//! every call, so a parser process makes one PDFium call at a time (scale with replicas).
//! Only the crate's safe API is used (the workspace forbids `unsafe`).

use std::path::Path;
use std::sync::OnceLock;

use pdfium_render::prelude::*;

use crate::model::ParseError;

use super::FORMAT;

/// The library, bound once per process (PDFium keeps global state).
static PDFIUM: OnceLock<Result<Pdfium, String>> = OnceLock::new();

/// Binds `library` the first time; later calls return the same outcome whatever path they
/// name (a process has one PDFium).
pub(crate) fn engine(library: &Path) -> Result<&'static Pdfium, String> {
    PDFIUM
        .get_or_init(|| {
            Pdfium::bind_to_library(library)
                .map(Pdfium::new)
                .map_err(|e| format!("cannot load PDFium from {}: {e}", library.display()))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Opens `bytes` (an empty user password is tried, as every viewer does).
pub(crate) fn open<'a>(pdfium: &'a Pdfium, bytes: &'a [u8]) -> Result<PdfDocument<'a>, ParseError> {
    pdfium
        .load_pdf_from_byte_slice(bytes, None)
        .map_err(|e| ParseError::invalid(FORMAT, open_error(&e)))
}

/// A document information entry (`Title`, `Author`, …, `CreationDate`), trimmed.
pub(crate) fn meta(doc: &PdfDocument<'_>, tag: PdfDocumentMetadataTagType) -> Option<String> {
    let value = doc.metadata().get(tag)?;
    let text = value
        .value()
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_owned();
    (!text.is_empty()).then_some(text)
}

/// The page's characters in content order, cleaned (see `clean`). The bounds are far
/// beyond any page: `PdfPageText::all` bounds by the page size, which misses every character
/// of a rotated page.
pub(crate) fn page_text(page: &PdfPage<'_>) -> Result<String, PdfiumError> {
    const FAR: f32 = 1.0e7;
    let everywhere = PdfRect::new_from_values(-FAR, -FAR, FAR, FAR);
    Ok(clean(&page.text()?.inside_rect(everywhere)))
}

/// Renders the page at `width` × `height` pixels and returns it in 8-bit grey, rows of
/// `width` bytes. (PDFium renders into BGRA here: its grey bitmaps came out blank for image
/// pages.)
pub(crate) fn render_grey(page: &PdfPage<'_>, width: u32, height: u32) -> Option<Vec<u8>> {
    let config = PdfRenderConfig::new()
        .set_target_width(i32::try_from(width).ok()?)
        .set_target_height(i32::try_from(height).ok()?)
        .render_annotations(true);
    let bitmap = page.render_with_config(&config).ok()?;
    let (w, h) = (bitmap.width() as usize, bitmap.height() as usize);
    let rgba = bitmap.as_rgba_bytes();
    if w == 0 || h == 0 || rgba.len() != w * h * 4 {
        return None;
    }
    Some(
        rgba.chunks_exact(4)
            .map(|p| {
                ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000)
                    as u8
            })
            .collect(),
    )
}

/// Why PDFium cannot open a document, as the reason a user reads.
fn open_error(e: &PdfiumError) -> String {
    match e {
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::PasswordError) => {
            "the document is encrypted: it needs a password".to_owned()
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::SecurityError) => {
            "the document is encrypted with an unsupported security handler".to_owned()
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FormatError) => {
            "corrupt PDF: not a PDF, or damaged beyond repair".to_owned()
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FileError) => {
            "corrupt PDF: the file cannot be read (truncated?)".to_owned()
        }
        other => format!("corrupt PDF: PDFium cannot open it ({other:?})"),
    }
}

/// PDFium's page text as plain text: CR LF → LF, a generated hyphen (U+0002) or a soft
/// hyphen at a line end joins the word across the break, other control characters go, and
/// each line's right-to-left runs (which PDFium gives in visual order) are reversed.
pub(crate) fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{2}' | '\u{AD}' => {
                // A hyphen at a line end: the word goes on after the break.
                if chars.peek() == Some(&'\r') {
                    chars.next();
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                } else if chars.peek() == Some(&'\n') {
                    chars.next();
                } else if c == '\u{2}' {
                    out.push('-');
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' => {}
            c => out.push(c),
        }
    }
    if out.chars().any(is_rtl) {
        out = out
            .split('\n')
            .map(logical_order)
            .collect::<Vec<_>>()
            .join("\n");
    }
    out
}

fn is_rtl(c: char) -> bool {
    matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF)
}

/// Reverses each run of right-to-left letters (with the marks and spaces between them) of a
/// line given in visual order, so that the words read as written.
fn logical_order(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_rtl(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The run goes on over spaces and marks as long as another RTL letter follows.
        let mut end = i + 1;
        let mut j = i + 1;
        while j < chars.len() && (is_rtl(chars[j]) || chars[j] == ' ' || is_mark(chars[j])) {
            j += 1;
            if is_rtl(chars[j - 1]) || is_mark(chars[j - 1]) {
                end = j;
            }
        }
        out.extend(chars[i..end].iter().rev());
        i = end;
    }
    out
}

fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x064B..=0x065F | 0x0670 | 0x06D6..=0x06ED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_and_generated_hyphens() {
        assert_eq!(
            clean("Ein Dif\u{2}\r\nferential\r\nzwei"),
            "Ein Differential\nzwei"
        );
        assert_eq!(clean("soft\u{AD}\r\nhyphen"), "softhyphen");
        assert_eq!(clean("a\u{2}b\u{7}c"), "a-bc");
        assert_eq!(clean("x\ty\u{FFFE}"), "x\ty");
    }

    #[test]
    fn right_to_left_runs_read_in_logical_order() {
        // حَبيبي as PDFium gives it (visual order), between Latin words.
        let visual = "habibi \u{64A}\u{628}\u{64A}\u{628}\u{64E}\u{62D} end";
        assert_eq!(
            clean(visual),
            "habibi \u{62D}\u{64E}\u{628}\u{64A}\u{628}\u{64A} end"
        );
        // Two RTL words: their order is reversed too, the space kept between them.
        assert_eq!(
            clean("\u{628}\u{627} \u{62F}\u{62C}"),
            "\u{62C}\u{62F} \u{627}\u{628}"
        );
    }

    #[test]
    fn open_errors_name_the_reason() {
        let internal = PdfiumError::PdfiumLibraryInternalError;
        assert!(open_error(&internal(PdfiumInternalError::PasswordError)).contains("password"));
        assert!(open_error(&internal(PdfiumInternalError::FormatError)).starts_with("corrupt PDF"));
    }
}
