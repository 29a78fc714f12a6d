//! A short, bounded run of the mutation fuzzer over every format: every mutant comes back
//! as a document or a typed error; nothing panics out of `Parser::parse`. Longer runs:
//! `apex-tools parser fuzz --iterations N` (see docs/operations.md).

use apex_parser::{Parser, ParserSettings, corpus, fuzz};

#[test]
fn mutated_inputs_of_every_format_never_escape_as_panics() {
    let parser = Parser::new(ParserSettings::default()).expect("tokenizer installed");
    let samples = corpus::samples();
    let reports = fuzz::run(&parser, &samples, 40, 7);
    println!("{}", fuzz::table(&reports));
    assert_eq!(reports.len(), samples.len());
    for r in &reports {
        assert_eq!(r.inputs, 40, "{}", r.name);
        assert!(
            r.escaped_panics.is_empty(),
            "{}: {:?}",
            r.name,
            r.escaped_panics
        );
        assert_eq!(
            r.parsed + r.refused + r.deadline + r.contained_panics.len(),
            r.inputs
        );
        // Mutants of a well-formed sample are mostly refused or parsed, never lost.
        assert!(r.parsed + r.refused > 0, "{}", r.name);
    }
}
