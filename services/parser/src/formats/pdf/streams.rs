//! The decompression-bomb guard: every `FlateDecode` stream of the raw file is inflated with
//! a cap on the total, before an engine reads anything. It works on the bytes (no object
//! model), so it costs little next to text extraction (about 10 ms for a 400-page book).

use std::io::Read as _;

use flate2::read::ZlibDecoder;

use crate::model::{Deadline, ParseError};

use super::FORMAT;

/// Refuses the document when its Flate streams inflate beyond `max` bytes in total.
pub(crate) fn check(bytes: &[u8], max: u64, deadline: &Deadline) -> Result<(), ParseError> {
    let mut total = 0u64;
    let mut from = 0;
    while let Some((dict, start)) = next_stream(bytes, from) {
        from = start;
        if !memmem(dict, b"FlateDecode") {
            continue;
        }
        deadline.check()?;
        let budget = max.saturating_sub(total) + 1;
        // A corrupt stream is the engine's problem; only the size matters here. Reading
        // stops at the cap, and the stream's end is wherever the inflater stops.
        let inflated = std::io::copy(
            &mut ZlibDecoder::new(&bytes[start..]).take(budget),
            &mut std::io::sink(),
        )
        .unwrap_or(0);
        total += inflated;
        if total > max {
            return Err(ParseError::invalid(
                FORMAT,
                format!("streams inflate beyond {max} bytes: refused as a decompression bomb"),
            ));
        }
    }
    Ok(())
}

/// The next `stream` keyword at or after `from` that ends a dictionary (`>>`, then optional
/// white space, then `stream` and an end of line): the dictionary's last 512 bytes and where
/// the data starts.
fn next_stream(bytes: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let mut at = from;
    loop {
        let found = find(&bytes[at..], b"stream")? + at;
        let after = found + b"stream".len();
        at = after;
        let before = bytes[..found].trim_ascii_end();
        if !before.ends_with(b">>") {
            continue; // `endstream`, or the word inside some text
        }
        let start = match bytes.get(after..after + 2) {
            Some([b'\r', b'\n']) => after + 2,
            Some([b'\n', _]) | Some([b'\r', _]) => after + 1,
            _ => continue,
        };
        let dict_from = before.len().saturating_sub(512);
        return Some((&before[dict_from..], start));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

fn memmem(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Duration;

    use flate2::{Compression, write::ZlibEncoder};

    use super::*;

    fn flate(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).expect("compress");
        e.finish().expect("finish")
    }

    fn pdf_with_stream(filter: &str, data: &[u8]) -> Vec<u8> {
        let mut pdf = format!(
            "%PDF-1.7\n1 0 obj\n<< /Length {} /Filter /{filter} >>\nstream\r\n",
            data.len()
        )
        .into_bytes();
        pdf.extend_from_slice(data);
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        pdf
    }

    #[test]
    fn a_stream_inflating_past_the_cap_is_refused_and_one_below_it_is_not() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let bomb = pdf_with_stream("FlateDecode", &flate(&vec![0u8; 4_000_000]));
        let err = check(&bomb, 1_000_000, &deadline).expect_err("bomb");
        assert!(err.to_string().contains("decompression bomb"), "{err}");
        assert!(check(&bomb, 8_000_000, &deadline).is_ok());
    }

    #[test]
    fn other_filters_and_the_word_stream_in_text_are_not_inflated() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let dct = pdf_with_stream("DCTDecode", &flate(&vec![0u8; 4_000_000]));
        assert!(check(&dct, 1_000, &deadline).is_ok());
        assert!(check(b"(a stream of text) endstream stream", 1, &deadline).is_ok());
        assert_eq!(next_stream(b"<< /Length 0 >>\nstream", 0), None);
    }
}
