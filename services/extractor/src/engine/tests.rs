//! Unit tests for the engine on text: shared entities, mentions, co-occurrence, deadlines.

use apex_proto::common::v1::Mention;

use super::*;

fn chunk(id: &str, text: &str) -> Chunk {
    Chunk {
        chunk_id: id.to_owned(),
        text: text.to_owned(),
        ..Chunk::default()
    }
}

#[test]
fn entities_are_shared_across_chunks_with_mentions_and_cooccurrence() {
    let result = Engine::default().extract(&[
        chunk(
            "c1",
            "Shipment SHIP-42 left Chicago on 2026-03-15; contact ops@apex.example.",
        ),
        chunk("c2", "   \n "),
        chunk(
            "c3",
            "SHIP-42 delayed: shipment SHIP-42 now due in Dallas, ops@Apex.example says.",
        ),
    ]);
    assert_eq!(result.empty_chunks, 1);
    let find = |t: &str, k: &str| {
        result
            .entities
            .iter()
            .position(|e| e.entity_type == t && e.canonical_key == k)
            .unwrap_or_else(|| panic!("{t} {k} missing: {:?}", result.entities))
    };
    let ship = find("SHIPMENT_NUMBER", "SHIP-42");
    let email = find("EMAIL", "ops@apex.example");
    let chicago = find("LOCATION", "city:chicago-us");
    find("LOCATION", "city:dallas-us");
    find("DATE", "2026-03-15");
    // One entity, mentioned in both chunks, with spans that point at the text.
    let ship_mentions: Vec<&Mention> = result
        .mentions
        .iter()
        .filter(|m| m.entity_index as usize == ship)
        .collect();
    assert_eq!(ship_mentions.len(), 2);
    let m = ship_mentions[0];
    let span = m.span.expect("span");
    assert_eq!(m.chunk_id, "c1");
    assert_eq!(
        "Shipment SHIP-42 left"
            .chars()
            .skip(span.char_start as usize)
            .take((span.char_end - span.char_start) as usize)
            .collect::<String>(),
        "SHIP-42"
    );
    // Shipment and email share two chunks; dates make no relations.
    let weight = |a: usize, b: usize| {
        result
            .relations
            .iter()
            .find(|r| {
                (r.from_entity_index as usize, r.to_entity_index as usize) == (a.min(b), a.max(b))
            })
            .map(|r| r.weight)
    };
    assert_eq!(weight(ship, email), Some(2.0));
    assert_eq!(weight(ship, chicago), Some(1.0));
    let date = find("DATE", "2026-03-15");
    assert!(
        result
            .relations
            .iter()
            .all(|r| r.from_entity_index as usize != date && r.to_entity_index as usize != date)
    );
}

#[test]
fn a_passed_deadline_stops_between_chunks() {
    let chunks = [chunk("a", "ops@apex.example"), chunk("b", "more")];
    let past = Instant::now();
    assert_eq!(
        Engine::default().extract_until(&chunks, Some(past)),
        Err(TimedOut { chunks_done: 0 })
    );
    let later = Instant::now() + std::time::Duration::from_secs(60);
    assert!(
        Engine::default()
            .extract_until(&chunks, Some(later))
            .is_ok()
    );
}

#[test]
fn nothing_in_nothing_out() {
    let result = Engine::default().extract(&[chunk("c", ""), chunk("d", "\t")]);
    assert_eq!(result.empty_chunks, 2);
    assert!(
        result.entities.is_empty() && result.mentions.is_empty() && result.relations.is_empty()
    );
}
