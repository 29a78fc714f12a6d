//! Text fidelity against another extractor: the share of its words found in ours (the
//! real-corpus test and `apex-tools parser bench --corpus`).

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization as _;

/// Han and kana: scripts written without spaces, where each character counts as a word.
fn unspaced(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

/// Words as letters only (two or more; one Han or kana character each), NFKC-folded and
/// lower-cased: ligatures and presentation forms compare equal, and digits and maths (which
/// the libraries map differently) do not count.
fn bag(text: &str) -> HashMap<String, usize> {
    let folded: String = text.nfkc().collect::<String>().to_lowercase();
    let mut bag = HashMap::new();
    for w in folded.split(|c: char| !c.is_alphabetic() || unspaced(c)) {
        if w.chars().count() >= 2 {
            *bag.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    for c in folded.chars().filter(|c| unspaced(*c)) {
        *bag.entry(c.to_string()).or_insert(0) += 1;
    }
    bag
}

/// The share of `reference`'s words (with their counts) found in `ours`; `None` when the
/// reference has no words.
pub fn recall(reference: &str, ours: &str) -> Option<f64> {
    let theirs = bag(reference);
    let total: usize = theirs.values().sum();
    if total == 0 {
        return None;
    }
    let ours = bag(ours);
    let found: usize = theirs
        .iter()
        .map(|(w, n)| (*n).min(ours.get(w).copied().unwrap_or(0)))
        .sum();
    Some(found as f64 / total as f64)
}

/// Words per reference word found, summed over documents: `(found, total)` for a corpus.
pub fn counts(reference: &str, ours: &str) -> (usize, usize) {
    let theirs = bag(reference);
    let ours = bag(ours);
    let total = theirs.values().sum();
    let found = theirs
        .iter()
        .map(|(w, n)| (*n).min(ours.get(w).copied().unwrap_or(0)))
        .sum();
    (found, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ligatures_case_and_digits_do_not_count_and_missing_words_do() {
        assert_eq!(
            recall("De\u{FB01}nition 39 of Offen", "definition of OFFEN"),
            Some(1.0)
        );
        assert_eq!(recall("alpha beta gamma delta", "alpha beta"), Some(0.5));
        assert_eq!(recall("12 34 x", "anything"), None);
        // Each Han character is a word.
        assert_eq!(recall("招标文件", "招标"), Some(0.5));
        assert_eq!(counts("a bb bb cc", "bb"), (1, 3));
    }
}
