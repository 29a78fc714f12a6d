//! Markdown: text without markup, headings as sections, tables as rows.

use apex_proto::parser::v1::{Row, Section, Table};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::model::{Extracted, TextBuilder, close_sections};

fn level(l: HeadingLevel) -> u32 {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

pub(crate) fn parse(source: &str) -> Extracted {
    let mut b = TextBuilder::new();
    let mut out = Extracted::default();
    let mut block = String::new();
    let mut heading: Option<u32> = None;
    let mut table: Option<Table> = None;
    let mut row: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut in_cell = false;
    for event in Parser::new_ext(
        source,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    ) {
        match event {
            Event::Start(Tag::Heading { level: l, .. }) => {
                b.push_block(&std::mem::take(&mut block));
                heading = Some(level(l));
            }
            Event::End(TagEnd::Heading(_)) => {
                let text = std::mem::take(&mut block);
                let title = text.trim().to_owned();
                if let (Some(level), Some((start, _))) = (heading.take(), b.push_block(&text)) {
                    if level == 1 && !out.metadata.contains_key("title") {
                        out.metadata.insert("title".to_owned(), title.clone());
                    }
                    out.sections.push(Section {
                        heading: title,
                        level,
                        char_start: start,
                        char_end: 0,
                    });
                }
            }
            Event::Start(Tag::Table(_)) => {
                b.push_block(&std::mem::take(&mut block));
                table = Some(Table::default());
            }
            Event::End(TagEnd::Table) => {
                if let Some(t) = table.take() {
                    let mut lines = vec![t.header.join(" | ")];
                    lines.extend(t.rows.iter().map(|r| r.cells.join(" | ")));
                    b.push_block(&lines.join("\n"));
                    out.tables.push(t);
                }
            }
            Event::Start(Tag::TableCell) => {
                in_cell = true;
                cell.clear();
            }
            Event::End(TagEnd::TableCell) => {
                in_cell = false;
                row.push(cell.trim().to_owned());
            }
            Event::End(TagEnd::TableHead) => {
                if let Some(t) = table.as_mut() {
                    t.header = std::mem::take(&mut row);
                }
            }
            Event::End(TagEnd::TableRow) => {
                if let Some(t) = table.as_mut() {
                    t.rows.push(Row {
                        cells: std::mem::take(&mut row),
                    });
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if in_cell {
                    cell.push_str(&t);
                } else {
                    block.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => block.push('\n'),
            Event::End(
                TagEnd::Paragraph | TagEnd::Item | TagEnd::CodeBlock | TagEnd::BlockQuote(_),
            ) => {
                b.push_block(&std::mem::take(&mut block));
            }
            _ => {}
        }
    }
    b.push_block(&block);
    let chars = b.len_chars();
    out.text = b.finish();
    close_sections(&mut out.sections, chars);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_become_sections_and_markup_is_dropped() {
        let md = "# Guide\n\nIntro with **bold** and `code`.\n\n## Setup\n\nRun *it*.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let out = parse(md);
        assert_eq!(
            out.text,
            "Guide\n\nIntro with bold and code.\n\nSetup\n\nRun it.\n\na | b\n1 | 2"
        );
        assert_eq!(out.metadata["title"], "Guide");
        let s: Vec<(&str, u32)> = out
            .sections
            .iter()
            .map(|s| (s.heading.as_str(), s.level))
            .collect();
        assert_eq!(s, [("Guide", 1), ("Setup", 2)]);
        let setup = &out.sections[1];
        let body: String = out
            .text
            .chars()
            .skip(setup.char_start as usize)
            .take((setup.char_end - setup.char_start) as usize)
            .collect();
        assert!(body.starts_with("Setup\n\nRun it."), "{body}");
        assert_eq!(out.tables[0].header, ["a", "b"]);
        assert_eq!(out.tables[0].rows[0].cells, ["1", "2"]);
    }
}
