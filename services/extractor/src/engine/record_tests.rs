//! Unit tests for structured records: EDI parties become typed relations on the text's nodes.

use std::collections::HashMap;

use apex_proto::parser::v1::Record;

use super::*;

#[test]
fn edi_parties_become_typed_relations_sharing_text_entities() {
    let result = Engine::default().extract(&[Chunk {
        chunk_id: "c".to_owned(),
        text: "Shipment SHIP-42 for Lone Star Grocers LLC".to_owned(),
        ..Chunk::default()
    }]);
    let fields: HashMap<String, String> = [
        ("shipment_id", "SHIP-42"),
        ("scac", "ACME"),
        ("shipper", "Apex Foods"),
        ("consignee", "Lone Star Grocers"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let result = add_structured_sources(
        result,
        &[Record {
            kind: "edi-x12/214".to_owned(),
            fields,
            json: String::new(),
        }],
        &HashMap::new(),
    );
    let idx = |t: &str, k: &str| {
        result
            .entities
            .iter()
            .position(|e| e.entity_type == t && e.canonical_key == k)
            .unwrap_or_else(|| panic!("{t} {k}: {:?}", result.entities)) as u32
    };
    let (ship, consignee, shipper, scac) = (
        idx("SHIPMENT_NUMBER", "SHIP-42"),
        idx("ORGANIZATION", "lone star grocers"),
        idx("ORGANIZATION", "apex foods"),
        idx("SCAC", "ACME"),
    );
    let has = |from: u32, to: u32, kind: &str| {
        result.relations.iter().any(|r| {
            r.from_entity_index == from && r.to_entity_index == to && r.relation_type == kind
        })
    };
    assert!(has(shipper, consignee, "SHIPS_TO"));
    assert!(has(ship, scac, "CARRIED_BY"));
    assert!(has(ship, consignee, "DELIVERED_TO"));
    assert!(has(ship, shipper, "SHIPPED_BY"));
    // The text's shipment and consignee are the same nodes as the record's.
    assert_eq!(
        result
            .entities
            .iter()
            .filter(|e| e.entity_type == "SHIPMENT_NUMBER")
            .count(),
        1
    );
    assert_eq!(
        result
            .entities
            .iter()
            .filter(|e| e.canonical_key == "lone star grocers")
            .count(),
        1
    );
}

#[test]
fn webhook_event_records_name_vehicle_driver_invoice_and_customer() {
    let record = |kind: &str, pairs: &[(&str, &str)]| Record {
        kind: kind.to_owned(),
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        json: String::new(),
    };
    let result = add_structured_sources(
        ExtractionResult::default(),
        &[
            record(
                "event/samsara",
                &[("vehicle", "Truck 42"), ("driver", "Dana Reyes")],
            ),
            record(
                "event/stripe",
                &[
                    ("invoice_number", "INV-0042"),
                    ("customer", "Harbor Point Beverages"),
                ],
            ),
            // Not a structured kind: ignored.
            record("row", &[("carrier", "Nobody Freight")]),
        ],
        &HashMap::new(),
    );
    let idx = |t: &str, k: &str| {
        result
            .entities
            .iter()
            .position(|e| e.entity_type == t && e.canonical_key == k)
            .unwrap_or_else(|| panic!("{t} {k}: {:?}", result.entities)) as u32
    };
    let has = |from: u32, to: u32, kind: &str| {
        result.relations.iter().any(|r| {
            r.from_entity_index == from && r.to_entity_index == to && r.relation_type == kind
        })
    };
    let (truck, driver) = (idx("VEHICLE", "TRUCK 42"), idx("PERSON", "dana reyes"));
    assert!(has(truck, driver, "DRIVEN_BY"), "{:?}", result.relations);
    let (invoice, customer) = (
        idx("INVOICE_NUMBER", "INV-0042"),
        idx("ORGANIZATION", "harbor point beverages"),
    );
    assert!(
        has(invoice, customer, "BILLED_TO"),
        "{:?}",
        result.relations
    );
    assert!(
        !result
            .entities
            .iter()
            .any(|e| e.display_name == "Nobody Freight")
    );
}
