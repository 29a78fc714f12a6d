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
