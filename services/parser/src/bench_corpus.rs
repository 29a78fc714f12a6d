//! `apex-tools parser bench --corpus DIR`: the real-world corpus (`../shared/corpus`) per
//! format against the Python library a user would otherwise pick, in the same run and on one
//! thread: MB/s of each over the files both read, the ratio, and the share of the library's
//! words found in the parser's text (word recall). Text extraction only on both sides; a
//! second table adds the parser's chunking (what the service does per document).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;

use crate::{Hints, Parser, quality};

/// One file as the Python side saw it.
struct Theirs {
    library: String,
    seconds: f64,
    text: String,
}

fn python_files(python: &Path, files: &[PathBuf]) -> anyhow::Result<BTreeMap<PathBuf, Theirs>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/baseline.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg("--files")
        .args(files)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {} (install the baselines with `deploy/local/bootstrap`)",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut map = BTreeMap::new();
    for f in files {
        let r = &v[f.to_string_lossy().as_ref()];
        if let (Some(seconds), Some(text)) = (r["seconds"].as_f64(), r["text"].as_str()) {
            map.insert(
                f.clone(),
                Theirs {
                    library: r["library"].as_str().unwrap_or_default().to_owned(),
                    seconds,
                    text: text.to_owned(),
                },
            );
        }
    }
    Ok(map)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// Runs the real-corpus benchmark and prints its tables.
pub fn run(
    parser: &Parser,
    dir: &Path,
    python: &Path,
    rounds: usize,
    service: Option<&str>,
) -> anyhow::Result<()> {
    // The text layer against the text layer: the Python libraries do not OCR, so neither does
    // the parser here (an image-only page would cost it seconds of Tesseract).
    let configured = parser;
    let mut settings = parser.settings().clone();
    settings.ocr.enabled = false;
    let parser = &Parser::new(settings)?;
    let formats = [("pdf", "pdf"), ("docx", "docx"), ("html", "html")];
    let mut files = Vec::new();
    for (folder, ext) in formats {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join(folder))
            .with_context(|| format!("{} has no {folder}/ folder", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext)))
            .collect();
        found.sort();
        files.extend(found);
    }
    let theirs = python_files(python, &files)?;
    println!(
        "apex-tools parser bench --corpus {}: {} files, one thread, the parser's mean of {rounds} timed round(s) after an untimed one, Python's one run, release={}, PDF engine: {:?}, OCR off",
        dir.display(),
        files.len(),
        !cfg!(debug_assertions),
        parser.settings().pdf.engine,
    );
    println!();
    println!(
        "| format | files (both read) | MB | apex MB/s | Python library | Python MB/s | ×Python | word recall | apex parse + chunking MB/s |"
    );
    println!("|---|---:|---:|---:|---|---:|---:|---:|---:|");
    let mut through_service = Vec::new();
    for (folder, ext) in formats {
        let mut bytes = 0u64;
        let (mut ours_s, mut theirs_s, mut full_s) = (0f64, 0f64, 0f64);
        let (mut found, mut total, mut n) = (0usize, 0usize, 0usize);
        let mut library = String::new();
        for path in files.iter().filter(|p| {
            p.parent().and_then(Path::file_name) == Some(folder.as_ref())
                && p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
        }) {
            let Some(t) = theirs.get(path) else { continue };
            let content = std::fs::read(path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let hints = Hints {
                file_name: &name,
                ..Hints::default()
            };
            // One untimed pass (page cache, lazy statics), then the timed ones.
            if parser.extract_text(&content, hints).is_err() {
                continue; // the parser refuses it: not comparable
            }
            let mut text = String::new();
            let start = Instant::now();
            for _ in 0..rounds.max(1) {
                text = parser.extract_text(&content, hints).map(|(_, t)| t)?;
            }
            let took = start.elapsed().as_secs_f64() / rounds.max(1) as f64;
            let _ = parser.parse(&content, hints); // untimed, as above
            let start = Instant::now();
            for _ in 0..rounds.max(1) {
                let _ = parser.parse(&content, hints);
            }
            full_s += start.elapsed().as_secs_f64() / rounds.max(1) as f64;
            let (f, tot) = quality::counts(&t.text, &text);
            found += f;
            total += tot;
            bytes += content.len() as u64;
            ours_s += took;
            theirs_s += t.seconds;
            n += 1;
            library.clone_from(&t.library);
        }
        let rate = |s: f64| mb(bytes) / s.max(1e-9);
        println!(
            "| {folder} | {n} | {:.2} | {:.1} | {library} | {:.2} | {:.1}× | {:.1} % | {:.1} |",
            mb(bytes),
            rate(ours_s),
            rate(theirs_s),
            theirs_s / ours_s.max(1e-9),
            found as f64 * 100.0 / total.max(1) as f64,
            rate(full_s),
        );
        through_service.push((folder, bytes, full_s));
    }
    if let Some(address) = service {
        println!();
        // Here both sides do the same work, OCR of pages without a text layer included.
        service_table(configured, address, &files, &through_service, rounds)?;
    }
    Ok(())
}

/// The median of `values` (sorted in place); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The same files through a running parser service (`Parse` over gRPC: what the stack's
/// build does, round trip included) against this process's parse + chunking.
fn service_table(
    parser: &Parser,
    address: &str,
    files: &[PathBuf],
    local: &[(&str, u64, f64)],
    rounds: usize,
) -> anyhow::Result<()> {
    use apex_proto::parser::v1::ParseRequest;
    use apex_proto::parser::v1::parser_service_client::ParserServiceClient;

    // A client of its own on this thread: a sequential caller whose calls do not hop between
    // the tool's runtime threads (the round trip measured is the service's, not the tool's).
    let handle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut client = handle.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(address.to_owned())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot reach the parser at {address}"))?;
        anyhow::Ok(
            ParserServiceClient::new(channel)
                .max_decoding_message_size(256 * 1024 * 1024)
                .max_encoding_message_size(256 * 1024 * 1024),
        )
    })?;
    println!(
        "Through the running service at {address} (its build, gRPC round trip included; median of {rounds} round(s) after one untimed, each round a call then a parse here), against this process's parse + chunking, both with OCR as configured:"
    );
    println!();
    println!(
        "| format | files | MB | reply MB | service MB/s | this build MB/s | service / this build |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (folder, _, _) in local {
        let (mut bytes, mut service_s, mut local_s, mut n) = (0u64, 0f64, 0f64, 0usize);
        let mut reply_bytes = 0u64;
        for path in files
            .iter()
            .filter(|p| p.parent().and_then(Path::file_name) == Some(folder.as_ref()))
        {
            let content = std::fs::read(path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let request = ParseRequest {
                content: content.clone().into(),
                file_name: name.clone(),
                ..Default::default()
            };
            let hints = Hints {
                file_name: &name,
                ..Hints::default()
            };
            // Refused, or no text layer (the service would OCR what this parser may not):
            // not comparable.
            if !parser
                .parse(&content, hints)
                .is_ok_and(|d| !d.no_text_layer)
            {
                continue;
            }
            let Ok(reply) = handle.block_on(client.parse(request.clone())) else {
                continue;
            };
            reply_bytes += prost::Message::encoded_len(&reply.into_inner()) as u64;
            // Rounds interleaved (a call, then a parse here) and the median of each side
            // kept: the machine's noise falls on both alike instead of on whichever ran
            // during a burst of other work.
            let (mut there, mut here) = (Vec::new(), Vec::new());
            for _ in 0..rounds.max(1) {
                let start = Instant::now();
                handle.block_on(client.parse(request.clone()))?;
                there.push(start.elapsed().as_secs_f64());
                let start = Instant::now();
                let _ = parser.parse(&content, hints);
                here.push(start.elapsed().as_secs_f64());
            }
            service_s += median(&mut there);
            local_s += median(&mut here);
            bytes += content.len() as u64;
            n += 1;
        }
        let rate = |s: f64| mb(bytes) / s.max(1e-9);
        println!(
            "| {folder} | {n} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} |",
            mb(bytes),
            mb(reply_bytes),
            rate(service_s),
            rate(local_s),
            local_s / service_s.max(1e-9)
        );
    }
    Ok(())
}
