//! Unit tests for the EDI X12 reader: one sample per transaction set, delimiters, counts and broken envelopes.

use super::*;

pub(crate) const EDI_214: &str = "ISA*00*          *00*          *ZZ*ACMECARRIER    *ZZ*APEXSHIPPER    *260315*0930*U*00401*000000214*0*P*>~\nGS*QM*ACMECARRIER*APEXSHIPPER*20260315*0930*214*X*004010~\nST*214*0001~\nB10*PRO123456*SHIP-42*ACME~\nN1*SH*Apex Foods*93*123~\nN4*Chicago*IL*60601~\nN1*CN*Lone Star Grocers~\nN4*Dallas*TX*75201~\nLX*1~\nAT7*X1*NS***20260315*0915*CT~\nMS1*Dallas*TX*US~\nSE*10*0001~\nGE*1*214~\nIEA*1*000000214~\n";

#[test]
fn shipment_status_becomes_a_record_and_text() {
    let out = parse(EDI_214).expect("parses");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let r = &out.records[0];
    assert_eq!(r.kind, "edi-x12/214");
    assert_eq!(r.fields["shipment_id"], "SHIP-42");
    assert_eq!(r.fields["scac"], "ACME");
    assert_eq!(r.fields["status"], "X1");
    assert_eq!(r.fields["status_at"], "2026-03-15 09:15");
    assert_eq!(r.fields["isa_control"], "000000214");
    assert_eq!(r.fields["gs_control"], "214");
    assert_eq!(r.fields["shipper"], "Apex Foods");
    assert_eq!(r.fields["consignee"], "Lone Star Grocers");
    assert_eq!(out.metadata["sender"], "ACMECARRIER");
    assert_eq!(out.metadata["shipment_id"], "SHIP-42");
    assert!(
        out.text.contains(
            "Status X1 (Arrived at delivery location) at 2026-03-15 09:15 in Dallas, TX."
        ),
        "{}",
        out.text
    );
    let json: Value = serde_json::from_str(&r.json).expect("json");
    assert_eq!(json["detail"]["events"][0]["city"], "Dallas");
}

const ISA: &str = "ISA*00*          *00*          *ZZ*APEXSHIPPER    *ZZ*ACMECARRIER    *260314*0800*U*00401*000000204*0*T*>~GS*SM*APEX*ACME*20260314*0800*204*X*004010~";

#[test]
fn load_tender_has_stops_and_totals() {
    let edi = format!(
        "{ISA}ST*204*0001~B2**ACME**SHIP-42**PP~B2A*00~L11*PO-981*PO~N1*BT*Apex Foods~\
S5*1*LD*12000~G62*10*20260316*1*0800~N1*SH*Apex Plant 3~N4*Chicago*IL*60601~\
S5*2*UL*12000~G62*02*20260317*1*1400~N1*CN*Lone Star Grocers~N4*Dallas*TX*75201~\
L3*12000*G***250000~SE*15*0001~GE*1*204~IEA*1*000000204~"
    );
    let out = parse(&edi).expect("parses");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let r = &out.records[0];
    assert_eq!(r.kind, "edi-x12/204");
    assert_eq!(r.fields["shipment_id"], "SHIP-42");
    assert_eq!(r.fields["scac"], "ACME");
    assert_eq!(r.fields["stop_count"], "2");
    assert_eq!(r.fields["total_weight"], "12000");
    assert_eq!(r.fields["bill_to"], "Apex Foods");
    assert_eq!(r.fields["usage"], "test");
    let json: Value = serde_json::from_str(&r.json).expect("json");
    assert_eq!(json["detail"]["stops"][1]["location"]["city"], "Dallas");
    assert_eq!(json["detail"]["stops"][0]["date"], "2026-03-16 08:00");
    assert_eq!(json["references"][0]["value"], "PO-981");
    assert!(
        out.text
            .contains("Load tender for shipment SHIP-42 to carrier ACME."),
        "{}",
        out.text
    );
    assert!(
        out.text
            .contains("Stop 2: unload at Lone Star Grocers Dallas TX on 2026-03-17 14:00."),
        "{}",
        out.text
    );
}

#[test]
fn freight_invoice_has_amount_and_charge_lines() {
    let edi = format!(
        "{ISA}ST*210*0007~B3**INV-5531*SHIP-42*PP**20260318*187550****ACME~N1*SH*Apex Foods~\
N1*CN*Lone Star Grocers~LX*1~L1*1*2.15*PM*150000****400~LX*2~L1*2***37550****FUE~L3*12000*G~SE*10*0007~\
GE*1*204~IEA*1*000000204~"
    );
    let out = parse(&edi).expect("parses");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let r = &out.records[0];
    assert_eq!(r.kind, "edi-x12/210");
    assert_eq!(r.fields["invoice_number"], "INV-5531");
    assert_eq!(r.fields["amount_due"], "1875.50");
    assert_eq!(r.fields["invoice_date"], "2026-03-18");
    assert_eq!(r.fields["st_control"], "0007");
    let json: Value = serde_json::from_str(&r.json).expect("json");
    assert_eq!(json["detail"]["line_items"][1]["charge"], "375.50");
    assert_eq!(json["detail"]["line_items"][1]["code"], "FUE");
    assert!(out.text.contains("amount due 1875.50"), "{}", out.text);
}

#[test]
fn delimiters_come_from_the_isa_segment() {
    let other = EDI_214
        .replace('*', "|")
        .replace('~', "\n")
        .replace('>', "^");
    let out = parse(&other).expect("parses with | and newline");
    assert_eq!(out.records[0].fields["shipment_id"], "SHIP-42");
}

#[test]
fn counts_that_disagree_are_reported() {
    let bad = EDI_214.replace("SE*10*0001", "SE*9*0001");
    let out = parse(&bad).expect("parses");
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("SE counts 9 segments, found 10")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn broken_envelopes_are_refused() {
    assert!(parse("ISA*too short~").is_err());
    let no_sets = &EDI_214[..EDI_214.find("ST*").expect("st")];
    assert!(
        parse(no_sets)
            .expect_err("no sets")
            .to_string()
            .contains("no transaction set")
    );
}

/// The 214 sample as one line, cut every `width` characters (some partners send fixed-width
/// 80-column records, which breaks segments and the ISA itself anywhere).
fn wrapped(width: usize) -> String {
    let flat: Vec<char> = EDI_214.replace('\n', "").chars().collect();
    flat.chunks(width)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn delimiters_are_read_by_element_count_whatever_the_layout() {
    // Wrapped at 80 (inside the ISA's date), at 60, at 7.
    for width in [80, 60, 7] {
        let out = parse(&wrapped(width)).unwrap_or_else(|e| panic!("width {width}: {e}"));
        assert_eq!(
            out.records[0].fields["shipment_id"], "SHIP-42",
            "width {width}"
        );
        assert_eq!(out.records[0].fields["consignee"], "Lone Star Grocers");
    }
    // The group separator (0x1D) as terminator, each segment on an indented line of its own.
    let gs = EDI_214.replace("~\n", "\u{1d}\r\n    ");
    let out = parse(&gs).expect("0x1D terminator");
    assert_eq!(out.records[0].fields["status"], "X1");
    // The line break as terminator (CRLF), no other character.
    let lines = EDI_214.replace("~\n", "\r\n");
    let out = parse(&lines).expect("line terminator");
    assert_eq!(out.records[0].fields["status_at"], "2026-03-15 09:15");
    // Multi-byte delimiters.
    let unicode = EDI_214
        .replace('*', "\u{2021}")
        .replace('>', "\u{00a7}")
        .replace('~', "\u{00b6}");
    let out = parse(&unicode).expect("multi-byte delimiters");
    assert_eq!(out.records[0].fields["scac"], "ACME");
}

#[test]
fn delimiters_that_cannot_be_told_apart_are_refused_with_the_reason() {
    let letter = EDI_214.replace('~', "X");
    let e = parse(&letter)
        .expect_err("a letter as terminator")
        .to_string();
    assert!(e.contains("bad delimiters in ISA"), "{e}");
    let short = "ISA*00*          *00*          *ZZ*ACMECARRIER    *ZZ*APEXSHIPPER    *260315~";
    let e = parse(short).expect_err("a cut ISA").to_string();
    assert!(e.contains("of its 16 elements"), "{e}");
}
