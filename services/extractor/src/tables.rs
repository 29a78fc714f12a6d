//! Values whose column or key says what they are: rows under a header (`shipment_id,pro,
//! bol,scac,…` in CSV, tab, pipe or space-aligned text) and JSON pairs (`"usdot":
//! "3120457"`). Only columns in the table below count, and identifiers still need a digit.

use std::sync::LazyLock;

use regex::Regex;

use crate::engine::{Found, confidence};
use crate::gazetteer::Gazetteer;
use crate::named;

/// The type a column or key names, from its words (lower case, without `no`, `number`,
/// `id`, `#`).
fn column_type(header: &str) -> Option<&'static str> {
    let words: Vec<String> = header
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| {
            !matches!(
                w.as_str(),
                "no" | "nr" | "num" | "number" | "id" | "nbr" | "ref"
            )
        })
        .collect();
    Some(match words.join(" ").as_str() {
        "shipment" | "shipment ref" => "SHIPMENT_NUMBER",
        "pro" => "PRO_NUMBER",
        "bol" | "bl" | "b l" | "bill of lading" | "mbl" | "hbl" => "BOL_NUMBER",
        "po" | "p o" | "purchase order" => "PO_NUMBER",
        "invoice" | "inv" => "INVOICE_NUMBER",
        "load" => "LOAD_NUMBER",
        "scac" | "carrier scac" => "SCAC",
        "usdot" | "dot" | "us dot" => "USDOT_NUMBER",
        "mc" => "MC_NUMBER",
        "container" | "cntr" => "CONTAINER_NUMBER",
        "vin" => "VIN",
        "carrier" | "carrier name" | "shipper" | "consignee" | "customer" | "bill to"
        | "vendor" | "payee" => "ORGANIZATION",
        "origin" | "dest" | "destination" | "origin city" | "destination city" => "LOCATION",
        "driver" | "driver name" => "PERSON",
        _ => return None,
    })
}

/// The entity a value of `entity_type` is, if it looks like one.
fn typed(entity_type: &'static str, value: &str) -> Option<(String, usize)> {
    let v = value.trim();
    match entity_type {
        "SCAC" => ((2..=4).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_uppercase()))
            .then(|| (v.to_owned(), v.len())),
        "USDOT_NUMBER" => ((5..=8).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| (v.to_owned(), v.len())),
        "MC_NUMBER" => {
            let digits = v.trim_start_matches("MC").trim_start_matches(['-', ' ']);
            ((5..=7).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (format!("MC{digits}"), v.len()))
        }
        "ORGANIZATION" => (v.chars().next().is_some_and(char::is_uppercase) && v.len() <= 80)
            .then(|| (named::org_key(v), v.len())),
        "PERSON" => (v.chars().next().is_some_and(char::is_uppercase) && v.len() <= 60)
            .then(|| (named::key(v), v.len())),
        "LOCATION" => {
            // "Joliet IL" / "Joliet, IL": the city.
            let city = match v.rsplit_once([' ', ',']) {
                Some((c, st)) if st.len() == 2 && st.bytes().all(|b| b.is_ascii_uppercase()) => {
                    c.trim_end_matches([',', ' '])
                }
                _ => v,
            };
            if !city.chars().next().is_some_and(char::is_uppercase) {
                return None;
            }
            let key = Gazetteer::location_key(city)
                .unwrap_or_else(|| format!("place:{}", named::key(city).replace(' ', "-")));
            Some((key, city.len()))
        }
        // Containers and VINs keep their check digits: the pattern finder decides those.
        "CONTAINER_NUMBER" | "VIN" => None,
        _ => ((3..=40).contains(&v.len())
            && v.chars().any(|c| c.is_ascii_digit())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-/_.".contains(c)))
        .then(|| (v.to_ascii_uppercase(), v.len())),
    }
}

fn found(entity_type: &'static str, key: String, start: usize, len: usize, text: &str) -> Found {
    Found {
        entity_type: entity_type.to_owned(),
        canonical_key: key,
        display_name: text[start..start + len].to_owned(),
        byte_start: start,
        byte_end: start + len,
        confidence: confidence(entity_type).min(0.9),
    }
}

/// Cells of a line: (byte start within the line, text), split on `sep` or, for `None`, on
/// runs of two or more spaces.
fn cells(line: &str, sep: Option<char>) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    match sep {
        Some(sep) => {
            let mut at = 0;
            for cell in line.split(sep) {
                let lead = cell.len() - cell.trim_start().len();
                out.push((at + lead, cell.trim()));
                at += cell.len() + sep.len_utf8();
            }
        }
        None => {
            let mut start = None;
            let mut spaces = 0;
            for (i, ch) in line.char_indices() {
                if ch == ' ' || ch == '\t' {
                    spaces += 1;
                    if (spaces >= 2 || ch == '\t')
                        && let Some(s) = start.take()
                    {
                        out.push((s, line[s..i + 1 - spaces].trim_end()));
                    }
                } else {
                    if start.is_none() || spaces >= 2 {
                        start = Some(i);
                    }
                    spaces = 0;
                }
            }
            if let Some(s) = start {
                out.push((s, line[s..].trim_end()));
            }
        }
    }
    out
}

/// Rows under a header line that names at least one known column.
fn table_values(text: &str, out: &mut Vec<Found>) {
    let mut lines: Vec<(usize, &str)> = Vec::new();
    let mut at = 0;
    for line in text.split('\n') {
        lines.push((at, line));
        at += line.len() + 1;
    }
    let mut i = 0;
    while i < lines.len() {
        let (_, header) = lines[i];
        let sep = [',', '\t', '|', ';']
            .into_iter()
            .find(|s| header.matches(*s).count() >= 2);
        let head = cells(header, sep);
        let types: Vec<Option<&'static str>> = head.iter().map(|(_, h)| column_type(h)).collect();
        let header_like = head.len() >= 2
            && head.iter().all(|(_, h)| {
                !h.is_empty()
                    && h.len() <= 40
                    && h.chars()
                        .all(|c| c.is_alphabetic() || " _#./-()".contains(c))
            });
        if !header_like || types.iter().all(Option::is_none) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < lines.len() {
            let (line_at, line) = lines[j];
            if line.trim().is_empty() {
                break;
            }
            let row = cells(line, sep);
            if sep.is_some() && row.len() != head.len() {
                break;
            }
            for (pos, (start, value)) in row.iter().enumerate() {
                // Delimited rows map by position; space-aligned rows by the nearest header
                // column start.
                let column = match sep {
                    Some(_) => Some(pos),
                    None => head
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (h, _))| h.abs_diff(*start))
                        .filter(|(_, (h, _))| h.abs_diff(*start) <= 4)
                        .map(|(c, _)| c),
                };
                if let Some(t) = column.and_then(|c| types.get(c).copied().flatten())
                    && let Some((key, len)) = typed(t, value)
                {
                    out.push(found(t, key, line_at + start, len, text));
                }
            }
            j += 1;
        }
        i = j;
    }
}

static JSON_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""([A-Za-z][A-Za-z0-9_ .-]{0,40})"\s*:\s*"([^"\\\n]{1,120})""#)
        .unwrap_or_else(|e| panic!("json pair pattern: {e}"))
});

/// JSON string pairs whose key names a known column.
fn json_values(text: &str, out: &mut Vec<Found>) {
    if !text.contains("\":") && !text.contains("\" :") {
        return;
    }
    for c in JSON_PAIR.captures_iter(text) {
        let (Some(k), Some(v)) = (c.get(1), c.get(2)) else {
            continue;
        };
        if let Some(t) = column_type(k.as_str())
            && let Some((key, len)) = typed(t, v.as_str())
        {
            out.push(found(t, key, v.start(), len, text));
        }
    }
}

/// Entities named by their column or key.
pub fn find(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    table_values(text, &mut out);
    json_values(text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn got(text: &str) -> Vec<(String, String, String)> {
        find(text)
            .into_iter()
            .map(|f| (f.entity_type, f.canonical_key, f.display_name))
            .collect()
    }

    #[test]
    fn csv_and_aligned_columns_type_their_values() {
        let csv = "shipment_id,pro,scac,origin,cost_usd\nSH-1001,48213102,RDGF,Smallville IL,1125.00\nSH-1002,,GPXE,Dallas,842.60\n\nnot,a,row";
        let g = got(csv);
        assert!(
            g.contains(&("SHIPMENT_NUMBER".into(), "SH-1001".into(), "SH-1001".into())),
            "{g:?}"
        );
        assert!(
            g.contains(&("PRO_NUMBER".into(), "48213102".into(), "48213102".into())),
            "{g:?}"
        );
        assert!(
            g.contains(&("SCAC".into(), "GPXE".into(), "GPXE".into())),
            "{g:?}"
        );
        assert!(
            g.contains(&(
                "LOCATION".into(),
                "place:smallville".into(),
                "Smallville".into()
            )),
            "{g:?}"
        );
        assert!(
            g.contains(&("LOCATION".into(), "city:dallas-us".into(), "Dallas".into())),
            "{g:?}"
        );
        assert!(
            !g.iter().any(|(_, _, d)| d == "1125.00"),
            "cost is not a known column: {g:?}"
        );
        let aligned = "Invoice #       Inv. Date     PO            Gross\nRFS-230871      02/10/2026    4500011920    $3,410.00\n";
        let g = got(aligned);
        assert_eq!(
            g,
            [
                (
                    "INVOICE_NUMBER".into(),
                    "RFS-230871".into(),
                    "RFS-230871".into()
                ),
                ("PO_NUMBER".into(), "4500011920".into(), "4500011920".into()),
            ]
        );
    }

    #[test]
    fn json_keys_type_their_values() {
        let g = got(
            r#"{"carrier": "Ridgeline Freight Systems, Inc.", "usdot": "3120457", "note": "PO 77"}"#,
        );
        assert!(
            g.contains(&("USDOT_NUMBER".into(), "3120457".into(), "3120457".into())),
            "{g:?}"
        );
        assert!(
            g.contains(&(
                "ORGANIZATION".into(),
                "ridgeline freight systems".into(),
                "Ridgeline Freight Systems, Inc.".into()
            )),
            "{g:?}"
        );
        assert_eq!(g.len(), 2, "{g:?}");
        // Prose with a colon is not a table or JSON.
        assert!(got("Note: the PO is late, the carrier, too.").is_empty());
    }
}
