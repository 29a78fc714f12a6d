//! `apex-tools parser bench`: MB/s and documents/s per format, with one thread and with all cores,
//! plus in the same run the Python libraries a user would otherwise pick (pypdf,
//! python-docx, BeautifulSoup) over the same files, and the ratio. Bounded by `--docs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::fuzz::Rng;
use crate::{Hints, Parser, corpus};

const WORDS: &[&str] = &[
    "shipment",
    "carrier",
    "consignee",
    "invoice",
    "freight",
    "delivery",
    "pallet",
    "weight",
    "route",
    "Chicago",
    "Dallas",
    "appointment",
    "delayed",
    "confirmed",
    "warehouse",
    "dock",
    "rate",
    "lane",
    "tender",
    "accepted",
    "customs",
    "broker",
    "the",
    "a",
    "of",
    "and",
    "to",
    "with",
    "for",
    "on",
    "at",
    "after",
    "before",
    "temperature",
    "reefer",
    "trailer",
    "load",
];

fn sentence(rng: &mut Rng) -> String {
    let n = 8 + rng.below(12);
    let mut words: Vec<&str> = (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect();
    let first = words[0].to_owned();
    let capitalised = first[..1].to_uppercase() + &first[1..];
    words[0] = &capitalised;
    format!("{} {}.", words[0], words[1..].join(" "))
}

fn paragraph(rng: &mut Rng) -> String {
    (0..3 + rng.below(4))
        .map(|_| sentence(rng))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The benchmark corpus: `docs` documents of each format, written under `dir`.
fn write_corpus(dir: &Path, docs: usize, seed: u64) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut put = |format: &str, ext: &str, i: usize, bytes: Vec<u8>| -> anyhow::Result<()> {
        let path = dir.join(format!("{format}-{i:04}.{ext}"));
        std::fs::write(&path, bytes)?;
        match out.iter_mut().find(|(f, _)| f == format) {
            Some((_, paths)) => paths.push(path),
            None => out.push((format.to_owned(), vec![path])),
        }
        Ok(())
    };
    for i in 0..docs {
        let pages: Vec<String> = (0..6)
            .map(|_| {
                (0..40)
                    .map(|_| sentence(&mut rng))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
        put("pdf", "pdf", i, corpus::pdf(&refs, &format!("Report {i}")))?;

        let paragraphs: Vec<String> = (0..120).map(|_| paragraph(&mut rng)).collect();
        put(
            "docx",
            "docx",
            i,
            corpus::docx_from(&format!("Agreement {i}"), &paragraphs),
        )?;

        let mut html = String::from(
            "<!doctype html><html><head><title>News</title><script>var a=1;</script><style>p{margin:0}</style></head><body><nav><a href='/'>Home</a><a href='/r'>Rates</a></nav><article>",
        );
        for j in 0..120 {
            if j % 10 == 0 {
                html.push_str(&format!("<h2>Update {j}</h2>"));
            }
            html.push_str(&format!("<p>{}</p>", paragraph(&mut rng)));
        }
        html.push_str("</article><footer>Footer</footer></body></html>");
        put("html", "html", i, html.into_bytes())?;

        let mut md = format!("# Handbook {i}\n\n");
        for j in 0..120 {
            if j % 10 == 0 {
                md.push_str(&format!("## Chapter {j}\n\n"));
            }
            md.push_str(&paragraph(&mut rng));
            md.push_str("\n\n");
        }
        put("markdown", "md", i, md.into_bytes())?;

        let mut csv = String::from("shipment,carrier,origin,destination,weight,note\n");
        for j in 0..1500 {
            csv.push_str(&format!(
                "SHIP-{i}-{j},{},Chicago,Dallas,{},\"{}\"\n",
                WORDS[rng.below(WORDS.len())],
                100 + rng.below(20000),
                sentence(&mut rng)
            ));
        }
        put("csv", "csv", i, csv.into_bytes())?;

        let set = corpus::EDI_214
            .split_once("ST*")
            .and_then(|(_, rest)| rest.split_once("GE*"))
            .map(|(set, _)| format!("ST*{set}"))
            .unwrap_or_default();
        let header = &corpus::EDI_214[..corpus::EDI_214.find("ST*").unwrap_or(0)];
        let edi = format!("{header}{}GE*1*214~\nIEA*1*000000214~\n", set.repeat(200));
        put("edi-x12", "edi", i, edi.into_bytes())?;

        let json = serde_json::json!({
            "title": format!("Order {i}"),
            "lines": (0..300).map(|j| serde_json::json!({"sku": format!("SKU-{j}"), "qty": j % 7, "note": sentence(&mut rng)})).collect::<Vec<_>>(),
        });
        put("json", "json", i, json.to_string().into_bytes())?;
        put("email", "eml", i, corpus::email())?;
        put("xlsx", "xlsx", i, corpus::xlsx())?;
    }
    Ok(out)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// Python baseline figures for one format.
#[derive(Debug, Clone)]
struct Baseline {
    library: String,
    bytes: u64,
    seconds: f64,
    chars: u64,
}

fn python_baseline(
    python: &Path,
    dir: &Path,
) -> anyhow::Result<std::collections::HashMap<String, Baseline>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/baseline.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(dir)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {} (install the baselines with `deploy/local/bootstrap --bench`)",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut map = std::collections::HashMap::new();
    if let Some(obj) = v.as_object() {
        for (format, r) in obj {
            map.insert(
                format.clone(),
                Baseline {
                    library: r["library"].as_str().unwrap_or_default().to_owned(),
                    bytes: r["bytes"].as_u64().unwrap_or(0),
                    seconds: r["seconds"].as_f64().unwrap_or(0.0),
                    chars: r["chars"].as_u64().unwrap_or(0),
                },
            );
        }
    }
    Ok(map)
}

/// Options of `apex-tools parser bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Documents per format.
    #[arg(long, default_value_t = 40)]
    pub docs: usize,
    /// Python with pypdf, python-docx and beautifulsoup4 (`deploy/local/bootstrap --bench`).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the Python baseline.
    #[arg(long)]
    pub no_baseline: bool,
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
    /// Instead of generated documents: the PDF, DOCX and HTML files of this real-world corpus
    /// (`../shared/corpus`), with word recall against the Python libraries.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Timed rounds per file with --corpus (after one untimed round).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// With --corpus: also time the same files through this running parser service
    /// (for example http://127.0.0.1:50051, the stack `apex up` runs).
    #[arg(long)]
    pub service: Option<String>,
}

/// Runs the benchmark and prints its table.
pub fn run(parser: &Parser, args: &BenchArgs) -> anyhow::Result<()> {
    let python = args.python.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".cache/apex/tools/venv/bin/python")
    });
    if let Some(dir) = &args.corpus {
        return crate::bench_corpus::run(
            parser,
            dir,
            &python,
            args.rounds,
            args.service.as_deref(),
        );
    }
    let dir = tempfile::tempdir()?;
    let corpus = write_corpus(dir.path(), args.docs, args.seed)?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "apex-tools parser bench: {} documents per format, {threads} logical CPUs, release={}",
        args.docs,
        !cfg!(debug_assertions)
    );
    let baselines = if args.no_baseline {
        Default::default()
    } else {
        python_baseline(&python, dir.path())?
    };
    println!();
    println!(
        "| format | docs | MB | extract MB/s (1 thread) | docs/s (1 thread) | full parse + chunking MB/s (1 thread) | extract MB/s ({threads} threads) | baseline (1 thread) | baseline MB/s | ×baseline |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|");
    for (format, paths) in &corpus {
        let files: Vec<(String, Vec<u8>)> = paths
            .iter()
            .map(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                std::fs::read(p).map(|b| (name, b))
            })
            .collect::<Result<_, _>>()?;
        let bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
        let start = Instant::now();
        for (name, b) in &files {
            let (_, text) = parser
                .extract_text(b, hints(name))
                .with_context(|| name.clone())?;
            std::hint::black_box(text);
        }
        let one = start.elapsed();
        let start = Instant::now();
        for (name, b) in &files {
            parser.parse(b, hints(name)).with_context(|| name.clone())?;
        }
        let full = start.elapsed();
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                let files = &files;
                scope.spawn(move || {
                    for (name, b) in files.iter().skip(t).step_by(threads) {
                        let _ = parser.extract_text(b, hints(name));
                    }
                });
            }
        });
        let all = start.elapsed();
        let rate = |d: Duration| mb(bytes) / d.as_secs_f64().max(1e-9);
        let (lib, base_rate, ratio) = match baselines.get(format.as_str()) {
            Some(b) if b.seconds > 0.0 => {
                let r = mb(b.bytes) / b.seconds;
                (
                    b.library.clone(),
                    format!("{r:.2}"),
                    format!("{:.1}×", rate(one) / r),
                )
            }
            _ => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        println!(
            "| {format} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {lib} | {base_rate} | {ratio} |",
            files.len(),
            mb(bytes),
            rate(one),
            files.len() as f64 / one.as_secs_f64().max(1e-9),
            rate(full),
            rate(all),
        );
    }
    for (format, b) in &baselines {
        println!(
            "baseline {format}: {} characters of text extracted by {}",
            b.chars, b.library
        );
    }
    Ok(())
}

fn hints(name: &str) -> Hints<'_> {
    Hints {
        file_name: name,
        ..Hints::default()
    }
}
