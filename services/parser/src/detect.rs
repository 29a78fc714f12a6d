//! Format detection by content (magic bytes, then structure), with the declared MIME type and
//! file name as hints. A hint that disagrees with the content is reported as a warning; the
//! content decides.

use std::io::Cursor;

use crate::text::{Decoded, decode, looks_textual};

/// A format the parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Docx,
    Xlsx,
    Csv,
    Tsv,
    Html,
    Markdown,
    Text,
    Json,
    Email,
    EdiX12,
    /// Images, read by OCR.
    Png,
    Jpeg,
    Tiff,
}

impl Format {
    /// The name reported in `ParsedDocument.format`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Xlsx => "xlsx",
            Self::Csv => "csv",
            Self::Tsv => "tsv",
            Self::Html => "html",
            Self::Markdown => "markdown",
            Self::Text => "text",
            Self::Json => "json",
            Self::Email => "email",
            Self::EdiX12 => "edi-x12",
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Tiff => "tiff",
        }
    }

    fn from_hint(file_name: &str, mime_type: &str) -> Option<Self> {
        let mime = mime_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let by_mime = match mime.as_str() {
            "application/pdf" => Some(Self::Pdf),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                Some(Self::Docx)
            }
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => Some(Self::Xlsx),
            "text/csv" => Some(Self::Csv),
            "text/tab-separated-values" => Some(Self::Tsv),
            "text/html" | "application/xhtml+xml" => Some(Self::Html),
            "text/markdown" | "text/x-markdown" => Some(Self::Markdown),
            "text/plain" => Some(Self::Text),
            "application/json" => Some(Self::Json),
            "message/rfc822" => Some(Self::Email),
            "application/edi-x12" => Some(Self::EdiX12),
            "image/png" => Some(Self::Png),
            "image/jpeg" => Some(Self::Jpeg),
            "image/tiff" => Some(Self::Tiff),
            _ => None,
        };
        let ext = file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let by_ext = match ext.as_str() {
            "pdf" => Some(Self::Pdf),
            "docx" => Some(Self::Docx),
            "xlsx" => Some(Self::Xlsx),
            "csv" => Some(Self::Csv),
            "tsv" | "tab" => Some(Self::Tsv),
            "html" | "htm" | "xhtml" => Some(Self::Html),
            "md" | "markdown" => Some(Self::Markdown),
            "txt" | "text" | "log" => Some(Self::Text),
            "json" => Some(Self::Json),
            "eml" => Some(Self::Email),
            "edi" | "x12" | "204" | "210" | "214" | "990" => Some(Self::EdiX12),
            "png" => Some(Self::Png),
            "jpg" | "jpeg" => Some(Self::Jpeg),
            "tif" | "tiff" => Some(Self::Tiff),
            _ => None,
        };
        by_mime.or(by_ext)
    }
}

/// The detected format, the decoded text for text formats, and any hint mismatch warning.
#[derive(Debug)]
pub(crate) struct Detection {
    pub(crate) format: Format,
    pub(crate) decoded: Option<Decoded>,
    pub(crate) warning: Option<String>,
}

/// Why nothing could be detected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Undetected {
    /// A zip archive that is neither DOCX nor XLSX.
    OtherZip,
    /// Binary content of no known format.
    Binary,
    /// Old binary Office formats.
    LegacyOffice,
    /// A password-protected DOCX/XLSX (an OLE container holding `EncryptedPackage`).
    EncryptedOffice,
    /// Zero bytes under the name or type of a binary format (an empty `.pdf`).
    EmptyBinary(Format),
}

fn zip_kind(bytes: &[u8]) -> Option<Format> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    if archive.index_for_name("word/document.xml").is_some() {
        return Some(Format::Docx);
    }
    if archive.index_for_name("xl/workbook.xml").is_some() {
        return Some(Format::Xlsx);
    }
    // A main part under another name: the package's relationships say which it is.
    let mut rels = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(archive.by_name("_rels/.rels").ok()?, 256 * 1024),
        &mut rels,
    )
    .ok()?;
    let main = crate::formats::container::office_document(&rels)?;
    if main.starts_with("word/") && archive.index_for_name(&main).is_some() {
        Some(Format::Docx)
    } else {
        None
    }
}

fn image_kind(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(Format::Tiff)
    } else {
        None
    }
}

fn is_email(text: &str) -> bool {
    const HEADERS: &[&str] = &[
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "received",
        "return-path",
        "cc",
        "reply-to",
        "content-type",
    ];
    let mut known = 0;
    // An mbox postmark (`From sender date`) may come first.
    let text = match text.strip_prefix("From ") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, headers)| headers),
        None => text,
    };
    for line in text.lines().take(200) {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue; // folded header line
        }
        let Some((name, _)) = line.split_once(':') else {
            return false;
        };
        if name.is_empty() || name.contains(' ') {
            return false;
        }
        if HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            known += 1;
        }
    }
    known >= 2
}

fn is_html(text: &str) -> bool {
    let head: String = text
        .trim_start()
        .chars()
        .take(1024)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || head.contains("<html")
        || (head.starts_with('<') && (head.contains("<head") || head.contains("<body")))
}

fn is_json(text: &str) -> bool {
    let t = text.trim_start();
    (t.starts_with('{') || t.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

fn is_edi(text: &str) -> bool {
    let t = text.trim_start();
    t.len() >= 106
        && t.starts_with("ISA")
        && t[3..]
            .chars()
            .next()
            .is_some_and(|c| !c.is_alphanumeric() && !c.is_whitespace())
}

/// Fields per line, if at least two lines split consistently into more than one field.
fn consistent_delimiter(text: &str, delimiter: u8) -> bool {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut widths = Vec::new();
    for record in reader.records().take(20) {
        match record {
            Ok(r) => widths.push(r.len()),
            Err(_) => return false,
        }
    }
    widths.len() >= 2 && widths[0] > 1 && widths.iter().all(|w| *w == widths[0])
}

fn markdown_signals(text: &str) -> usize {
    let mut signals = 0;
    for line in text.lines().take(400) {
        let l = line.trim_start();
        if l.starts_with("# ") || l.starts_with("## ") || l.starts_with("### ") {
            signals += 2;
        } else if l.starts_with("```")
            || l.starts_with("- [")
            || l.starts_with("> ")
            || (l.contains("](") && l.contains('['))
        {
            signals += 1;
        }
    }
    signals
}

fn detect_text(text: &str, hint: Option<Format>) -> Format {
    if is_edi(text) {
        Format::EdiX12
    } else if is_json(text)
        || (hint == Some(Format::Json) && text.trim_start().starts_with(['{', '[']))
    {
        Format::Json
    } else if is_email(text) {
        Format::Email
    } else if is_html(text) {
        Format::Html
    } else if hint == Some(Format::Tsv) && consistent_delimiter(text, b'\t') {
        Format::Tsv
    } else if hint == Some(Format::Csv) && consistent_delimiter(text, b',') {
        Format::Csv
    } else if matches!(hint, Some(Format::Markdown)) || markdown_signals(text) >= 3 {
        Format::Markdown
    } else if consistent_delimiter(text, b'\t') {
        Format::Tsv
    } else if consistent_delimiter(text, b',') && text.lines().count() >= 3 {
        Format::Csv
    } else {
        Format::Text
    }
}

/// True when parsing `bytes` may run OCR: a PDF (pages without a text layer), an image,
/// what may be an email with attachments (which are parsed in turn: it starts with a header
/// name and carries base64, in any case), and anything with NUL bytes in its head (UTF-16
/// text, where neither would be seen). Markup and JSON (they start with `<`, `{` or `[`)
/// may carry base64 data URIs: never parsed, so no OCR. Cheap: a look at the head and one
/// substring search; it errs towards true.
pub(crate) fn may_need_ocr(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let first = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    head.windows(5).any(|w| w == b"%PDF-")
        || image_kind(bytes).is_some()
        || (head.contains(&0) && !bytes.starts_with(b"PK\x03\x04"))
        || (first.is_some_and(u8::is_ascii_alphabetic)
            && memchr::memmem::find_iter(bytes, b"64")
                .any(|at| at >= 4 && bytes[at - 4..at].eq_ignore_ascii_case(b"base")))
}

/// Detects the format of `bytes`; `file_name` and `mime_type` are hints only.
pub(crate) fn detect(
    bytes: &[u8],
    file_name: &str,
    mime_type: &str,
) -> Result<Detection, Undetected> {
    let hint = Format::from_hint(file_name, mime_type);
    if bytes.is_empty()
        && let Some(
            f @ (Format::Pdf
            | Format::Docx
            | Format::Xlsx
            | Format::Png
            | Format::Jpeg
            | Format::Tiff),
        ) = hint
    {
        return Err(Undetected::EmptyBinary(f));
    }
    let head = &bytes[..bytes.len().min(1024)];
    let (format, decoded) = if head.windows(5).any(|w| w == b"%PDF-") {
        (Format::Pdf, None)
    } else if let Some(image) = image_kind(bytes) {
        (image, None)
    } else if bytes.starts_with(b"PK\x03\x04") {
        (zip_kind(bytes).ok_or(Undetected::OtherZip)?, None)
    } else if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        let marker: Vec<u8> = "EncryptedPackage"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        if bytes.windows(marker.len()).any(|w| w == marker.as_slice()) {
            return Err(Undetected::EncryptedOffice);
        }
        return Err(Undetected::LegacyOffice);
    } else {
        let decoded = decode(bytes);
        if !looks_textual(&decoded) {
            return Err(Undetected::Binary);
        }
        (detect_text(&decoded.text, hint), Some(decoded))
    };
    let warning = match hint {
        Some(h) if h != format && !(h == Format::Text && decoded.is_some()) => {
            let declared = [
                (!file_name.is_empty()).then(|| format!("file name `{file_name}`")),
                (!mime_type.is_empty()).then(|| format!("MIME type `{mime_type}`")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ");
            Some(format!(
                "format mismatch: declared {} by {declared}, but the content is {}; parsed as {}",
                h.name(),
                format.name(),
                format.name()
            ))
        }
        _ => None,
    };
    Ok(Detection {
        format,
        decoded,
        warning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(bytes: &[u8], name: &str, mime: &str) -> Format {
        detect(bytes, name, mime).expect("detected").format
    }

    #[test]
    fn inputs_that_may_need_ocr_are_told_from_those_that_cannot() {
        // May: a PDF (even after a junk prefix), images, an email with an attachment in
        // any spelling of base64, UTF-16 text (its base64 would be spelt with NULs).
        assert!(may_need_ocr(b"\xef\xbb\xbf%PDF-1.7\n..."));
        assert!(may_need_ocr(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
        assert!(may_need_ocr(&[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(may_need_ocr(b"II*\0\x08\0\0\0"));
        for spelling in ["base64", "BASE64", "Base64", "bAsE64"] {
            let mail = format!(
                "From: a@example.com\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: {spelling}\r\n\r\niVBORw0KGgo=\r\n"
            );
            assert!(may_need_ocr(mail.as_bytes()), "{spelling}");
        }
        let utf16: Vec<u8> = "<html><body>Hello</body></html>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(may_need_ocr(&utf16));
        // Cannot: HTML, CSV, a zip container (DOCX/XLSX: its NULs are the zip's), numbers
        // that merely end in 64.
        assert!(!may_need_ocr(
            b"<html><body><p>Rate 1264 USD</p></body></html>"
        ));
        assert!(!may_need_ocr(b"id,amount\n1,64\n2,128\n"));
        assert!(!may_need_ocr(
            b"PK\x03\x04\x14\0\0\0\x08\0word/document.xml"
        ));
        assert!(!may_need_ocr(b"64"));
        assert!(!may_need_ocr(b""));
    }

    #[test]
    fn text_formats_are_told_apart_by_content() {
        assert_eq!(format(b"%PDF-1.7\n...", "", ""), Format::Pdf);
        assert_eq!(format(br#"{"a": [1, 2]}"#, "", ""), Format::Json);
        assert_eq!(
            format(
                b"From: a@example.com\nTo: b@example.com\nSubject: hi\n\nbody",
                "",
                ""
            ),
            Format::Email
        );
        assert_eq!(
            format(b"<!DOCTYPE html><html><body>x</body></html>", "", ""),
            Format::Html
        );
        assert_eq!(format(b"id\tname\n1\tAda\n2\tBob\n", "", ""), Format::Tsv);
        assert_eq!(format(b"id,name\n1,Ada\n2,Bob\n", "", ""), Format::Csv);
        assert_eq!(
            format(b"# Title\n\nSome text.\n\n## Part\n\nMore.", "", ""),
            Format::Markdown
        );
        assert_eq!(
            format(b"Just a sentence, with a comma.", "", ""),
            Format::Text
        );
        let isa = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *260101*1200*U*00401*000000001*0*P*>~";
        assert_eq!(format(isa.as_bytes(), "", ""), Format::EdiX12);
    }

    #[test]
    fn a_hint_that_disagrees_is_reported_and_content_wins() {
        let d = detect(br#"{"ok": true}"#, "notes.csv", "text/csv").expect("detected");
        assert_eq!(d.format, Format::Json);
        let w = d.warning.expect("mismatch warning");
        assert!(
            w.contains("declared csv") && w.contains("content is json"),
            "{w}"
        );
        // A matching hint gives no warning.
        assert!(
            detect(b"a,b\n1,2\n", "x.csv", "")
                .expect("d")
                .warning
                .is_none()
        );
    }

    #[test]
    fn utf16_without_a_bom_is_detected_by_its_content() {
        let utf16le =
            |t: &str| -> Vec<u8> { t.encode_utf16().flat_map(u16::to_le_bytes).collect() };
        let csv = utf16le(
            "DateTime,Bid,Ask\r\n07/19/2016 00:00:00.003,1.10476,1.10479\r\n07/19/2016 00:00:00.011,1.10477,1.10480\r\n",
        );
        assert_eq!(
            detect(&csv, "nobom-utf16le.txt", "").expect("csv").format,
            Format::Csv
        );
        let mail = utf16le(
            "MIME-Version: 1.0\nDate: Fri, 16 Dec 2022 17:04:16 -0500\nMessage-ID: <1@example.com>\nSubject: Test\nFrom: A <a@example.com>\nTo: B <b@example.com>\nContent-Type: text/plain\n\nHello.\n",
        );
        assert_eq!(
            detect(&mail, "fake-email-utf-16-le.eml", "")
                .expect("email")
                .format,
            Format::Email
        );
    }

    #[test]
    fn binary_and_unknown_zips_are_refused() {
        let bin: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
        assert_eq!(
            detect(&bin, "", "").expect_err("binary"),
            Undetected::Binary
        );
        let ole = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0];
        assert_eq!(
            detect(&ole, "a.doc", "").expect_err("ole"),
            Undetected::LegacyOffice
        );
    }
}
