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

/// A unique logistics note: ids and numbers that differ per document, words that vary.
pub(crate) fn document(run: &str, n: usize, paragraphs: usize) -> String {
    let mut seed = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
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
}
