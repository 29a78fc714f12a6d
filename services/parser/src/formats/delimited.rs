//! CSV and TSV: the first row is the header; every other row becomes a record and a line of
//! `column: value` pairs.

use apex_proto::parser::v1::{Row, Table};

use crate::model::{Deadline, Extracted, ParseError, TextBuilder};

pub(crate) fn parse(
    source: &str,
    delimiter: u8,
    deadline: &Deadline,
) -> Result<Extracted, ParseError> {
    let format = if delimiter == b'\t' { "tsv" } else { "csv" };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(source.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| ParseError::invalid(format, e.to_string()))?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if h.trim().is_empty() {
                format!("column_{}", i + 1)
            } else {
                h.trim().to_owned()
            }
        })
        .collect();
    let mut out = Extracted::default();
    let mut table = Table {
        name: String::new(),
        header: header.clone(),
        rows: Vec::new(),
    };
    let mut lines = Vec::new();
    for (n, record) in reader.records().enumerate() {
        if n % 4096 == 0 {
            deadline.check()?;
        }
        let record =
            record.map_err(|e| ParseError::invalid(format, format!("row {}: {e}", n + 2)))?;
        let cells: Vec<String> = record.iter().map(|c| c.trim().to_owned()).collect();
        if cells.iter().all(String::is_empty) {
            continue;
        }
        if cells.len() != header.len() {
            out.warnings.push(format!(
                "row {} has {} fields, the header has {}",
                n + 2,
                cells.len(),
                header.len()
            ));
        }
        let (line, record) = super::row_record(&header, &cells);
        lines.push(line);
        out.records.push(record);
        table.rows.push(Row { cells });
    }
    out.metadata
        .insert("rows".to_owned(), table.rows.len().to_string());
    out.metadata.insert("columns".to_owned(), header.join(", "));
    let mut b = TextBuilder::new();
    b.push_block(&lines.join("\n"));
    out.text = b.finish();
    out.tables.push(table);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rows_become_records_and_lines() {
        let d = Deadline::after(Duration::from_secs(5));
        let out = parse(
            "id,name,city\n1,Ada,\"London, UK\"\n2,Bob,Paris\n\n",
            b',',
            &d,
        )
        .expect("parses");
        assert_eq!(
            out.text,
            "id: 1; name: Ada; city: London, UK\nid: 2; name: Bob; city: Paris"
        );
        assert_eq!(out.records.len(), 2);
        assert_eq!(out.records[0].fields["city"], "London, UK");
        assert_eq!(out.tables[0].header, ["id", "name", "city"]);
        let tsv = parse("a\tb\n1\t2\n", b'\t', &d).expect("tsv");
        assert_eq!(tsv.records[0].fields["b"], "2");
    }

    #[test]
    fn ragged_rows_are_kept_with_a_warning() {
        let d = Deadline::after(Duration::from_secs(5));
        let out = parse("a,b\n1,2,3\n", b',', &d).expect("parses");
        assert_eq!(out.records[0].fields["column_3"], "3");
        assert!(
            out.warnings[0].contains("row 2 has 3 fields"),
            "{:?}",
            out.warnings
        );
    }
}
