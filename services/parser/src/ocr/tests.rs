use std::os::unix::fs::PermissionsExt as _;

use super::*;

const TSV: &str =
    "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext
1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t
5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t96.5\tBill
5\t1\t1\t1\t1\t2\t0\t0\t10\t10\t93.5\tof
5\t1\t1\t1\t2\t1\t0\t0\t10\t10\t90\tLading
5\t1\t2\t1\t1\t1\t0\t0\t10\t10\t80\tSigned
5\t1\t2\t1\t1\t2\t0\t0\t10\t10\t-1\t 
";

#[test]
fn tsv_becomes_lines_and_paragraphs_with_the_mean_word_confidence() {
    let r = from_tsv(TSV);
    assert_eq!(r.text, "Bill of\nLading\n\nSigned");
    assert_eq!(r.words, 4);
    assert!((r.confidence - 0.90).abs() < 1e-6, "{}", r.confidence);
    assert_eq!(from_tsv("level\tpage_num\n").words, 0);
}

#[test]
fn pages_are_rendered_smaller_to_stay_within_the_pixel_budget() {
    // A4 at 300 dpi is 2480 × 3507.
    assert_eq!(
        pixels_for(595.0, 842.0, 300, 40_000_000),
        Some((2479, 3508))
    );
    let (w, h) = pixels_for(595.0 * 10.0, 842.0 * 10.0, 300, 40_000_000).expect("fits");
    assert!(u64::from(w) * u64::from(h) <= 40_000_000, "{w}×{h}");
    assert_eq!(pixels_for(0.0, 842.0, 300, 40_000_000), None);
    assert_eq!(pixels_for(f32::NAN, 842.0, 300, 40_000_000), None);
}

#[test]
fn pgm_has_its_header_then_the_pixels() {
    assert_eq!(pgm(2, 1, &[0, 255]), b"P5\n2 1\n255\n\x00\xff".to_vec());
}

#[test]
fn settings_refuse_bad_languages_and_bounds() {
    let mut s = OcrSettings::default();
    assert!(s.validate().is_empty());
    s.languages = "eng; rm -rf".to_owned();
    s.dpi = 5;
    s.page_timeout_secs = 0;
    let problems = s.validate().join("\n");
    assert!(problems.contains("ocr.languages"), "{problems}");
    assert!(problems.contains("ocr.dpi"), "{problems}");
    assert!(problems.contains("ocr.page_timeout_secs"), "{problems}");
}

#[test]
fn a_missing_program_is_unavailable_not_a_failure() {
    let s = OcrSettings {
        tesseract: PathBuf::from("/nonexistent/tesseract"),
        ..OcrSettings::default()
    };
    let err =
        recognise(&s, b"P5\n1 1\n255\n\0", None, Duration::from_secs(5)).expect_err("refused");
    assert!(
        matches!(&err, OcrError::Unavailable(m) if m.contains("/nonexistent/tesseract")),
        "{err:?}"
    );
}

#[test]
fn a_language_without_its_data_is_unavailable() {
    let s = OcrSettings {
        languages: "zzz".to_owned(),
        ..OcrSettings::default()
    };
    let err = recognise(
        &s,
        &pgm(8, 8, &[255; 64]),
        Some(300),
        Duration::from_secs(30),
    )
    .expect_err("refused");
    assert!(matches!(err, OcrError::Unavailable(_)), "{err:?}");
}

#[test]
fn an_engine_past_its_time_is_stopped() {
    let dir = tempfile::tempdir().expect("dir");
    let program = dir.path().join("tesseract");
    std::fs::write(&program, "#!/bin/sh\nexec sleep 600\n").expect("write");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let s = OcrSettings {
        tesseract: program,
        ..OcrSettings::default()
    };
    // Another test thread that forks while the script is open for writing makes its exec fail
    // with "Text file busy" (os error 26) until that child has exec'd: retried, bounded.
    let mut attempts = 0;
    let err = loop {
        let err = recognise(&s, b"P5\n1 1\n255\n\0", None, Duration::from_millis(300))
            .expect_err("refused");
        attempts += 1;
        if !format!("{err:?}").contains("os error 26") || attempts == 50 {
            break err;
        }
        std::thread::yield_now();
    };
    assert_eq!(err, OcrError::Timeout(Duration::from_millis(300)));
}

#[test]
fn a_session_says_what_it_did_not_read() {
    let off = OcrSettings {
        enabled: false,
        ..OcrSettings::default()
    };
    let deadline = Deadline::after(Duration::from_secs(10));
    let mut session = Session::new(&off);
    assert!(
        session
            .page(3, &deadline, |_, _| unreachable!("not rendered when off"))
            .is_none()
    );
    let mut metadata = BTreeMap::new();
    let warnings = session.finish(&mut metadata);
    assert!(metadata.is_empty());
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with("ocr_skipped: page(s) 3") && warnings[0].contains("off"),
        "{warnings:?}"
    );

    let limited = OcrSettings {
        max_pages: 0,
        ..OcrSettings::default()
    };
    let mut session = Session::new(&limited);
    assert!(
        session
            .page(1, &deadline, |_, _| unreachable!("over the limit"))
            .is_none()
    );
    let warnings = session.finish(&mut metadata);
    assert!(
        warnings[0].starts_with("ocr_page_limit: page(s) 1"),
        "{warnings:?}"
    );
}
