//! EDI X12: ISA/GS/ST envelopes with the delimiters the ISA segment declares;
//! transaction sets 204 (load tender), 210 (freight invoice), 214 (shipment status) and 990
//! (response to a load tender) become structured records plus readable text. Other sets keep
//! their envelope data and raw segments.

use std::collections::{BTreeMap, HashMap};

use apex_proto::parser::v1::Record;
use serde_json::{Value, json};

use crate::model::{Extracted, ParseError, TextBuilder};

mod sets;

#[derive(Debug, Clone)]
struct Segment {
    id: String,
    elements: Vec<String>,
}

impl Segment {
    /// Element `n` (1-based, as X12 numbers them), or "".
    fn el(&self, n: usize) -> &str {
        self.elements.get(n).map_or("", |s| s.trim())
    }
}

/// The three delimiters an ISA declares, read by counting element separators rather than
/// by fixed columns: a file hard-wrapped at 80 columns, or broken inside the ISA, still
/// declares them. Element separator: the character after `ISA`. Component separator: the
/// character after the 16th element separator (line breaks skipped). Segment terminator:
/// the character after that; when only a line break follows (and the next segment starts
/// at once), the segment terminator is the line break. Any character can serve, control and
/// multi-byte ones included, as long as the three differ and none is a letter or digit.
fn delimiters(t: &str) -> Result<(char, char, char), ParseError> {
    let bad = |why: String| ParseError::invalid("edi-x12", format!("bad delimiters in ISA: {why}"));
    let mut chars = t.chars().skip(3);
    let element = chars
        .next()
        .ok_or_else(|| bad("the ISA segment is cut short".to_owned()))?;
    if element.is_alphanumeric() || element.is_whitespace() {
        return Err(bad(format!("element separator `{element}`")));
    }
    // The separator after `ISA` is the first of the 16.
    let mut seen = 1;
    for c in chars.by_ref() {
        if c == element {
            seen += 1;
            if seen == 16 {
                break;
            }
        }
    }
    if seen < 16 {
        return Err(bad(format!("the ISA has {} of its 16 elements", seen)));
    }
    let mut rest = chars.filter(|c| *c != '\r' && *c != '\n');
    let component = rest
        .next()
        .ok_or_else(|| bad("no component separator after ISA15".to_owned()))?;
    // What follows ISA16 in the text as written (line breaks count here).
    let after: String = t
        .char_indices()
        .skip(3)
        .filter(|(_, c)| *c == element)
        .nth(15)
        .map(|(i, _)| {
            t[i + element.len_utf8()..]
                .chars()
                .skip_while(|c| *c == '\r' || *c == '\n')
                .skip(1)
                .take(8)
                .collect()
        })
        .unwrap_or_default();
    let terminator = match after.chars().find(|c| !matches!(c, '\r' | '\n' | ' ')) {
        // Only a line break (and indentation) between ISA16 and the next segment.
        Some(c) if c.is_alphanumeric() && after.starts_with(['\r', '\n']) => '\n',
        Some(c) => c,
        None => return Err(bad("nothing follows the ISA".to_owned())),
    };
    if component.is_alphanumeric() || terminator.is_alphanumeric() || element == terminator {
        return Err(bad(format!(
            "element `{}`, component `{}`, segment terminator `{}`",
            element.escape_debug(),
            component.escape_debug(),
            terminator.escape_debug()
        )));
    }
    Ok((element, component, terminator))
}

fn split(text: &str) -> Result<(Vec<Segment>, char, char), ParseError> {
    let t = text.trim_start();
    if !t.starts_with("ISA") {
        return Err(ParseError::invalid(
            "edi-x12",
            "an X12 interchange starts with an ISA segment",
        ));
    }
    let (element, component, terminator) = delimiters(t)?;
    // With a terminator other than the line break, line breaks are layout (wrapping at a
    // column, one segment per line) and go; with the line break as terminator they split.
    let body: String = if terminator == '\n' {
        t.replace('\r', "")
    } else {
        t.chars().filter(|c| *c != '\r' && *c != '\n').collect()
    };
    let segments = body
        .split(terminator)
        .map(|s| s.trim_matches(|c: char| c == ' ' || c == '\t'))
        .filter(|s| !s.is_empty())
        .map(|s| {
            let elements: Vec<String> = s.split(element).map(str::to_owned).collect();
            Segment {
                id: elements.first().cloned().unwrap_or_default(),
                elements,
            }
        })
        .collect();
    Ok((segments, element, component))
}

fn set_name(id: &str) -> &'static str {
    match id {
        "204" => "Motor Carrier Load Tender",
        "210" => "Motor Carrier Freight Details and Invoice",
        "214" => "Transportation Carrier Shipment Status Message",
        "990" => "Response to a Load Tender",
        _ => "Transaction Set",
    }
}

fn status_name(code: &str) -> &'static str {
    match code {
        "X1" => "Arrived at delivery location",
        "X3" => "Arrived at pick-up location",
        "AF" => "Carrier departed pick-up location with shipment",
        "D1" => "Completed unloading at delivery location",
        "AG" => "Estimated delivery",
        "X6" => "En route to delivery location",
        "AA" => "Pick-up appointment date and/or time",
        "AB" => "Delivery appointment date and/or time",
        "CD" => "Carrier departed delivery location",
        "SD" => "Shipment delayed",
        _ => "",
    }
}

fn party_role(code: &str) -> &'static str {
    match code {
        "SH" => "shipper",
        "CN" => "consignee",
        "BT" => "bill_to",
        "SF" => "ship_from",
        "ST" => "ship_to",
        "CA" => "carrier",
        _ => "party",
    }
}

/// Readable date from CCYYMMDD or YYMMDD plus optional HHMM.
fn date(d: &str, t: &str) -> String {
    let d = match d.len() {
        8 => format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]),
        6 => format!("20{}-{}-{}", &d[..2], &d[2..4], &d[4..6]),
        _ => d.to_owned(),
    };
    if t.len() >= 4 && t.is_char_boundary(2) && t.is_char_boundary(4) {
        format!("{d} {}:{}", &t[..2], &t[2..4])
    } else {
        d
    }
}

/// Parties (N1 loops with their N3/N4 address) of a transaction set.
fn parties(segments: &[Segment]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for s in segments {
        match s.id.as_str() {
            "N1" => out.push(json!({
                "role": party_role(s.el(1)),
                "code": s.el(1),
                "name": s.el(2),
                "id": s.el(4),
            })),
            "N3" => {
                if let Some(Value::Object(p)) = out.last_mut() {
                    p.insert("address".to_owned(), json!(s.el(1)));
                }
            }
            "N4" => {
                if let Some(Value::Object(p)) = out.last_mut() {
                    p.insert("city".to_owned(), json!(s.el(1)));
                    p.insert("state".to_owned(), json!(s.el(2)));
                    p.insert("postal_code".to_owned(), json!(s.el(3)));
                }
            }
            _ => {}
        }
    }
    out
}

fn party_text(parties: &[Value]) -> Vec<String> {
    parties
        .iter()
        .map(|p| {
            let place = [p["city"].as_str(), p["state"].as_str()]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            let name = p["name"].as_str().unwrap_or_default();
            let role = p["role"].as_str().unwrap_or_default();
            if place.is_empty() {
                format!("{role}: {name}")
            } else {
                format!("{role}: {name} ({place})")
            }
        })
        .collect()
}

/// One transaction set (ST…SE) as a record and a paragraph of text.
fn transaction(
    set: &[Segment],
    envelope: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> (Record, String) {
    let st = &set[0];
    let id = st.el(1).to_owned();
    let control = st.el(2).to_owned();
    let mut fields: HashMap<String, String> = envelope
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    fields.insert("transaction_set".to_owned(), id.clone());
    fields.insert("st_control".to_owned(), control.clone());
    check_segment_count(set, &id, &control, warnings);
    let parties = parties(set);
    for p in &parties {
        if let (Some(role), Some(name)) = (p["role"].as_str(), p["name"].as_str()) {
            fields
                .entry(role.to_owned())
                .or_insert_with(|| name.to_owned());
        }
    }
    let refs: Vec<Value> = set
        .iter()
        .filter(|s| s.id == "L11")
        .map(|s| json!({"qualifier": s.el(2), "value": s.el(1)}))
        .collect();
    let mut lines = vec![format!(
        "EDI X12 {id} {} (control {control})",
        set_name(&id)
    )];
    let detail = match id.as_str() {
        "204" => sets::load_tender(set, &mut fields, &mut lines),
        "210" => sets::freight_invoice(set, &mut fields, &mut lines),
        "214" => sets::shipment_status(set, &mut fields, &mut lines),
        "990" => sets::tender_response(set, &mut fields, &mut lines),
        _ => json!({}),
    };
    lines.extend(party_text(&parties));
    for r in &refs {
        lines.push(format!(
            "Reference {}: {}.",
            r["qualifier"].as_str().unwrap_or_default(),
            r["value"].as_str().unwrap_or_default()
        ));
    }
    let raw: Vec<Value> = set.iter().map(|s| json!(s.elements)).collect();
    let record_json = json!({
        "transaction_set": id,
        "control": control,
        "envelope": envelope,
        "parties": parties,
        "references": refs,
        "detail": detail,
        "segments": raw,
    });
    (
        Record {
            kind: format!("edi-x12/{id}"),
            fields,
            json: record_json.to_string(),
        },
        lines.join("\n"),
    )
}

/// A set whose SE is missing or counts another number of segments is still read, with a warning.
fn check_segment_count(set: &[Segment], id: &str, control: &str, warnings: &mut Vec<String>) {
    if let Some(se) = set.iter().find(|s| s.id == "SE") {
        let declared: usize = se.el(1).parse().unwrap_or(0);
        if declared != set.len() {
            warnings.push(format!(
                "transaction set {id} (control {control}): SE counts {declared} segments, found {}",
                set.len()
            ));
        }
    } else {
        warnings.push(format!(
            "transaction set {id} (control {control}) has no SE segment"
        ));
    }
}

/// X12 amounts without a decimal point are in cents (implied two decimals).
fn cents(v: &str) -> String {
    if v.contains('.') || v.is_empty() {
        return v.to_owned();
    }
    match v.parse::<i64>() {
        Ok(n) => format!(
            "{}{}.{:02}",
            if n < 0 { "-" } else { "" },
            n.abs() / 100,
            n.abs() % 100
        ),
        Err(_) => v.to_owned(),
    }
}

pub(crate) fn parse(text: &str) -> Result<Extracted, ParseError> {
    let (segments, _, _) = split(text)?;
    let mut out = Extracted::default();
    let mut b = TextBuilder::new();
    let mut envelope: BTreeMap<String, String> = BTreeMap::new();
    let mut i = 0;
    let mut interchanges = 0;
    while i < segments.len() {
        let s = &segments[i];
        match s.id.as_str() {
            "ISA" => {
                interchanges += 1;
                open_interchange(s, &mut envelope);
                if interchanges == 1 {
                    for (k, v) in &envelope {
                        out.metadata.insert(k.clone(), v.clone());
                    }
                }
            }
            "GS" => open_group(s, &mut envelope),
            "ST" => {
                let end = segments[i..]
                    .iter()
                    .position(|x| x.id == "SE")
                    .map_or(segments.len(), |p| i + p + 1);
                let (record, paragraph) =
                    transaction(&segments[i..end], &envelope, &mut out.warnings);
                b.push_block(&paragraph);
                out.records.push(record);
                i = end;
                continue;
            }
            "IEA" | "GE" => check_trailer_control(s, &envelope, &mut out.warnings),
            _ => {}
        }
        i += 1;
    }
    if out.records.is_empty() {
        return Err(ParseError::invalid(
            "edi-x12",
            "no transaction set (ST…SE) found",
        ));
    }
    summarize(&mut out);
    out.text = b.finish();
    Ok(out)
}

/// ISA starts a new envelope: the fields of the previous interchange no longer apply.
fn open_interchange(s: &Segment, envelope: &mut BTreeMap<String, String>) {
    envelope.clear();
    envelope.insert("sender".to_owned(), s.el(6).to_owned());
    envelope.insert("receiver".to_owned(), s.el(8).to_owned());
    envelope.insert("interchange_date".to_owned(), date(s.el(9), s.el(10)));
    envelope.insert("isa_control".to_owned(), s.el(13).to_owned());
    envelope.insert("version".to_owned(), s.el(12).to_owned());
    envelope.insert(
        "usage".to_owned(),
        if s.el(15) == "T" {
            "test"
        } else {
            "production"
        }
        .to_owned(),
    );
}

fn open_group(s: &Segment, envelope: &mut BTreeMap<String, String>) {
    envelope.insert("functional_group".to_owned(), s.el(1).to_owned());
    envelope.insert("application_sender".to_owned(), s.el(2).to_owned());
    envelope.insert("application_receiver".to_owned(), s.el(3).to_owned());
    envelope.insert("gs_control".to_owned(), s.el(6).to_owned());
}

/// IEA and GE repeat the control number of their ISA and GS; a mismatch is only a warning.
fn check_trailer_control(
    s: &Segment,
    envelope: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) {
    let control = if s.id == "IEA" {
        "isa_control"
    } else {
        "gs_control"
    };
    if envelope.get(control).is_some_and(|c| c != s.el(2)) {
        warnings.push(format!(
            "{} control number {} does not match {}",
            s.id,
            s.el(2),
            envelope[control]
        ));
    }
}

/// Document metadata from the records: the sets it holds, the first shipment and a title.
fn summarize(out: &mut Extracted) {
    let sets: Vec<String> = out
        .records
        .iter()
        .map(|r| r.fields["transaction_set"].clone())
        .collect();
    out.metadata
        .insert("transaction_sets".to_owned(), sets.join(","));
    if let Some(id) = out.records.iter().find_map(|r| r.fields.get("shipment_id")) {
        out.metadata.insert("shipment_id".to_owned(), id.clone());
    }
    out.metadata.insert(
        "title".to_owned(),
        format!(
            "EDI X12 {} from {}",
            sets.join(", "),
            out.metadata.get("sender").cloned().unwrap_or_default()
        ),
    );
}

#[cfg(test)]
mod tests;
