//! Plain text: paragraphs as they are.

use crate::model::{Extracted, TextBuilder};
use crate::text::Decoded;

pub(crate) fn parse(decoded: &Decoded) -> Extracted {
    let mut b = TextBuilder::new();
    b.push_block(&decoded.text);
    let mut out = Extracted {
        text: b.finish(),
        ..Extracted::default()
    };
    out.metadata
        .insert("encoding".to_owned(), decoded.encoding.to_owned());
    if decoded.lossy {
        out.warnings.push(format!(
            "some bytes are not valid {} and were replaced by U+FFFD",
            decoded.encoding
        ));
    }
    out
}
