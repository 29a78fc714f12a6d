//! The built-in location gazetteer (countries, US states, large cities and logistics hubs)
//! matched with Aho-Corasick on word boundaries. Each surface form maps to one canonical key,
//! so "USA", "United States" and "U.S." are one node.

use std::collections::HashMap;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// `surface form<TAB>canonical key<TAB>display name`, one per line: every country, US
/// state, Canadian province and Mexican state, US cities over ~90 000 people plus freight
/// hubs, and large world cities and ports. Keys: `country:xx`, `state:us-xx`,
/// `city:name-xx`.
const LOCATIONS_TSV: &str = include_str!("../data/locations.tsv");

/// (form, key, display) rows of the built-in location gazetteer.
static LOCATIONS: LazyLock<Vec<(&'static str, &'static str, &'static str)>> = LazyLock::new(|| {
    LOCATIONS_TSV
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?, cols.next()?, cols.next()?))
        })
        .collect()
});

/// Lower-cased form → key.
static LOCATION_KEYS: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    LOCATIONS
        .iter()
        .map(|(form, key, _)| (form.to_lowercase(), *key))
        .collect()
});

/// One gazetteer entry: a surface form and the entity it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub form: String,
    pub entity_type: String,
    pub canonical_key: String,
    pub display_name: String,
}

/// A compiled gazetteer: surface form → (entity type, canonical key, display name).
#[derive(Debug)]
pub struct Gazetteer {
    matcher: Option<AhoCorasick>,
    targets: Vec<(String, String, String)>,
    capitalized_only: bool,
}

/// A gazetteer hit, with byte offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub entity_type: String,
    pub canonical_key: String,
    pub display_name: String,
    pub byte_start: usize,
    pub byte_end: usize,
}

impl Gazetteer {
    /// The built-in location gazetteer. Only capitalised hits count, so "may" or
    /// "china cabinet" in lower case are not places.
    pub fn locations() -> Self {
        let entries = LOCATIONS.iter().map(|(form, key, display)| Entry {
            form: (*form).to_owned(),
            entity_type: "LOCATION".to_owned(),
            canonical_key: (*key).to_owned(),
            display_name: (*display).to_owned(),
        });
        Self::build(entries, true)
    }

    /// Well-known carriers, lines, railroads, forwarders, banks and agencies
    /// (`data/organizations.tsv`: name, then `;`-separated aliases), keyed like any
    /// organisation.
    pub fn organizations() -> Self {
        const ORGANIZATIONS_TSV: &str = include_str!("../data/organizations.tsv");
        let entries = ORGANIZATIONS_TSV
            .lines()
            .filter(|l| !l.trim().is_empty())
            .flat_map(|l| {
                let (name, aliases) = l.split_once('\t').unwrap_or((l, ""));
                let key = crate::named::org_key(name);
                std::iter::once(name)
                    .chain(aliases.split(';').filter(|a| !a.trim().is_empty()))
                    .map(move |form| Entry {
                        form: form.trim().to_owned(),
                        entity_type: "ORGANIZATION".to_owned(),
                        canonical_key: key.clone(),
                        display_name: name.to_owned(),
                    })
                    .collect::<Vec<_>>()
            });
        Self::build(entries, true)
    }

    /// The canonical key of a place name, from the built-in gazetteer when it knows it.
    pub fn location_key(name: &str) -> Option<String> {
        LOCATION_KEYS
            .get(&name.trim().to_lowercase())
            .map(|k| (*k).to_owned())
    }

    /// An empty gazetteer (matches nothing).
    pub fn empty() -> Self {
        Self {
            matcher: None,
            targets: Vec::new(),
            capitalized_only: false,
        }
    }

    /// Builds from entries; matching is leftmost-longest and ASCII-case-insensitive, on
    /// word boundaries. Empty forms are skipped.
    pub fn build(entries: impl IntoIterator<Item = Entry>, capitalized_only: bool) -> Self {
        let mut patterns = Vec::new();
        let mut targets = Vec::new();
        for e in entries {
            let form = e.form.trim();
            if form.is_empty() {
                continue;
            }
            patterns.push(form.to_owned());
            targets.push((e.entity_type, e.canonical_key, e.display_name));
        }
        if patterns.is_empty() {
            return Self::empty();
        }
        let matcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(&patterns)
            .unwrap_or_else(|e| panic!("gazetteer patterns are plain strings: {e}"));
        Self {
            matcher: Some(matcher),
            targets,
            capitalized_only,
        }
    }

    /// Number of surface forms.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Hits in `text` that start and end on word boundaries (and, for a capitalised-only
    /// gazetteer, start with a capital letter).
    pub fn find(&self, text: &str) -> Vec<Hit> {
        let Some(matcher) = &self.matcher else {
            return Vec::new();
        };
        let bytes = text.as_bytes();
        let boundary_before = |i: usize| {
            i == 0
                || !text[..i]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
        };
        let boundary_after = |i: usize| {
            i >= bytes.len() || !text[i..].chars().next().is_some_and(char::is_alphanumeric)
        };
        matcher
            .find_iter(text)
            .filter(|m| boundary_before(m.start()) && boundary_after(m.end()))
            .filter(|m| {
                !self.capitalized_only
                    || text[m.start()..]
                        .chars()
                        .next()
                        .is_some_and(char::is_uppercase)
            })
            .map(|m| {
                let (entity_type, key, display) = &self.targets[m.pattern().as_usize()];
                Hit {
                    entity_type: entity_type.clone(),
                    canonical_key: key.clone(),
                    display_name: display.clone(),
                    byte_start: m.start(),
                    byte_end: m.end(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_share_a_key_and_boundaries_matter() {
        let g = Gazetteer::locations();
        let hits = g.find("From Chicago, Illinois (USA) to Dallas via Kansas City; ships from the United States. Chicagoland is not a city here, nor is may.");
        let keys: Vec<&str> = hits.iter().map(|h| h.canonical_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "city:chicago-us",
                "state:us-il",
                "country:us",
                "city:dallas-us",
                "city:kansas-city-us",
                "country:us"
            ]
        );
        assert_eq!(hits[2].display_name, "United States");
    }
}
