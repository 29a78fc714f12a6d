//! The parser's data-quality metrics: documents parsed by format and outcome, chunks per
//! document, documents that gave no chunks, and parse warnings by kind.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

#[derive(Debug, Clone)]
pub struct ParserMetrics {
    pub registry: Registry,
    documents: IntCounterVec,
    chunks: HistogramVec,
    empty: IntCounterVec,
    warnings: IntCounterVec,
}

/// The kind of a parse warning, from its text (the parser writes them for people).
pub fn warning_kind(warning: &str) -> &'static str {
    if warning.starts_with("no_text_layer") {
        "no_text_layer"
    } else if warning.starts_with("page_skipped") {
        "page_skipped"
    } else if warning.contains("longer than a chunk") {
        "oversized_words"
    } else if warning.starts_with("attachment") {
        "attachment_skipped"
    } else if warning.starts_with("row ") {
        "ragged_rows"
    } else if warning.contains("not valid") {
        "invalid_encoding"
    } else {
        "other"
    }
}

impl ParserMetrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let documents = IntCounterVec::new(
            Opts::new(
                "apex_parser_documents_total",
                "Documents parsed, by format and outcome (ok or the error code)",
            ),
            &["format", "outcome"],
        )?;
        let chunks = HistogramVec::new(
            HistogramOpts::new("apex_parser_chunks", "Chunks per parsed document").buckets(vec![
                0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
            ]),
            &["format"],
        )?;
        let empty = IntCounterVec::new(
            Opts::new(
                "apex_parser_empty_documents_total",
                "Documents parsed without error that gave no chunks, by format",
            ),
            &["format"],
        )?;
        let warnings = IntCounterVec::new(
            Opts::new("apex_parser_warnings_total", "Parse warnings, by kind"),
            &["kind"],
        )?;
        registry.register(Box::new(documents.clone()))?;
        registry.register(Box::new(chunks.clone()))?;
        registry.register(Box::new(empty.clone()))?;
        registry.register(Box::new(warnings.clone()))?;
        Ok(Self {
            registry,
            documents,
            chunks,
            empty,
            warnings,
        })
    }

    /// One document parsed: its format, its chunks (its parts' included) and warnings.
    pub fn parsed(&self, format: &str, chunk_count: u32, warnings: &[String]) {
        self.documents.with_label_values(&[format, "ok"]).inc();
        self.chunks
            .with_label_values(&[format])
            .observe(f64::from(chunk_count));
        if chunk_count == 0 {
            self.empty.with_label_values(&[format]).inc();
        }
        for w in warnings {
            self.warnings.with_label_values(&[warning_kind(w)]).inc();
        }
    }

    /// One document refused, with its error code.
    pub fn refused(&self, code: &str) {
        self.documents.with_label_values(&["unknown", code]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_sorted_into_kinds_and_documents_counted() {
        assert_eq!(
            warning_kind("no_text_layer: none of the 3 page(s) has a text layer"),
            "no_text_layer"
        );
        assert_eq!(
            warning_kind("page_skipped: the text of page 14 cannot be extracted (x)"),
            "page_skipped"
        );
        assert_eq!(
            warning_kind("2 word(s) are longer than a chunk of 256 tokens and were kept whole"),
            "oversized_words"
        );
        assert_eq!(
            warning_kind("attachment `a.pdf` not parsed: x"),
            "attachment_skipped"
        );
        assert_eq!(
            warning_kind("row 7 has 3 fields, the header has 4"),
            "ragged_rows"
        );
        assert_eq!(
            warning_kind("some bytes are not valid UTF-8 and were replaced by U+FFFD"),
            "invalid_encoding"
        );
        assert_eq!(warning_kind("something new"), "other");

        let m = ParserMetrics::new().expect("metrics");
        m.parsed(
            "pdf",
            0,
            &["no_text_layer: none of the 1 page(s)".to_owned()],
        );
        m.refused("too_large");
        let text = apex_common::metrics::render(&m.registry);
        assert!(
            text.contains("apex_parser_empty_documents_total{format=\"pdf\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("apex_parser_warnings_total{kind=\"no_text_layer\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "apex_parser_documents_total{format=\"unknown\",outcome=\"too_large\"} 1"
            ),
            "{text}"
        );
    }
}
