//! The fidelity gate: a faster variant of the model (the int8 graph) is used only when its
//! vectors stay those of the fp32 model. Both embed the gate set (paragraphs of this
//! project's docs as documents, the opening words of some as queries, `gate/set.json`);
//! the variant passes when every text's cosine with its fp32 vector is at least
//! [`MIN_COSINE`] and at least [`MIN_SAME_TOP10`] of the queries keep their ten nearest
//! documents: at least [`KEEP_OF_TOP10`] of fp32's ten among the variant's ten. (Not all
//! ten: on this set the median gap between a query's 10th and 11th document is 0.006 in
//! cosine, so any 8-bit noise swaps some of them; a variant that moves neighbours loses more.)

use serde::Deserialize;

use crate::batcher::Encoder;

/// Lowest cosine between a text's fp32 and variant vectors.
pub const MIN_COSINE: f32 = 0.99;
/// Share of the queries that must keep their ten nearest documents.
pub const MIN_SAME_TOP10: f64 = 0.9;
/// How many of fp32's ten nearest documents a query keeps to count as kept.
pub const KEEP_OF_TOP10: usize = 9;
const TOP: usize = 10;

pub const SET: &str = include_str!("../gate/set.json");

#[derive(Debug, Deserialize)]
pub struct GateSet {
    pub documents: Vec<String>,
    pub queries: Vec<String>,
}

/// The built-in gate set.
pub fn gate_set() -> anyhow::Result<GateSet> {
    Ok(serde_json::from_str(SET)?)
}

/// What the gate measured, and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Lowest cosine over every text, and the index of that text (documents, then queries).
    pub min_cosine: f32,
    pub worst_text: usize,
    /// Share of queries that kept their ten nearest documents.
    pub same_top10: f64,
    pub texts: usize,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.min_cosine >= MIN_COSINE && self.same_top10 >= MIN_SAME_TOP10
    }

    /// Why the variant failed, or `None` when it passed.
    pub fn failure(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if self.min_cosine < MIN_COSINE {
            reasons.push(format!(
                "cosine against fp32 fell to {:.4} on gate text {} (needs {MIN_COSINE})",
                self.min_cosine, self.worst_text
            ));
        }
        if self.same_top10 < MIN_SAME_TOP10 {
            reasons.push(format!(
                "{KEEP_OF_TOP10} of the top-{TOP} documents kept for {:.0} % of the queries (needs {:.0} %)",
                self.same_top10 * 100.0,
                MIN_SAME_TOP10 * 100.0
            ));
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

/// Compares the vectors of the same texts (`documents` then `queries`, in that order).
pub fn compare(reference: &[Vec<f32>], candidate: &[Vec<f32>], documents: usize) -> Verdict {
    let (mut min_cosine, mut worst_text) = (f32::INFINITY, 0);
    for (i, (r, c)) in reference.iter().zip(candidate).enumerate() {
        let cos = dot(r, c);
        if cos < min_cosine || cos.is_nan() {
            min_cosine = if cos.is_nan() { f32::NEG_INFINITY } else { cos };
            worst_text = i;
        }
    }
    if reference.len() != candidate.len() {
        min_cosine = f32::NEG_INFINITY;
    }
    let documents = documents.min(reference.len()).min(candidate.len());
    let queries = reference.len().min(candidate.len()) - documents;
    let same = (0..queries)
        .filter(|q| {
            let i = documents + q;
            let (a, b) = (
                top(&reference[..documents], &reference[i]),
                top(&candidate[..documents], &candidate[i]),
            );
            a.iter().filter(|d| b.contains(d)).count() >= KEEP_OF_TOP10
        })
        .count();
    Verdict {
        min_cosine,
        worst_text,
        same_top10: if queries == 0 {
            0.0
        } else {
            same as f64 / queries as f64
        },
        texts: reference.len(),
    }
}

/// Embeds the gate set with both encoders and compares.
pub fn check(
    reference: &mut dyn Encoder,
    candidate: &mut dyn Encoder,
    windows: &[Vec<u32>],
    documents: usize,
) -> anyhow::Result<Verdict> {
    let embed = |e: &mut dyn Encoder| -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(windows.len());
        for batch in windows.chunks(8) {
            out.extend(e.encode(batch)?);
        }
        Ok(out)
    };
    let r = embed(reference)?;
    let c = embed(candidate)?;
    Ok(compare(&r, &c, documents))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::NEG_INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Indices of the ten documents nearest to `query`, as a sorted set.
fn top(documents: &[Vec<f32>], query: &[f32]) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| (dot(d, query), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut ids: Vec<usize> = scored.into_iter().take(TOP).map(|(_, i)| i).collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(angle: f32) -> Vec<f32> {
        vec![angle.cos(), angle.sin(), 0.0]
    }

    /// 30 documents on an arc (0.05 rad apart), then 10 queries between them.
    fn ring(n: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|i| {
                if i < 30 {
                    at(i as f32 * 0.05)
                } else {
                    at(0.525 + (i - 30) as f32 * 0.05)
                }
            })
            .collect()
    }

    #[test]
    fn the_gate_set_loads_with_documents_and_queries() {
        let set = gate_set().expect("gate set");
        assert!(set.documents.len() >= 100, "{}", set.documents.len());
        assert!(set.queries.len() >= 20, "{}", set.queries.len());
        assert!(
            set.queries
                .iter()
                .all(|q| q.split_whitespace().count() >= 5)
        );
    }

    #[test]
    fn identical_vectors_pass() {
        let v = ring(40);
        let verdict = compare(&v, &v, 30);
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!(verdict.failure(), None);
        assert!((verdict.same_top10 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn one_drifting_text_fails_and_is_named() {
        let reference = ring(40);
        let mut candidate = reference.clone();
        // Text 7 tilted out of the plane: cosine 0.98.
        candidate[7] = vec![
            reference[7][0] * 0.98,
            reference[7][1] * 0.98,
            (1.0f32 - 0.98 * 0.98).sqrt(),
        ];
        let verdict = compare(&reference, &candidate, 30);
        assert!(!verdict.passed());
        assert_eq!(verdict.worst_text, 7);
        let why = verdict.failure().expect("a reason");
        assert!(why.contains("0.9800 on gate text 7"), "{why}");
    }

    #[test]
    fn changed_neighbours_fail_even_when_every_cosine_is_high() {
        let reference = ring(40);
        let mut candidate = reference.clone();
        // The queries (texts 30..40) turned by 0.1 rad: every cosine stays 0.995, but
        // their ten nearest documents shift by two (8 of 10 kept).
        for (q, v) in candidate[30..].iter_mut().enumerate() {
            *v = at(0.625 + q as f32 * 0.05);
        }
        let verdict = compare(&reference, &candidate, 30);
        assert!(verdict.min_cosine >= MIN_COSINE, "{verdict:?}");
        assert!(verdict.same_top10 < MIN_SAME_TOP10, "{verdict:?}");
        let why = verdict.failure().expect("a reason");
        assert!(why.contains("top-10") && !why.contains("cosine"), "{why}");
    }

    #[test]
    fn missing_or_malformed_vectors_fail() {
        let reference = ring(40);
        let verdict = compare(&reference, &reference[..39], 30);
        assert!(!verdict.passed());
        let mut nan = reference.clone();
        nan[3] = vec![f32::NAN, 0.0, 0.0];
        assert!(!compare(&reference, &nan, 30).passed());
    }
}
