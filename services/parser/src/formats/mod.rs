//! One module per format; `extract` dispatches on the detected format.

mod container;
mod delimited;
mod docx;
mod edi;
mod email;
mod html;
mod json;
mod markdown;
mod pdf;
mod plain;
mod xlsx;

use std::collections::HashMap;

use apex_proto::parser::v1::Record;

use crate::ParserSettings;
use crate::detect::Format;
use crate::model::{Deadline, Extracted, ParseError};
use crate::text::{Decoded, decode};

pub(crate) fn extract(
    format: Format,
    bytes: &[u8],
    decoded: Option<&Decoded>,
    settings: &ParserSettings,
    deadline: &Deadline,
) -> Result<Extracted, ParseError> {
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
        Format::Docx => docx::parse(bytes, settings, deadline)?,
        Format::Xlsx => xlsx::parse(bytes, settings, deadline)?,
        Format::Pdf => pdf::parse(bytes, settings, deadline)?,
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
}
