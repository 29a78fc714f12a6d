//! Business events delivered by webhook (a document whose source is `webhook:<name>`) or
//! read by a poller (`poll:<provider>`: Plaid transactions, HubSpot CRM records, Stripe
//! events): the
//! JSON payload becomes a readable headline, then every field as a `path: value` line (as
//! [`super::json`] gives it, so nothing is lost), and one `event/<name>` record whose
//! fields name the parties and identifiers the extractor turns into entities and relations
//! (customer, carrier, shipper, consignee, driver, vehicle, shipment, load, invoice, …).
//!
//! Per source: Stripe's `data.object` (an invoice's number, its customer, the amount in the
//! currency's major unit), Samsara's `eventType` with its vehicle and driver, Front's
//! conversation, Plaid's `webhook_type`/`webhook_code` and item; any other source by the
//! field names alone.

use std::collections::HashMap;

use apex_proto::parser::v1::Record;
use serde_json::Value;

use crate::model::{Extracted, ParseError, TextBuilder};

/// Field names (lower case, `_` for `-`, `.` and spaces) that name an entity, and the
/// record field each fills. An object under such a key gives its `name` (or `id`).
const ENTITY_KEYS: &[(&[&str], &str)] = &[
    (&["shipment", "shipment_id", "shipment_number"], "shipment"),
    (&["load", "load_id", "load_number"], "load_number"),
    (&["bol", "bol_number", "bill_of_lading"], "bol_number"),
    (&["pro", "pro_number"], "pro_number"),
    (&["po", "po_number", "purchase_order"], "po_number"),
    (
        &["invoice", "invoice_id", "invoice_number"],
        "invoice_number",
    ),
    (&["container", "container_number"], "container_number"),
    (&["shipper", "shipper_name"], "shipper"),
    (&["consignee", "consignee_name"], "consignee"),
    (&["customer", "customer_name", "bill_to"], "customer"),
    (&["carrier", "carrier_name"], "carrier"),
    (&["scac", "carrier_scac"], "scac"),
    (&["driver", "driver_name"], "driver"),
    (&["vehicle", "vehicle_name", "truck", "tractor"], "vehicle"),
    (&["origin", "origin_city"], "origin"),
    (&["destination", "destination_city"], "destination"),
];

/// Parses a webhook payload of source `source` (the part after `webhook:`).
pub(crate) fn parse(source: &str, text: &str, max_depth: usize) -> Result<Extracted, ParseError> {
    // The same checks and `path: value` lines as any JSON document.
    let mut out = super::json::parse(text, max_depth)?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ParseError::invalid("json", format!("not valid JSON: {e}")))?;
    let mut fields = HashMap::new();
    collect(&value, &mut fields, max_depth);
    let headline = match source {
        "stripe" => stripe(&value, &mut fields),
        "samsara" => samsara(&value),
        "front" | "front-rule" => front(&value),
        "plaid" if value.get("transaction_id").is_some() => plaid_transaction(&value, &mut fields),
        "plaid" => plaid(&value),
        "hubspot" => hubspot(&value, &mut fields),
        _ => generic(source, &value),
    };
    fields.insert("webhook_source".to_owned(), source.to_owned());
    let mut b = TextBuilder::new();
    b.push_block(&headline);
    b.push_block(&out.text);
    out.text = b.finish();
    out.metadata.insert("title".to_owned(), headline);
    out.metadata
        .insert("event_source".to_owned(), source.to_owned());
    out.records.push(Record {
        kind: format!("event/{source}"),
        fields,
        json: String::new(),
    });
    Ok(out)
}

fn norm(key: &str) -> String {
    key.trim()
        .chars()
        .map(|c| match c {
            '-' | '.' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(map) => ["name", "display_name", "id"]
            .iter()
            .find_map(|k| map.get(*k).and_then(scalar)),
        _ => None,
    }
}

/// The first value of every entity key anywhere in the payload (breadth first, so the
/// top-level one wins).
fn collect(root: &Value, fields: &mut HashMap<String, String>, max_depth: usize) {
    let mut level = vec![root];
    for _ in 0..max_depth {
        let mut next = Vec::new();
        for v in level {
            match v {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    for k in keys {
                        let child = &map[k];
                        let name = norm(k);
                        if let Some((_, field)) = ENTITY_KEYS
                            .iter()
                            .find(|(names, _)| names.contains(&name.as_str()))
                            && !fields.contains_key(*field)
                            && let Some(s) = scalar(child)
                        {
                            fields.insert((*field).to_owned(), s);
                        }
                        next.push(child);
                    }
                }
                Value::Array(items) => next.extend(items.iter()),
                _ => {}
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
}

fn text_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(scalar)
}

/// `2450.00 USD` from minor units and a currency (two decimals; zero-decimal currencies are
/// rare in freight and shown as given).
fn money(minor: i64, currency: &str) -> String {
    let currency = currency.to_ascii_uppercase();
    if ["JPY", "KRW", "VND", "CLP"].contains(&currency.as_str()) {
        return format!("{currency} {minor}");
    }
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    let units = (m / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{currency} {sign}{grouped}.{:02}", m % 100)
}

fn stripe(v: &Value, fields: &mut HashMap<String, String>) -> String {
    let kind = text_at(v, "/type").unwrap_or_else(|| "event".into());
    let id = text_at(v, "/id").unwrap_or_default();
    let object = v.pointer("/data/object").unwrap_or(&Value::Null);
    let mut line = format!("Stripe event {kind} ({id}).");
    let object_kind = text_at(object, "/object").unwrap_or_default();
    if object_kind == "invoice" {
        let number = text_at(object, "/number").or_else(|| text_at(object, "/id"));
        if let Some(n) = number {
            fields.insert("invoice_number".to_owned(), n.clone());
            line.push_str(&format!(" Invoice {n}."));
        }
    }
    let customer = ["/customer_name", "/customer_email", "/customer"]
        .iter()
        .find_map(|p| text_at(object, p));
    if let Some(c) = customer {
        fields.insert("customer".to_owned(), c.clone());
        line.push_str(&format!(" Customer: {c}."));
    }
    let currency = text_at(object, "/currency").unwrap_or_else(|| "usd".into());
    if let Some(minor) = ["/amount_paid", "/amount_due", "/amount", "/total"]
        .iter()
        .find_map(|p| object.pointer(p).and_then(Value::as_i64))
    {
        let amount = money(minor, &currency);
        fields.insert("amount".to_owned(), amount.clone());
        line.push_str(&format!(" Amount: {amount}."));
    }
    if let Some(d) = text_at(object, "/description") {
        line.push_str(&format!(" {d}"));
    }
    line
}

fn samsara(v: &Value) -> String {
    let kind = text_at(v, "/eventType").unwrap_or_else(|| "event".into());
    let id = text_at(v, "/eventId").unwrap_or_default();
    let mut line = format!("Samsara {kind} event ({id})");
    if let Some(t) = text_at(v, "/eventTime") {
        line.push_str(&format!(" at {t}"));
    }
    line.push('.');
    for (pointer, label) in [
        ("/data/vehicle", "Vehicle"),
        ("/data/driver", "Driver"),
        ("/data/address", "Address"),
    ] {
        if let Some(s) = text_at(v, pointer) {
            line.push_str(&format!(" {label}: {s}."));
        }
    }
    line
}

fn front(v: &Value) -> String {
    let event = v.get("payload").unwrap_or(v);
    let kind = text_at(event, "/type").unwrap_or_else(|| "event".into());
    let id = text_at(event, "/id").unwrap_or_default();
    let mut line = format!("Front {kind} event ({id}).");
    if let Some(c) = event.get("conversation") {
        let cid = text_at(c, "/id").unwrap_or_default();
        line.push_str(&format!(" Conversation {cid}"));
        if let Some(s) = text_at(c, "/subject") {
            line.push_str(&format!(": \u{201c}{s}\u{201d}"));
        }
        if let Some(s) = text_at(c, "/status") {
            line.push_str(&format!(" ({s})"));
        }
        line.push('.');
    }
    line
}

fn plaid(v: &Value) -> String {
    let kind = text_at(v, "/webhook_type").unwrap_or_else(|| "WEBHOOK".into());
    let code = text_at(v, "/webhook_code").unwrap_or_default();
    let mut line = format!("Plaid {kind} {code}");
    if let Some(item) = text_at(v, "/item_id") {
        line.push_str(&format!(" for item {item}"));
    }
    line.push('.');
    if let Some(n) = text_at(v, "/new_transactions") {
        line.push_str(&format!(" {n} new transactions."));
    }
    line
}

/// A transaction from Plaid's `/transactions/sync` (amounts in the currency's major unit,
/// positive for money out of the account).
fn plaid_transaction(v: &Value, fields: &mut HashMap<String, String>) -> String {
    let id = text_at(v, "/transaction_id").unwrap_or_default();
    let name = text_at(v, "/merchant_name").or_else(|| text_at(v, "/name"));
    let mut line = format!("Plaid transaction {id}");
    if let Some(date) = text_at(v, "/date") {
        line.push_str(&format!(" on {date}"));
    }
    line.push('.');
    if let Some(n) = &name {
        fields.insert("payee".to_owned(), n.clone());
        line.push_str(&format!(" Payee: {n}."));
    }
    if let Some(amount) = v.get("amount").and_then(Value::as_f64) {
        let currency = text_at(v, "/iso_currency_code").unwrap_or_else(|| "USD".into());
        let text = money((amount * 100.0).round() as i64, &currency);
        fields.insert("amount".to_owned(), text.clone());
        line.push_str(&format!(" Amount: {text}."));
    }
    line
}

/// A HubSpot CRM record from a search: a company's name is an organization (a customer),
/// a contact's company likewise, a deal's name its title.
fn hubspot(v: &Value, fields: &mut HashMap<String, String>) -> String {
    let id = text_at(v, "/id").unwrap_or_default();
    let p = v.get("properties").unwrap_or(&Value::Null);
    let person = [text_at(p, "/firstname"), text_at(p, "/lastname")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let (kind, title) = if let Some(name) = text_at(p, "/name") {
        fields.insert("customer".to_owned(), name.clone());
        ("company", name)
    } else if let Some(deal) = text_at(p, "/dealname") {
        ("deal", deal)
    } else if let Some(subject) = text_at(p, "/subject") {
        ("ticket", subject)
    } else if !person.is_empty() {
        ("contact", person)
    } else {
        ("record", id.clone())
    };
    if let Some(company) = text_at(p, "/company") {
        fields.insert("customer".to_owned(), company);
    }
    let mut line = format!("HubSpot {kind} {id}: {title}.");
    if let Some(amount) = text_at(p, "/amount") {
        line.push_str(&format!(" Amount: {amount}."));
    }
    if let Some(at) = text_at(p, "/hs_lastmodifieddate") {
        line.push_str(&format!(" Modified {at}."));
    }
    line
}

fn generic(source: &str, v: &Value) -> String {
    let kind = ["/type", "/event_type", "/eventType", "/event"]
        .iter()
        .find_map(|p| text_at(v, p))
        .unwrap_or_else(|| "event".into());
    format!("Event {kind} from {source}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(out: &Extracted) -> &HashMap<String, String> {
        &out.records[0].fields
    }

    #[test]
    fn a_stripe_invoice_names_its_customer_and_amount() {
        let body = r#"{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"object":"invoice","id":"in_1","number":"INV-0042","customer_name":"Harbor Point Beverages","amount_paid":245000,"currency":"usd"}}}"#;
        let out = parse("stripe", body, 64).expect("parses");
        assert!(
            out.text.starts_with(
                "Stripe event invoice.paid (evt_1). Invoice INV-0042. Customer: Harbor Point Beverages. Amount: USD 2,450.00."
            ),
            "{}",
            out.text
        );
        // The raw fields stay readable below the headline.
        assert!(out.text.contains("data.object.amount_paid: 245000"));
        let f = record(&out);
        assert_eq!(f["invoice_number"], "INV-0042");
        assert_eq!(f["customer"], "Harbor Point Beverages");
        assert_eq!(out.records[0].kind, "event/stripe");
    }

    #[test]
    fn a_samsara_alert_names_its_vehicle_and_driver() {
        let body = r#"{"eventId":"e1","eventTime":"2026-12-03T10:00:00Z","eventType":"AlertIncident","data":{"vehicle":{"id":"2120","name":"Truck 42"},"driver":{"id":"9","name":"Dana Reyes"}}}"#;
        let out = parse("samsara", body, 64).expect("parses");
        assert!(out.text.starts_with("Samsara AlertIncident event (e1) at 2026-12-03T10:00:00Z. Vehicle: Truck 42. Driver: Dana Reyes."), "{}", out.text);
        let f = record(&out);
        assert_eq!(
            (f["vehicle"].as_str(), f["driver"].as_str()),
            ("Truck 42", "Dana Reyes")
        );
    }

    #[test]
    fn other_sources_are_read_by_field_names_top_level_first() {
        let body = r#"{"type":"shipment.updated","data":{"carrier":"Deep Carrier"},"carrier":"Keystone Interstate Freight","shipment":{"id":"SHP-9"},"bol-number":"BOL-77"}"#;
        let out = parse("turvo", body, 64).expect("parses");
        assert!(out.text.starts_with("Event shipment.updated from turvo."));
        let f = record(&out);
        assert_eq!(f["carrier"], "Keystone Interstate Freight");
        assert_eq!(f["shipment"], "SHP-9");
        assert_eq!(f["bol_number"], "BOL-77");
        assert_eq!(f["webhook_source"], "turvo");
    }

    #[test]
    fn front_plaid_and_bad_payloads() {
        let front_body = r#"{"type":"inbound","payload":{"id":"evt_f","type":"inbound","conversation":{"id":"cnv_1","subject":"Rate confirmation","status":"assigned"}}}"#;
        let out = parse("front", front_body, 64).expect("parses");
        assert!(out.text.starts_with("Front inbound event (evt_f). Conversation cnv_1: \u{201c}Rate confirmation\u{201d} (assigned)."), "{}", out.text);
        let plaid_body = r#"{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE","item_id":"it_1","new_transactions":3}"#;
        let out = parse("plaid", plaid_body, 64).expect("parses");
        assert!(out.text.starts_with(
            "Plaid TRANSACTIONS SYNC_UPDATES_AVAILABLE for item it_1. 3 new transactions."
        ));
        assert!(parse("stripe", "{\"id\": ", 64).is_err());
        let tx = r#"{"transaction_id":"tx_9","date":"2026-11-30","name":"SHELL OIL 5742","merchant_name":"Shell","amount":84.32,"iso_currency_code":"USD"}"#;
        let out = parse("plaid", tx, 64).expect("parses");
        assert!(
            out.text.starts_with(
                "Plaid transaction tx_9 on 2026-11-30. Payee: Shell. Amount: USD 84.32."
            ),
            "{}",
            out.text
        );
        assert_eq!(record(&out)["payee"], "Shell");
        let company = r#"{"id":"512","properties":{"name":"Keystone Interstate Freight","hs_lastmodifieddate":"2026-11-30T10:00:00.000Z"},"archived":false}"#;
        let out = parse("hubspot", company, 64).expect("parses");
        assert!(out.text.starts_with("HubSpot company 512: Keystone Interstate Freight. Modified 2026-11-30T10:00:00.000Z."), "{}", out.text);
        assert_eq!(record(&out)["customer"], "Keystone Interstate Freight");
        assert_eq!(money(-5, "eur"), "EUR -0.05");
        assert_eq!(money(123456789, "usd"), "USD 1,234,567.89");
        assert_eq!(money(500, "jpy"), "JPY 500");
    }
}
