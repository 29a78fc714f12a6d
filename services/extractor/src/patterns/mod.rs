//! Pattern entities: contact points (email, phone in E.164, URL), amounts (money,
//! percentages), dates and times (ISO 8601), and the identifiers logistics and finance
//! documents carry (PRO, BOL, PO, invoice, shipment and load numbers, SCAC, USDOT, MC,
//! ISO 6346 container numbers, VINs, IBANs). Identifiers with a check digit are only
//! reported when the check digit holds.

use std::sync::LazyLock;

use regex::{Captures, Regex};

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

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?-u:\b)")
});
static URL: LazyLock<Regex> = LazyLock::new(|| re(r#"(?-u:\b)https?://[^\s<>"'()\[\]]+"#));
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:\+\d{1,3}[\s.-]?|(?-u:\b)1[\s.-])?(?:\(\d{2,4}\)[\s.-]?|(?-u:\b)\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}(?-u:\b)",
    )
});
/// International numbers in groups (`+48 58 555 01 47`, `+49 30 901820`).
static INTL_PHONE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\+\d{1,3}(?:[ .-]\(?\d{1,4}\)?){2,6}(?-u:\b)"));
static MONEY_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:(?-u:\b)(USD|EUR|GBP|CAD|MXN|CHF|JPY|CNY|AUD|PLN|SEK|NOK|DKK|INR|BRL)\s?|(?-u:\b)(US\$|USD\$|C\$|CA\$|CAD\$|A\$|AU\$|MX\$|NZ\$|HK\$)\s?|(\$|€|£|¥|₹))(-?\d{1,3}(?:,\d{3})+(?:\.\d{1,3})?|-?\d+(?:\.\d{1,3})?)(?-u:\b)",
    )
});
static MONEY_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?-u:\b)(-?\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|-?\d+(?:\.\d{1,2})?)\s?(USD|EUR|GBP|CAD|MXN|CHF|JPY|CNY|AUD|PLN|SEK|NOK|DKK|INR|BRL|dollars|euros|pesos|pounds|zł|zl)(?-u:\b)",
    )
});
static PERCENT: LazyLock<Regex> = LazyLock::new(|| re(r"-?(?-u:\b)\d+(?:\.\d+)?\s?%"));
static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?-u:\b)(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?(?-u:\b)",
    )
});
/// `03/05/2026` (month first unless the first number cannot be a month), `06.03.2026`
/// (day first, as in Europe).
static US_DATE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)(\d{1,2})/(\d{1,2})/(\d{4})(?-u:\b)"));
static DOT_DATE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)(\d{1,2})\.(\d{1,2})\.(\d{4})(?-u:\b)"));
/// `10-Mar-2026`.
static DASH_MONTH_DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(?-u:\b)(\d{1,2})-(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)-(\d{4})(?-u:\b)")
});
static MONTH_DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?-u:\b)(?:(\d{1,2})\s+)?(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?(?:\s+(\d{1,2})(?:st|nd|rd|th)?,?)?\s+(\d{4})(?-u:\b)",
    )
});
static TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(?-u:\b)(\d{1,2}):(\d{2})(?::(\d{2}))?(?-u:\b)(?:\s?(am|pm)(?-u:\b))?")
});
/// `7am`, `3 pm`.
static HOUR_TIME: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)(?-u:\b)(\d{1,2})\s?(am|pm)(?-u:\b)"));
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

fn month_number(name: &str) -> Option<u32> {
    let m = name.to_ascii_lowercase();
    [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|p| m.starts_with(p))
    .map(|i| i as u32 + 1)
}

fn valid_date(y: u32, m: u32, d: u32) -> bool {
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2200).contains(&y) && (1..=days).contains(&d)
}

fn num(c: &Captures<'_>, i: usize) -> Option<u32> {
    c.get(i)?.as_str().parse().ok()
}

/// Whether `s` is exactly one email address.
pub fn is_email(s: &str) -> bool {
    EMAIL
        .find(s)
        .is_some_and(|m| m.start() == 0 && m.end() == s.len())
}

/// Phone digits to E.164 where the country is known (a `+` prefix, or 10/11-digit NANP).
pub fn phone_e164(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if raw.trim_start().starts_with('+') {
        return (8..=15)
            .contains(&digits.len())
            .then(|| format!("+{digits}"));
    }
    match digits.len() {
        10 if !digits.starts_with(['0', '1']) => Some(format!("+1{digits}")),
        11 if digits.starts_with('1') => Some(format!("+{digits}")),
        _ => None,
    }
}

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

fn money_key(currency: &str, amount: &str) -> String {
    let code = match currency {
        "$" | "dollars" | "US$" | "USD$" => "USD",
        "€" | "euros" => "EUR",
        "£" | "pounds" => "GBP",
        "C$" | "CA$" | "CAD$" => "CAD",
        "A$" | "AU$" => "AUD",
        "MX$" | "pesos" => "MXN",
        "NZ$" => "NZD",
        "HK$" => "HKD",
        "¥" => "JPY",
        "₹" => "INR",
        "zł" | "zl" => "PLN",
        other => other,
    };
    let clean: String = amount.chars().filter(|c| *c != ',').collect();
    let value: f64 = clean.parse().unwrap_or(0.0);
    // Two decimals, or three where written (fuel prices per gallon).
    let decimals = clean.split_once('.').map_or(0, |(_, d)| d.len()).max(2);
    format!("{} {value:.decimals$}", code.to_ascii_uppercase())
}

/// Every pattern entity in `text`, overlaps resolved (more specific and longer wins),
/// ordered by position.
pub fn find(text: &str) -> Vec<PatternMatch> {
    let mut found: Vec<PatternMatch> = Vec::new();
    let mut push =
        |entity_type: &'static str, key: String, start: usize, end: usize, priority: u8| {
            found.push(PatternMatch {
                entity_type,
                canonical_key: key,
                byte_start: start,
                byte_end: end,
                priority,
            });
        };
    for m in EMAIL.find_iter(text) {
        push("EMAIL", m.as_str().to_lowercase(), m.start(), m.end(), 9);
    }
    for m in URL.find_iter(text) {
        let s = m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?']);
        push("URL", s.to_owned(), m.start(), m.start() + s.len(), 9);
    }
    for c in CONTAINER.captures_iter(text) {
        let code = format!("{}{}", &c[1], &c[2]);
        let digit: u32 = c[3].parse().unwrap_or(99);
        if container_check_digit(&code) == Some(digit) {
            let m = c.get(0).map_or(0..0, |m| m.range());
            push(
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
            push("VIN", m.as_str().to_owned(), m.start(), m.end(), 10);
        }
    }
    for m in IBAN.find_iter(text) {
        if iban_valid(m.as_str()) {
            let key: String = m.as_str().chars().filter(|c| !c.is_whitespace()).collect();
            push("IBAN", key, m.start(), m.end(), 10);
        }
    }
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
            push(entity_type, value.to_ascii_uppercase(), start, end, 8);
            next = LIST_NEXT
                .captures(&text[end..])
                .and_then(|l| l.get(1))
                .map(|l| (end + l.start(), end + l.end()));
        }
    }
    for c in SCAC.captures_iter(text) {
        if let Some(m) = c.get(1) {
            push(
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
            push("USDOT_NUMBER", m.as_str().to_owned(), m.start(), m.end(), 8);
        }
    }
    for c in MC.captures_iter(text) {
        if let Some(m) = c.get(1) {
            push(
                "MC_NUMBER",
                format!("MC{}", m.as_str()),
                m.start(),
                m.end(),
                8,
            );
        }
    }
    for c in MONEY_BEFORE.captures_iter(text) {
        let currency = c
            .get(1)
            .or_else(|| c.get(2))
            .or_else(|| c.get(3))
            .map_or("", |m| m.as_str());
        let m = c.get(0).map_or(0..0, |m| m.range());
        push("MONEY", money_key(currency, &c[4]), m.start, m.end, 7);
    }
    for c in MONEY_AFTER.captures_iter(text) {
        let m = c.get(0).map_or(0..0, |m| m.range());
        push("MONEY", money_key(&c[2], &c[1]), m.start, m.end, 7);
    }
    for m in PERCENT.find_iter(text) {
        let key: String = m.as_str().chars().filter(|c| !c.is_whitespace()).collect();
        push("PERCENT", key, m.start(), m.end(), 6);
    }
    for c in ISO_DATE.captures_iter(text) {
        let (Some(y), Some(mo), Some(d)) = (num(&c, 1), num(&c, 2), num(&c, 3)) else {
            continue;
        };
        if !valid_date(y, mo, d) {
            continue;
        }
        let m = c.get(0).map_or(0..0, |m| m.range());
        match (num(&c, 4), num(&c, 5)) {
            (Some(h), Some(mi)) if h < 24 && mi < 60 => push(
                "DATETIME",
                format!(
                    "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{:02}{}",
                    num(&c, 6).unwrap_or(0),
                    c.get(7).map_or("", |z| z.as_str())
                ),
                m.start,
                m.end,
                6,
            ),
            _ => push("DATE", format!("{y:04}-{mo:02}-{d:02}"), m.start, m.end, 6),
        }
    }
    for c in US_DATE.captures_iter(text) {
        let (Some(mut mo), Some(mut d), Some(y)) = (num(&c, 1), num(&c, 2), num(&c, 3)) else {
            continue;
        };
        if mo > 12 {
            // 19/03/2026 can only be day first.
            std::mem::swap(&mut mo, &mut d);
        }
        if valid_date(y, mo, d) {
            let m = c.get(0).map_or(0..0, |m| m.range());
            push("DATE", format!("{y:04}-{mo:02}-{d:02}"), m.start, m.end, 6);
        }
    }
    for c in DOT_DATE.captures_iter(text) {
        let (Some(d), Some(mo), Some(y)) = (num(&c, 1), num(&c, 2), num(&c, 3)) else {
            continue;
        };
        if valid_date(y, mo, d) {
            let m = c.get(0).map_or(0..0, |m| m.range());
            push("DATE", format!("{y:04}-{mo:02}-{d:02}"), m.start, m.end, 6);
        }
    }
    for c in DASH_MONTH_DATE.captures_iter(text) {
        let (Some(d), Some(mo), Some(y)) = (num(&c, 1), month_number(&c[2]), num(&c, 3)) else {
            continue;
        };
        if valid_date(y, mo, d) {
            let m = c.get(0).map_or(0..0, |m| m.range());
            push("DATE", format!("{y:04}-{mo:02}-{d:02}"), m.start, m.end, 6);
        }
    }
    for c in MONTH_DATE.captures_iter(text) {
        let Some(mo) = c.get(2).and_then(|m| month_number(m.as_str())) else {
            continue;
        };
        let Some(d) = num(&c, 1).or_else(|| num(&c, 3)) else {
            continue;
        };
        let Some(y) = num(&c, 4) else { continue };
        if valid_date(y, mo, d) {
            let m = c.get(0).map_or(0..0, |m| m.range());
            push("DATE", format!("{y:04}-{mo:02}-{d:02}"), m.start, m.end, 6);
        }
    }
    for c in TIME.captures_iter(text) {
        let (Some(mut h), Some(mi)) = (num(&c, 1), num(&c, 2)) else {
            continue;
        };
        match c.get(4).map(|m| m.as_str().to_ascii_lowercase()) {
            Some(p) if p == "pm" && h < 12 => h += 12,
            Some(p) if p == "am" && h == 12 => h = 0,
            _ => {}
        }
        let m = c.get(0).map_or(0..0, |m| m.range());
        // "+01:00" is a time-zone offset, "12:30:45" inside a timestamp is handled above.
        let after_sign = text[..m.start].ends_with(['+', '-', ':']);
        if h < 24 && mi < 60 && !after_sign {
            push("TIME", format!("{h:02}:{mi:02}"), m.start, m.end, 5);
        }
    }
    for c in HOUR_TIME.captures_iter(text) {
        let Some(mut h) = num(&c, 1) else { continue };
        if !(1..=12).contains(&h) {
            continue;
        }
        match c[2].to_ascii_lowercase().as_str() {
            "pm" if h < 12 => h += 12,
            "am" if h == 12 => h = 0,
            _ => {}
        }
        let m = c.get(0).map_or(0..0, |m| m.range());
        push("TIME", format!("{h:02}:00"), m.start, m.end, 5);
    }
    for m in PHONE.find_iter(text) {
        if let Some(e164) = phone_e164(m.as_str()) {
            push("PHONE", e164, m.start(), m.end(), 4);
        }
    }
    for m in INTL_PHONE.find_iter(text) {
        if let Some(e164) = phone_e164(m.as_str()) {
            // Ranks below the grouped form above when both match the same digits.
            push("PHONE", e164, m.start(), m.end(), 4);
        }
    }
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
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(&'static str, String)> {
        find(text)
            .into_iter()
            .map(|m| (m.entity_type, m.canonical_key))
            .collect()
    }

    #[test]
    fn contact_points_are_normalised() {
        let k = keys(
            "Call +1 (312) 555-0100 or 312.555.0199, mail Ada.L@Apex.example, see https://apex.example/track?id=7.",
        );
        assert!(k.contains(&("PHONE", "+13125550100".to_owned())), "{k:?}");
        assert!(k.contains(&("PHONE", "+13125550199".to_owned())), "{k:?}");
        assert!(
            k.contains(&("EMAIL", "ada.l@apex.example".to_owned())),
            "{k:?}"
        );
        assert!(
            k.contains(&("URL", "https://apex.example/track?id=7".to_owned())),
            "{k:?}"
        );
    }

    #[test]
    fn amounts_dates_and_times() {
        let k = keys(
            "Pay $1,875.50 (or 1875.5 EUR) by March 15, 2026 at 2:30 pm; fuel 12.5 % from 2026-03-01, due 03/20/2026.",
        );
        assert!(k.contains(&("MONEY", "USD 1875.50".to_owned())), "{k:?}");
        assert!(k.contains(&("MONEY", "EUR 1875.50".to_owned())), "{k:?}");
        assert!(k.contains(&("DATE", "2026-03-15".to_owned())), "{k:?}");
        assert!(k.contains(&("TIME", "14:30".to_owned())), "{k:?}");
        let money = keys("C$1,200.00, CA$ 99, £75, 4,500 EUR, 310 pesos and $3.899/gal");
        for want in [
            "CAD 1200.00",
            "CAD 99.00",
            "GBP 75.00",
            "EUR 4500.00",
            "MXN 310.00",
            "USD 3.899",
        ] {
            assert!(
                money.contains(&("MONEY", want.to_owned())),
                "{want}: {money:?}"
            );
        }
        let offset = keys("Date: 2026-03-15T09:30:00+01:00");
        assert_eq!(
            offset,
            [("DATETIME", "2026-03-15T09:30:00+01:00".to_owned())],
            "an offset is not a time"
        );
        assert!(k.contains(&("PERCENT", "12.5%".to_owned())), "{k:?}");
        assert!(k.contains(&("DATE", "2026-03-01".to_owned())), "{k:?}");
        assert!(k.contains(&("DATE", "2026-03-20".to_owned())), "{k:?}");
        assert!(
            !keys("on 2026-02-30").iter().any(|(t, _)| *t == "DATE"),
            "no 30 February"
        );
    }

    #[test]
    fn logistics_identifiers_with_cues() {
        let k = keys(
            "PRO# 123456789, BOL: BL-88231, PO 4500012345, Invoice INV-5531, load no. L-2291, SCAC: ACME, USDOT 1234567, MC-654321.",
        );
        for want in [
            ("PRO_NUMBER", "123456789"),
            ("BOL_NUMBER", "BL-88231"),
            ("PO_NUMBER", "4500012345"),
            ("INVOICE_NUMBER", "INV-5531"),
            ("LOAD_NUMBER", "L-2291"),
            ("SCAC", "ACME"),
            ("USDOT_NUMBER", "1234567"),
            ("MC_NUMBER", "MC654321"),
        ] {
            assert!(
                k.contains(&(want.0, want.1.to_owned())),
                "{want:?} missing from {k:?}"
            );
        }
        assert!(
            !keys("the invoice total")
                .iter()
                .any(|(t, _)| *t == "INVOICE_NUMBER")
        );
    }

    #[test]
    fn check_digits_decide_containers_vins_and_ibans() {
        // CSQU3054383 is the standard ISO 6346 example.
        assert_eq!(container_check_digit("CSQU305438"), Some(3));
        let k = keys("Container CSQU 305438 3 and CSQU3054384 (bad check digit).");
        assert_eq!(
            k.iter().filter(|(t, _)| *t == "CONTAINER_NUMBER").count(),
            1,
            "{k:?}"
        );
        assert!(k.contains(&("CONTAINER_NUMBER", "CSQU3054383".to_owned())));
        assert!(vin_valid("1M8GDM9AXKP042788"));
        assert!(!vin_valid("1M8GDM9A1KP042788"));
        assert!(keys("VIN 1M8GDM9AXKP042788").contains(&("VIN", "1M8GDM9AXKP042788".to_owned())));
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert!(!iban_valid("GB82 WEST 1234 5698 7654 33"));
        assert!(
            keys("IBAN GB82 WEST 1234 5698 7654 32.")
                .contains(&("IBAN", "GB82WEST12345698765432".to_owned()))
        );
    }

    #[test]
    fn overlaps_keep_the_most_specific_match() {
        // The digits of a PRO number are not also a phone number.
        let k = keys("PRO 3125550100");
        assert_eq!(k, [("PRO_NUMBER", "3125550100".to_owned())]);
        assert!(keys("").is_empty());
    }
}
