//! Bytes to text: encoding detection (BOM, UTF-8, UTF-16 without BOM, then a statistical
//! guess among the legacy encodings) and normalisation of line ends and control characters.

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// Decoded text and the name of the encoding it was read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) text: String,
    pub(crate) encoding: &'static str,
    /// True when some bytes were not valid in that encoding and became U+FFFD.
    pub(crate) lossy: bool,
}

/// UTF-16 without a BOM shows up as a NUL in every other byte of ASCII-heavy text.
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let sample = &bytes[..bytes.len().min(4096) & !1];
    if sample.len() < 4 {
        return None;
    }
    let pairs = sample.len() / 2;
    let even_nul = sample.iter().step_by(2).filter(|b| **b == 0).count();
    let odd_nul = sample
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|b| **b == 0)
        .count();
    if odd_nul * 10 >= pairs * 7 && even_nul * 10 <= pairs {
        Some(UTF_16LE)
    } else if even_nul * 10 >= pairs * 7 && odd_nul * 10 <= pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Decodes `bytes`: a BOM wins, then BOM-less UTF-16, then valid UTF-8, then the most likely
/// legacy encoding (Windows-1252 and ISO-8859-1 text are told apart by `chardetng`).
/// UTF-16 comes before UTF-8: ASCII text in UTF-16 is valid UTF-8 too (a NUL after every
/// letter), and was refused as binary when UTF-8 was tried first.
pub(crate) fn decode(bytes: &[u8]) -> Decoded {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
        return Decoded {
            text: text.into_owned(),
            encoding: encoding.name(),
            lossy: had_errors,
        };
    }
    if let Some(encoding) = utf16_without_bom(bytes) {
        let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
        return Decoded {
            text: text.into_owned(),
            encoding: encoding.name(),
            lossy: had_errors,
        };
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Decoded {
            text: text.to_owned(),
            encoding: UTF_8.name(),
            lossy: false,
        };
    }
    let encoding = {
        let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
        detector.feed(bytes, true);
        detector.guess(None, chardetng::Utf8Detection::Allow)
    };
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    Decoded {
        text: text.into_owned(),
        encoding: encoding.name(),
        lossy: had_errors,
    }
}

/// Whether `bytes` look like text at all (not binary): decodable, and almost free of control
/// characters other than whitespace.
pub(crate) fn looks_textual(decoded: &Decoded) -> bool {
    let sample: Vec<char> = decoded.text.chars().take(8192).collect();
    if sample.is_empty() {
        return true;
    }
    let bad = sample
        .iter()
        .filter(|c| {
            // The information separators 0x1C-0x1F are delimiters in EDI (0x1D as the segment
            // terminator), not a sign of binary content.
            (c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c' | '\x1c'..='\x1f'))
                || **c == '\u{FFFD}'
        })
        .count();
    bad * 100 <= sample.len()
}

/// Normalises text for chunking and storage: CRLF/CR become LF, form feeds become blank lines,
/// other control characters are dropped, trailing spaces are trimmed on each line and runs of
/// more than two blank lines collapse to two.
pub(crate) fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0usize;
    let unified = text.replace("\r\n", "\n").replace(['\r', '\x0c'], "\n");
    for line in unified.split('\n') {
        let cleaned: String = line
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        let cleaned = cleaned.trim_end();
        if cleaned.is_empty() {
            blank_run += 1;
            if blank_run > 2 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(cleaned);
        out.push('\n');
    }
    let trimmed = out.trim_matches('\n');
    trimmed.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom() {
        assert_eq!(decode("héllo".as_bytes()).text, "héllo");
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice("héllo".as_bytes());
        let d = decode(&bom);
        assert_eq!((d.text.as_str(), d.encoding), ("héllo", "UTF-8"));
    }

    #[test]
    fn utf16_with_bom_and_without() {
        let text = "Shipment 42 delivered to Zürich";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let mut with_bom = vec![0xFF, 0xFE];
        with_bom.extend_from_slice(&le);
        assert_eq!(decode(&with_bom).text, text);
        assert_eq!(decode(&le).encoding, "UTF-16LE");
        assert_eq!(decode(&le).text, text);
        assert_eq!(decode(&be).encoding, "UTF-16BE");
        assert_eq!(decode(&be).text, text);
    }

    #[test]
    fn ascii_utf16_without_a_bom_is_text_not_utf8_with_nuls() {
        // Like the corpus's `csv/nobom-utf16le.txt` and `email/fake-email-utf-16-le.eml`:
        // every byte pair is valid UTF-8 (a letter and a NUL).
        let text = "DateTime,Bid,Ask\r\n07/19/2016 00:00:00.003,1.10476,1.10479\r\n";
        for (bytes, name) in [
            (
                text.encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect::<Vec<u8>>(),
                "UTF-16LE",
            ),
            (
                text.encode_utf16()
                    .flat_map(u16::to_be_bytes)
                    .collect::<Vec<u8>>(),
                "UTF-16BE",
            ),
        ] {
            assert!(std::str::from_utf8(&bytes).is_ok(), "valid UTF-8 as well");
            let d = decode(&bytes);
            assert_eq!(d.encoding, name);
            assert_eq!(d.text, text);
            assert!(looks_textual(&d), "{name}");
        }
        // Plain UTF-8 with an occasional NUL stays UTF-8.
        let d = decode(b"a,b\n1,\x002\n");
        assert_eq!(d.encoding, "UTF-8");
    }

    #[test]
    fn windows_1252_and_latin1_are_detected() {
        // "naïve café – “quoted”" in Windows-1252 (the dash and quotes only exist there).
        let bytes = b"The na\xefve caf\xe9 \x96 \x93quoted\x94 text, with more words to be sure";
        let d = decode(bytes);
        assert_eq!(d.encoding, "windows-1252");
        assert!(d.text.contains("naïve café – “quoted”"), "{}", d.text);
        assert!(!d.lossy);
    }

    #[test]
    fn normalisation_unifies_line_ends_and_drops_controls() {
        let raw = "a\r\nb\rc\x07d   \n\n\n\n\ne\x0cf";
        assert_eq!(normalize(raw), "a\nb\ncd\n\n\ne\nf");
    }

    #[test]
    fn information_separators_are_text_delimiters_not_binary() {
        let edi = "ISA*00*          *00*          *01*9012345720000  *01*9088877320000  *020816*1144*U*00401*000000031*1*T*:\x1d\r\nGS*HS*9012*9088*20070816*1615*31*X*005010X279\x1d\r\n".repeat(3);
        assert!(looks_textual(&decode(edi.as_bytes())));
    }

    #[test]
    fn binary_is_not_textual() {
        let bin: Vec<u8> = (0..=255u8).cycle().take(4000).collect();
        assert!(!looks_textual(&decode(&bin)));
        assert!(looks_textual(&decode(b"plain words\nand lines\n")));
    }
}
