//! X12 segments pasted into text (`N1*SH*APEX FOODS INC~`): the element positions say what
//! each value is, so parties, places, identifiers, dates and times are read from them
//! without a cue word. Segments are recognised by their id and `*` separators; anything
//! that is not X12 is left to the other finders.

use std::sync::LazyLock;

use regex::Regex;

use crate::engine::{Found, confidence};
use crate::gazetteer::Gazetteer;
use crate::named;

static SEGMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)(?:^|~)[ \t]*([A-Z][A-Z0-9]{1,2})\*([^~\r\n]*)")
        .unwrap_or_else(|e| panic!("segment pattern: {e}"))
});

/// Reference qualifiers (X12 element 128) of the identifier types.
fn qualifier_type(q: &str) -> Option<&'static str> {
    Some(match q {
        "PO" => "PO_NUMBER",
        "BM" | "MB" => "BOL_NUMBER",
        "CN" => "PRO_NUMBER",
        "LO" => "LOAD_NUMBER",
        "SI" | "SN" => "SHIPMENT_NUMBER",
        "IK" | "IV" | "IN" => "INVOICE_NUMBER",
        _ => return None,
    })
}

/// A shipment reference that names itself a bill of lading is one.
fn shipment_or_bol(value: &str) -> &'static str {
    let upper = value.to_ascii_uppercase();
    if upper
        .split(['-', '/', '_'])
        .any(|p| p == "BOL" || p == "BL")
    {
        "BOL_NUMBER"
    } else {
        "SHIPMENT_NUMBER"
    }
}

fn valid_ccyymmdd(v: &str) -> Option<String> {
    if v.len() != 8 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d): (u32, u32, u32) = (
        v[..4].parse().ok()?,
        v[4..6].parse().ok()?,
        v[6..].parse().ok()?,
    );
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => return None,
    };
    ((1990..=2100).contains(&y) && (1..=days).contains(&d)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

fn valid_hhmm(v: &str) -> Option<String> {
    if v.len() != 4 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u32, u32) = (v[..2].parse().ok()?, v[2..].parse().ok()?);
    (h < 24 && m < 60).then(|| format!("{h:02}:{m:02}"))
}

fn identifier(v: &str) -> bool {
    (3..=40).contains(&v.len())
        && v.chars().any(|c| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_.".contains(c))
}

type Element<'a> = Option<(&'a str, usize)>;

fn ident(e: Element<'_>) -> Element<'_> {
    e.filter(|(v, _)| identifier(v))
}

fn scac(e: Element<'_>) -> Element<'_> {
    e.filter(|(v, _)| (2..=4).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_uppercase()))
}

/// One segment's elements with the byte offset of each in the text.
struct Segment<'a> {
    elements: Vec<(&'a str, usize)>,
}

impl<'a> Segment<'a> {
    fn split(body: regex::Match<'a>) -> Self {
        // Elements with their byte ranges; element 1 is the first after the id.
        let mut elements: Vec<(&str, usize)> = Vec::new();
        let mut at = body.start();
        for e in body.as_str().split('*') {
            elements.push((e, at));
            at += e.len() + 1;
        }
        Self { elements }
    }

    /// Element `n` (1-based, as X12 numbers them) unless it is blank.
    fn el(&self, n: usize) -> Element<'a> {
        self.elements
            .get(n.wrapping_sub(1))
            .copied()
            .filter(|(v, _)| !v.trim().is_empty())
    }
}

fn push(out: &mut Vec<Found>, entity_type: &str, key: String, (v, start): (&str, usize)) {
    let trimmed = v.trim_end();
    out.push(Found {
        entity_type: entity_type.to_owned(),
        canonical_key: key,
        display_name: trimmed.to_owned(),
        byte_start: start,
        byte_end: start + trimmed.len(),
        confidence: confidence(entity_type).max(0.9),
    });
}

/// Entities read from X12 segments in `text`.
pub fn find(text: &str) -> Vec<Found> {
    if !text.contains('*') {
        return Vec::new();
    }
    let mut out = Vec::new();
    for c in SEGMENT.captures_iter(text) {
        let (Some(id), Some(body)) = (c.get(1), c.get(2)) else {
            continue;
        };
        let id = id.as_str();
        let segment = Segment::split(body);
        match id {
            "B10" | "B2" | "B3" => shipment_header(id, &segment, &mut out),
            "BEG" | "BIG" => order_header(id, &segment, &mut out),
            "L11" | "N9" => qualified_reference(id, &segment, &mut out),
            "MS2" | "N1" | "N4" | "MS1" => party_or_place(id, &segment, &mut out),
            _ => {}
        }
        dates_and_times(id, &segment, &mut out);
    }
    out
}

/// The beginning segments of the transport sets: 214 status, 204 tender, 210 invoice.
fn shipment_header(id: &str, s: &Segment<'_>, out: &mut Vec<Found>) {
    match id {
        // 214 status: carrier reference (PRO), shipment id, SCAC.
        "B10" => {
            if let Some(e) = ident(s.el(1)) {
                push(out, "PRO_NUMBER", e.0.to_ascii_uppercase(), e);
            }
            if let Some(e) = ident(s.el(2)) {
                push(out, shipment_or_bol(e.0), e.0.to_ascii_uppercase(), e);
            }
            if let Some(e) = scac(s.el(3)) {
                push(out, "SCAC", e.0.to_owned(), e);
            }
        }
        // 204 tender: SCAC, shipment id.
        "B2" => {
            if let Some(e) = scac(s.el(2)) {
                push(out, "SCAC", e.0.to_owned(), e);
            }
            if let Some(e) = ident(s.el(4)) {
                push(out, shipment_or_bol(e.0), e.0.to_ascii_uppercase(), e);
            }
        }
        // 210 invoice: invoice number, the carrier's shipment id (its PRO), SCAC.
        "B3" => {
            if let Some(e) = ident(s.el(2)) {
                push(out, "INVOICE_NUMBER", e.0.to_ascii_uppercase(), e);
            }
            if let Some(e) = ident(s.el(3)) {
                let t = match shipment_or_bol(e.0) {
                    "BOL_NUMBER" => "BOL_NUMBER",
                    _ => "PRO_NUMBER",
                };
                push(out, t, e.0.to_ascii_uppercase(), e);
            }
            if let Some(e) = scac(s.el(11)) {
                push(out, "SCAC", e.0.to_owned(), e);
            }
        }
        _ => {}
    }
}

/// 850 purchase order / 810 invoice.
fn order_header(id: &str, s: &Segment<'_>, out: &mut Vec<Found>) {
    match id {
        "BEG" => {
            if let Some(e) = ident(s.el(3)) {
                push(out, "PO_NUMBER", e.0.to_ascii_uppercase(), e);
            }
        }
        "BIG" => {
            if let Some(e) = ident(s.el(2)) {
                push(out, "INVOICE_NUMBER", e.0.to_ascii_uppercase(), e);
            }
            if let Some(e) = ident(s.el(4)) {
                push(out, "PO_NUMBER", e.0.to_ascii_uppercase(), e);
            }
        }
        _ => {}
    }
}

/// L11 and N9 references, typed by their qualifier (the two segments order them differently).
fn qualified_reference(id: &str, s: &Segment<'_>, out: &mut Vec<Found>) {
    match id {
        "L11" => {
            if let (Some(e), Some((q, _))) = (ident(s.el(1)), s.el(2))
                && let Some(t) = qualifier_type(q.trim())
            {
                push(out, t, e.0.to_ascii_uppercase(), e);
            }
        }
        "N9" => {
            if let (Some((q, _)), Some(e)) = (s.el(1), ident(s.el(2)))
                && let Some(t) = qualifier_type(q.trim())
            {
                push(out, t, e.0.to_ascii_uppercase(), e);
            }
        }
        _ => {}
    }
}

/// The carrier (MS2), parties (N1) and places (N4, MS1).
fn party_or_place(id: &str, s: &Segment<'_>, out: &mut Vec<Found>) {
    match id {
        "MS2" => {
            if let Some(e) = scac(s.el(1)) {
                push(out, "SCAC", e.0.to_owned(), e);
            }
        }
        "N1" => {
            if let Some(e) = s.el(2).filter(|(v, _)| v.chars().any(char::is_alphabetic)) {
                push(out, "ORGANIZATION", named::org_key(e.0), e);
            }
        }
        "N4" | "MS1" => {
            if let Some(e) = s.el(1).filter(|(v, _)| v.chars().any(char::is_alphabetic)) {
                let country = s.el(4).map_or("us", |(c, _)| c.trim()).to_ascii_lowercase();
                let key = Gazetteer::location_key(e.0).unwrap_or_else(|| {
                    format!("city:{}-{country}", named::key(e.0).replace(' ', "-"))
                });
                push(out, "LOCATION", key, e);
            }
        }
        _ => {}
    }
}

/// Dates (CCYYMMDD) in any segment; times (HHMM) where the segment puts them.
fn dates_and_times(id: &str, s: &Segment<'_>, out: &mut Vec<Found>) {
    let time_at: &[usize] = match id {
        "G62" => &[4],
        "AT7" => &[6],
        "DTM" => &[3],
        _ => &[],
    };
    for (n, e) in s.elements.iter().enumerate() {
        if let Some(key) = valid_ccyymmdd(e.0) {
            push(out, "DATE", key, *e);
        } else if time_at.contains(&(n + 1))
            && let Some(key) = valid_hhmm(e.0)
        {
            push(out, "TIME", key, *e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x12_elements_name_parties_places_ids_dates_and_times() {
        let text = "ST*214*0001~\nB10*712448301*APX-BL-2026-04417*GPXE~\nL11*LSG-PO-771203*PO~\nN1*SH*APEX FOODS INC~\nN4*SAN MARCOS*TX*78666~\nAT7*X1*NS***20260311*1547*CT~\nG62*64*20260316*1*0800~\nN9*ZZ*IGNORED-1~";
        let got: Vec<(String, String, String)> = find(text)
            .into_iter()
            .map(|f| (f.entity_type, f.canonical_key, f.display_name))
            .collect();
        let has = |t: &str, k: &str| got.iter().any(|(a, b, _)| a == t && b == k);
        assert!(has("PRO_NUMBER", "712448301"), "{got:?}");
        assert!(has("BOL_NUMBER", "APX-BL-2026-04417"), "{got:?}");
        assert!(has("SCAC", "GPXE"), "{got:?}");
        assert!(has("PO_NUMBER", "LSG-PO-771203"), "{got:?}");
        assert!(has("ORGANIZATION", "apex foods"), "{got:?}");
        assert!(has("LOCATION", "city:san-marcos-us"), "{got:?}");
        assert!(has("DATE", "2026-03-11") && has("TIME", "15:47"), "{got:?}");
        assert!(has("DATE", "2026-03-16") && has("TIME", "08:00"), "{got:?}");
        assert!(
            !got.iter().any(|(_, k, _)| k.contains("IGNORED")),
            "{got:?}"
        );
        // The ST control number is not a time, and plain text has no segments.
        assert!(!has("TIME", "00:01"));
        assert!(find("Price is 3*4 units").is_empty());
    }
}
