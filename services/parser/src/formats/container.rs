//! Guards for zip containers (DOCX, XLSX) and the XML inside them: entry count, total
//! expanded size and per-entry compression ratio are checked from the central directory
//! and enforced again while reading; any DTD is refused.

use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::ParserSettings;
use crate::model::ParseError;

/// An opened, checked zip archive.
pub(crate) struct Container<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    format: &'static str,
    max_entry: u64,
}

impl<'a> Container<'a> {
    pub(crate) fn open(
        bytes: &'a [u8],
        format: &'static str,
        s: &ParserSettings,
    ) -> Result<Self, ParseError> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| ParseError::invalid(format, format!("corrupt zip container: {e}")))?;
        if archive.len() > s.max_zip_entries {
            return Err(ParseError::invalid(
                format,
                format!(
                    "{} zip entries, over the limit of {}",
                    archive.len(),
                    s.max_zip_entries
                ),
            ));
        }
        let mut total = 0u64;
        for i in 0..archive.len() {
            let entry = archive
                .by_index_raw(i)
                .map_err(|e| ParseError::invalid(format, format!("corrupt zip entry {i}: {e}")))?;
            if entry.encrypted() {
                return Err(ParseError::invalid(format, "the document is encrypted"));
            }
            let size = entry.size();
            let compressed = entry.compressed_size().max(1);
            if size / compressed > s.max_zip_ratio && size > 1024 * 1024 {
                return Err(ParseError::invalid(
                    format,
                    format!(
                        "zip entry `{}` expands {}x (limit {}x): refused as a zip bomb",
                        entry.name().unwrap_or_default(),
                        size / compressed,
                        s.max_zip_ratio
                    ),
                ));
            }
            total = total.saturating_add(size);
        }
        if total > s.max_unzipped_bytes {
            return Err(ParseError::invalid(
                format,
                format!(
                    "expands to {total} bytes, over the limit of {}",
                    s.max_unzipped_bytes
                ),
            ));
        }
        Ok(Self {
            archive,
            format,
            max_entry: s.max_unzipped_bytes,
        })
    }

    /// An entry's bytes, read with a hard cap (the declared size may lie).
    pub(crate) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ParseError> {
        let Some(index) = self.archive.index_for_name(name) else {
            return Ok(None);
        };
        let format = self.format;
        let entry = self
            .archive
            .by_index(index)
            .map_err(|e| ParseError::invalid(format, format!("cannot read `{name}`: {e}")))?;
        let mut out = Vec::new();
        entry
            .take(self.max_entry + 1)
            .read_to_end(&mut out)
            .map_err(|e| ParseError::invalid(format, format!("cannot inflate `{name}`: {e}")))?;
        if out.len() as u64 > self.max_entry {
            return Err(ParseError::invalid(
                format,
                format!("`{name}` inflates beyond the limit"),
            ));
        }
        Ok(Some(out))
    }

    /// The package's main part as `_rels/.rels` names it (the `officeDocument` relationship)
    /// when that part is there, else `default`: a producer may call `word/document.xml`
    /// anything.
    pub(crate) fn main_part(&mut self, default: &str) -> Result<String, ParseError> {
        let named = self
            .read("_rels/.rels")?
            .and_then(|rels| office_document(&rels))
            .filter(|part| self.archive.index_for_name(part).is_some());
        Ok(named.unwrap_or_else(|| default.to_owned()))
    }

    /// Every XML entry, checked for DTDs (refused everywhere: no entities, no expansion).
    pub(crate) fn refuse_dtds(&mut self) -> Result<(), ParseError> {
        let names: Vec<String> = self
            .archive
            .file_names()
            .filter_map(Result::ok)
            .filter(|n| n.ends_with(".xml") || n.ends_with(".rels"))
            .map(|n| n.into_owned())
            .collect();
        for name in names {
            if let Some(bytes) = self.read(&name)? {
                refuse_dtd(&bytes, self.format, &name)?;
            }
        }
        Ok(())
    }
}

/// Refuses an XML document that declares a DTD.
pub(crate) fn refuse_dtd(xml: &[u8], format: &'static str, name: &str) -> Result<(), ParseError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::DocType(_)) => {
                return Err(ParseError::invalid(
                    format,
                    format!("`{name}` declares a DTD; DTDs are refused (no entity expansion)"),
                ));
            }
            // The DTD can only come before the root element.
            Ok(Event::Start(_) | Event::Empty(_) | Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                return Err(ParseError::invalid(
                    format,
                    format!("`{name}` is not XML: {e}"),
                ));
            }
        }
        buf.clear();
    }
}

/// The target of the `officeDocument` relationship in a package's `_rels/.rels`, without a
/// leading `/`; `None` when there is none or the XML is not readable (a DTD included).
pub(crate) fn office_document(rels: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(rels);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "Relationship" => {
                let attr = |name: &str| {
                    e.attributes()
                        .filter_map(Result::ok)
                        .find(|a| a.key.local_name().as_ref() == name)
                        .map(|a| a.value.to_string())
                };
                if attr("Type").is_some_and(|t| t.ends_with("/officeDocument"))
                    && let Some(target) = attr("Target")
                {
                    return Some(target.trim_start_matches('/').to_owned());
                }
            }
            Event::DocType(_) | Event::Eof => return None,
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod main_part_tests {
    use super::*;

    #[test]
    fn the_office_document_relationship_names_the_main_part() {
        let rels = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="/word/blah_blah.xml"/></Relationships>"#;
        assert_eq!(office_document(rels).as_deref(), Some("word/blah_blah.xml"));
        assert_eq!(office_document(b"<Relationships/>"), None);
        assert_eq!(office_document(b"<!DOCTYPE x><Relationships/>"), None);
        assert_eq!(office_document(b"not xml <<"), None);
    }
}
