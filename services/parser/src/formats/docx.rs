//! DOCX (WordprocessingML): paragraphs, headings (Title / Heading N styles) as sections,
//! tables as rows, core properties as metadata. Read with quick-xml behind the container
//! guard; DTDs are refused.

use apex_proto::parser::v1::{Row, Section, Table};
use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

use super::container::Container;
use crate::ParserSettings;
use crate::model::{Deadline, Extracted, ParseError, TextBuilder, close_sections};

const FORMAT: &str = "docx";

fn xml_error(e: impl std::fmt::Display) -> ParseError {
    ParseError::invalid(FORMAT, format!("word/document.xml is not valid XML: {e}"))
}

/// Heading level of a paragraph style (`Title` = 1, `Heading1` = 1, `Heading2` = 2, …).
fn heading_level(style: &str) -> Option<u32> {
    let s = style.to_ascii_lowercase();
    if s == "title" {
        return Some(1);
    }
    s.strip_prefix("heading")
        .and_then(|n| n.trim().parse::<u32>().ok())
        .filter(|n| (1..=9).contains(n))
}

/// Text of a general entity or character reference.
fn reference(name: &str) -> String {
    if let Some(code) = name.strip_prefix('#') {
        let value = code.strip_prefix('x').map_or_else(
            || code.parse::<u32>().ok(),
            |hex| u32::from_str_radix(hex, 16).ok(),
        );
        return value
            .and_then(char::from_u32)
            .map(String::from)
            .unwrap_or_default();
    }
    resolve_predefined_entity(name)
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn core_properties(xml: &[u8], out: &mut Extracted) -> Result<(), ParseError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut current: Option<&'static str> = None;
    loop {
        match reader.read_event_into(&mut buf).map_err(xml_error)? {
            Event::Start(e) => {
                current = match e.local_name().as_ref() {
                    "title" => Some("title"),
                    "creator" => Some("author"),
                    "created" => Some("created"),
                    "modified" => Some("modified"),
                    "subject" => Some("subject"),
                    _ => None,
                };
            }
            Event::Text(t) => {
                if let Some(key) = current {
                    let v = t.xml10_content().trim().to_owned();
                    if !v.is_empty() {
                        out.metadata.insert(key.to_owned(), v);
                    }
                }
            }
            Event::End(_) => current = None,
            Event::DocType(_) => {
                return Err(ParseError::invalid(
                    FORMAT,
                    "docProps/core.xml declares a DTD; DTDs are refused",
                ));
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

pub(crate) fn parse(
    bytes: &[u8],
    s: &ParserSettings,
    deadline: &Deadline,
) -> Result<Extracted, ParseError> {
    // Only the main part (`word/document.xml` unless `_rels/.rels` names another) and
    // core.xml are parsed here, each by a reader that refuses a DTD.
    let mut zip = Container::open(bytes, FORMAT, s)?;
    let main = zip.main_part("word/document.xml")?;
    let document = zip
        .read(&main)?
        .ok_or_else(|| ParseError::invalid(FORMAT, format!("the main part `{main}` is missing")))?;
    let mut out = Extracted::default();
    if let Some(core) = zip.read("docProps/core.xml")? {
        core_properties(&core, &mut out)?;
    }

    let mut body = Body::new(out);
    let mut reader = Reader::from_reader(document.as_slice());
    let mut buf = Vec::new();
    let mut events = 0u64;
    loop {
        events += 1;
        if events.is_multiple_of(65_536) {
            deadline.check()?;
        }
        let event = reader.read_event_into(&mut buf).map_err(xml_error)?;
        match event {
            Event::Start(e) | Event::Empty(e) => body.start(&e),
            Event::Text(t) if body.in_text => body.paragraph.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if body.in_text => body.paragraph.push_str(&reference(&r)),
            Event::End(e) => body.end(e.local_name().as_ref()),
            Event::DocType(_) => {
                return Err(ParseError::invalid(FORMAT, "DTDs are refused"));
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(body.finish())
}

/// The state of one read of `word/document.xml`: the text so far, the paragraph being
/// gathered with its style, and the tables, row and cell that are open.
struct Body {
    out: Extracted,
    b: TextBuilder,
    paragraph: String,
    style: Option<String>,
    in_text: bool,
    tables: Vec<Table>, // a stack: tables nest
    row: Vec<String>,
    cell: String,
}

impl Body {
    fn new(out: Extracted) -> Self {
        Self {
            out,
            b: TextBuilder::new(),
            paragraph: String::new(),
            style: None,
            in_text: false,
            tables: Vec::new(),
            row: Vec::new(),
            cell: String::new(),
        }
    }

    fn start(&mut self, e: &BytesStart<'_>) {
        match e.local_name().as_ref() {
            "t" => self.in_text = true,
            "tab" => self.paragraph.push('\t'),
            "br" | "cr" => self.paragraph.push('\n'),
            "pStyle" => {
                self.style = e
                    .attributes()
                    .filter_map(Result::ok)
                    .find(|a| a.key.local_name().as_ref() == "val")
                    .map(|a| a.value.to_string());
            }
            "tbl" => self.tables.push(Table::default()),
            "tc" => self.cell.clear(),
            _ => {}
        }
    }

    fn end(&mut self, local_name: &str) {
        match local_name {
            "t" => self.in_text = false,
            "p" => self.end_paragraph(),
            "tc" => self.row.push(std::mem::take(&mut self.cell)),
            "tr" => {
                if let Some(t) = self.tables.last_mut() {
                    let cells = std::mem::take(&mut self.row);
                    if t.header.is_empty() && t.rows.is_empty() {
                        t.header = cells;
                    } else {
                        t.rows.push(Row { cells });
                    }
                }
            }
            "tbl" => self.end_table(),
            _ => {}
        }
    }

    /// Inside a table a paragraph joins its cell; outside it is a block, and a section when
    /// its style is a heading (the first level-1 heading is the title unless core.xml has one).
    fn end_paragraph(&mut self) {
        let text = std::mem::take(&mut self.paragraph);
        let level = self.style.take().as_deref().and_then(heading_level);
        if !self.tables.is_empty() {
            if !self.cell.is_empty() && !text.is_empty() {
                self.cell.push(' ');
            }
            self.cell.push_str(text.trim());
        } else if let Some((start, _)) = self.b.push_block(&text)
            && let Some(level) = level
        {
            let heading = text.trim().to_owned();
            if level == 1 && !self.out.metadata.contains_key("title") {
                self.out
                    .metadata
                    .insert("title".to_owned(), heading.clone());
            }
            self.out.sections.push(Section {
                heading,
                level,
                char_start: start,
                char_end: 0,
            });
        }
    }

    /// A top-level table is a block of text; a nested one goes into the cell that holds it.
    fn end_table(&mut self) {
        if let Some(t) = self.tables.pop() {
            let mut lines = vec![t.header.join(" | ")];
            lines.extend(t.rows.iter().map(|r| r.cells.join(" | ")));
            if self.tables.is_empty() {
                self.b.push_block(&lines.join("\n"));
            } else {
                self.cell.push_str(&lines.join("; "));
            }
            self.out.tables.push(t);
        }
    }

    fn finish(mut self) -> Extracted {
        let chars = self.b.len_chars();
        self.out.text = self.b.finish();
        close_sections(&mut self.out.sections, chars);
        self.out
    }
}
