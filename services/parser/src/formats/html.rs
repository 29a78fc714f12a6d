//! HTML: the main content as text (scripts, styles, navigation, headers, footers and forms
//! dropped), headings as sections, tables as rows, `<title>` and `<meta>` as metadata.
//! Traversal is iterative and nesting deeper than the limit is refused.

use apex_proto::parser::v1::{Row, Section, Table};
use ego_tree::NodeRef;
use ego_tree::iter::Edge;
use scraper::{Html, Node, Selector};

use crate::model::{Extracted, ParseError, TextBuilder, close_sections};

const DROPPED: &[&str] = &[
    "script", "style", "noscript", "nav", "header", "footer", "aside", "form", "template", "svg",
    "iframe", "button", "select", "head",
];
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "table",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "address",
    "hr",
];

fn selector(s: &str) -> Option<Selector> {
    Selector::parse(s).ok()
}

fn heading_level(name: &str) -> Option<u32> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

pub(crate) fn parse(source: &str, max_depth: usize) -> Result<Extracted, ParseError> {
    let html = Html::parse_document(source);
    let mut out = Extracted::default();
    read_metadata(&html, &mut out);

    // The main content when the page marks it; otherwise the whole body.
    let root = ["main", "article", "[role=main]", "body"]
        .iter()
        .filter_map(|s| selector(s))
        .find_map(|s| html.select(&s).next())
        .map_or_else(|| html.tree.root(), |e| *e);

    let mut walk = Walk::new(out);
    for edge in root.traverse() {
        match edge {
            Edge::Open(node) => {
                walk.depth += 1;
                if walk.depth > max_depth {
                    return Err(ParseError::invalid(
                        "html",
                        format!("elements nest deeper than {max_depth} levels"),
                    ));
                }
                if walk.skip_until.is_none() {
                    walk.open(node.value());
                }
            }
            Edge::Close(node) => walk.close(node),
        }
    }
    Ok(walk.finish())
}

/// `<title>`, the author, description and keywords `<meta>` and the `<html lang>`.
fn read_metadata(html: &Html, out: &mut Extracted) {
    if let Some(title) = selector("title").and_then(|s| html.select(&s).next()) {
        let t = title.text().collect::<String>().trim().to_owned();
        if !t.is_empty() {
            out.metadata.insert("title".to_owned(), t);
        }
    }
    if let Some(meta) = selector("meta[name]") {
        for m in html.select(&meta) {
            let (Some(name), Some(content)) = (m.value().attr("name"), m.value().attr("content"))
            else {
                continue;
            };
            let key = match name.to_ascii_lowercase().as_str() {
                "author" => "author",
                "description" => "description",
                "keywords" => "keywords",
                _ => continue,
            };
            out.metadata
                .insert(key.to_owned(), content.trim().to_owned());
        }
    }
    if let Some(lang) = selector("html[lang]")
        .and_then(|s| html.select(&s).next())
        .and_then(|e| e.value().attr("lang"))
    {
        out.metadata.insert("language".to_owned(), lang.to_owned());
    }
}

/// The state of one traversal of the content: the text so far, the block being gathered and
/// the heading, table, row and cell that are open.
struct Walk {
    out: Extracted,
    b: TextBuilder,
    block: String,
    depth: usize,
    /// The depth of the dropped element whose subtree is being skipped.
    skip_until: Option<usize>,
    heading: Option<u32>,
    table: Option<Table>,
    row: Vec<String>,
    cell: Option<String>,
}

impl Walk {
    fn new(out: Extracted) -> Self {
        Self {
            out,
            b: TextBuilder::new(),
            block: String::new(),
            depth: 0,
            skip_until: None,
            heading: None,
            table: None,
            row: Vec::new(),
            cell: None,
        }
    }

    fn open(&mut self, node: &Node) {
        match node {
            Node::Element(e) => {
                let name = e.name();
                if DROPPED.contains(&name) {
                    self.skip_until = Some(self.depth);
                } else if let Some(level) = heading_level(name) {
                    self.b.push_block(&std::mem::take(&mut self.block));
                    self.heading = Some(level);
                } else if name == "br" {
                    self.block.push('\n');
                } else if name == "table" {
                    self.b.push_block(&std::mem::take(&mut self.block));
                    self.table = Some(Table::default());
                } else if name == "td" || name == "th" {
                    self.cell = Some(String::new());
                } else if BLOCKS.contains(&name) {
                    self.b.push_block(&std::mem::take(&mut self.block));
                }
            }
            Node::Text(t) => match self.cell.as_mut() {
                Some(c) => c.push_str(t),
                None => self.block.push_str(t),
            },
            _ => {}
        }
    }

    fn close(&mut self, node: NodeRef<'_, Node>) {
        let closing_depth = self.depth;
        self.depth -= 1;
        if let Some(d) = self.skip_until {
            if d == closing_depth {
                self.skip_until = None;
            }
            return;
        }
        let Node::Element(e) = node.value() else {
            return;
        };
        let name = e.name();
        if let Some(level) = heading_level(name) {
            self.close_heading(level);
        } else if name == "td" || name == "th" {
            let text = self.cell.take().unwrap_or_default();
            self.row
                .push(text.split_whitespace().collect::<Vec<_>>().join(" "));
        } else if name == "tr" {
            self.close_row(node);
        } else if name == "table" {
            self.close_table();
        } else if BLOCKS.contains(&name) {
            self.b
                .push_block(&collapse(&std::mem::take(&mut self.block)));
        }
    }

    /// A heading that produced text becomes a section; an empty one is dropped.
    fn close_heading(&mut self, level: u32) {
        let text = std::mem::take(&mut self.block);
        let title = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if let (Some(_), Some((start, _))) = (self.heading.take(), self.b.push_block(&title)) {
            self.out.sections.push(Section {
                heading: title,
                level,
                char_start: start,
                char_end: 0,
            });
        }
    }

    /// The first row of a table is its header when it has `<th>` cells.
    fn close_row(&mut self, node: NodeRef<'_, Node>) {
        let cells = std::mem::take(&mut self.row);
        if let Some(t) = self.table.as_mut() {
            let header_row = t.header.is_empty()
                && t.rows.is_empty()
                && node
                    .children()
                    .any(|c| c.value().as_element().is_some_and(|e| e.name() == "th"));
            if header_row {
                t.header = cells;
            } else {
                t.rows.push(Row { cells });
            }
        }
    }

    fn close_table(&mut self) {
        if let Some(t) = self.table.take() {
            let mut lines = Vec::new();
            if !t.header.is_empty() {
                lines.push(t.header.join(" | "));
            }
            lines.extend(t.rows.iter().map(|r| r.cells.join(" | ")));
            self.b.push_block(&lines.join("\n"));
            self.out.tables.push(t);
        }
    }

    fn finish(mut self) -> Extracted {
        self.b.push_block(&collapse(&self.block));
        let chars = self.b.len_chars();
        self.out.text = self.b.finish();
        close_sections(&mut self.out.sections, chars);
        self.out
    }
}

/// Collapses the whitespace of HTML text (newlines from `<br>` are kept).
fn collapse(text: &str) -> String {
    text.split('\n')
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!doctype html><html lang="en"><head><title>Rates 2026</title>
        <meta name="author" content="Ops Team"><style>p{color:red}</style></head>
        <body><nav><a href="/">Home</a> | <a href="/x">Menu</a></nav>
        <header>Site header</header>
        <main><h1>Freight rates</h1><p>Rates   apply from <b>January</b>.</p>
        <script>var secret = 1;</script>
        <h2>Lanes</h2><table><tr><th>From</th><th>To</th></tr><tr><td>Chicago</td><td>Dallas</td></tr></table>
        <p>Line one<br>Line two</p></main>
        <footer>Copyright</footer></body></html>"#;

    #[test]
    fn main_content_only_with_sections_and_tables() {
        let out = parse(PAGE, 256).expect("parses");
        assert_eq!(
            out.text,
            "Freight rates\n\nRates apply from January.\n\nLanes\n\nFrom | To\nChicago | Dallas\n\nLine one\nLine two"
        );
        for dropped in ["Home", "Site header", "secret", "Copyright", "color"] {
            assert!(!out.text.contains(dropped), "{dropped} leaked");
        }
        assert_eq!(out.metadata["title"], "Rates 2026");
        assert_eq!(out.metadata["author"], "Ops Team");
        assert_eq!(out.metadata["language"], "en");
        assert_eq!(out.sections.len(), 2);
        assert_eq!(out.tables[0].header, ["From", "To"]);
        assert_eq!(out.tables[0].rows[0].cells, ["Chicago", "Dallas"]);
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let deep = format!(
            "<html><body>{}x{}</body></html>",
            "<div>".repeat(5000),
            "</div>".repeat(5000)
        );
        let err = parse(&deep, 256).expect_err("too deep");
        assert!(err.to_string().contains("deeper than 256"), "{err}");
    }
}
