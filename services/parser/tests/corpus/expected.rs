//! The expected outcome of each corpus file: read with at least N words (about 90 % of what
//! the parser reads today, so a regression shows), no text, or refused with a code and a
//! reason a user agrees with.

use tonic::Code;

use super::Expect;

fn read(min_words: usize) -> Expect {
    Expect::Read { min_words }
}

fn refused(code: Code, reason: &'static str) -> Expect {
    Expect::Refused { code, reason }
}

pub(crate) fn expected(path: &str) -> Option<Expect> {
    Some(match path {
        "pdf/002-trivial-libre-office-writer.pdf" => read(90),
        // a user password is required
        "pdf/libreoffice-writer-password.pdf" => {
            refused(Code::InvalidArgument, "encrypted: it needs a password")
        }
        "pdf/GeoTopo-komprimiert.pdf" => read(28198),
        // Arabic on four rotated pages
        "pdf/habibi-rotated.pdf" => read(11),
        "pdf/multicolumn.pdf" => read(936),
        "pdf/with-attachment.pdf" => read(90),
        // a fax image with no words: OCR runs and finds none
        "pdf/imagemagick-CCITTFaxDecode.pdf" => Expect::NoText,
        "pdf/pdf-with-ocr-text.pdf" => read(142),
        "pdf/pdf2image-memory-error-test-400p.pdf" => read(50283),
        "pdf/korean-text-with-tables.pdf" => read(243),
        "pdf/fr_olap.pdf" => read(5309),
        // empty user password: opens
        "pdf/copy-protected.pdf" => read(711),
        "pdf/failure-after-repair.pdf" => read(15503),
        // one image, read by OCR
        "pdf/loremipsum-flat.pdf" => read(302),
        "pdf/federal-register-2020-17221.pdf" => read(8034),
        "pdf/2023-06-20-PV.pdf" => read(286),
        "pdf/scotus-transcript-p1.pdf" => read(132),
        "pdf/WARN-Report-for-7-1-2015-to-03-25-2016.pdf" => read(6496),
        "pdf/issue-67-example.pdf" => read(1242),
        // a 0-byte file named .pdf
        "pdf/empty.pdf" => refused(Code::InvalidArgument, "empty (0 bytes)"),
        "pdf/malformed-from-issue-932.pdf" => read(3),
        "docx/handbook-872p.docx" => read(114310),
        "docx/docx-tables.docx" => read(45),
        "docx/docx-hdrftr.docx" => read(2),
        "docx/category-level.docx" => read(252),
        "docx/teams_chat.docx" => read(15),
        "docx/libreoffice_conversion.docx" => read(1221),
        "docx/240-DOP-1013A Lay Down Tubulars.docx" => read(506),
        "docx/test-docx2python-conversion-google_docs.docx" => read(274),
        "docx/created-in-pages-bulleted-lists.docx" => read(32),
        "docx/strict.docx" => read(9),
        "docx/renamed_document_xml.docx" => read(7),
        "docx/merged_cells.docx" => read(20),
        "xlsx/2023-half-year-analyses-by-segment.xlsx" => read(1530),
        "xlsx/emoji.xlsx" => read(2),
        "xlsx/1519293514-KRISHNAPATNAM_LINE_UP.xlsx" => read(881),
        "xlsx/google-sheets.xlsx" => read(6),
        "xlsx/libre-calc-as-excel-2007-365.xlsx" => read(6),
        "xlsx/1904.xlsx" => read(2),
        "xlsx/invalid-xml.xlsx" => read(2),
        // no workbook.xml and no [Content_Types].xml: not an XLSX package
        "xlsx/missing-bits.xlsx" => refused(Code::InvalidArgument, "neither DOCX nor XLSX"),
        "xlsx/test-issue-880.xlsx" => read(5798),
        // password-encrypted workbook
        "xlsx/encryptAES.xlsx" => refused(Code::InvalidArgument, "encrypted"),
        "xlsx/MergeCell.xlsx" => read(54),
        "csv/wiki_movie_plots_small.csv" => read(3059),
        "csv/csv-with-long-lines.csv" => read(9990),
        "csv/stanley-cups-utf-16.csv" => read(27),
        // read as text (the delimiter is not detected)
        "csv/semicolon-delimited.csv" => read(22),
        "csv/nobom-utf16le.txt" => read(119),
        "csv/stanley-cups-with-emoji.tsv" => read(33),
        "html/lemonde-1.html" => read(1439),
        "html/heise.html" => read(233),
        "html/hukumusume.html" => read(69),
        "html/qq.html" => read(161),
        "html/ietf-1.html" => read(4625),
        "html/wikipedia-3.html" => read(2059),
        "html/nytimes-1.html" => read(781),
        "html/keep-tabular-data.html" => read(2426),
        "html/example-steelJIS-datasheet-utf-16.html" => read(288),
        "html/fake-html-cp1252.html" => read(128),
        "html/example-10k-1p.html" => read(652),
        "markdown/README_zh.md" => read(12625),
        "markdown/pdfplumber-README.md" => read(4173),
        "markdown/EDI.Net-README.md" => read(1202),
        "markdown/umlauts-non-utf8.md" => read(3),
        "markdown/2014-8-8-How-To-Post.md" => read(83),
        "text/windows-1252__ude_1.txt" => read(98),
        "text/iso-8859-1__ude_2.txt" => read(293),
        "text/windows-1251-russian__ude_1.txt" => read(153),
        "text/bom-utf-16-le.srt" => read(125),
        "text/utf-8-sig__ude_4.txt" => read(47),
        "text/UDHR_first_article_all.txt" => read(12650),
        "text/book-war-and-peace-1225p.txt" => read(506239),
        // 0 bytes of text: read, empty
        "text/empty.txt" => read(0),
        "json/spring-weather.html.json" => read(1755),
        "json/simple.json" => read(158),
        "json/simple.ndjson" => read(165),
        // a depth bomb
        "json/n_structure_100000_opening_arrays.json" => {
            refused(Code::InvalidArgument, "nested deeper than")
        }
        // 500 levels, beyond the parser's nesting limit
        "json/i_structure_500_nested_arrays.json" => {
            refused(Code::InvalidArgument, "nested deeper than")
        }
        "json/i_string_UTF-16LE_with_BOM.json" => read(2),
        // {} after a BOM: nothing to say
        "json/i_structure_UTF-8_BOM_empty_object.json" => read(0),
        "email/torture.eml" => read(23247),
        "email/enclosed-endless.eml" => read(52228),
        "email/long-header.eml" => read(20810),
        "email/russian-attachment-yahoo.eml" => read(3797),
        "email/attached-pdf.eml" => read(14),
        "email/outlook-express.eml" => read(12),
        "email/bounce-office365.eml" => read(887),
        "email/email-no-utf8-2008-07-16.062410.eml" => read(371),
        "email/fake-email-utf-16-le.eml" => read(31),
        "edi/204-MGCTLYST-SAMPLE.EDI" => read(82),
        "edi/210-MGCTLYST-SAMPLE.EDI" => read(51),
        "edi/214-MGCTLYST-SAMPLE.EDI" => read(43),
        "edi/990-MGCTLYST-SAMPLE.EDI" => read(18),
        "edi/x12.214.edi" => read(43),
        "edi/EdiFabric-FreightInvoice.txt" => read(60),
        "edi/EdiFabric-ShipmentStatus.txt" => read(34),
        "edi/EdiFabric-RailCarrierShipment.txt" => read(28),
        "edi/CN_FreightInvoiceSample1.txt" => read(41),
        "edi/DBSchenker_SampleMotorFreightDetailsAndInvoice.txt" => read(42),
        "edi/FedEx_SampleInvoice1.txt" => read(66),
        "edi/835_5010_ExampleFromNth.txt" => read(48),
        "edi/837_DeIdent_01.dat" => read(7),
        "edi/837P_5010_UnicodeExample.txt" => read(7),
        "edi/270_5010_Example1_IG_0x1D.txt" => read(7),
        "edi/Example5_Walmart.txt" => read(13),
        "edi/ts214_ellipses_segterm.edi" => read(50),
        "edi/ts210_80char.edi" => read(46),
        _ => return None,
    })
}
