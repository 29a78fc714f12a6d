//! Which uploads the gateway takes: the formats the parser reads, recognised by media type
//! or by file extension. Anything else is refused with 415 before a byte is stored.

/// Media types the parser reads.
pub const MEDIA_TYPES: &[&str] = &[
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "text/csv",
    "text/tab-separated-values",
    "text/html",
    "application/xhtml+xml",
    "text/markdown",
    "text/x-markdown",
    "text/plain",
    "application/json",
    "message/rfc822",
    "application/edi-x12",
];

/// File extensions the parser reads.
pub const EXTENSIONS: &[&str] = &[
    "pdf", "docx", "xlsx", "csv", "tsv", "tab", "html", "htm", "xhtml", "md", "markdown", "txt",
    "text", "log", "json", "eml", "edi", "x12", "204", "210", "214", "990",
];

fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a file of this name and declared type is one the parser reads: a known media
/// type, or (for a generic or missing type) a known extension.
pub fn accepted(file_name: &str, media_type: &str) -> bool {
    let mime = essence(media_type);
    if MEDIA_TYPES.contains(&mime.as_str()) {
        return true;
    }
    let generic = mime.is_empty() || mime == "application/octet-stream";
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    generic && EXTENSIONS.contains(&ext.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_and_extensions_pass_and_others_do_not() {
        assert!(accepted("a.pdf", "application/pdf"));
        assert!(accepted("a.bin", "text/plain; charset=utf-8"));
        assert!(accepted("load.edi", "application/octet-stream"));
        assert!(accepted("notes.MD", ""));
        assert!(!accepted("photo.png", "image/png"));
        assert!(!accepted("archive.zip", "application/octet-stream"));
        assert!(!accepted("noext", ""));
        // A declared type that is not a document is not overridden by the extension.
        assert!(!accepted("fake.pdf", "image/png"));
    }
}
