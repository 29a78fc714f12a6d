//! The readers of the transaction sets understood in detail (204, 210, 214, 990): each adds its
//! fields and lines of text and returns the set's `detail` JSON.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Segment, cents, date, status_name};

/// The first segment `id` of the set.
fn first<'a>(set: &'a [Segment], id: &str) -> Option<&'a Segment> {
    set.iter().find(|s| s.id == id)
}

/// 204: the tender (B2, B2A), its stops with their dates and locations, and the totals (L3).
pub(super) fn load_tender(
    set: &[Segment],
    fields: &mut HashMap<String, String>,
    lines: &mut Vec<String>,
) -> Value {
    if let Some(b2) = first(set, "B2") {
        fields.insert("scac".to_owned(), b2.el(2).to_owned());
        fields.insert("shipment_id".to_owned(), b2.el(4).to_owned());
        fields.insert("payment_method".to_owned(), b2.el(6).to_owned());
        lines.push(format!(
            "Load tender for shipment {} to carrier {}.",
            b2.el(4),
            b2.el(2)
        ));
    }
    if let Some(b2a) = first(set, "B2A") {
        fields.insert("purpose".to_owned(), b2a.el(1).to_owned());
    }
    let stops = stops(set);
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
    if let Some(l3) = first(set, "L3") {
        fields.insert("total_weight".to_owned(), l3.el(1).to_owned());
        fields.insert("total_charges".to_owned(), l3.el(5).to_owned());
    }
    fields.insert("stop_count".to_owned(), stops.len().to_string());
    json!({"stops": stops})
}

/// The S5 stops of a 204; the G62 date and the N1/N3/N4 location that follow belong to the
/// last stop opened.
fn stops(set: &[Segment]) -> Vec<Value> {
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
    stops
}

/// 210: the invoice (B3), its charge lines (L1) and the total weight (L3).
pub(super) fn freight_invoice(
    set: &[Segment],
    fields: &mut HashMap<String, String>,
    lines: &mut Vec<String>,
) -> Value {
    if let Some(b3) = first(set, "B3") {
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
    if let Some(l3) = first(set, "L3") {
        fields.insert("total_weight".to_owned(), l3.el(1).to_owned());
    }
    json!({"line_items": items})
}

/// 214: the shipment (B10) and its status events (AT7, each with the MS1 place after it); the
/// first event is the record's status.
pub(super) fn shipment_status(
    set: &[Segment],
    fields: &mut HashMap<String, String>,
    lines: &mut Vec<String>,
) -> Value {
    if let Some(b10) = first(set, "B10") {
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
    let events = status_events(set);
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
        lines.push(status_line(e));
    }
    json!({"events": events})
}

fn status_events(set: &[Segment]) -> Vec<Value> {
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
    events
}

fn status_line(e: &Value) -> String {
    let name = e["status_name"].as_str().unwrap_or_default();
    format!(
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
    )
}

/// 990: the carrier's answer to a tender (B1). It has no detail of its own.
pub(super) fn tender_response(
    set: &[Segment],
    fields: &mut HashMap<String, String>,
    lines: &mut Vec<String>,
) -> Value {
    if let Some(b1) = first(set, "B1") {
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
    json!({})
}
