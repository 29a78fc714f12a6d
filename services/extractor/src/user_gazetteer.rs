//! User gazetteers: the names a business knows (customers, carriers, facilities, …) loaded
//! from CSV files and/or a PostgreSQL query, compiled into one Aho-Corasick matcher.
//!
//! CSV files have a header with `entity_type` and `name`, and optionally `canonical_key`
//! and `aliases` (separated by `;`). A PostgreSQL query returns columns of the same names
//! (`aliases` as `text[]`). Without a canonical key the name's key is used (lower case,
//! punctuation and a legal suffix dropped), the key the rule-based organisation finder
//! gives, so an `ORGANIZATION` listed here and the same name found by rule are one node.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::gazetteer::Entry;
use crate::named;

/// Where user gazetteers come from (`APEX_EXTRACTOR__GAZETTEER__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GazetteerSettings {
    /// CSV files (`entity_type,name[,canonical_key][,aliases]`).
    pub files: Vec<PathBuf>,
    /// PostgreSQL connection URL; empty = no database gazetteer.
    pub postgres_url: String,
    /// Query returning `entity_type`, `name` and optionally `canonical_key`, `aliases`.
    pub postgres_query: String,
    /// Reload every this many seconds (0 = load once at start). A failed reload keeps the
    /// previous gazetteer and is logged and counted.
    pub reload_secs: u64,
}

impl Default for GazetteerSettings {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            postgres_url: String::new(),
            postgres_query: "SELECT entity_type, name, canonical_key, aliases FROM apex_gazetteer"
                .to_owned(),
            reload_secs: 300,
        }
    }
}

impl GazetteerSettings {
    pub fn is_configured(&self) -> bool {
        !self.files.is_empty() || !self.postgres_url.trim().is_empty()
    }

    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.postgres_url.trim().is_empty() {
            if !self.postgres_url.starts_with("postgres://")
                && !self.postgres_url.starts_with("postgresql://")
            {
                p.push(
                    "gazetteer.postgres_url must start with postgres:// or postgresql://".into(),
                );
            }
            if self.postgres_query.trim().is_empty() {
                p.push("gazetteer.postgres_query must not be empty".to_owned());
            }
        }
        p
    }
}

fn valid_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The entries of one record: the name and each alias, all naming one entity.
fn entries_of(
    entity_type: &str,
    name: &str,
    canonical_key: Option<&str>,
    aliases: impl IntoIterator<Item = String>,
    at: &dyn Fn() -> String,
) -> anyhow::Result<Vec<Entry>> {
    let entity_type = entity_type.trim();
    let name = name.trim();
    if !valid_type(entity_type) {
        bail!(
            "{}: entity_type {entity_type:?} must be upper snake case (A-Z, 0-9, _), like CUSTOMER",
            at()
        );
    }
    if name.is_empty() {
        bail!("{}: name is empty", at());
    }
    let key = canonical_key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map_or_else(|| named::org_key(name), str::to_owned);
    if key.is_empty() {
        bail!(
            "{}: name {name:?} has no letters or digits to key it by",
            at()
        );
    }
    let entry = |form: String| Entry {
        form,
        entity_type: entity_type.to_owned(),
        canonical_key: key.clone(),
        display_name: name.to_owned(),
    };
    let mut out = vec![entry(name.to_owned())];
    out.extend(
        aliases
            .into_iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .map(entry),
    );
    Ok(out)
}

/// Reads one CSV gazetteer file.
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("gazetteer file {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("gazetteer file {}: header", path.display()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(type_col), Some(name_col)) = (column("entity_type"), column("name")) else {
        bail!(
            "gazetteer file {}: the header must name the columns entity_type and name \
             (optional: canonical_key, aliases), found {:?}",
            path.display(),
            headers.iter().collect::<Vec<_>>()
        );
    };
    let (key_col, alias_col) = (column("canonical_key"), column("aliases"));
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record =
            record.with_context(|| format!("gazetteer file {} line {line}", path.display()))?;
        let get = |c: Option<usize>| c.and_then(|c| record.get(c)).unwrap_or("");
        let aliases = get(alias_col).split(';').map(str::to_owned);
        out.extend(entries_of(
            get(Some(type_col)),
            get(Some(name_col)),
            Some(get(key_col)),
            aliases,
            &|| format!("gazetteer file {} line {line}", path.display()),
        )?);
    }
    Ok(out)
}

/// Runs the configured query against PostgreSQL.
pub async fn read_postgres(url: &str, query: &str) -> anyhow::Result<Vec<Entry>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("gazetteer database: connecting")?;
    let driver = tokio::spawn(connection);
    let rows = client
        .query(query, &[])
        .await
        .with_context(|| format!("gazetteer database: running {query:?}"));
    drop(client);
    let _ = driver.await;
    let rows = rows?;
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let at = || format!("gazetteer query row {}", i + 1);
        let text = |col: &str| -> anyhow::Result<Option<String>> {
            match row.columns().iter().position(|c| c.name() == col) {
                None => Ok(None),
                Some(idx) => row
                    .try_get::<_, Option<String>>(idx)
                    .with_context(|| format!("{}: column {col} must be text", at())),
            }
        };
        let (Some(entity_type), Some(name)) = (text("entity_type")?, text("name")?) else {
            bail!(
                "{}: the query must return non-null columns entity_type and name",
                at()
            );
        };
        let key = text("canonical_key")?;
        let aliases: Vec<String> = match row.columns().iter().position(|c| c.name() == "aliases") {
            None => Vec::new(),
            Some(idx) => row
                .try_get::<_, Option<Vec<Option<String>>>>(idx)
                .with_context(|| format!("{}: column aliases must be text[]", at()))?
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect(),
        };
        out.extend(entries_of(
            &entity_type,
            &name,
            key.as_deref(),
            aliases,
            &at,
        )?);
    }
    Ok(out)
}

/// Every configured source, read now.
pub async fn load(settings: &GazetteerSettings) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for file in &settings.files {
        let file = file.clone();
        out.extend(tokio::task::spawn_blocking(move || read_csv(&file)).await??);
    }
    if !settings.postgres_url.trim().is_empty() {
        out.extend(read_postgres(&settings.postgres_url, &settings.postgres_query).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    #[test]
    fn csv_names_and_aliases_share_one_key() {
        let f = write(
            "entity_type,name,canonical_key,aliases\n\
             CUSTOMER,Lone Star Grocers,cust-1042,LSG; Lone Star\n\
             CARRIER, Old Dominion Freight Line ,,ODFL\n",
        );
        let entries = read_csv(f.path()).expect("read");
        let forms: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e.form.as_str(),
                    e.entity_type.as_str(),
                    e.canonical_key.as_str(),
                )
            })
            .collect();
        assert_eq!(
            forms,
            [
                ("Lone Star Grocers", "CUSTOMER", "cust-1042"),
                ("LSG", "CUSTOMER", "cust-1042"),
                ("Lone Star", "CUSTOMER", "cust-1042"),
                (
                    "Old Dominion Freight Line",
                    "CARRIER",
                    "old dominion freight line"
                ),
                ("ODFL", "CARRIER", "old dominion freight line"),
            ]
        );
        assert!(entries.iter().all(|e| e.display_name != "LSG"));
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let no_header = write("kind,label\nCUSTOMER,Acme\n");
        let err = read_csv(no_header.path()).expect_err("header").to_string();
        assert!(err.contains("entity_type and name"), "{err}");
        let bad_type = write("entity_type,name\nCUSTOMER,Acme\ncustomer,Beta\n");
        let err = format!("{:#}", read_csv(bad_type.path()).expect_err("type"));
        assert!(
            err.contains("line 3") && err.contains("upper snake case"),
            "{err}"
        );
        let empty_name = write("entity_type,name\nCARRIER,  \n");
        let err = format!("{:#}", read_csv(empty_name.path()).expect_err("name"));
        assert!(
            err.contains("line 2") && err.contains("name is empty"),
            "{err}"
        );
        let missing = read_csv(Path::new("/nonexistent/gazetteer.csv")).expect_err("missing");
        assert!(format!("{missing:#}").contains("/nonexistent/gazetteer.csv"));
    }
}
