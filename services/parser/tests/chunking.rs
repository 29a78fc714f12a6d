//! Chunking with the real all-MiniLM-L6-v2 tokenizer (installed by deploy/local/bootstrap).

use apex_parser::{Hints, ParseError, Parser, ParserSettings};
use apex_proto::common::v1::DocumentRef;
use apex_proto::parser::v1::ParseOptions;

fn parser() -> Parser {
    Parser::new(ParserSettings::default()).expect("tokenizer installed by deploy/local/bootstrap")
}

fn words(n: usize) -> String {
    let vocabulary = [
        "shipment",
        "delivered",
        "to",
        "the",
        "consignee",
        "in",
        "Dallas",
        "after",
        "a",
        "delay",
        "caused",
        "by",
        "weather",
        "invoice",
        "amount",
        "carrier",
    ];
    (0..n)
        .map(|i| vocabulary[(i * 7 + i / 3) % vocabulary.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn chunks_respect_the_token_budget_hold_whole_words_and_overlap() {
    let p = parser();
    let text = words(3000);
    let doc = DocumentRef {
        document_id: "0b6f3c5e-2d1b-5c5e-9a43-0a0f4b7c2e11".to_owned(),
        source: "upload".to_owned(),
        version: 3,
    };
    let options = ParseOptions {
        max_chunk_tokens: 64,
        overlap_tokens: 8,
    };
    let parsed = p
        .parse(
            text.as_bytes(),
            Hints {
                file_name: "notes.txt",
                document: Some(&doc),
                options: Some(&options),
                ..Hints::default()
            },
        )
        .expect("parses");
    let chars: Vec<char> = parsed.text.chars().collect();
    assert!(parsed.chunks.len() > 40, "{} chunks", parsed.chunks.len());
    let mut previous_end = 0;
    for (i, chunk) in parsed.chunks.iter().enumerate() {
        assert_eq!(chunk.ordinal as usize, i);
        // The model's own count, plus [CLS] and [SEP], fits the budget.
        let counted = p.chunker().count_tokens(&chunk.text).expect("count");
        assert_eq!(counted, chunk.token_count, "chunk {i}");
        assert!(
            chunk.token_count + 2 <= 64,
            "chunk {i} has {} tokens",
            chunk.token_count
        );
        // Offsets point at exactly the chunk's text, which starts and ends on word edges.
        let loc = chunk.location.as_ref().expect("location");
        let at: String = chars[loc.char_start as usize..loc.char_end as usize]
            .iter()
            .collect();
        assert_eq!(at, chunk.text);
        assert!(loc.char_start == 0 || chars[loc.char_start as usize - 1].is_whitespace());
        assert!(
            loc.char_end as usize == chars.len() || chars[loc.char_end as usize].is_whitespace()
        );
        // Consecutive chunks overlap by whole words, never by more than the overlap.
        if i > 0 {
            assert!(loc.char_start < previous_end, "chunk {i} does not overlap");
            let shared: String = chars[loc.char_start as usize..previous_end as usize]
                .iter()
                .collect();
            let shared_tokens = p.chunker().count_tokens(&shared).expect("count");
            assert!(
                shared_tokens <= 8,
                "chunk {i} shares {shared_tokens} tokens"
            );
        }
        previous_end = loc.char_end;
    }
    assert_eq!(
        previous_end as usize,
        chars.len(),
        "the last chunk reaches the end"
    );
    // Chunk ids are UUIDv5 of (document, version, ordinal): stable and distinct.
    let again = p
        .parse(
            text.as_bytes(),
            Hints {
                document: Some(&doc),
                options: Some(&options),
                ..Hints::default()
            },
        )
        .expect("parses again");
    assert_eq!(parsed.chunks[5].chunk_id, again.chunks[5].chunk_id);
    let ids: std::collections::HashSet<&str> =
        parsed.chunks.iter().map(|c| c.chunk_id.as_str()).collect();
    assert_eq!(ids.len(), parsed.chunks.len());
}

#[test]
fn default_chunks_fit_the_model_window_of_256() {
    let p = parser();
    let parsed = p
        .parse(words(5000).as_bytes(), Hints::default())
        .expect("parses");
    assert!(parsed.chunks.iter().all(|c| c.token_count + 2 <= 256));
    assert!(
        parsed.chunks.iter().any(|c| c.token_count + 2 > 200),
        "chunks are filled"
    );
}

#[test]
fn markdown_sections_label_their_chunks() {
    let p = parser();
    let md = format!(
        "# Handbook\n\n{}\n\n## Claims\n\n{}\n",
        words(40),
        words(40)
    );
    let parsed = p
        .parse(
            md.as_bytes(),
            Hints {
                file_name: "handbook.md",
                options: Some(&ParseOptions {
                    max_chunk_tokens: 32,
                    overlap_tokens: 0,
                }),
                ..Hints::default()
            },
        )
        .expect("parses");
    assert_eq!(parsed.format, "markdown");
    let sections: Vec<&str> = parsed
        .chunks
        .iter()
        .map(|c| c.location.as_ref().expect("loc").section.as_str())
        .collect();
    assert_eq!(sections.first(), Some(&"Handbook"));
    assert!(sections.contains(&"Handbook > Claims"), "{sections:?}");
}

#[test]
fn an_overlong_word_is_kept_whole_with_a_warning() {
    let p = parser();
    // One whitespace-delimited word the tokenizer splits at every hyphen: ~65 tokens.
    let long = vec!["ab"; 33].join("-");
    let parsed = p
        .parse(
            format!("short words {long} more words").as_bytes(),
            Hints {
                options: Some(&ParseOptions {
                    max_chunk_tokens: 32,
                    overlap_tokens: 0,
                }),
                ..Hints::default()
            },
        )
        .expect("parses");
    assert!(parsed.chunks.iter().any(|c| c.text == long));
    assert!(
        parsed.warnings.iter().any(|w| w.contains("kept whole")),
        "{:?}",
        parsed.warnings
    );
}

#[test]
fn bad_chunk_options_are_refused() {
    let err = parser()
        .parse(
            b"text",
            Hints {
                options: Some(&ParseOptions {
                    max_chunk_tokens: 4,
                    overlap_tokens: 0,
                }),
                ..Hints::default()
            },
        )
        .expect_err("too small");
    assert!(matches!(err, ParseError::Invalid { .. }), "{err}");
}

#[test]
fn chunk_ids_differ_between_a_document_its_attachments_and_other_documents() {
    let p = parser();
    let mut ids = std::collections::HashSet::new();
    let mut count = 0;
    fn collect<'a>(doc: &'a apex_proto::parser::v1::ParsedDocument, out: &mut Vec<&'a str>) {
        out.extend(doc.chunks.iter().map(|c| c.chunk_id.as_str()));
        for part in &doc.parts {
            collect(part, out);
        }
    }
    // The email fixture carries attachments (one of them an email with its own text).
    let email = p
        .parse(&apex_parser::corpus::email(), Hints::default())
        .expect("email");
    assert!(!email.parts.is_empty());
    let other = p
        .parse(words(300).as_bytes(), Hints::default())
        .expect("text");
    for doc in [&email, &other] {
        let mut out = Vec::new();
        collect(doc, &mut out);
        count += out.len();
        ids.extend(out);
    }
    assert!(count > 3);
    assert_eq!(ids.len(), count, "every chunk id is distinct");
    // And stable: the same bytes give the same ids.
    let again = p
        .parse(&apex_parser::corpus::email(), Hints::default())
        .expect("email again");
    assert_eq!(
        email.parts[0].chunks[0].chunk_id,
        again.parts[0].chunks[0].chunk_id
    );
}
