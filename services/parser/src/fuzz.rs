//! A bounded mutation fuzzer for every format parser (`apex-tools parser fuzz`, and a short run in
//! the test suite). It is not coverage-guided: it mutates the generated corpus (bit flips,
//! byte overwrites, truncation, duplication, insertion, splicing, deep nesting) and, for the
//! zip formats, mutates the XML inside the container and re-zips it so the XML parsers see
//! the damage. Each input must come back as a document or a typed error: a panic escaping
//! `Parser::parse` fails the run; a contained panic is reported as a finding.

use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::{Hints, ParseError, Parser, corpus};

pub use apex_common::rng::SplitMix64 as Rng;

/// Outcomes for one seed file.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub name: String,
    pub inputs: usize,
    pub parsed: usize,
    pub refused: usize,
    pub deadline: usize,
    /// Contained panics: `(input size, reason)`; each is a parser bug worth fixing.
    pub contained_panics: Vec<(usize, String)>,
    /// Panics that escaped `Parser::parse` (must stay empty).
    pub escaped_panics: Vec<String>,
    pub slowest: Duration,
}

fn mutate_bytes(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    if v.is_empty() {
        v.push(0);
    }
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = v.len().max(1);
        match rng.below(8) {
            0 => {
                let i = rng.below(len);
                if let Some(b) = v.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(len);
                if let Some(b) = v.get_mut(i) {
                    *b = rng.next_u64() as u8;
                }
            }
            2 => v.truncate(rng.below(len)),
            3 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(v.len());
                let slice = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, slice);
            }
            4 => {
                let at = rng.below(v.len() + 1);
                let junk: Vec<u8> = (0..rng.below(32)).map(|_| rng.next_u64() as u8).collect();
                v.splice(at..at, junk);
            }
            5 if !other.is_empty() => {
                let cut = rng.below(len);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            6 => {
                // Deep nesting of whatever brackets the format uses.
                let open: &[u8] =
                    [&b"<div>"[..], b"[", b"{\"a\":", b"<w:tbl>", b"(", b"<<"][rng.below(6)];
                let at = rng.below(v.len() + 1);
                let n = 100 + rng.below(2000);
                v.splice(at..at, open.repeat(n));
            }
            _ => {
                let a = rng.below(len);
                let b = (a + rng.below(256)).min(v.len());
                v[a..b].fill(0);
            }
        }
    }
    v
}

/// For a zip container: mutate one member, then re-zip.
fn mutate_zip_member(rng: &mut Rng, input: &[u8], other: &[u8]) -> Option<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(input)).ok()?;
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).ok()?;
        let name = f.name().ok()?.to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).ok()?;
        entries.push((name, data));
    }
    if entries.is_empty() {
        return None;
    }
    let target = rng.below(entries.len());
    entries[target].1 = mutate_bytes(rng, &entries[target].1, other);
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    Some(corpus::zip(&refs))
}

/// Runs `iterations` mutated inputs per sample through `parser`.
pub fn run(
    parser: &Parser,
    samples: &[(&str, Vec<u8>)],
    iterations: usize,
    seed: u64,
) -> Vec<Report> {
    let mut rng = Rng::new(seed);
    let mut reports = Vec::new();
    for (i, (name, bytes)) in samples.iter().enumerate() {
        let other = &samples[(i + 1) % samples.len()].1;
        let mut report = Report {
            name: (*name).to_owned(),
            ..Report::default()
        };
        for _ in 0..iterations {
            let input = if bytes.starts_with(b"PK") && rng.below(2) == 0 {
                mutate_zip_member(&mut rng, bytes, other)
                    .unwrap_or_else(|| mutate_bytes(&mut rng, bytes, other))
            } else {
                mutate_bytes(&mut rng, bytes, other)
            };
            let hints = Hints {
                file_name: name,
                ..Hints::default()
            };
            let start = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| parser.parse(&input, hints)));
            report.slowest = report.slowest.max(start.elapsed());
            report.inputs += 1;
            match outcome {
                Ok(Ok(_)) => report.parsed += 1,
                Ok(Err(ParseError::Internal { reason, .. })) => {
                    report.contained_panics.push((input.len(), reason));
                }
                Ok(Err(ParseError::Deadline(_))) => report.deadline += 1,
                Ok(Err(_)) => report.refused += 1,
                Err(p) => report.escaped_panics.push(
                    p.downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default(),
                ),
            }
        }
        reports.push(report);
    }
    reports
}

/// The reports as a Markdown table.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| seed | inputs | parsed | refused | deadline | contained panics | escaped panics | slowest ms |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
            r.name,
            r.inputs,
            r.parsed,
            r.refused,
            r.deadline,
            r.contained_panics.len(),
            r.escaped_panics.len(),
            r.slowest.as_secs_f64() * 1000.0
        ));
    }
    out
}
