//! Named entities by rule: organisations by their legal suffix, people by a title or role
//! cue or as an email display name. Keys drop case, punctuation and the legal suffix, so
//! "Acme Freight, Inc." and "ACME FREIGHT INC" are one organisation.

use std::sync::LazyLock;

use regex::Regex;

/// A named-entity hit with byte offsets (of the name, without the cue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub entity_type: &'static str,
    pub canonical_key: String,
    pub display_name: String,
    pub byte_start: usize,
    pub byte_end: usize,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern {pattern}: {e}"))
}

static ORGANIZATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b((?:[A-Z][A-Za-z0-9&'.-]*\s+){0,4}[A-Z][A-Za-z0-9&'-]*),?\s+(Inc\.?|INC\.?|LLC|L\.L\.C\.|Ltd\.?|LTD\.?|Limited|Corp\.?|CORP\.?|Corporation|Co\.|Company|GmbH|AG|S\.A\.|B\.V\.|BV|N\.V\.|NV|SAS|S\.r\.l\.|SRL|PLC|plc|LLP)(?:\W|$)",
    )
});
static TITLED: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:Mr|Mrs|Ms|Dr|Prof)\.?\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2})"));
static ROLE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i:\b(?:driver|dispatcher|contact|attn|attention|signed by|approved by|prepared by))\s*:?\s+([A-Z][a-z]+\s+(?:[A-Z]\.\s+)?[A-Z][a-z]+)",
    )
});
static DISPLAY_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r#""?([A-Z][a-z]+(?:\s+[A-Z][a-z]+)+)"?\s*<[^<>@\s]+@[^<>\s]+>"#));

/// Words that start sentences or headers and must not become part of a name.
const NOT_NAME_START: &[&str] = &[
    "The", "A", "An", "From", "To", "For", "And", "Dear", "Hello", "Hi", "Subject", "Re",
];

/// The canonical key of a name: letters, digits and `&`, lower case, single spaces.
pub fn key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '&')
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Legal suffixes an organisation's key leaves out.
const LEGAL_SUFFIXES: &[&str] = &[
    "inc",
    "llc",
    "ltd",
    "limited",
    "corp",
    "corporation",
    "co",
    "company",
    "gmbh",
    "ag",
    "sa",
    "bv",
    "nv",
    "sas",
    "srl",
    "plc",
    "llp",
];

/// The canonical key of an organisation name: [`key`] without a trailing legal suffix, so
/// "Acme Freight, Inc." (found by rule, written in a gazetteer or named by an LLM) is
/// "acme freight".
pub fn org_key(name: &str) -> String {
    let k = key(name);
    match k.rsplit_once(' ') {
        Some((base, last)) if LEGAL_SUFFIXES.contains(&last) => base.to_owned(),
        _ => k,
    }
}

/// Organisations and people in `text`, by position; later hits inside earlier ones dropped.
pub fn find(text: &str) -> Vec<Named> {
    let mut out: Vec<Named> = Vec::new();
    for c in ORGANIZATION.captures_iter(text) {
        let (Some(name), Some(suffix)) = (c.get(1), c.get(2)) else {
            continue;
        };
        // Drop leading sentence words ("The Acme Freight Inc." → "Acme Freight").
        let mut start = name.start();
        let mut rest = name.as_str();
        loop {
            let mut words = rest.split_whitespace();
            let first = words.next().unwrap_or_default();
            if words.next().is_none() || !NOT_NAME_START.contains(&first) {
                break;
            }
            let trimmed = rest[first.len()..].trim_start();
            start += rest.len() - trimmed.len();
            rest = trimmed;
        }
        let display = text[start..suffix.end()].to_owned();
        let base = &text[start..name.end()];
        if base.trim().is_empty() {
            continue;
        }
        out.push(Named {
            entity_type: "ORGANIZATION",
            canonical_key: key(base),
            display_name: display,
            byte_start: start,
            byte_end: suffix.end(),
        });
    }
    for re in [&*TITLED, &*ROLE, &*DISPLAY_NAME] {
        for c in re.captures_iter(text) {
            let Some(name) = c.get(1) else { continue };
            out.push(Named {
                entity_type: "PERSON",
                canonical_key: key(name.as_str()),
                display_name: name.as_str().to_owned(),
                byte_start: name.start(),
                byte_end: name.end(),
            });
        }
    }
    out.sort_by_key(|n| (n.byte_start, std::cmp::Reverse(n.byte_end)));
    let mut kept: Vec<Named> = Vec::new();
    for n in out {
        if kept.last().is_none_or(|k| n.byte_start >= k.byte_end) {
            kept.push(n);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(&'static str, String)> {
        find(text)
            .into_iter()
            .map(|n| (n.entity_type, n.canonical_key))
            .collect()
    }

    #[test]
    fn organisations_by_legal_suffix_share_a_key() {
        assert_eq!(
            pairs(
                "The Acme Freight, Inc. truck met Lone Star Grocers LLC and Schenker Logistics GmbH."
            ),
            [
                ("ORGANIZATION", "acme freight".to_owned()),
                ("ORGANIZATION", "lone star grocers".to_owned()),
                ("ORGANIZATION", "schenker logistics".to_owned()),
            ]
        );
        assert_eq!(
            pairs("ACME FREIGHT INC. billed"),
            [("ORGANIZATION", "acme freight".to_owned())]
        );
        assert!(pairs("the company paid").is_empty());
        assert_eq!(org_key("Acme Freight, Inc."), "acme freight");
        assert_eq!(org_key("Schenker Logistics GmbH"), "schenker logistics");
        assert_eq!(org_key("Maersk"), "maersk");
    }

    #[test]
    fn people_by_title_role_or_display_name() {
        assert_eq!(
            pairs(
                "Dr. Ada Lovelace called. Driver: Juan Perez arrived. From: Grace Hopper <grace@apex.example>"
            ),
            [
                ("PERSON", "ada lovelace".to_owned()),
                ("PERSON", "juan perez".to_owned()),
                ("PERSON", "grace hopper".to_owned()),
            ]
        );
    }
}
