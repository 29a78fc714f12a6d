//! Amounts: money (with the currency before or after the number) and percentages.

use std::sync::LazyLock;

use regex::Regex;

use super::{PatternMatch, push, re};

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

pub(super) fn find_amounts(text: &str, found: &mut Vec<PatternMatch>) {
    for c in MONEY_BEFORE.captures_iter(text) {
        let currency = c
            .get(1)
            .or_else(|| c.get(2))
            .or_else(|| c.get(3))
            .map_or("", |m| m.as_str());
        let m = c.get(0).map_or(0..0, |m| m.range());
        push(
            found,
            "MONEY",
            money_key(currency, &c[4]),
            m.start,
            m.end,
            7,
        );
    }
    for c in MONEY_AFTER.captures_iter(text) {
        let m = c.get(0).map_or(0..0, |m| m.range());
        push(found, "MONEY", money_key(&c[2], &c[1]), m.start, m.end, 7);
    }
    for m in PERCENT.find_iter(text) {
        let key: String = m.as_str().chars().filter(|c| !c.is_whitespace()).collect();
        push(found, "PERCENT", key, m.start(), m.end(), 6);
    }
}
