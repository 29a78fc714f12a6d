//! Named entities by rule: organisations by their legal suffix, people by a title or role
//! cue or as an email display name. Keys drop case, punctuation and the legal suffix, so
//! "Acme Freight, Inc." and "ACME FREIGHT INC" are one organisation.

mod words;

use std::sync::LazyLock;

use regex::Regex;

use words::{NOT_NAME_START, NOT_NAMES, NOT_SURNAMES};

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

/// Legal forms written after a company name (longest first).
const SUFFIX: &str = r"S\.A\. de C\.V\.|S\. de R\.L\. de C\.V\.|Sp\. z o\.o\.|GmbH & Co\. KG|& Co\. KG|Pty Ltd|Inc\.?|INC\.?|LLC|L\.L\.C\.|Ltd\.?|LTD\.?|Limited|Corp\.?|CORP\.?|Corporation|CORPORATION|Co\.|CO\.|Company|GmbH|AG|KG|S\.A\.S\.|S\.A\.|B\.V\.|BV|N\.V\.|NV|SAS|S\.r\.l\.|SRL|S\.p\.A\.|SpA|S\.C\.|A/S|AB|Oy|PLC|plc|LLP|LP";

/// Nouns that end a company name without a legal form ("Great Plains Express").
const HEAD_NOUNS: &str = r"Freight|Logistics|Trucking|Transport|Transportation|Express|Haulers|Haulage|Carriers|Lines|Line|Foods|Grocers|Markets|Farms|Systems|Shipping|Distribution|Warehousing|Brokerage|Brokers|Bank|Group|Industries|Supply|Partners|Solutions|Holdings|Enterprises|Forwarding|Drayage|Poultry|Parts|Finance|Equipment|Motors|Manufacturing|Produce|Dairy|Beverages|Insurance|Capital|Leasing|Railroad|Railway|Airlines|Terminals|Packaging|Chemicals|Steel|Cartage|Movers|Intermodal|Fulfillment|Worldwide|International";

/// One capitalised word of a person's name ("Benítez", "O'Neil", "Smith-Jones").
const NAME: &str = r"\p{Lu}\p{Ll}+(?:[-'’]\p{Lu}?\p{Ll}+)?";

fn person_patterns() -> (String, String) {
    let full = format!(r"{NAME}(?:[ ](?:\p{{Lu}}\.[ ])?{NAME}){{1,2}}");
    let initial = format!(r"\p{{Lu}}\.[ ]?{NAME}");
    (full, initial)
}

static ORGANIZATION: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:^|[^\p{{L}}\p{{N}}_])((?:(?:[\p{{Lu}}0-9][\p{{L}}0-9&'’.+-]*|van|der|den|de|del|la|du|di|von|of|y|&)[ ]){{0,5}}[\p{{Lu}}0-9][\p{{L}}0-9&'’+-]*),?[ ]({SUFFIX})(?:\W|$)"
    ))
});
static HEADED_ORGANIZATION: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:^|[^\p{{L}}\p{{N}}_])((?:\p{{Lu}}[\p{{L}}&'’-]*[ ]){{1,3}}(?:{HEAD_NOUNS}))(?-u:\b)"
    ))
});
static PREFIXED_ORGANIZATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[^\p{L}\p{N}_])((?:Transportes|Transportadora|Spedition|Aduanas|Banco|Banca|Banque|Bank of)(?:[ ](?:\p{Lu}[\p{L}-]*|de|del|di|du|la|y|der|of)){1,4})",
    )
});
static TITLED: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?-u:\b)(?:Mr|Mrs|Ms|Mx|Dr|Prof|Capt|Sra|Herr|Frau)\.?[ ]+({NAME}(?:[ ]{NAME}){{0,2}})"
    ))
});
static ROLE: LazyLock<Regex> = LazyLock::new(|| {
    let (full, initial) = person_patterns();
    re(&format!(
        r"(?i:(?-u:\b)(?:driver|dispatcher|dispatch|contact|attn|attention|signed by|signed|approved by|prepared by|received by|spoke with|spoke to|talked to|ask for|cc|rep|agent|broker|operator|shipper contact|consignee contact))[ \t]*:?[ \t]+({full}|{initial})(?:[^\p{{L}}\p{{N}}_]|$)"
    ))
});
static DISPLAY_NAME: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#""?({NAME}(?:[ ](?:\p{{Lu}}\.[ ])?{NAME})+)"?[ \t]*<[^<>@\s]+@[^<>\s]+>"#
    ))
});
static GREETING: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?m)(?:^|[.!?][ \t]+)(?:Hi|Hello|Hey|Dear|Morning|Hola|Hallo|Bonjour|Ciao|Olá|Thanks|Thank you|Gracias|Danke|Merci)[ \t,]+({NAME}(?:[ ]{NAME})?)[ \t]*[,!:\n]"
    ))
});
static SIGN_OFF: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?m)^[ \t]*(?:Thanks|Thank you|Many thanks|Regards|Best regards|Kind regards|Warm regards|Best|Cheers|Sincerely|Saludos|Un saludo|Gracias|Atentamente|Mit freundlichen Grüßen|Viele Grüße|Met vriendelijke groet|Cordialement|Pozdrawiam|Cordiali saluti|Rgds|Thx|--)[,.!]?[ \t]*\r?\n[ \t]*({NAME}(?:[ ](?:\p{{Lu}}\.[ ])?{NAME}){{0,2}})[ \t]*(?:,|\||\r?\n|$)"
    ))
});
static CHAT_SPEAKER: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?m)^[ \t]*\[?[0-9]{{1,2}}:[0-9]{{2}}(?::[0-9]{{2}})?(?:[ ]?[AaPp][Mm])?\]?[ \t]+({NAME}(?:[ ]{NAME}){{1,2}})[ \t]*:"
    ))
});
static NAME_AND_JOB: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:^|[^\p{{L}}\p{{N}}_])({NAME}(?:[ ](?:\p{{Lu}}\.[ ])?{NAME}){{1,2}}),[ \t]+(?:(?:Senior|Sr\.|Junior|Jr\.|Chief|Head|Lead|Assistant|\p{{Lu}}[\p{{Ll}}&]+)[ ]){{0,3}}(?:Manager|Specialist|Coordinator|Dispatcher|Analyst|Director|Agent|Clerk|Supervisor|Broker|Owner|President|Controller|Accountant|Officer|Representative|Rep|Planner|Buyer|Associate|Administrator|Engineer|Driver|Assistant|Consultant|Adjuster|Examiner|Underwriter|CEO|CFO|COO|CTO|VP)(?-u:\b)"
    ))
});
/// `Joliet, IL 60436`: a US city followed by its state's code.
static CITY_STATE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[^\p{L}\p{N}_])(\p{Lu}[\p{Ll}.]+(?:[ ]\p{Lu}[\p{Ll}.]+){0,2}),?[ ](AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY)(?-u:\b)(?:[ ,]+\d{5}|[ \t]*[,.;)\n]|$)",
    )
});

/// Common given names (`data/first_names.txt`): a capitalised word from this list followed
/// by a capitalised surname is a person.
static FIRST_NAMES: LazyLock<std::collections::HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/first_names.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});
static NAME_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:^|[^\p{{L}}\p{{N}}_])({NAME}(?:[ ](?:\p{{Lu}}\.[ ]?)?{NAME}){{1,2}})"
    ))
});
/// The name with leading sentence words dropped: (byte offset into `name`, rest).
fn strip_leading(name: &str) -> (usize, &str) {
    let mut start = 0;
    let mut rest = name;
    loop {
        let mut words = rest.split_whitespace();
        let first = words.next().unwrap_or_default();
        let lowercase = first.chars().next().is_some_and(char::is_lowercase);
        if words.next().is_none() || !(NOT_NAME_START.contains(&first) || lowercase) {
            return (start, rest);
        }
        let trimmed = rest[first.len()..].trim_start();
        start += rest.len() - trimmed.len();
        rest = trimmed;
    }
}

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

fn push(
    out: &mut Vec<Named>,
    entity_type: &'static str,
    key: String,
    text: &str,
    start: usize,
    end: usize,
) {
    if key.is_empty() {
        return;
    }
    out.push(Named {
        entity_type,
        canonical_key: key,
        display_name: text[start..end].to_owned(),
        byte_start: start,
        byte_end: end,
    });
}

/// Organisations, people and US cities (by their state code) in `text`, by position;
/// later hits inside earlier ones dropped.
pub fn find(text: &str) -> Vec<Named> {
    let mut out: Vec<Named> = Vec::new();
    suffixed_organizations(text, &mut out);
    headed_organizations(text, &mut out);
    cued_people(text, &mut out);
    given_name_people(text, &mut out);
    us_cities(text, &mut out);
    drop_nested(out)
}

/// Organisations by their legal form ("Acme Freight, Inc.").
fn suffixed_organizations(text: &str, out: &mut Vec<Named>) {
    for c in ORGANIZATION.captures_iter(text) {
        let (Some(name), Some(suffix)) = (c.get(1), c.get(2)) else {
            continue;
        };
        let (offset, base) = strip_leading(name.as_str());
        let start = name.start() + offset;
        // "420 KG" is a weight, not a company.
        if !base.chars().any(char::is_alphabetic) || NOT_NAMES.contains(&base.trim()) {
            continue;
        }
        let key = key(base);
        push(out, "ORGANIZATION", key, text, start, suffix.end());
    }
}

/// Organisations by a head noun ("Great Plains Express") or a leading word ("Banco de …").
fn headed_organizations(text: &str, out: &mut Vec<Named>) {
    for re in [&*HEADED_ORGANIZATION, &*PREFIXED_ORGANIZATION] {
        for c in re.captures_iter(text) {
            let Some(name) = c.get(1) else { continue };
            let (offset, base) = strip_leading(name.as_str());
            // A lone head noun ("Freight") or a phrase of common words is not a name.
            if !base.contains(' ') {
                continue;
            }
            let base = base.trim_end_matches([' ', '\t']);
            let trimmed = base
                .rsplit_once(' ')
                .filter(|(_, last)| {
                    ["de", "del", "di", "du", "la", "y", "der", "of"].contains(last)
                })
                .map_or(base, |(head, _)| head);
            let start = name.start() + offset;
            push(
                out,
                "ORGANIZATION",
                org_key(trimmed),
                text,
                start,
                start + trimmed.len(),
            );
        }
    }
}

/// People after a title, a role, a greeting or a sign-off, as an email display name, a chat
/// speaker or before a job title.
fn cued_people(text: &str, out: &mut Vec<Named>) {
    for re in [
        &*TITLED,
        &*ROLE,
        &*DISPLAY_NAME,
        &*GREETING,
        &*SIGN_OFF,
        &*CHAT_SPEAKER,
        &*NAME_AND_JOB,
    ] {
        for c in re.captures_iter(text) {
            let Some(name) = c.get(1) else { continue };
            if name.as_str().split(' ').any(|w| NOT_NAMES.contains(&w)) {
                continue;
            }
            push(
                out,
                "PERSON",
                key(name.as_str()),
                text,
                name.start(),
                name.end(),
            );
        }
    }
}

/// People by a common given name followed by a surname.
fn given_name_people(text: &str, out: &mut Vec<Named>) {
    for c in NAME_CANDIDATE.captures_iter(text) {
        let Some(name) = c.get(1) else { continue };
        let words: Vec<&str> = name.as_str().split(' ').collect();
        let (Some(first), Some(last)) = (words.first(), words.last()) else {
            continue;
        };
        if FIRST_NAMES.contains(first)
            && !NOT_SURNAMES.contains(last)
            && !words
                .iter()
                .any(|w| NOT_NAMES.contains(w) || NOT_NAME_START.contains(w))
        {
            push(
                out,
                "PERSON",
                key(name.as_str()),
                text,
                name.start(),
                name.end(),
            );
        }
    }
}

/// US cities followed by their state code.
fn us_cities(text: &str, out: &mut Vec<Named>) {
    for c in CITY_STATE.captures_iter(text) {
        let (Some(city), Some(_state)) = (c.get(1), c.get(2)) else {
            continue;
        };
        let (offset, name) = strip_leading(city.as_str());
        if NOT_NAMES.contains(&name) || name.is_empty() {
            continue;
        }
        // The gazetteer's key if it knows this US city ("Ontario, CA" is not the province).
        let key = crate::gazetteer::Gazetteer::location_key(name)
            .filter(|k| k.starts_with("city:") && k.ends_with("-us"))
            .unwrap_or_else(|| format!("city:{}-us", key(name).replace(' ', "-")));
        let start = city.start() + offset;
        push(out, "LOCATION", key, text, start, start + name.len());
    }
}

/// By position; a hit that starts inside the one before it is dropped (the longer of two
/// that start together is kept).
fn drop_nested(mut out: Vec<Named>) -> Vec<Named> {
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
