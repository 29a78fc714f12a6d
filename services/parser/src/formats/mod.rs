//! One module per format; `extract` dispatches on the detected format.

pub(crate) mod container;
mod delimited;
mod docx;
mod edi;
mod email;
mod event;
mod html;
mod image;
mod json;
mod markdown;
pub(crate) mod pdf;
mod plain;
mod xlsx;

use std::collections::HashMap;

use apex_proto::parser::v1::Record;

use crate::ParserSettings;
use crate::detect::Format;
use crate::model::{Deadline, Extracted, ParseError};
use crate::text::{Decoded, decode};

/// A webhook delivery (a JSON document whose source is `webhook:<name>`): see [`event`].
pub(crate) fn extract_event(
    source: &str,
    bytes: &[u8],
    decoded: Option<&Decoded>,
    settings: &ParserSettings,
) -> Result<Extracted, ParseError> {
    let owned;
    let text = match decoded {
        Some(d) => d,
        None => {
            owned = decode(bytes);
            &owned
        }
    };
    event::parse(source, &text.text, settings.max_depth)
}

pub(crate) fn extract(
    format: Format,
    bytes: &[u8],
    decoded: Option<&Decoded>,
    settings: &ParserSettings,
    deadline: &Deadline,
) -> Result<Extracted, ParseError> {
    // Binary formats never need the bytes as text (decoding a 4 MB PDF with the encoding
    // detector cost more than PDFium's whole text extraction).
    match format {
        Format::Docx => return docx::parse(bytes, settings, deadline),
        Format::Xlsx => return xlsx::parse(bytes, settings, deadline),
        Format::Pdf => return pdf::parse(bytes, settings, deadline),
        Format::Png | Format::Jpeg | Format::Tiff => {
            return image::parse(format, bytes, settings, deadline);
        }
        _ => {}
    }
    let owned;
    let text = match decoded {
        Some(d) => d,
        None => {
            owned = decode(bytes);
            &owned
        }
    };
    let mut out = match format {
        Format::Text => plain::parse(text),
        Format::Markdown => markdown::parse(&text.text),
        Format::Html => html::parse(&text.text, settings.max_depth)?,
        Format::Json => json::parse(&text.text, settings.max_depth)?,
        Format::Csv => delimited::parse(&text.text, b',', deadline)?,
        Format::Tsv => delimited::parse(&text.text, b'\t', deadline)?,
        Format::EdiX12 => edi::parse(&text.text)?,
        // A message saved as UTF-16 (each byte of the RFC 5322 stream widened) is read as
        // the UTF-8 it decodes to; any other message is the byte stream its parts' charsets
        // describe.
        Format::Email if text.encoding.starts_with("UTF-16") => {
            email::parse(text.text.as_bytes(), settings.max_depth)?
        }
        Format::Email => email::parse(bytes, settings.max_depth)?,
        Format::Docx | Format::Xlsx | Format::Pdf | Format::Png | Format::Jpeg | Format::Tiff => {
            return Err(ParseError::Internal {
                format: format.name(),
                reason: "a binary format reached the text path".to_owned(),
            });
        }
    };
    if decoded.is_some() && text.encoding != "UTF-8" {
        out.metadata
            .insert("encoding".to_owned(), text.encoding.to_owned());
    }
    Ok(out)
}

/// A table row as a `column: value; …` line and a `row` record. Cells beyond the header are
/// named `column_N`; empty cells stay in the record but not in the line.
pub(crate) fn row_record(header: &[String], cells: &[String]) -> (String, Record) {
    let mut fields = HashMap::with_capacity(cells.len());
    let mut parts = Vec::with_capacity(cells.len());
    for (i, value) in cells.iter().enumerate() {
        let column = header
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("column_{}", i + 1));
        if !value.is_empty() {
            parts.push(format!("{column}: {value}"));
        }
        fields.insert(column, value.clone());
    }
    let record = Record {
        kind: "row".to_owned(),
        fields,
        json: String::new(),
    };
    (parts.join("; "), record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_saved_as_utf16_without_a_bom_gives_its_headers_and_body() {
        let message = "MIME-Version: 1.0\nDate: Fri, 16 Dec 2022 17:04:16 -0500\nMessage-ID: <1@example.com>\nSubject: Pallet count for load 4471\nFrom: Dock Office <dock@example.com>\nTo: Dispatch <dispatch@example.com>\nContent-Type: text/plain; charset=\"UTF-8\"\n\nTwenty-two pallets were loaded at door 7.\n";
        let bytes: Vec<u8> = message.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let detected = crate::detect::detect(&bytes, "note.eml", "").expect("detected");
        assert_eq!(detected.format, Format::Email);
        let out = extract(
            Format::Email,
            &bytes,
            detected.decoded.as_ref(),
            &ParserSettings::default(),
            &Deadline::after(std::time::Duration::from_secs(10)),
        )
        .expect("parsed");
        assert!(
            out.text
                .contains("Twenty-two pallets were loaded at door 7."),
            "{}",
            out.text
        );
        assert_eq!(
            out.metadata.get("encoding").map(String::as_str),
            Some("UTF-16LE")
        );
        assert!(
            out.metadata
                .values()
                .any(|v| v.contains("Pallet count for load 4471")),
            "{:?}",
            out.metadata
        );
    }

    #[test]
    fn a_docx_whose_main_part_has_another_name_is_found_through_its_relationships() {
        let document = r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Rate confirmation for load 8812.</w:t></w:r></w:p></w:body></w:document>"#;
        let rels = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/blah_blah.xml"/></Relationships>"#;
        let bytes = crate::corpus::zip(&[
            ("_rels/.rels", rels.as_bytes()),
            ("word/blah_blah.xml", document.as_bytes()),
        ]);
        let detected = crate::detect::detect(&bytes, "renamed.docx", "").expect("detected");
        assert_eq!(detected.format, Format::Docx);
        let out = extract(
            Format::Docx,
            &bytes,
            None,
            &ParserSettings::default(),
            &Deadline::after(std::time::Duration::from_secs(10)),
        )
        .expect("parsed");
        assert!(
            out.text.contains("Rate confirmation for load 8812."),
            "{}",
            out.text
        );

        // A relationship naming a part that is not there: the usual name is read instead.
        let dangling = crate::corpus::zip(&[
            ("_rels/.rels", rels.as_bytes()),
            ("word/document.xml", document.as_bytes()),
        ]);
        let settings = ParserSettings::default();
        let deadline = Deadline::after(std::time::Duration::from_secs(10));
        let out = extract(Format::Docx, &dangling, None, &settings, &deadline).expect("fallback");
        assert!(out.text.contains("load 8812"), "{}", out.text);
        // Neither: refused, naming the part.
        let empty = crate::corpus::zip(&[("_rels/.rels", rels.as_bytes())]);
        let e =
            extract(Format::Docx, &empty, None, &settings, &deadline).expect_err("no main part");
        assert!(e.to_string().contains("word/document.xml"), "{e}");
    }

    /// A two-page PDF whose pages use the font `f1` and `f2` (only /F1 exists).
    fn pdf_with_fonts(f1: &str, f2: &str) -> Vec<u8> {
        let pdf = crate::corpus::pdf(
            &[
                "Bill of lading 5531 for the Memphis lane.",
                "Consignee signature page.",
            ],
            "BOL",
        );
        // Byte offsets (the file is not UTF-8 throughout: its binary comment line).
        let at: Vec<usize> = pdf
            .windows(9)
            .enumerate()
            .filter(|(_, w)| *w == b"/F1 12 Tf")
            .map(|(i, _)| i)
            .collect();
        let (first, second) = (at[0], at[1]);
        let mut bytes = pdf.clone();
        bytes[first..first + 3].copy_from_slice(f1.as_bytes());
        bytes[second..second + 3].copy_from_slice(f2.as_bytes());
        bytes
    }

    #[test]
    fn a_page_whose_text_cannot_be_extracted_is_skipped_and_the_others_are_read() {
        // pdf-extract gives up on a page whose font is missing; PDFium reads it anyway.
        let mut settings = ParserSettings::default();
        let deadline = Deadline::after(std::time::Duration::from_secs(10));
        let one_bad = pdf_with_fonts("/F1", "/F9");
        let out = extract(Format::Pdf, &one_bad, None, &settings, &deadline).expect("PDFium");
        assert!(
            out.text.contains("Consignee signature page"),
            "{}",
            out.text
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        settings.pdf.engine = pdf::PdfEngine::PdfExtract;
        let deadline = Deadline::after(std::time::Duration::from_secs(10));
        let one_bad = pdf_with_fonts("/F1", "/F9");
        let out = extract(Format::Pdf, &one_bad, None, &settings, &deadline).expect("page 1 read");
        assert!(out.text.contains("Bill of lading 5531"), "{}", out.text);
        assert!(
            out.warnings
                .iter()
                .any(|w| w.starts_with("page_skipped") && w.contains("page 2")),
            "{:?}",
            out.warnings
        );
        let all_bad = pdf_with_fonts("/F9", "/F9");
        let e = extract(Format::Pdf, &all_bad, None, &settings, &deadline).expect_err("no page");
        assert!(e.to_string().contains("no page can be extracted"), "{e}");
    }
}
