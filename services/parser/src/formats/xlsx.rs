//! XLSX: every sheet as a table; the first non-empty row of a sheet is its header and every
//! other row a record. calamine reads the cells, behind the container guard (DTDs refused).

use std::io::Cursor;

use apex_proto::parser::v1::{Row, Table};
use calamine::{Reader, Xlsx};

use super::container::Container;
use crate::ParserSettings;
use crate::model::{Deadline, Extracted, ParseError, TextBuilder};

const FORMAT: &str = "xlsx";

pub(crate) fn parse(
    bytes: &[u8],
    s: &ParserSettings,
    deadline: &Deadline,
) -> Result<Extracted, ParseError> {
    let mut zip = Container::open(bytes, FORMAT, s)?;
    zip.refuse_dtds()?;
    let mut out = Extracted::default();
    if let Some(core) = zip.read("docProps/core.xml")? {
        super::docx::core_properties(&core, &mut out)?;
    }
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e| ParseError::invalid(FORMAT, format!("cannot open the workbook: {e}")))?;
    let mut b = TextBuilder::new();
    let mut rows_total = 0usize;
    for sheet in workbook.sheet_names() {
        deadline.check()?;
        let range = workbook
            .worksheet_range(&sheet)
            .map_err(|e| ParseError::invalid(FORMAT, format!("sheet `{sheet}`: {e}")))?;
        let mut rows = range.rows().map(|r| {
            r.iter()
                .map(|c| c.to_string().trim().to_owned())
                .collect::<Vec<String>>()
        });
        let Some(header) = rows.by_ref().find(|r| r.iter().any(|c| !c.is_empty())) else {
            continue;
        };
        let header: Vec<String> = header
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                if h.is_empty() {
                    format!("column_{}", i + 1)
                } else {
                    h
                }
            })
            .collect();
        let mut table = Table {
            name: sheet.clone(),
            header: header.clone(),
            rows: Vec::new(),
        };
        let mut lines = vec![format!("Sheet {sheet}")];
        for cells in rows {
            if cells.iter().all(String::is_empty) {
                continue;
            }
            let (line, mut record) = super::row_record(&header, &cells);
            record.fields.insert("sheet".to_owned(), sheet.clone());
            lines.push(line);
            out.records.push(record);
            table.rows.push(Row { cells });
        }
        rows_total += table.rows.len();
        b.push_block(&lines.join("\n"));
        out.tables.push(table);
    }
    out.metadata
        .insert("sheets".to_owned(), out.tables.len().to_string());
    out.metadata
        .insert("rows".to_owned(), rows_total.to_string());
    out.text = b.finish();
    Ok(out)
}
