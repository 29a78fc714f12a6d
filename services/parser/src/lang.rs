//! A cheap language guess from stopwords (English, German, French, Spanish, Italian, Dutch,
//! Portuguese). Only reported when the text is long enough and one language clearly leads.

const STOPWORDS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "and", "of", "to", "in", "is", "that", "for", "with", "on", "was", "are",
            "this", "be", "at",
        ],
    ),
    (
        "de",
        &[
            "der", "die", "und", "das", "ist", "nicht", "mit", "den", "von", "zu", "sich", "auf",
            "ein", "eine", "für",
        ],
    ),
    (
        "fr",
        &[
            "le", "la", "les", "et", "des", "est", "une", "pour", "dans", "que", "qui", "sur",
            "pas", "du", "au",
        ],
    ),
    (
        "es",
        &[
            "el", "la", "los", "las", "y", "que", "del", "en", "por", "una", "con", "para", "es",
            "se", "al",
        ],
    ),
    (
        "it",
        &[
            "il", "di", "che", "e", "la", "per", "non", "una", "sono", "della", "con", "del",
            "gli", "le", "nel",
        ],
    ),
    (
        "nl",
        &[
            "de", "het", "een", "en", "van", "is", "dat", "niet", "op", "met", "voor", "zijn",
            "ook", "aan", "te",
        ],
    ),
    (
        "pt",
        &[
            "o", "a", "os", "as", "de", "que", "não", "uma", "para", "com", "do", "da", "em",
            "por", "se",
        ],
    ),
];

/// ISO 639-1 code of the most likely language, or `None` when unsure.
pub(crate) fn guess(text: &str) -> Option<&'static str> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .take(3000)
        .map(str::to_lowercase)
        .collect();
    if words.len() < 20 {
        return None;
    }
    let mut scores: Vec<(&str, usize)> = STOPWORDS
        .iter()
        .map(|(lang, list)| {
            (
                *lang,
                words.iter().filter(|w| list.contains(&w.as_str())).count(),
            )
        })
        .collect();
    scores.sort_by_key(|s| std::cmp::Reverse(s.1));
    let (best, top) = scores[0];
    let second = scores[1].1;
    // At least 8% of the words are its stopwords, and clearly more than the runner-up's.
    (top * 100 >= words.len() * 8 && top * 10 >= second * 13).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::guess;

    #[test]
    fn common_languages_are_told_apart_and_short_text_is_not_guessed() {
        let en = "The carrier confirmed that the shipment is on the way to the warehouse and that the delivery window is at the end of the day for this load.";
        let de = "Der Spediteur hat bestätigt, dass die Sendung auf dem Weg zum Lager ist und dass die Lieferung nicht vor dem Abend mit dem Lkw ankommt, sagt die Zentrale.";
        let fr = "Le transporteur a confirmé que la livraison est en route pour le dépôt et que les palettes arrivent dans la soirée pour une inspection sur le quai.";
        assert_eq!(guess(en), Some("en"));
        assert_eq!(guess(de), Some("de"));
        assert_eq!(guess(fr), Some("fr"));
        assert_eq!(guess("SHIP-42 ACME 1200 kg"), None);
    }
}
