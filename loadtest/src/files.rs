//! Given files as the run's documents (`--files DIR`): each path uploads every file of the
//! directory under an external id of its own run, so each is a new document there; and the
//! embedder's cache is emptied before each path, so a path never reads vectors another path
//! computed from the same text.

use std::path::Path;

use anyhow::Context as _;

use crate::phase::Upload;

/// The type an upload of `name` declares, by its extension (the gateway reads the bytes).
pub(crate) fn mime_of(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("html" | "htm") => "text/html",
        Some("txt" | "md") => "text/plain",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The regular files of `dir`, sorted by name, as uploads of run `run`.
pub(crate) fn uploads(dir: &Path, run: &str) -> anyhow::Result<Vec<Upload>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("--files {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .collect();
    names.sort_by_key(std::fs::DirEntry::file_name);
    let out: Vec<Upload> = names
        .into_iter()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let body =
                std::fs::read(e.path()).with_context(|| format!("{}", e.path().display()))?;
            Ok(Upload {
                mime: mime_of(&name),
                external_id: Some(format!("lt-{run}-{name}")),
                body,
                name,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    if out.is_empty() {
        anyhow::bail!("--files {}: no files", dir.display());
    }
    Ok(out)
}

/// Deletes the embedder's cached vectors (`apex:embedder:*`) from the Redis at `url`; how many.
pub(crate) async fn empty_embedding_cache(url: &str) -> anyhow::Result<usize> {
    let client = redis::Client::open(url).with_context(|| format!("redis {url}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("cannot reach redis at {url}"))?;
    let mut cursor: u64 = 0;
    let mut deleted = 0usize;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("apex:embedder:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: usize = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_is_an_upload_with_its_type_and_an_id_of_the_run() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("b.pdf"), b"%PDF-1.4").expect("pdf");
        std::fs::write(dir.path().join("a.HTML"), b"<p>x</p>").expect("html");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        let u = uploads(dir.path(), "r1").expect("uploads");
        let names: Vec<&str> = u.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["a.HTML", "b.pdf"], "files only, by name");
        assert_eq!(u[0].mime, "text/html");
        assert_eq!(u[1].mime, "application/pdf");
        assert_eq!(u[1].external_id.as_deref(), Some("lt-r1-b.pdf"));
        assert_eq!(u[1].body, b"%PDF-1.4");
        let empty = tempfile::tempdir().expect("empty");
        assert!(uploads(empty.path(), "r1").is_err());
        assert!(uploads(&empty.path().join("missing"), "r1").is_err());
    }
}
