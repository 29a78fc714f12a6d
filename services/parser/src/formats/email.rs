//! Email (RFC 5322 with MIME): headers as metadata, the text body (or the HTML body as text)
//! as the document, every attachment returned for recursive parsing.

use mail_parser::{MessageParser, MimeHeaders};

use crate::model::{Attachment, Extracted, ParseError, TextBuilder};

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Option<String> {
    let list: Vec<String> = a?
        .iter()
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (None, Some(e)) => e.to_owned(),
            (Some(n), None) => n.to_owned(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

pub(crate) fn parse(bytes: &[u8], max_depth: usize) -> Result<Extracted, ParseError> {
    // A message saved from an mbox starts with its `From ` postmark line, which is not a header.
    let bytes = match bytes.strip_prefix(b"From ") {
        Some(rest) => rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(&[][..], |i| &rest[i + 1..]),
        None => bytes,
    };
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| ParseError::invalid("email", "not a parsable RFC 5322 message"))?;
    let mut out = Extracted::default();
    let mut header_lines = Vec::new();
    let mut meta = |key: &str, label: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            header_lines.push(format!("{label}: {v}"));
            out.metadata.insert(key.to_owned(), v);
        }
    };
    meta("title", "Subject", message.subject().map(str::to_owned));
    meta("author", "From", addresses(message.from()));
    meta("to", "To", addresses(message.to()));
    meta("cc", "Cc", addresses(message.cc()));
    meta("created", "Date", message.date().map(|d| d.to_rfc3339()));
    meta(
        "message_id",
        "Message-ID",
        message.message_id().map(str::to_owned),
    );

    let mut b = TextBuilder::new();
    b.push_block(&header_lines.join("\n"));
    let body = match message.body_text(0) {
        Some(text) if !text.trim().is_empty() => text.into_owned(),
        _ => match message.body_html(0) {
            Some(html) => super::html::parse(&html, max_depth)?.text,
            None => String::new(),
        },
    };
    b.push_block(&body);
    out.text = b.finish();
    for (i, part) in message.attachments().enumerate() {
        let name = part
            .attachment_name()
            .map_or_else(|| format!("attachment-{}", i + 1), str::to_owned);
        let mime_type = part
            .content_type()
            .map(|c| match c.subtype() {
                Some(s) => format!("{}/{s}", c.ctype()),
                None => c.ctype().to_owned(),
            })
            .unwrap_or_default();
        out.attachments.push(Attachment {
            name,
            mime_type,
            bytes: part.contents().to_vec(),
        });
    }
    out.metadata
        .insert("attachments".to_owned(), out.attachments.len().to_string());
    Ok(out)
}
