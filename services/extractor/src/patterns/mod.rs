//! Pattern entities: contact points (email, phone in E.164, URL), amounts (money,
//! percentages), dates and times (ISO 8601), and the identifiers logistics and finance
//! documents carry (PRO, BOL, PO, invoice, shipment and load numbers, SCAC, USDOT, MC,
//! ISO 6346 container numbers, VINs, IBANs). Identifiers with a check digit are only
//! reported when the check digit holds.

mod amounts;
mod contact;
mod dates;
mod identifiers;

use regex::Regex;

pub use contact::{is_email, phone_e164};
pub use identifiers::{container_check_digit, iban_valid, vin_valid};

/// One pattern match, with byte offsets into the chunk text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternMatch {
    /// Upper snake case, as in `apex.common.v1.Entity.entity_type`.
    pub entity_type: &'static str,
    /// Normalised key: the same thing written differently gets the same key.
    pub canonical_key: String,
    pub byte_start: usize,
    pub byte_end: usize,
    /// Higher wins when two matches overlap.
    priority: u8,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern {pattern}: {e}"))
}

fn push(
    found: &mut Vec<PatternMatch>,
    entity_type: &'static str,
    key: String,
    start: usize,
    end: usize,
    priority: u8,
) {
    found.push(PatternMatch {
        entity_type,
        canonical_key: key,
        byte_start: start,
        byte_end: end,
        priority,
    });
}

/// Every pattern entity in `text`, overlaps resolved (more specific and longer wins),
/// ordered by position.
pub fn find(text: &str) -> Vec<PatternMatch> {
    let mut found: Vec<PatternMatch> = Vec::new();
    // Equal priority, length and start keep the order they were found in (the sort is
    // stable), so the families run in this order.
    contact::find_addresses(text, &mut found);
    identifiers::find_checked(text, &mut found);
    identifiers::find_cued(text, &mut found);
    identifiers::find_carrier_codes(text, &mut found);
    amounts::find_amounts(text, &mut found);
    dates::find_dates(text, &mut found);
    dates::find_times(text, &mut found);
    contact::find_phones(text, &mut found);
    resolve_overlaps(found)
}

/// Keeps, among overlapping matches, the highest priority, then the longest.
fn resolve_overlaps(mut found: Vec<PatternMatch>) -> Vec<PatternMatch> {
    found.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then((b.byte_end - b.byte_start).cmp(&(a.byte_end - a.byte_start)))
            .then(a.byte_start.cmp(&b.byte_start))
    });
    let mut kept: Vec<PatternMatch> = Vec::with_capacity(found.len());
    for m in found {
        if kept
            .iter()
            .all(|k| m.byte_end <= k.byte_start || m.byte_start >= k.byte_end)
        {
            kept.push(m);
        }
    }
    kept.sort_by_key(|m| m.byte_start);
    kept
}

#[cfg(test)]
mod tests;
