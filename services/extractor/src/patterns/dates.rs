//! Dates (ISO 8601, US, European, with month names) and times of day, as ISO 8601 keys.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::{PatternMatch, push, re};

static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?-u:\b)(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?(?-u:\b)",
    )
});
/// `03/05/2026` (month first unless the first number cannot be a month), `06.03.2026`
/// (day first, as in Europe).
pub(super) static US_DATE: LazyLock<Regex> =
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

fn num(c: &Captures<'_>, i: usize) -> Option<u32> {
    c.get(i)?.as_str().parse().ok()
}

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

/// ISO dates and date-times, then the numeric and month-name forms.
pub(super) fn find_dates(text: &str, found: &mut Vec<PatternMatch>) {
    find_iso(text, found);
    find_numeric(text, found);
    find_month_names(text, found);
}

fn find_iso(text: &str, found: &mut Vec<PatternMatch>) {
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
                found,
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
            _ => push(
                found,
                "DATE",
                format!("{y:04}-{mo:02}-{d:02}"),
                m.start,
                m.end,
                6,
            ),
        }
    }
}

fn find_numeric(text: &str, found: &mut Vec<PatternMatch>) {
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
            push(
                found,
                "DATE",
                format!("{y:04}-{mo:02}-{d:02}"),
                m.start,
                m.end,
                6,
            );
        }
    }
    for c in DOT_DATE.captures_iter(text) {
        let (Some(d), Some(mo), Some(y)) = (num(&c, 1), num(&c, 2), num(&c, 3)) else {
            continue;
        };
        if valid_date(y, mo, d) {
            let m = c.get(0).map_or(0..0, |m| m.range());
            push(
                found,
                "DATE",
                format!("{y:04}-{mo:02}-{d:02}"),
                m.start,
                m.end,
                6,
            );
        }
    }
}

fn find_month_names(text: &str, found: &mut Vec<PatternMatch>) {
    for c in DASH_MONTH_DATE.captures_iter(text) {
        let (Some(d), Some(mo), Some(y)) = (num(&c, 1), month_number(&c[2]), num(&c, 3)) else {
            continue;
        };
        if valid_date(y, mo, d) {
            let m = c.get(0).map_or(0..0, |m| m.range());
            push(
                found,
                "DATE",
                format!("{y:04}-{mo:02}-{d:02}"),
                m.start,
                m.end,
                6,
            );
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
            push(
                found,
                "DATE",
                format!("{y:04}-{mo:02}-{d:02}"),
                m.start,
                m.end,
                6,
            );
        }
    }
}

/// `14:30`, `2:30 pm`, `7am`: 24-hour keys.
pub(super) fn find_times(text: &str, found: &mut Vec<PatternMatch>) {
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
            push(found, "TIME", format!("{h:02}:{mi:02}"), m.start, m.end, 5);
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
        push(found, "TIME", format!("{h:02}:00"), m.start, m.end, 5);
    }
}
