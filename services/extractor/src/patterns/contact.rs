//! Contact points: email addresses, URLs and phone numbers (normalised to E.164).

use std::sync::LazyLock;

use regex::Regex;

use super::{PatternMatch, push, re};

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

/// Email addresses (lower-cased) and URLs (without the punctuation that ends a sentence).
pub(super) fn find_addresses(text: &str, found: &mut Vec<PatternMatch>) {
    for m in EMAIL.find_iter(text) {
        push(
            found,
            "EMAIL",
            m.as_str().to_lowercase(),
            m.start(),
            m.end(),
            9,
        );
    }
    for m in URL.find_iter(text) {
        let s = m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?']);
        push(
            found,
            "URL",
            s.to_owned(),
            m.start(),
            m.start() + s.len(),
            9,
        );
    }
}

/// Phone numbers that can be written in E.164; they rank below every other pattern.
pub(super) fn find_phones(text: &str, found: &mut Vec<PatternMatch>) {
    for m in PHONE.find_iter(text) {
        if let Some(e164) = phone_e164(m.as_str()) {
            push(found, "PHONE", e164, m.start(), m.end(), 4);
        }
    }
    for m in INTL_PHONE.find_iter(text) {
        if let Some(e164) = phone_e164(m.as_str()) {
            // Ranks below the grouped form above when both match the same digits.
            push(found, "PHONE", e164, m.start(), m.end(), 4);
        }
    }
}
