//! Structured sources: entities and typed relations named by EDI record fields and request
//! metadata, on the same nodes as the text's entities.

use std::collections::HashMap;

use apex_proto::extractor::v1::ExtractionResult;
use apex_proto::parser::v1::Record;

use super::Collector;
use crate::gazetteer::Gazetteer;
use crate::{named, patterns};

/// Identifiers a structured source can name; the first present is the anchor the parties
/// hang off, the rest are `REFERENCES` from it.
const IDENTIFIER_FIELDS: &[(&[&str], &str)] = &[
    (
        &["shipment_id", "shipment_number", "shipment"],
        "SHIPMENT_NUMBER",
    ),
    (&["load_id", "load_number", "load"], "LOAD_NUMBER"),
    (&["bol_number", "bol", "bill_of_lading"], "BOL_NUMBER"),
    (&["pro_number", "pro"], "PRO_NUMBER"),
    (&["po_number", "po", "purchase_order"], "PO_NUMBER"),
    (
        &["invoice_number", "invoice_id", "invoice"],
        "INVOICE_NUMBER",
    ),
    (&["container_number", "container"], "CONTAINER_NUMBER"),
    // Last: a vehicle anchors only an event that names no shipment (a telematics alert),
    // so its driver hangs off it.
    (&["vehicle", "vehicle_name", "truck", "tractor"], "VEHICLE"),
];

/// Parties and places: (field names, entity type, relation from the anchor).
const PARTY_FIELDS: &[(&[&str], &str, &str)] = &[
    (&["shipper", "shipper_name"], "ORGANIZATION", "SHIPPED_BY"),
    (
        &["consignee", "consignee_name"],
        "ORGANIZATION",
        "DELIVERED_TO",
    ),
    (
        &["bill_to", "bill_to_name", "customer", "customer_name"],
        "ORGANIZATION",
        "BILLED_TO",
    ),
    (&["carrier", "carrier_name"], "ORGANIZATION", "CARRIED_BY"),
    (&["payee", "merchant", "vendor"], "ORGANIZATION", "PAID_TO"),
    (&["scac", "carrier_scac"], "SCAC", "CARRIED_BY"),
    (&["driver", "driver_name"], "PERSON", "DRIVEN_BY"),
    (&["origin", "origin_city"], "LOCATION", "ORIGINATES_IN"),
    (
        &["destination", "destination_city"],
        "LOCATION",
        "DESTINED_FOR",
    ),
];

/// The canonical key of a structured value of `entity_type` (the same key the text
/// finders give, so both land on one node).
fn structured_key(entity_type: &str, value: &str) -> Option<String> {
    let key = match entity_type {
        "ORGANIZATION" => named::org_key(value),
        "PERSON" => named::key(value),
        "LOCATION" => Gazetteer::location_key(value)
            .unwrap_or_else(|| format!("place:{}", named::key(value).replace(' ', "-"))),
        "CONTAINER_NUMBER" => value
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase(),
        "EMAIL" => value.to_lowercase(),
        _ => value.to_ascii_uppercase(),
    };
    (!key.is_empty() && key != "place:").then_some(key)
}

/// A metadata or record field name in one form: lower case, `_` for `-`, `.` and spaces.
pub fn field_name(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            '-' | '.' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Entities and typed relations named by structured fields (EDI parties, webhook metadata):
/// the shipment (or load, BOL, PRO) is the anchor, `SHIPPED_BY` its shipper,
/// `DELIVERED_TO` its consignee, `CARRIED_BY` its carrier and SCAC, `BILLED_TO` its
/// bill-to party, `SHIPS_TO` from shipper to consignee; other identifiers are
/// `REFERENCES`. Fields not in the table are ignored. Entities are shared with the
/// text's (same type and key).
pub fn add_structured(collector: &mut Collector, fields: &HashMap<String, String>) {
    let normalised: HashMap<String, &str> = fields
        .iter()
        .map(|(k, v)| (field_name(k), v.trim()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let value = |names: &[&str]| names.iter().find_map(|n| normalised.get(*n).copied());
    let intern = |collector: &mut Collector, entity_type: &str, v: &str| {
        structured_key(entity_type, v).map(|key| collector.intern(entity_type, &key, v, 0.99))
    };
    let mut anchor = None;
    for (names, entity_type) in IDENTIFIER_FIELDS {
        if let Some(v) = value(names)
            && let Some(i) = intern(collector, entity_type, v)
        {
            match anchor {
                None => anchor = Some(i),
                Some(a) => collector.relate(a, i, "REFERENCES"),
            }
        }
    }
    let mut shipper = None;
    let mut consignee = None;
    for (names, entity_type, relation) in PARTY_FIELDS {
        let Some(v) = value(names) else { continue };
        let Some(i) = intern(collector, entity_type, v) else {
            continue;
        };
        match *relation {
            "SHIPPED_BY" => shipper = Some(i),
            "DELIVERED_TO" => consignee = Some(i),
            _ => {}
        }
        if let Some(a) = anchor {
            collector.relate(a, i, relation);
        }
    }
    if let (Some(s), Some(c)) = (shipper, consignee) {
        collector.relate(s, c, "SHIPS_TO");
    }
    for names in [&["sender", "sender_email", "from", "reply_to"][..]] {
        if let Some(v) = value(names).filter(|v| patterns::is_email(v)) {
            let i = intern(collector, "EMAIL", v);
            if let (Some(a), Some(i)) = (anchor, i) {
                collector.relate(a, i, "REPORTED_BY");
            }
        }
    }
}

/// Whether a parsed record names parties and identifiers: EDI transaction sets and
/// webhook events.
fn structured_record(kind: &str) -> bool {
    kind.starts_with("edi-x12/") || kind.starts_with("event/")
}

/// Typed relations from structured records (EDI transaction sets, webhook events) and
/// request metadata.
pub fn add_structured_sources(
    result: ExtractionResult,
    records: &[Record],
    metadata: &HashMap<String, String>,
) -> ExtractionResult {
    if metadata.is_empty() && !records.iter().any(|r| structured_record(&r.kind)) {
        return result;
    }
    let extra = (result.llm_chunks, result.fallback_chunks);
    let mut collector = Collector::resume(result);
    for record in records.iter().filter(|r| structured_record(&r.kind)) {
        add_structured(&mut collector, &record.fields);
    }
    add_structured(&mut collector, metadata);
    let mut result = collector.finish();
    (result.llm_chunks, result.fallback_chunks) = extra;
    result
}
