//! EDI X12: ISA/GS/ST envelopes with the delimiters read from the fixed-width ISA segment;
//! transaction sets 204 (load tender), 210 (freight invoice), 214 (shipment status) and 990
//! (response to a load tender) become structured records plus readable text. Other sets keep
//! their envelope data and raw segments.

use std::collections::{BTreeMap, HashMap};

use apex_proto::parser::v1::Record;
use serde_json::{Value, json};

use crate::model::{Extracted, ParseError, TextBuilder};

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
    let find = |seg: &str| set.iter().find(|s| s.id == seg);
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
    let mut detail = json!({});
    match id.as_str() {
        "204" => {
            if let Some(b2) = find("B2") {
                fields.insert("scac".to_owned(), b2.el(2).to_owned());
                fields.insert("shipment_id".to_owned(), b2.el(4).to_owned());
                fields.insert("payment_method".to_owned(), b2.el(6).to_owned());
                lines.push(format!(
                    "Load tender for shipment {} to carrier {}.",
                    b2.el(4),
                    b2.el(2)
                ));
            }
            if let Some(b2a) = find("B2A") {
                fields.insert("purpose".to_owned(), b2a.el(1).to_owned());
            }
            let mut stops: Vec<Value> = Vec::new();
            for s in set {
                match s.id.as_str() {
                    "S5" => stops.push(json!({
                        "sequence": s.el(1),
                        "reason": match s.el(2) { "LD" | "CL" | "PL" => "load", "UL" | "CU" | "PU" => "unload", other => other },
                        "weight": s.el(3),
                    })),
                    "G62" => {
                        if let Some(Value::Object(stop)) = stops.last_mut() {
                            stop.insert("date".to_owned(), json!(date(s.el(2), s.el(4))));
                        }
                    }
                    "N1" | "N3" | "N4" => {
                        if let Some(Value::Object(stop)) = stops.last_mut() {
                            let entry = stop.entry("location").or_insert_with(|| json!({}));
                            match s.id.as_str() {
                                "N1" => entry["name"] = json!(s.el(2)),
                                "N3" => entry["address"] = json!(s.el(1)),
                                _ => {
                                    entry["city"] = json!(s.el(1));
                                    entry["state"] = json!(s.el(2));
                                    entry["postal_code"] = json!(s.el(3));
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            for stop in &stops {
                let loc = &stop["location"];
                lines.push(format!(
                    "Stop {}: {} at {} {} {} on {}.",
                    stop["sequence"].as_str().unwrap_or_default(),
                    stop["reason"].as_str().unwrap_or_default(),
                    loc["name"].as_str().unwrap_or_default(),
                    loc["city"].as_str().unwrap_or_default(),
                    loc["state"].as_str().unwrap_or_default(),
                    stop["date"].as_str().unwrap_or("an unspecified date"),
                ));
            }
            if let Some(l3) = find("L3") {
                fields.insert("total_weight".to_owned(), l3.el(1).to_owned());
                fields.insert("total_charges".to_owned(), l3.el(5).to_owned());
            }
            fields.insert("stop_count".to_owned(), stops.len().to_string());
            detail = json!({"stops": stops});
        }
        "210" => {
            if let Some(b3) = find("B3") {
                fields.insert("invoice_number".to_owned(), b3.el(2).to_owned());
                fields.insert("shipment_id".to_owned(), b3.el(3).to_owned());
                fields.insert("invoice_date".to_owned(), date(b3.el(6), ""));
                fields.insert("amount_due".to_owned(), cents(b3.el(7)));
                fields.insert("scac".to_owned(), b3.el(11).to_owned());
                lines.push(format!(
                    "Freight invoice {} for shipment {} dated {}: amount due {}.",
                    b3.el(2),
                    b3.el(3),
                    date(b3.el(6), ""),
                    cents(b3.el(7))
                ));
            }
            let items: Vec<Value> = set
                .iter()
                .filter(|s| s.id == "L1")
                .map(|s| json!({"line": s.el(1), "rate": s.el(2), "charge": cents(s.el(4)), "code": s.el(8)}))
                .collect();
            for i in &items {
                lines.push(format!(
                    "Charge line {}: {} {}.",
                    i["line"].as_str().unwrap_or_default(),
                    i["code"].as_str().unwrap_or_default(),
                    i["charge"].as_str().unwrap_or_default()
                ));
            }
            if let Some(l3) = find("L3") {
                fields.insert("total_weight".to_owned(), l3.el(1).to_owned());
            }
            detail = json!({"line_items": items});
        }
        "214" => {
            if let Some(b10) = find("B10") {
                fields.insert("carrier_reference".to_owned(), b10.el(1).to_owned());
                fields.insert("shipment_id".to_owned(), b10.el(2).to_owned());
                fields.insert("scac".to_owned(), b10.el(3).to_owned());
                lines.push(format!(
                    "Status of shipment {} (carrier {}, reference {}).",
                    b10.el(2),
                    b10.el(3),
                    b10.el(1)
                ));
            }
            let mut events: Vec<Value> = Vec::new();
            for s in set {
                match s.id.as_str() {
                    "AT7" => events.push(json!({
                        "status": s.el(1),
                        "status_name": status_name(s.el(1)),
                        "reason": s.el(2),
                        "at": date(s.el(5), s.el(6)),
                    })),
                    "MS1" => {
                        if let Some(Value::Object(e)) = events.last_mut() {
                            e.insert("city".to_owned(), json!(s.el(1)));
                            e.insert("state".to_owned(), json!(s.el(2)));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(first) = events.first() {
                fields.insert(
                    "status".to_owned(),
                    first["status"].as_str().unwrap_or_default().to_owned(),
                );
                fields.insert(
                    "status_at".to_owned(),
                    first["at"].as_str().unwrap_or_default().to_owned(),
                );
            }
            for e in &events {
                let name = e["status_name"].as_str().unwrap_or_default();
                lines.push(format!(
                    "Status {}{} at {}{}.",
                    e["status"].as_str().unwrap_or_default(),
                    if name.is_empty() {
                        String::new()
                    } else {
                        format!(" ({name})")
                    },
                    e["at"].as_str().unwrap_or_default(),
                    match (e["city"].as_str(), e["state"].as_str()) {
                        (Some(c), Some(s)) => format!(" in {c}, {s}"),
                        _ => String::new(),
                    }
                ));
            }
            detail = json!({"events": events});
        }
        "990" => {
            if let Some(b1) = find("B1") {
                let action = match b1.el(4) {
                    "A" => "accepted",
                    "D" => "declined",
                    "" => "",
                    _ => "answered",
                };
                fields.insert("scac".to_owned(), b1.el(1).to_owned());
                fields.insert("shipment_id".to_owned(), b1.el(2).to_owned());
                fields.insert("response_date".to_owned(), date(b1.el(3), ""));
                fields.insert("action".to_owned(), action.to_owned());
                lines.push(format!(
                    "Carrier {} {} the tender of shipment {} on {}.",
                    b1.el(1),
                    action,
                    b1.el(2),
                    date(b1.el(3), "")
                ));
            }
        }
        _ => {}
    }
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
                if interchanges == 1 {
                    for (k, v) in &envelope {
                        out.metadata.insert(k.clone(), v.clone());
                    }
                }
            }
            "GS" => {
                envelope.insert("functional_group".to_owned(), s.el(1).to_owned());
                envelope.insert("application_sender".to_owned(), s.el(2).to_owned());
                envelope.insert("application_receiver".to_owned(), s.el(3).to_owned());
                envelope.insert("gs_control".to_owned(), s.el(6).to_owned());
            }
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
            "IEA" | "GE" => {
                let control = if s.id == "IEA" {
                    "isa_control"
                } else {
                    "gs_control"
                };
                if envelope.get(control).is_some_and(|c| c != s.el(2)) {
                    out.warnings.push(format!(
                        "{} control number {} does not match {}",
                        s.id,
                        s.el(2),
                        envelope[control]
                    ));
                }
            }
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
    out.text = b.finish();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EDI_214: &str = "ISA*00*          *00*          *ZZ*ACMECARRIER    *ZZ*APEXSHIPPER    *260315*0930*U*00401*000000214*0*P*>~\nGS*QM*ACMECARRIER*APEXSHIPPER*20260315*0930*214*X*004010~\nST*214*0001~\nB10*PRO123456*SHIP-42*ACME~\nN1*SH*Apex Foods*93*123~\nN4*Chicago*IL*60601~\nN1*CN*Lone Star Grocers~\nN4*Dallas*TX*75201~\nLX*1~\nAT7*X1*NS***20260315*0915*CT~\nMS1*Dallas*TX*US~\nSE*10*0001~\nGE*1*214~\nIEA*1*000000214~\n";

    #[test]
    fn shipment_status_becomes_a_record_and_text() {
        let out = parse(EDI_214).expect("parses");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let r = &out.records[0];
        assert_eq!(r.kind, "edi-x12/214");
        assert_eq!(r.fields["shipment_id"], "SHIP-42");
        assert_eq!(r.fields["scac"], "ACME");
        assert_eq!(r.fields["status"], "X1");
        assert_eq!(r.fields["status_at"], "2026-03-15 09:15");
        assert_eq!(r.fields["isa_control"], "000000214");
        assert_eq!(r.fields["gs_control"], "214");
        assert_eq!(r.fields["shipper"], "Apex Foods");
        assert_eq!(r.fields["consignee"], "Lone Star Grocers");
        assert_eq!(out.metadata["sender"], "ACMECARRIER");
        assert_eq!(out.metadata["shipment_id"], "SHIP-42");
        assert!(
            out.text.contains(
                "Status X1 (Arrived at delivery location) at 2026-03-15 09:15 in Dallas, TX."
            ),
            "{}",
            out.text
        );
        let json: Value = serde_json::from_str(&r.json).expect("json");
        assert_eq!(json["detail"]["events"][0]["city"], "Dallas");
    }

    const ISA: &str = "ISA*00*          *00*          *ZZ*APEXSHIPPER    *ZZ*ACMECARRIER    *260314*0800*U*00401*000000204*0*T*>~GS*SM*APEX*ACME*20260314*0800*204*X*004010~";

    #[test]
    fn load_tender_has_stops_and_totals() {
        let edi = format!(
            "{ISA}ST*204*0001~B2**ACME**SHIP-42**PP~B2A*00~L11*PO-981*PO~N1*BT*Apex Foods~\
S5*1*LD*12000~G62*10*20260316*1*0800~N1*SH*Apex Plant 3~N4*Chicago*IL*60601~\
S5*2*UL*12000~G62*02*20260317*1*1400~N1*CN*Lone Star Grocers~N4*Dallas*TX*75201~\
L3*12000*G***250000~SE*15*0001~GE*1*204~IEA*1*000000204~"
        );
        let out = parse(&edi).expect("parses");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let r = &out.records[0];
        assert_eq!(r.kind, "edi-x12/204");
        assert_eq!(r.fields["shipment_id"], "SHIP-42");
        assert_eq!(r.fields["scac"], "ACME");
        assert_eq!(r.fields["stop_count"], "2");
        assert_eq!(r.fields["total_weight"], "12000");
        assert_eq!(r.fields["bill_to"], "Apex Foods");
        assert_eq!(r.fields["usage"], "test");
        let json: Value = serde_json::from_str(&r.json).expect("json");
        assert_eq!(json["detail"]["stops"][1]["location"]["city"], "Dallas");
        assert_eq!(json["detail"]["stops"][0]["date"], "2026-03-16 08:00");
        assert_eq!(json["references"][0]["value"], "PO-981");
        assert!(
            out.text
                .contains("Load tender for shipment SHIP-42 to carrier ACME."),
            "{}",
            out.text
        );
        assert!(
            out.text
                .contains("Stop 2: unload at Lone Star Grocers Dallas TX on 2026-03-17 14:00."),
            "{}",
            out.text
        );
    }

    #[test]
    fn freight_invoice_has_amount_and_charge_lines() {
        let edi = format!(
            "{ISA}ST*210*0007~B3**INV-5531*SHIP-42*PP**20260318*187550****ACME~N1*SH*Apex Foods~\
N1*CN*Lone Star Grocers~LX*1~L1*1*2.15*PM*150000****400~LX*2~L1*2***37550****FUE~L3*12000*G~SE*10*0007~\
GE*1*204~IEA*1*000000204~"
        );
        let out = parse(&edi).expect("parses");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let r = &out.records[0];
        assert_eq!(r.kind, "edi-x12/210");
        assert_eq!(r.fields["invoice_number"], "INV-5531");
        assert_eq!(r.fields["amount_due"], "1875.50");
        assert_eq!(r.fields["invoice_date"], "2026-03-18");
        assert_eq!(r.fields["st_control"], "0007");
        let json: Value = serde_json::from_str(&r.json).expect("json");
        assert_eq!(json["detail"]["line_items"][1]["charge"], "375.50");
        assert_eq!(json["detail"]["line_items"][1]["code"], "FUE");
        assert!(out.text.contains("amount due 1875.50"), "{}", out.text);
    }

    #[test]
    fn delimiters_come_from_the_isa_segment() {
        let other = EDI_214
            .replace('*', "|")
            .replace('~', "\n")
            .replace('>', "^");
        let out = parse(&other).expect("parses with | and newline");
        assert_eq!(out.records[0].fields["shipment_id"], "SHIP-42");
    }

    #[test]
    fn counts_that_disagree_are_reported() {
        let bad = EDI_214.replace("SE*10*0001", "SE*9*0001");
        let out = parse(&bad).expect("parses");
        assert!(
            out.warnings
                .iter()
                .any(|w| w.contains("SE counts 9 segments, found 10")),
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn broken_envelopes_are_refused() {
        assert!(parse("ISA*too short~").is_err());
        let no_sets = &EDI_214[..EDI_214.find("ST*").expect("st")];
        assert!(
            parse(no_sets)
                .expect_err("no sets")
                .to_string()
                .contains("no transaction set")
        );
    }
}
