//! Unit tests for the pattern entities: normalisation, cues, check digits and overlaps.

use super::*;

fn keys(text: &str) -> Vec<(&'static str, String)> {
    find(text)
        .into_iter()
        .map(|m| (m.entity_type, m.canonical_key))
        .collect()
}

#[test]
fn contact_points_are_normalised() {
    let k = keys(
        "Call +1 (312) 555-0100 or 312.555.0199, mail Ada.L@Apex.example, see https://apex.example/track?id=7.",
    );
    assert!(k.contains(&("PHONE", "+13125550100".to_owned())), "{k:?}");
    assert!(k.contains(&("PHONE", "+13125550199".to_owned())), "{k:?}");
    assert!(
        k.contains(&("EMAIL", "ada.l@apex.example".to_owned())),
        "{k:?}"
    );
    assert!(
        k.contains(&("URL", "https://apex.example/track?id=7".to_owned())),
        "{k:?}"
    );
}

#[test]
fn amounts_dates_and_times() {
    let k = keys(
        "Pay $1,875.50 (or 1875.5 EUR) by March 15, 2026 at 2:30 pm; fuel 12.5 % from 2026-03-01, due 03/20/2026.",
    );
    assert!(k.contains(&("MONEY", "USD 1875.50".to_owned())), "{k:?}");
    assert!(k.contains(&("MONEY", "EUR 1875.50".to_owned())), "{k:?}");
    assert!(k.contains(&("DATE", "2026-03-15".to_owned())), "{k:?}");
    assert!(k.contains(&("TIME", "14:30".to_owned())), "{k:?}");
    let money = keys("C$1,200.00, CA$ 99, £75, 4,500 EUR, 310 pesos and $3.899/gal");
    for want in [
        "CAD 1200.00",
        "CAD 99.00",
        "GBP 75.00",
        "EUR 4500.00",
        "MXN 310.00",
        "USD 3.899",
    ] {
        assert!(
            money.contains(&("MONEY", want.to_owned())),
            "{want}: {money:?}"
        );
    }
    let offset = keys("Date: 2026-03-15T09:30:00+01:00");
    assert_eq!(
        offset,
        [("DATETIME", "2026-03-15T09:30:00+01:00".to_owned())],
        "an offset is not a time"
    );
    assert!(k.contains(&("PERCENT", "12.5%".to_owned())), "{k:?}");
    assert!(k.contains(&("DATE", "2026-03-01".to_owned())), "{k:?}");
    assert!(k.contains(&("DATE", "2026-03-20".to_owned())), "{k:?}");
    assert!(
        !keys("on 2026-02-30").iter().any(|(t, _)| *t == "DATE"),
        "no 30 February"
    );
}

#[test]
fn logistics_identifiers_with_cues() {
    let k = keys(
        "PRO# 123456789, BOL: BL-88231, PO 4500012345, Invoice INV-5531, load no. L-2291, SCAC: ACME, USDOT 1234567, MC-654321.",
    );
    for want in [
        ("PRO_NUMBER", "123456789"),
        ("BOL_NUMBER", "BL-88231"),
        ("PO_NUMBER", "4500012345"),
        ("INVOICE_NUMBER", "INV-5531"),
        ("LOAD_NUMBER", "L-2291"),
        ("SCAC", "ACME"),
        ("USDOT_NUMBER", "1234567"),
        ("MC_NUMBER", "MC654321"),
    ] {
        assert!(
            k.contains(&(want.0, want.1.to_owned())),
            "{want:?} missing from {k:?}"
        );
    }
    assert!(
        !keys("the invoice total")
            .iter()
            .any(|(t, _)| *t == "INVOICE_NUMBER")
    );
}

#[test]
fn check_digits_decide_containers_vins_and_ibans() {
    // CSQU3054383 is the standard ISO 6346 example.
    assert_eq!(container_check_digit("CSQU305438"), Some(3));
    let k = keys("Container CSQU 305438 3 and CSQU3054384 (bad check digit).");
    assert_eq!(
        k.iter().filter(|(t, _)| *t == "CONTAINER_NUMBER").count(),
        1,
        "{k:?}"
    );
    assert!(k.contains(&("CONTAINER_NUMBER", "CSQU3054383".to_owned())));
    assert!(vin_valid("1M8GDM9AXKP042788"));
    assert!(!vin_valid("1M8GDM9A1KP042788"));
    assert!(keys("VIN 1M8GDM9AXKP042788").contains(&("VIN", "1M8GDM9AXKP042788".to_owned())));
    assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
    assert!(!iban_valid("GB82 WEST 1234 5698 7654 33"));
    assert!(
        keys("IBAN GB82 WEST 1234 5698 7654 32.")
            .contains(&("IBAN", "GB82WEST12345698765432".to_owned()))
    );
}

#[test]
fn overlaps_keep_the_most_specific_match() {
    // The digits of a PRO number are not also a phone number.
    let k = keys("PRO 3125550100");
    assert_eq!(k, [("PRO_NUMBER", "3125550100".to_owned())]);
    assert!(keys("").is_empty());
}
