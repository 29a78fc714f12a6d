//! PNG, JPEG and TIFF (scans, fax images, phone photos of paperwork): the size is read from
//! the header and held to `ocr.max_pixels` (and a TIFF's frames to `ocr.max_pages`) before
//! Tesseract sees anything; the text is the OCR's, as one page marked `ocr`.

use apex_proto::parser::v1::Page;

use crate::ParserSettings;
use crate::detect::Format;
use crate::model::{Deadline, Extracted, ParseError, TextBuilder};
use crate::ocr;

/// Width and height of each frame (one for PNG and JPEG), from the headers.
pub(crate) fn frames(format: Format, bytes: &[u8]) -> Result<Vec<(u32, u32)>, String> {
    match format {
        Format::Png => png(bytes).map(|d| vec![d]),
        Format::Jpeg => jpeg(bytes).map(|d| vec![d]),
        Format::Tiff => tiff(bytes),
        _ => Err("not an image".to_owned()),
    }
}

fn png(b: &[u8]) -> Result<(u32, u32), String> {
    if b.len() < 24 || &b[12..16] != b"IHDR" {
        return Err("corrupt PNG: no IHDR header".to_owned());
    }
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    Ok((be(16), be(20)))
}

fn jpeg(b: &[u8]) -> Result<(u32, u32), String> {
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xFF {
            return Err("corrupt JPEG: a segment does not start with a marker".to_owned());
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let h = u32::from(u16::from_be_bytes([b[i + 5], b[i + 6]]));
            let w = u32::from(u16::from_be_bytes([b[i + 7], b[i + 8]]));
            return Ok((w, h));
        }
        if len < 2 {
            return Err("corrupt JPEG: a segment length below 2".to_owned());
        }
        i += 2 + len;
    }
    Err("corrupt JPEG: no frame header".to_owned())
}

/// Every IFD's ImageWidth (256) and ImageLength (257); at most 10 000 frames are walked.
fn tiff(b: &[u8]) -> Result<Vec<(u32, u32)>, String> {
    let little = b.starts_with(b"II");
    let u16_at = |i: usize| -> Option<u32> {
        let s = b.get(i..i + 2)?;
        Some(u32::from(if little {
            u16::from_le_bytes([s[0], s[1]])
        } else {
            u16::from_be_bytes([s[0], s[1]])
        }))
    };
    let u32_at = |i: usize| -> Option<u32> {
        let s = b.get(i..i + 4)?;
        Some(if little {
            u32::from_le_bytes([s[0], s[1], s[2], s[3]])
        } else {
            u32::from_be_bytes([s[0], s[1], s[2], s[3]])
        })
    };
    let corrupt = || "corrupt TIFF: an image directory lies outside the file".to_owned();
    let mut frames = Vec::new();
    let mut ifd = u32_at(4).ok_or_else(corrupt)? as usize;
    let mut seen = std::collections::HashSet::new();
    while ifd != 0 && frames.len() < 10_000 {
        if !seen.insert(ifd) {
            return Err("corrupt TIFF: its image directories form a loop".to_owned());
        }
        let entries = u16_at(ifd).ok_or_else(corrupt)? as usize;
        let (mut w, mut h) = (0, 0);
        for e in 0..entries {
            let at = ifd + 2 + e * 12;
            let tag = u16_at(at).ok_or_else(corrupt)?;
            let kind = u16_at(at + 2).ok_or_else(corrupt)?;
            // SHORT (3) values sit in the first two bytes of the value field, LONG (4) in all four.
            let value = if kind == 3 {
                u16_at(at + 8)
            } else {
                u32_at(at + 8)
            }
            .ok_or_else(corrupt)?;
            match tag {
                256 => w = value,
                257 => h = value,
                _ => {}
            }
        }
        if w == 0 || h == 0 {
            return Err("corrupt TIFF: a frame without width or height".to_owned());
        }
        frames.push((w, h));
        ifd = u32_at(ifd + 2 + entries * 12).ok_or_else(corrupt)? as usize;
    }
    Ok(frames)
}

pub(crate) fn parse(
    format: Format,
    bytes: &[u8],
    s: &ParserSettings,
    deadline: &Deadline,
) -> Result<Extracted, ParseError> {
    let name = format.name();
    let frames = frames(format, bytes).map_err(|reason| ParseError::invalid(name, reason))?;
    for (w, h) in &frames {
        let pixels = u64::from(*w) * u64::from(*h);
        if pixels > s.ocr.max_pixels {
            return Err(ParseError::invalid(
                name,
                format!(
                    "the image is {w}×{h} = {pixels} pixels, over the OCR limit of {} (ocr.max_pixels)",
                    s.ocr.max_pixels
                ),
            ));
        }
    }
    if frames.len() > s.ocr.max_pages as usize {
        return Err(ParseError::invalid(
            name,
            format!(
                "the image has {} frames, over the OCR limit of {} pages (ocr.max_pages)",
                frames.len(),
                s.ocr.max_pages
            ),
        ));
    }
    let mut out = Extracted::default();
    if let Some((w, h)) = frames.first() {
        out.metadata.insert("width".to_owned(), w.to_string());
        out.metadata.insert("height".to_owned(), h.to_string());
    }
    out.metadata
        .insert("page_count".to_owned(), frames.len().to_string());
    let mut session = ocr::Session::new(&s.ocr);
    let read = if s.ocr.enabled {
        // One Tesseract run reads every frame; the page budget was checked above.
        let timeout = deadline.remaining().min(std::time::Duration::from_secs(
            s.ocr.page_timeout_secs * frames.len() as u64,
        ));
        session.image(1, bytes, None, timeout)
    } else {
        session.page(1, deadline, |_, _| None)
    };
    let mut b = TextBuilder::new();
    if let Some(read) = read
        && let Some((start, end)) = b.push_block(&read.text)
    {
        out.pages.push(Page {
            number: 1,
            char_start: start,
            char_end: end,
            text_source: ocr::SOURCE.to_owned(),
            ocr_confidence: read.confidence,
        });
    }
    out.warnings.extend(session.finish(&mut out.metadata));
    out.text = b.finish();
    if out.text.is_empty() {
        out.no_text_layer = true;
        out.warnings.push(format!(
            "no_text_layer: an image has no text layer and OCR found no text ({}), so there are no chunks",
            if s.ocr.enabled { "OCR is on" } else { "OCR is off" }
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_come_from_the_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&640u32.to_be_bytes());
        png.extend_from_slice(&480u32.to_be_bytes());
        assert_eq!(frames(Format::Png, &png), Ok(vec![(640, 480)]));

        // SOI, an APP0 of length 4, then SOF0: length, precision, height 300, width 200.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 1, 44, 0, 200, 3, 0, 0,
        ];
        assert_eq!(frames(Format::Jpeg, &jpeg), Ok(vec![(200, 300)]));

        // Little-endian TIFF, one IFD at 8 with width (SHORT 1728) and length (LONG 2200).
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&2u16.to_le_bytes());
        tiff.extend_from_slice(&[0, 1, 3, 0, 1, 0, 0, 0, 0xC0, 6, 0, 0]);
        tiff.extend_from_slice(&[1, 1, 4, 0, 1, 0, 0, 0, 0x98, 8, 0, 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(frames(Format::Tiff, &tiff), Ok(vec![(1728, 2200)]));
    }

    /// An 8-bit grey PNG (one IDAT, filter 0 on every row).
    fn png_grey(width: u32, height: u32, grey: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&crc.sum().to_be_bytes());
        }
        let mut raw = Vec::with_capacity(grey.len() + height as usize);
        for row in grey.chunks_exact(width as usize) {
            raw.push(0);
            raw.extend_from_slice(row);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&raw).expect("deflate");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &z.finish().expect("finish"));
        chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn a_png_of_a_printed_page_is_read_by_ocr_and_marked() {
        use crate::formats::pdf::pdfium;
        let settings = ParserSettings::default();
        let engine = pdfium::engine(&settings.pdf.pdfium_library).expect("PDFium (bootstrap)");
        let pdf = crate::corpus::pdf(&["Bill of lading 5531 for the Memphis warehouse"], "BOL");
        let doc = pdfium::open(engine, &pdf).expect("open");
        let page = doc.pages().get(0).expect("page");
        let (w, h) =
            crate::ocr::pixels_for(page.width().value, page.height().value, 200, 40_000_000)
                .expect("size");
        let grey = pdfium::render_grey(&page, w, h).expect("render");
        let png = png_grey(w, h, &grey);
        assert_eq!(
            crate::detect::detect(&png, "scan.png", "")
                .expect("detected")
                .format,
            Format::Png
        );
        let deadline = Deadline::after(std::time::Duration::from_secs(60));
        let out = parse(Format::Png, &png, &settings, &deadline).expect("read");
        for word in ["lading", "5531", "Memphis", "warehouse"] {
            assert!(out.text.contains(word), "{word} in {:?}", out.text);
        }
        assert_eq!(out.pages.len(), 1);
        assert_eq!(out.pages[0].text_source, "ocr");
        assert!(out.pages[0].ocr_confidence > 0.5, "{:?}", out.pages[0]);
        assert_eq!(out.metadata.get("width"), Some(&w.to_string()));
        assert!(
            out.metadata
                .get("ocr_engine")
                .is_some_and(|e| e.starts_with("tesseract"))
        );

        // Over the pixel budget: refused before Tesseract runs, naming the setting.
        let mut small = settings.clone();
        small.ocr.max_pixels = 1_000_000;
        let e = parse(Format::Png, &png, &small, &deadline).expect_err("too large");
        assert!(e.to_string().contains("ocr.max_pixels"), "{e}");
        // OCR off: no text, and it says why.
        let mut off = settings.clone();
        off.ocr.enabled = false;
        let out = parse(Format::Png, &png, &off, &deadline).expect("read");
        assert!(out.no_text_layer && out.text.is_empty());
        assert!(
            out.warnings.iter().any(|w| w.starts_with("ocr_skipped")),
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn broken_headers_are_named() {
        assert!(
            frames(Format::Png, b"\x89PNG\r\n\x1a\n")
                .expect_err("refused")
                .contains("IHDR")
        );
        assert!(
            frames(Format::Jpeg, &[0xFF, 0xD8, 0xFF])
                .expect_err("refused")
                .contains("JPEG")
        );
        // An IFD pointing at itself.
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&[0, 1, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
        tiff.extend_from_slice(&8u32.to_le_bytes());
        let err = frames(Format::Tiff, &tiff).expect_err("refused");
        assert!(
            err.contains("frame without") || err.contains("loop"),
            "{err}"
        );
        assert!(
            frames(Format::Tiff, b"II*\0\xff\xff\0\0")
                .expect_err("refused")
                .contains("outside")
        );
    }
}
