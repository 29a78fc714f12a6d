//! The generated documents: logistics notes that differ per document and per run, so each
//! upload is new content (no `unchanged` shortcut) of a realistic shape for the parser, the
//! extractor and the embedder.

const WORDS: &[&str] = &[
    "shipment",
    "carrier",
    "consignee",
    "pallets",
    "reefer",
    "dock",
    "appointment",
    "invoice",
    "detention",
    "linehaul",
    "fuel",
    "surcharge",
    "pickup",
    "delivery",
    "trailer",
    "seal",
    "manifest",
    "customs",
    "broker",
    "warehouse",
    "cross-dock",
    "lumper",
    "accessorial",
    "rate",
];
const CITIES: &[&str] = &[
    "Chicago",
    "Dallas",
    "Toledo",
    "Nashville",
    "Denver",
    "Atlanta",
    "Memphis",
    "Phoenix",
];

/// A unique logistics note: ids and numbers that differ per document and per run, words that
/// vary. Every paragraph depends on the run as well as the number, so no chunk of one run
/// repeats a chunk of another (the embedder's cache would answer it and flatter the second
/// path of a run).
pub(crate) fn document(run: &str, n: usize, paragraphs: usize) -> String {
    // FNV-1a over the run id, then the document number mixed in; never zero (xorshift).
    let run_hash = run.bytes().fold(0xCBF2_9CE4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    });
    let mut seed = (run_hash ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = format!(
        "Load LT-{run}-{n:06} tendered to Apex Freight Lines on March {}, 2026.\n\n",
        n % 28 + 1
    );
    for p in 0..paragraphs {
        let from = CITIES[(next() % CITIES.len() as u64) as usize];
        let to = CITIES[(next() % CITIES.len() as u64) as usize];
        out.push_str(&format!(
            "Leg {p}: from {from} to {to}, PRO {}, weight {} lb, charge USD {}.{:02}. ",
            next() % 9_000_000 + 1_000_000,
            next() % 40_000 + 500,
            next() % 9_000 + 100,
            next() % 100
        ));
        for _ in 0..50 {
            out.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
            out.push(' ');
        }
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_differ_per_number_and_run() {
        let a = document("r1", 1, 2);
        assert_ne!(a, document("r1", 2, 2));
        assert_ne!(a, document("r2", 1, 2));
        assert_eq!(a, document("r1", 1, 2));
        assert!(a.split_whitespace().count() > 100);
    }

    #[test]
    fn no_paragraph_repeats_across_runs_or_documents() {
        let mut seen = std::collections::HashSet::new();
        for run in ["r1", "r2"] {
            for n in 0..50 {
                for paragraph in document(run, n, 6).split("\n\n").skip(1) {
                    let body = paragraph.split_once(". ").map_or(paragraph, |(_, b)| b);
                    if !body.trim().is_empty() {
                        assert!(seen.insert(body.to_owned()), "repeated: {body}");
                    }
                }
            }
        }
        assert!(seen.len() >= 500);
    }
}
