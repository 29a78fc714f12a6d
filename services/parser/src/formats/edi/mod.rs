//! EDI X12: ISA/GS/ST envelopes with the delimiters read from the fixed-width ISA segment;
//! transaction sets 204 (load tender), 210 (freight invoice), 214 (shipment status) and 990
//! (response to a load tender) become structured records plus readable text. Other sets keep
//! their envelope data and raw segments.

use std::collections::{BTreeMap, HashMap};

use apex_proto::parser::v1::Record;
use serde_json::{Value, json};

use crate::model::{Extracted, ParseError, TextBuilder};

mod sets;

const ISA_LEN: usize = 106;

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

fn split(text: &str) -> Result<(Vec<Segment>, char, char), ParseError> {
    let t = text.trim_start();
    let isa: Vec<char> = t.chars().take(ISA_LEN).collect();
    if isa.len() < ISA_LEN || !t.starts_with("ISA") {
        return Err(ParseError::invalid(
            "edi-x12",
            "the ISA segment must be the first 106 characters",
        ));
    }
    let element = isa[3];
    let component = isa[104];
    let terminator = isa[105];
    if element.is_alphanumeric() || terminator.is_alphanumeric() || element == terminator {
        return Err(ParseError::invalid(
            "edi-x12",
            format!(
                "bad delimiters in ISA: element `{element}`, segment terminator `{terminator}`"
            ),
        ));
    }
    let segments = t
        .split(terminator)
        .map(|s| s.trim_matches(|c: char| c == '\r' || c == '\n' || c == ' '))
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
