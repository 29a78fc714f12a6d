//! Identifiers: ISO 6346 container numbers, VINs and IBANs (only when their check digit
//! holds), and the numbers a cue word introduces (PRO, BOL, PO, invoice, shipment, load, SCAC,
//! USDOT, MC).

use std::sync::LazyLock;

use regex::Regex;

use super::dates::US_DATE;
use super::{PatternMatch, push, re};

static KEYWORD_ID: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?-u:\b)(pro|bol|bl|b/l|mbl|hbl|mbol|hbol|master bol|bill of lading|p\.?o\.?|purchase order|orden de compra|invoices?|inv|factura|faktura|rechnung|shipments?|embarque|loads?)\s*(?:#|no\.?|number|num\.?|nr\.?|id)?\s*[:#]?\s*([A-Z0-9][A-Z0-9/-]{3,24}[A-Z0-9])(?-u:\b)",
    )
});
/// More identifiers after the first in a list: `invoices A-1 / A-2 and A-3`.
static LIST_NEXT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?:\s*(?:,|/|&|and|y|und)\s*)#?([A-Z0-9][A-Z0-9/-]{3,24}[A-Z0-9])(?-u:\b)")
});
static SCAC: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i:(?-u:\b)SCAC\s*(?:code)?)\s*[:#]?\s*([A-Z]{2,4})(?-u:\b)"));
static USDOT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(?-u:\b)(?:US\s?DOT|DOT)\s*(?:#|no\.?|number)?\s*[:#]?\s*(\d{5,8})(?-u:\b)")
});
static MC: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(?-u:\b)MC\s*(?:#|no\.?|number)?\s*(?:is\s+)?[-:#]?\s*(\d{5,7})(?-u:\b)")
});
static CONTAINER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)([A-Z]{3}[UJZ])\s?(\d{6})\s?-?(\d)(?-u:\b)"));
static VIN: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u:\b)[A-HJ-NPR-Z0-9]{17}(?-u:\b)"));
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?-u:\b)[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?(?-u:\b)")
});

/// ISO 6346: the check digit of a container number (owner code + category + serial).
pub fn container_check_digit(code: &str) -> Option<u32> {
    let value = |c: char| -> Option<u32> {
        if let Some(d) = c.to_digit(10) {
            return Some(d);
        }
        // Letters map to 10.. skipping multiples of 11.
        let mut v = 10;
        for l in 'A'..=c {
            if l == c {
                return c.is_ascii_uppercase().then_some(v);
            }
            v += 1;
            if v.is_multiple_of(11) {
                v += 1;
            }
        }
        None
    };
    let chars: Vec<char> = code.chars().collect();
    if chars.len() != 10 {
        return None;
    }
    let mut sum = 0u32;
    for (i, c) in chars.iter().enumerate() {
        sum += value(*c)? << i;
    }
    Some(sum % 11 % 10)
}

/// North American VIN check digit (position 9, `X` = 10).
pub fn vin_valid(vin: &str) -> bool {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let value = |c: char| -> Option<u32> {
        c.to_digit(10).or(match c {
            'A' | 'J' => Some(1),
            'B' | 'K' | 'S' => Some(2),
            'C' | 'L' | 'T' => Some(3),
            'D' | 'M' | 'U' => Some(4),
            'E' | 'N' | 'V' => Some(5),
            'F' | 'W' => Some(6),
            'G' | 'P' | 'X' => Some(7),
            'H' | 'Y' => Some(8),
            'R' | 'Z' => Some(9),
            _ => None,
        })
    };
    let chars: Vec<char> = vin.chars().collect();
    if chars.len() != 17
        || !chars.iter().any(char::is_ascii_digit)
        || !chars.iter().any(char::is_ascii_alphabetic)
    {
        return false;
    }
    let mut sum = 0;
    for (c, w) in chars.iter().zip(WEIGHTS) {
        match value(*c) {
            Some(v) => sum += v * w,
            None => return false,
        }
    }
    let check = sum % 11;
    let expected = if check == 10 {
        'X'
    } else {
        char::from_digit(check, 10).unwrap_or('?')
    };
    chars[8] == expected
}

/// IBAN mod-97 check (ISO 13616), on the compact form.
pub fn iban_valid(iban: &str) -> bool {
    let compact: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder = 0u32;
    for c in tail.chars().chain(head.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        for d in v.to_string().chars() {
            remainder = (remainder * 10 + d.to_digit(10).unwrap_or(0)) % 97;
        }
    }
    remainder == 1
}

/// Container numbers, VINs and IBANs whose check digit holds.
pub(super) fn find_checked(text: &str, found: &mut Vec<PatternMatch>) {
    for c in CONTAINER.captures_iter(text) {
        let code = format!("{}{}", &c[1], &c[2]);
        let digit: u32 = c[3].parse().unwrap_or(99);
        if container_check_digit(&code) == Some(digit) {
            let m = c.get(0).map_or(0..0, |m| m.range());
            push(
                found,
                "CONTAINER_NUMBER",
                format!("{code}{digit}"),
                m.start,
                m.end,
                10,
            );
        }
    }
    for m in VIN.find_iter(text) {
        if vin_valid(m.as_str()) {
            push(found, "VIN", m.as_str().to_owned(), m.start(), m.end(), 10);
        }
    }
    for m in IBAN.find_iter(text) {
        if iban_valid(m.as_str()) {
            let key: String = m.as_str().chars().filter(|c| !c.is_whitespace()).collect();
            push(found, "IBAN", key, m.start(), m.end(), 10);
        }
    }
}

/// Numbers after a cue word (`PRO#`, `BOL:`, `invoice`…), and the ones listed after them.
pub(super) fn find_cued(text: &str, found: &mut Vec<PatternMatch>) {
    for c in KEYWORD_ID.captures_iter(text) {
        let keyword = c[1].to_ascii_lowercase().replace('.', "");
        let entity_type = match keyword.as_str() {
            "pro" => "PRO_NUMBER",
            "bol" | "bl" | "b/l" | "mbl" | "hbl" | "mbol" | "hbol" | "master bol"
            | "bill of lading" => "BOL_NUMBER",
            "po" | "purchase order" | "orden de compra" => "PO_NUMBER",
            "invoice" | "invoices" | "inv" | "factura" | "faktura" | "rechnung" => "INVOICE_NUMBER",
            "shipment" | "shipments" | "embarque" => "SHIPMENT_NUMBER",
            _ => "LOAD_NUMBER",
        };
        let Some(m) = c.get(2) else { continue };
        let mut next = Some((m.start(), m.end()));
        while let Some((start, end)) = next.take() {
            let value = &text[start..end];
            // An identifier has a digit ("invoice total" is not an invoice number) and is
            // not a date.
            if !value.chars().any(|ch| ch.is_ascii_digit())
                || US_DATE.is_match(value)
                || value.chars().all(|ch| ch.is_ascii_digit() || ch == '/') && value.contains('/')
            {
                break;
            }
            push(
                found,
                entity_type,
                value.to_ascii_uppercase(),
                start,
                end,
                8,
            );
            next = LIST_NEXT
                .captures(&text[end..])
                .and_then(|l| l.get(1))
                .map(|l| (end + l.start(), end + l.end()));
        }
    }
}

/// Carrier registrations: SCAC, USDOT and MC numbers.
pub(super) fn find_carrier_codes(text: &str, found: &mut Vec<PatternMatch>) {
    for c in SCAC.captures_iter(text) {
        if let Some(m) = c.get(1) {
            push(
                found,
                "SCAC",
                m.as_str().to_ascii_uppercase(),
                m.start(),
                m.end(),
                8,
            );
        }
    }
    for c in USDOT.captures_iter(text) {
        if let Some(m) = c.get(1) {
            push(
                found,
                "USDOT_NUMBER",
                m.as_str().to_owned(),
                m.start(),
                m.end(),
                8,
            );
        }
    }
    for c in MC.captures_iter(text) {
        if let Some(m) = c.get(1) {
            push(
                found,
                "MC_NUMBER",
                format!("MC{}", m.as_str()),
                m.start(),
                m.end(),
                8,
            );
        }
    }
}
