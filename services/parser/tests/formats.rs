//! Every format of the generated corpus parses to the expected text, metadata, structure and
//! chunks; every hostile variant is refused with the reason and the right error kind.

use apex_parser::{Hints, ParseError, Parser, ParserSettings};
use apex_proto::parser::v1::ParsedDocument;

fn parser_with(f: impl FnOnce(&mut ParserSettings)) -> Parser {
    let mut s = ParserSettings::default();
    f(&mut s);
    Parser::new(s).expect("tokenizer installed by deploy/local/bootstrap")
}

fn parser() -> Parser {
    parser_with(|_| {})
}

fn parse(bytes: &[u8], file_name: &str) -> ParsedDocument {
    parser()
        .parse(
            bytes,
            Hints {
                file_name,
                ..Hints::default()
            },
        )
        .unwrap_or_else(|e| panic!("{file_name}: {e}"))
}

fn refuse(p: &Parser, bytes: &[u8], file_name: &str) -> ParseError {
    match p.parse(
        bytes,
        Hints {
            file_name,
            ..Hints::default()
        },
    ) {
        Ok(doc) => panic!("{file_name} parsed as {} but must be refused", doc.format),
        Err(e) => e,
    }
}

#[test]
fn pdf_text_by_page_with_metadata() {
    let bytes = apex_parser::corpus::pdf(
        &[
            "Bill of lading 42\nShipper: Apex Foods",
            "",
            "Consignee: Lone Star Grocers",
        ],
        "BOL 42",
    );
    let doc = parse(&bytes, "bol.pdf");
    assert_eq!(doc.format, "pdf");
    assert_eq!(doc.metadata["title"], "BOL 42");
    assert_eq!(doc.metadata["author"], "Apex Tests");
    assert_eq!(doc.metadata["created"], "2026-03-15T09:30:00");
    assert_eq!(doc.metadata["page_count"], "3");
    assert!(doc.text.contains("Bill of lading 42"), "{}", doc.text);
    assert!(doc.text.contains("Lone Star Grocers"), "{}", doc.text);
    let pages = &doc.structure.as_ref().expect("structure").pages;
    let numbers: Vec<u32> = pages.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 3], "the empty page 2 has no text");
    // Chunks never cross pages and say which page they are on.
    let on_page_3 = doc
        .chunks
        .iter()
        .find(|c| c.text.contains("Consignee"))
        .expect("chunk with page 3 text");
    assert_eq!(on_page_3.location.as_ref().expect("loc").page, 3);
    assert!(!doc.no_text_layer);
}

#[test]
fn a_scanned_pdf_has_no_text_layer_and_no_chunks() {
    let doc = parse(&apex_parser::corpus::pdf(&["", ""], "Scan"), "scan.pdf");
    assert!(doc.no_text_layer);
    assert!(doc.text.is_empty());
    assert!(doc.chunks.is_empty());
    assert!(
        doc.warnings.iter().any(|w| w.starts_with("no_text_layer")),
        "{:?}",
        doc.warnings
    );
}

#[test]
fn pdf_hostile_and_broken_inputs_are_refused() {
    let p = parser_with(|s| s.max_unzipped_bytes = 1024 * 1024);
    // A 4 MiB stream of zeros deflates to a few KiB.
    let bomb = apex_parser::corpus::pdf_with(
        &["ok"],
        "Bomb",
        &[(
            "/Filter /FlateDecode",
            apex_parser::corpus::deflate(&vec![0u8; 4 << 20]),
        )],
    );
    let e = refuse(&p, &bomb, "bomb.pdf");
    assert!(e.to_string().contains("decompression bomb"), "{e}");
    assert!(matches!(e, ParseError::Invalid { .. }));

    let mut encrypted = apex_parser::corpus::pdf(&["secret"], "Locked");
    let at = encrypted
        .windows(8)
        .rposition(|w| w == b"/Info 4 ")
        .expect("trailer");
    encrypted.splice(
        at..at,
        b"/Encrypt << /Filter /Standard /V 1 /R 2 /O (x) /U (y) /P -4 >> "
            .iter()
            .copied(),
    );
    let e = refuse(&p, &encrypted, "locked.pdf");
    assert!(e.to_string().contains("encrypted"), "{e}");

    let e = refuse(&p, b"%PDF-1.4\n1 0 obj garbage", "broken.pdf");
    assert!(matches!(e, ParseError::Invalid { .. }), "{e}");
}

#[test]
fn docx_paragraphs_headings_tables_and_properties() {
    let doc = parse(&apex_parser::corpus::docx(), "agreement.docx");
    assert_eq!(doc.format, "docx");
    assert_eq!(doc.metadata["title"], "Carrier Agreement 2026");
    assert_eq!(doc.metadata["author"], "Legal Ops");
    assert_eq!(doc.metadata["created"], "2026-03-15T09:30:00Z");
    assert_eq!(
        doc.text,
        "Carrier Agreement\n\nThis agreement binds Acme & Sons\tas carrier.\n\nRates\n\nLane | Rate\nChicago-Dallas | 2.15 USD/mile\n\nLiability\n\nClaims within 9 months."
    );
    let s = doc.structure.as_ref().expect("structure");
    let headings: Vec<(&str, u32)> = s
        .sections
        .iter()
        .map(|x| (x.heading.as_str(), x.level))
        .collect();
    assert_eq!(
        headings,
        [("Carrier Agreement", 1), ("Rates", 2), ("Liability", 2)]
    );
    assert_eq!(s.tables[0].header, ["Lane", "Rate"]);
    assert_eq!(
        s.tables[0].rows[0].cells,
        ["Chicago-Dallas", "2.15 USD/mile"]
    );
}

#[test]
fn zip_bombs_and_dtds_are_refused_fast() {
    let p = parser_with(|s| {
        s.max_zip_ratio = 100;
    });
    // 8 MiB of one letter deflates about 1000:1.
    let start = std::time::Instant::now();
    let e = refuse(&p, &apex_parser::corpus::docx_bomb(8 << 20), "bomb.docx");
    assert!(e.to_string().contains("zip bomb"), "{e}");
    // Refused from the central directory, before inflating (no timing assertion: just report).
    eprintln!("zip bomb refused in {:?}", start.elapsed());

    let small = parser_with(|s| {
        s.max_unzipped_bytes = 1 << 20;
        s.max_zip_ratio = 100_000;
    });
    let e = refuse(&small, &apex_parser::corpus::docx_bomb(2 << 20), "big.docx");
    assert!(e.to_string().contains("over the limit"), "{e}");

    let e = refuse(&p, &apex_parser::corpus::docx_with_dtd(), "lol.docx");
    assert!(e.to_string().contains("DTD"), "{e}");

    let many = parser_with(|s| s.max_zip_entries = 10);
    let names: Vec<String> = (0..11).map(|i| format!("word/media/{i}.xml")).collect();
    let mut entries: Vec<(&str, &[u8])> =
        names.iter().map(|n| (n.as_str(), &b"<x/>"[..])).collect();
    entries.push(("word/document.xml", b"<w:document/>"));
    let e = refuse(&many, &apex_parser::corpus::zip(&entries), "many.docx");
    assert!(e.to_string().contains("over the limit of 10"), "{e}");

    // A password-protected DOCX is an OLE container with an EncryptedPackage stream.
    let mut ole = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    ole.extend(vec![0u8; 512]);
    ole.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
    let e = refuse(&p, &ole, "secret.docx");
    assert!(e.to_string().contains("encrypted"), "{e}");
    assert!(matches!(e, ParseError::Invalid { .. }));

    let e = refuse(&p, b"PK\x03\x04 not really a zip", "x.docx");
    assert!(
        matches!(e, ParseError::Unsupported(_) | ParseError::Invalid { .. }),
        "{e}"
    );
}

#[test]
fn xlsx_sheets_become_tables_and_records() {
    let doc = parse(&apex_parser::corpus::xlsx(), "weekly.xlsx");
    assert_eq!(doc.format, "xlsx");
    assert_eq!(doc.metadata["title"], "Weekly shipments");
    assert_eq!(doc.metadata["sheets"], "2");
    let tables = &doc.structure.as_ref().expect("structure").tables;
    assert_eq!(tables[0].name, "Shipments");
    assert_eq!(tables[0].header, ["shipment", "origin", "weight"]);
    assert_eq!(tables[0].rows.len(), 2);
    assert_eq!(doc.records.len(), 3);
    assert_eq!(doc.records[1].fields["weight"], "800.5");
    assert_eq!(doc.records[2].fields["sheet"], "Carriers");
    assert!(
        doc.text
            .contains("shipment: SHIP-1; origin: Chicago; weight: 1200"),
        "{}",
        doc.text
    );
}

#[test]
fn email_headers_body_and_attachments_parsed_recursively() {
    let doc = parse(&apex_parser::corpus::email(), "report.eml");
    assert_eq!(doc.format, "email");
    assert_eq!(doc.metadata["title"], "Weekly freight report");
    assert_eq!(doc.metadata["language"], "en");
    assert_eq!(doc.metadata["author"], "Ada Lovelace <ada@apex.example>");
    assert_eq!(
        doc.metadata["to"],
        "Ops <ops@apex.example>, audit@apex.example"
    );
    assert_eq!(doc.metadata["message_id"], "report-42@apex.example");
    assert!(
        doc.metadata["created"].starts_with("2026-03-15T09:30:00"),
        "{}",
        doc.metadata["created"]
    );
    assert!(
        doc.text.contains("the weekly report is attached."),
        "{}",
        doc.text
    );
    assert_eq!(doc.parts.len(), 2, "{:?}", doc.warnings);
    let csv = &doc.parts[0];
    assert_eq!(
        (csv.name.as_str(), csv.format.as_str()),
        ("loads.csv", "csv")
    );
    assert_eq!(csv.records[1].fields["carrier"], "ZEPHYR");
    let inner = &doc.parts[1];
    assert_eq!(inner.format, "email");
    assert_eq!(inner.metadata["title"], "Pickup confirmed");
    assert!(inner.text.contains("SHIP-42 confirmed"), "{}", inner.text);
    assert!(!inner.chunks.is_empty());
}

#[test]
fn odd_encodings_are_detected_and_reported() {
    let doc = parse(&apex_parser::corpus::windows_1252_text(), "notes.txt");
    assert_eq!(doc.metadata["encoding"], "windows-1252");
    assert!(
        doc.text.starts_with("Café “Déjà vu” – résumé"),
        "{}",
        doc.text
    );
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("Zürich → Dallas".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let doc = parse(&utf16, "route.txt");
    assert_eq!(doc.text, "Zürich → Dallas");
    assert_eq!(doc.metadata["encoding"], "UTF-16LE");
}

#[test]
fn html_edi_json_and_csv_through_the_whole_pipeline() {
    let html = parse(
        b"<html><head><title>T</title><script>x()</script></head><body><nav>menu</nav><article><h1>News</h1><p>Rates rise.</p></article></body></html>",
        "page.html",
    );
    assert_eq!(
        (html.format.as_str(), html.text.as_str()),
        ("html", "News\n\nRates rise.")
    );
    let edi = parse(EDI_990.as_bytes(), "");
    assert_eq!(edi.format, "edi-x12");
    assert_eq!(edi.records[0].fields["action"], "accepted");
    assert_eq!(edi.records[0].fields["shipment_id"], "SHIP-77");
    assert!(
        edi.text
            .contains("Carrier ZEPH accepted the tender of shipment SHIP-77 on 2026-03-16."),
        "{}",
        edi.text
    );
    let json = parse(br#"{"title": "Order", "n": 1}"#, "order.json");
    assert_eq!(json.format, "json");
    let csv = parse(b"a,b\n1,2\n3,4\n", "t.csv");
    assert_eq!(csv.records.len(), 2);
    assert_eq!(csv.sha256.len(), 64);
    assert!(
        !csv.metadata.contains_key("language"),
        "numbers only: no guess"
    );
}

const EDI_990: &str = "ISA*00*          *00*          *ZZ*ZEPHYR         *ZZ*APEXSHIPPER    *260316*1000*U*00401*000000990*0*P*>~GS*GF*ZEPHYR*APEX*20260316*1000*990*X*004010~ST*990*0001~B1*ZEPH*SHIP-77*20260316*A~N9*CN*PRO-9~SE*4*0001~GE*1*990~IEA*1*000000990~";

#[test]
fn size_limit_binary_and_legacy_office_are_refused_with_reasons() {
    let p = parser_with(|s| s.max_input_bytes = 1000);
    match refuse(&p, &vec![b'a'; 1001], "big.txt") {
        ParseError::TooLarge { size, limit } => assert_eq!((size, limit), (1001, 1000)),
        other => panic!("expected TooLarge, got {other}"),
    }
    let p = parser();
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    assert!(matches!(
        refuse(&p, &binary, "blob.bin"),
        ParseError::Unsupported(_)
    ));
    let ole = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0, 0];
    let e = refuse(&p, &ole, "old.doc");
    assert!(e.to_string().contains("legacy binary Office"), "{e}");
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    assert!(matches!(
        refuse(&p, deep.as_bytes(), "deep.json"),
        ParseError::Invalid { .. }
    ));
}

#[test]
fn sha256_identifies_the_input_bytes() {
    let doc = parse(b"hello", "h.txt");
    assert_eq!(
        doc.sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
}
