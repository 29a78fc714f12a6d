//! The built-in location gazetteer (countries, US states, large cities and logistics hubs)
//! matched with Aho-Corasick on word boundaries. Each surface form maps to one canonical key,
//! so "USA", "United States" and "U.S." are one node.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// (surface forms, canonical key). Keys: `country:xx`, `state:us-xx`, `city:name-xx`.
const ENTRIES: &[(&[&str], &str)] = &[
    (
        &["United States", "USA", "U.S.A.", "United States of America"],
        "country:us",
    ),
    (&["Canada"], "country:ca"),
    (&["Mexico"], "country:mx"),
    (&["Germany", "Deutschland"], "country:de"),
    (&["France"], "country:fr"),
    (&["United Kingdom", "UK", "Great Britain"], "country:gb"),
    (&["Netherlands", "Holland"], "country:nl"),
    (&["Belgium"], "country:be"),
    (&["Spain"], "country:es"),
    (&["Italy"], "country:it"),
    (&["Poland"], "country:pl"),
    (&["China"], "country:cn"),
    (&["Japan"], "country:jp"),
    (&["South Korea"], "country:kr"),
    (&["India"], "country:in"),
    (&["Brazil"], "country:br"),
    (&["Singapore"], "country:sg"),
    (&["Vietnam", "Viet Nam"], "country:vn"),
    (&["Alabama"], "state:us-al"),
    (&["Alaska"], "state:us-ak"),
    (&["Arizona"], "state:us-az"),
    (&["Arkansas"], "state:us-ar"),
    (&["California"], "state:us-ca"),
    (&["Colorado"], "state:us-co"),
    (&["Connecticut"], "state:us-ct"),
    (&["Delaware"], "state:us-de"),
    (&["Florida"], "state:us-fl"),
    (&["Georgia"], "state:us-ga"),
    (&["Hawaii"], "state:us-hi"),
    (&["Idaho"], "state:us-id"),
    (&["Illinois"], "state:us-il"),
    (&["Indiana"], "state:us-in"),
    (&["Iowa"], "state:us-ia"),
    (&["Kansas"], "state:us-ks"),
    (&["Kentucky"], "state:us-ky"),
    (&["Louisiana"], "state:us-la"),
    (&["Maine"], "state:us-me"),
    (&["Maryland"], "state:us-md"),
    (&["Massachusetts"], "state:us-ma"),
    (&["Michigan"], "state:us-mi"),
    (&["Minnesota"], "state:us-mn"),
    (&["Mississippi"], "state:us-ms"),
    (&["Missouri"], "state:us-mo"),
    (&["Montana"], "state:us-mt"),
    (&["Nebraska"], "state:us-ne"),
    (&["Nevada"], "state:us-nv"),
    (&["New Hampshire"], "state:us-nh"),
    (&["New Jersey"], "state:us-nj"),
    (&["New Mexico"], "state:us-nm"),
    (&["New York State"], "state:us-ny"),
    (&["North Carolina"], "state:us-nc"),
    (&["North Dakota"], "state:us-nd"),
    (&["Ohio"], "state:us-oh"),
    (&["Oklahoma"], "state:us-ok"),
    (&["Oregon"], "state:us-or"),
    (&["Pennsylvania"], "state:us-pa"),
    (&["Rhode Island"], "state:us-ri"),
    (&["South Carolina"], "state:us-sc"),
    (&["South Dakota"], "state:us-sd"),
    (&["Tennessee"], "state:us-tn"),
    (&["Texas"], "state:us-tx"),
    (&["Utah"], "state:us-ut"),
    (&["Vermont"], "state:us-vt"),
    (&["Virginia"], "state:us-va"),
    (&["Washington State"], "state:us-wa"),
    (&["West Virginia"], "state:us-wv"),
    (&["Wisconsin"], "state:us-wi"),
    (&["Wyoming"], "state:us-wy"),
    (&["New York City", "New York", "NYC"], "city:new-york-us"),
    (&["Los Angeles"], "city:los-angeles-us"),
    (&["Chicago"], "city:chicago-us"),
    (&["Houston"], "city:houston-us"),
    (&["Dallas"], "city:dallas-us"),
    (&["Fort Worth"], "city:fort-worth-us"),
    (&["Atlanta"], "city:atlanta-us"),
    (&["Memphis"], "city:memphis-us"),
    (&["Louisville"], "city:louisville-us"),
    (&["Indianapolis"], "city:indianapolis-us"),
    (&["Columbus"], "city:columbus-us"),
    (&["Kansas City"], "city:kansas-city-us"),
    (&["St. Louis", "Saint Louis"], "city:st-louis-us"),
    (&["Denver"], "city:denver-us"),
    (&["Phoenix"], "city:phoenix-us"),
    (&["Seattle"], "city:seattle-us"),
    (&["Portland"], "city:portland-us"),
    (&["San Francisco"], "city:san-francisco-us"),
    (&["Oakland"], "city:oakland-us"),
    (&["Long Beach"], "city:long-beach-us"),
    (&["Savannah"], "city:savannah-us"),
    (&["Miami"], "city:miami-us"),
    (&["Laredo"], "city:laredo-us"),
    (&["El Paso"], "city:el-paso-us"),
    (&["Detroit"], "city:detroit-us"),
    (&["Minneapolis"], "city:minneapolis-us"),
    (&["Nashville"], "city:nashville-us"),
    (&["Charlotte"], "city:charlotte-us"),
    (&["Boston"], "city:boston-us"),
    (&["Philadelphia"], "city:philadelphia-us"),
    (&["Newark"], "city:newark-us"),
    (&["Baltimore"], "city:baltimore-us"),
    (&["Salt Lake City"], "city:salt-lake-city-us"),
    (&["Toronto"], "city:toronto-ca"),
    (&["Montreal"], "city:montreal-ca"),
    (&["Vancouver"], "city:vancouver-ca"),
    (&["Mexico City"], "city:mexico-city-mx"),
    (&["Monterrey"], "city:monterrey-mx"),
    (&["London"], "city:london-gb"),
    (&["Rotterdam"], "city:rotterdam-nl"),
    (&["Amsterdam"], "city:amsterdam-nl"),
    (&["Antwerp"], "city:antwerp-be"),
    (&["Hamburg"], "city:hamburg-de"),
    (&["Berlin"], "city:berlin-de"),
    (&["Frankfurt"], "city:frankfurt-de"),
    (&["Munich", "München"], "city:munich-de"),
    (&["Paris"], "city:paris-fr"),
    (&["Madrid"], "city:madrid-es"),
    (&["Barcelona"], "city:barcelona-es"),
    (&["Milan"], "city:milan-it"),
    (&["Warsaw"], "city:warsaw-pl"),
    (&["Shanghai"], "city:shanghai-cn"),
    (&["Shenzhen"], "city:shenzhen-cn"),
    (&["Ningbo"], "city:ningbo-cn"),
    (&["Hong Kong"], "city:hong-kong-cn"),
    (&["Busan"], "city:busan-kr"),
    (&["Tokyo"], "city:tokyo-jp"),
    (&["Mumbai"], "city:mumbai-in"),
    (&["Dubai"], "city:dubai-ae"),
    (&["Zürich", "Zurich"], "city:zurich-ch"),
    (&["São Paulo", "Sao Paulo"], "city:sao-paulo-br"),
];

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
        let entries = ENTRIES.iter().flat_map(|(forms, key)| {
            forms.iter().map(move |f| Entry {
                form: (*f).to_owned(),
                entity_type: "LOCATION".to_owned(),
                canonical_key: (*key).to_owned(),
                display_name: forms[0].to_owned(),
            })
        });
        Self::build(entries, true)
    }

    /// The canonical key of a place name, from the built-in gazetteer when it knows it.
    pub fn location_key(name: &str) -> Option<String> {
        let name = name.trim();
        ENTRIES
            .iter()
            .find(|(forms, _)| forms.iter().any(|f| f.eq_ignore_ascii_case(name)))
            .map(|(_, key)| (*key).to_owned())
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
