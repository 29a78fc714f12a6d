//! OCR with Tesseract (Debian's `tesseract-ocr`), run as a bounded subprocess: the image on
//! stdin, TSV (words with their confidence and layout) on stdout, one OpenMP thread, killed
//! past its time. Used for PDF pages without a text layer and for PNG, JPEG and TIFF files.
//! Bounded per document by pages (`ocr.max_pages`), per page by pixels (`ocr.max_pixels`,
//! pages are rendered smaller to fit) and by time (`ocr.page_timeout_secs` and the parse
//! deadline). Whatever is skipped is said in a warning.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Deadline;

/// `Page.text_source` and the chunk metadata value of OCR'd text.
pub(crate) const SOURCE: &str = "ocr";

/// OCR settings (`APEX_PARSER__OCR__…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OcrSettings {
    /// Off: scanned pages and images give no text (and say so).
    pub enabled: bool,
    /// The `tesseract` program.
    pub tesseract: PathBuf,
    /// Tesseract languages, `+`-separated (`eng+deu`); each needs its `tesseract-ocr-<lang>`.
    pub languages: String,
    /// Resolution PDF pages are rendered at.
    pub dpi: u32,
    /// Most pages (PDF pages or TIFF frames) read by OCR per document.
    pub max_pages: u32,
    /// Most pixels of one page or image; larger pages are rendered smaller, larger images
    /// are not read.
    pub max_pixels: u64,
    /// Longest OCR of one page (the parse deadline bounds the whole document too).
    pub page_timeout_secs: u64,
}

impl Default for OcrSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            tesseract: PathBuf::from("tesseract"),
            languages: "eng".to_owned(),
            dpi: 300,
            max_pages: 50,
            max_pixels: 40_000_000,
            page_timeout_secs: 60,
        }
    }
}

impl OcrSettings {
    pub(crate) fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(72..=600).contains(&self.dpi) {
            p.push(format!(
                "ocr.dpi must be between 72 and 600, not {}",
                self.dpi
            ));
        }
        if self.max_pixels < 1_000_000 {
            p.push("ocr.max_pixels must be at least 1000000".to_owned());
        }
        if self.page_timeout_secs == 0 {
            p.push("ocr.page_timeout_secs must be at least 1".to_owned());
        }
        let valid_lang = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !self.languages.split('+').all(valid_lang) {
            p.push(format!(
                "ocr.languages must be tesseract language codes joined by '+', not {:?}",
                self.languages
            ));
        }
        p
    }
}

/// Text read from one image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recognised {
    pub(crate) text: String,
    /// Mean word confidence, 0 to 1.
    pub(crate) confidence: f32,
    pub(crate) words: usize,
}

/// Why an image was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OcrError {
    /// Tesseract cannot run at all (not installed, language data missing).
    Unavailable(String),
    /// It ran past its time and was stopped.
    Timeout(Duration),
    /// It refused this image.
    Failed(String),
}

/// `tesseract --version`'s first line, once per process.
pub(crate) fn engine_name(s: &OcrSettings) -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        Command::new(&s.tesseract)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                let all = [o.stdout, o.stderr].concat();
                String::from_utf8_lossy(&all)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "tesseract".to_owned())
    })
    .clone()
}

/// Reads the image in `bytes` (PNG, JPEG, TIFF or PNM) within `timeout`.
pub(crate) fn recognise(
    s: &OcrSettings,
    bytes: &[u8],
    dpi: Option<u32>,
    timeout: Duration,
) -> Result<Recognised, OcrError> {
    let mut cmd = Command::new(&s.tesseract);
    cmd.args(["stdin", "stdout", "-l", &s.languages, "--psm", "3"]);
    if let Some(dpi) = dpi {
        cmd.args(["--dpi", &dpi.to_string()]);
    }
    cmd.arg("tsv")
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| OcrError::Unavailable(format!("cannot run {}: {e}", s.tesseract.display())))?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(OcrError::Unavailable(
            "tesseract's pipes are missing".to_owned(),
        ));
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let input = bytes.to_vec();
    // Writer, readers: each ends when the process ends (or is killed).
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let errors = std::thread::spawn(move || {
        let mut e = String::new();
        let _ = stderr.read_to_string(&mut e);
        e
    });
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = stdout.read_to_end(&mut out).map(|_| out);
        let _ = done_tx.send(read);
    });
    let output = match done_rx.recv_timeout(timeout) {
        Ok(read) => read.ok(),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            return Err(OcrError::Timeout(timeout));
        }
    };
    let status = child.wait();
    let _ = writer.join();
    let stderr = errors.join().unwrap_or_default();
    match (status, output) {
        (Ok(st), Some(out)) if st.success() => Ok(from_tsv(&String::from_utf8_lossy(&out))),
        (Ok(_), _)
            if stderr.contains("Failed loading language")
                || stderr.contains("Could not initialize") =>
        {
            Err(OcrError::Unavailable(first_line(&stderr)))
        }
        (Ok(st), _) => Err(OcrError::Failed(format!(
            "tesseract exited with {st}: {}",
            first_line(&stderr)
        ))),
        (Err(e), _) => Err(OcrError::Failed(format!("tesseract: {e}"))),
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_owned()
}

/// Tesseract's TSV as text: words of a line joined by spaces, lines by `\n`, paragraphs and
/// blocks by a blank line; the confidence is the mean over words (as 0 to 1).
pub(crate) fn from_tsv(tsv: &str) -> Recognised {
    let mut text = String::new();
    let mut last: Option<(u32, u32, u32, u32)> = None;
    let (mut sum, mut words) = (0f64, 0usize);
    for line in tsv.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 12 || f[0] != "5" {
            continue;
        }
        let word = f[11].trim();
        if word.is_empty() {
            continue;
        }
        let n = |i: usize| f[i].parse::<u32>().unwrap_or(0);
        let key = (n(1), n(2), n(3), n(4));
        match last {
            Some(prev) if prev == key => text.push(' '),
            Some(prev) if prev.0 == key.0 && prev.1 == key.1 && prev.2 == key.2 => text.push('\n'),
            Some(_) => text.push_str("\n\n"),
            None => {}
        }
        last = Some(key);
        text.push_str(word);
        if let Ok(conf) = f[10].parse::<f64>()
            && conf >= 0.0
        {
            sum += conf;
            words += 1;
        }
    }
    Recognised {
        text,
        confidence: if words == 0 {
            0.0
        } else {
            (sum / words as f64 / 100.0) as f32
        },
        words,
    }
}

/// An 8-bit grey image as binary PGM (P5), which Tesseract reads without a codec.
pub(crate) fn pgm(width: u32, height: u32, grey: &[u8]) -> Vec<u8> {
    let mut out = format!("P5\n{width} {height}\n255\n").into_bytes();
    out.extend_from_slice(grey);
    out
}

/// Pixel size of a `w` × `h` point page at `dpi`, scaled down to fit `max_pixels`.
pub(crate) fn pixels_for(w: f32, h: f32, dpi: u32, max_pixels: u64) -> Option<(u32, u32)> {
    if !(w.is_finite() && h.is_finite()) || w <= 0.0 || h <= 0.0 {
        return None;
    }
    let mut scale = f64::from(dpi) / 72.0;
    let area = f64::from(w) * f64::from(h) * scale * scale;
    if area > max_pixels as f64 {
        scale *= (max_pixels as f64 / area).sqrt();
    }
    let width = (f64::from(w) * scale).floor().max(1.0);
    let height = (f64::from(h) * scale).floor().max(1.0);
    (width <= 20_000.0 && height <= 20_000.0).then_some((width as u32, height as u32))
}

/// OCR over one document: its page budget, what it read and what it skipped.
pub(crate) struct Session<'a> {
    s: &'a OcrSettings,
    read: Vec<(u32, f32, usize)>,
    over_limit: Vec<u32>,
    off: Vec<u32>,
    timed_out: Vec<u32>,
    failed: Vec<(u32, String)>,
    unavailable: Option<String>,
}

impl<'a> Session<'a> {
    pub(crate) fn new(s: &'a OcrSettings) -> Self {
        Self {
            s,
            read: Vec::new(),
            over_limit: Vec::new(),
            off: Vec::new(),
            timed_out: Vec::new(),
            failed: Vec::new(),
            unavailable: None,
        }
    }

    /// Reads page `number`, whose image `render(dpi, max_pixels)` makes; `None` when the
    /// page is not read (the reason goes into the warnings).
    pub(crate) fn page(
        &mut self,
        number: u32,
        deadline: &Deadline,
        render: impl FnOnce(u32, u64) -> Option<(Vec<u8>, u32, u32)>,
    ) -> Option<Recognised> {
        if !self.s.enabled {
            self.off.push(number);
            return None;
        }
        if self.unavailable.is_some() {
            self.off.push(number);
            return None;
        }
        if self.attempted() >= self.s.max_pages as usize {
            self.over_limit.push(number);
            return None;
        }
        let timeout = deadline
            .remaining()
            .min(Duration::from_secs(self.s.page_timeout_secs));
        if timeout.is_zero() {
            self.timed_out.push(number);
            return None;
        }
        let Some((image, _, _)) = render(self.s.dpi, self.s.max_pixels) else {
            self.failed
                .push((number, "the page cannot be rendered".to_owned()));
            return None;
        };
        self.image(number, &image, Some(self.s.dpi), timeout)
    }

    /// Reads one image file (or TIFF frame set) as page `number`.
    pub(crate) fn image(
        &mut self,
        number: u32,
        bytes: &[u8],
        dpi: Option<u32>,
        timeout: Duration,
    ) -> Option<Recognised> {
        match recognise(self.s, bytes, dpi, timeout) {
            Ok(r) => {
                self.read.push((number, r.confidence, r.words));
                Some(r)
            }
            Err(OcrError::Unavailable(reason)) => {
                self.unavailable = Some(reason);
                self.off.push(number);
                None
            }
            Err(OcrError::Timeout(_)) => {
                self.timed_out.push(number);
                None
            }
            Err(OcrError::Failed(reason)) => {
                self.failed.push((number, reason));
                None
            }
        }
    }

    fn attempted(&self) -> usize {
        self.read.len() + self.timed_out.len() + self.failed.len()
    }

    /// Adds `ocr_*` metadata for what was read and returns the warnings for what was not.
    pub(crate) fn finish(self, metadata: &mut BTreeMap<String, String>) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.read.is_empty() {
            let words: usize = self.read.iter().map(|r| r.2).sum();
            let weighted: f64 = self.read.iter().map(|r| f64::from(r.1) * r.2 as f64).sum();
            let mean = if words == 0 {
                0.0
            } else {
                weighted / words as f64
            };
            metadata.insert("ocr_pages".to_owned(), self.read.len().to_string());
            metadata.insert("ocr_engine".to_owned(), engine_name(self.s));
            metadata.insert("ocr_languages".to_owned(), self.s.languages.clone());
            metadata.insert("ocr_confidence".to_owned(), format!("{mean:.3}"));
        }
        let list = |pages: &[u32]| {
            pages
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.off.is_empty() {
            let why = match &self.unavailable {
                Some(reason) => format!("OCR is unavailable: {reason}"),
                None => "OCR is off (ocr.enabled)".to_owned(),
            };
            warnings.push(format!(
                "ocr_skipped: page(s) {} have no text layer and were not read: {why}",
                list(&self.off)
            ));
        }
        if !self.over_limit.is_empty() {
            warnings.push(format!(
                "ocr_page_limit: page(s) {} have no text layer and were not read: over ocr.max_pages ({})",
                list(&self.over_limit),
                self.s.max_pages
            ));
        }
        if !self.timed_out.is_empty() {
            warnings.push(format!(
                "ocr_timeout: OCR of page(s) {} ran out of time and was stopped",
                list(&self.timed_out)
            ));
        }
        for (page, reason) in &self.failed {
            warnings.push(format!("ocr_failed: page {page}: {reason}"));
        }
        warnings
    }
}

/// Marks each chunk of an OCR'd page (chunks never cross a page) with `text_source`, the
/// engine and the page's confidence.
pub(crate) fn mark_chunks(
    chunks: &mut [apex_proto::common::v1::Chunk],
    pages: &[apex_proto::parser::v1::Page],
    metadata: &BTreeMap<String, String>,
) {
    if !pages.iter().any(|p| p.text_source == SOURCE) {
        return;
    }
    let engine = metadata.get("ocr_engine").cloned().unwrap_or_default();
    for chunk in chunks {
        let page = chunk.location.as_ref().map_or(0, |l| l.page);
        if let Some(p) = pages
            .iter()
            .find(|p| p.number == page && p.text_source == SOURCE)
        {
            chunk
                .metadata
                .insert("text_source".to_owned(), SOURCE.to_owned());
            chunk
                .metadata
                .insert("ocr_engine".to_owned(), engine.clone());
            chunk.metadata.insert(
                "ocr_confidence".to_owned(),
                format!("{:.3}", p.ocr_confidence),
            );
        }
    }
}

#[cfg(test)]
mod tests;
