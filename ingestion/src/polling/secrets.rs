//! A polling account's secrets, read on the worker when a page is fetched: from
//! `APEX_POLL_SECRET_<ACCOUNT>_<NAME>` (the account's name upper-cased, `-` as `_`), else
//! `<ACCOUNT>_<NAME>_FILE` naming a file, else the file `<dir>/<account>/<name>`. They are
//! never part of a workflow's input, a stored row, a log line or an error.

use std::path::{Path, PathBuf};

/// Where secrets are read (`ingest.poll_secrets_dir`, and the environment).
#[derive(Clone, Default)]
pub struct Secrets {
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("dir", &self.dir).finish()
    }
}

/// A secret's value; shown as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The environment variable that holds `name` of `account`.
pub fn env_name(account: &str, name: &str) -> String {
    let up = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    format!("APEX_POLL_SECRET_{}_{}", up(account), up(name))
}

impl Secrets {
    /// Secrets from the environment, then files under `dir` (empty: the environment only).
    pub fn new(dir: &str) -> Self {
        let dir = dir.trim();
        Self {
            dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
        }
    }

    /// The secret `name` of `account`, or a message saying where it was looked for.
    pub fn get(&self, account: &str, name: &str) -> Result<Secret, String> {
        let var = env_name(account, name);
        if let Ok(v) = std::env::var(&var)
            && !v.trim().is_empty()
        {
            return Ok(Secret(v.trim().to_owned()));
        }
        if let Ok(path) = std::env::var(format!("{var}_FILE"))
            && !path.trim().is_empty()
        {
            return read(Path::new(path.trim()));
        }
        if let Some(dir) = &self.dir {
            let path = dir.join(account).join(name);
            if path.exists() {
                return read(&path);
            }
        }
        let files = self.dir.as_ref().map_or(String::new(), |d| {
            format!(", or the file {}", d.join(account).join(name).display())
        });
        Err(format!(
            "the secret `{name}` of account `{account}` is not configured: set {var} or {var}_FILE{files}"
        ))
    }
}

fn read(path: &Path) -> Result<Secret, String> {
    match std::fs::read_to_string(path) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_owned())),
        Ok(_) => Err(format!("the secret file {} is empty", path.display())),
        Err(e) => Err(format!(
            "cannot read the secret file {}: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_a_file_and_a_missing_one_says_where_it_was_looked_for() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("crm-test-7")).expect("mkdir");
        std::fs::write(dir.path().join("crm-test-7/token"), "pat-na1-123\n").expect("write");
        let secrets = Secrets::new(&dir.path().display().to_string());
        let token = secrets.get("crm-test-7", "token").expect("token");
        assert_eq!(token.expose(), "pat-na1-123");
        assert_eq!(format!("{token:?}"), "***");
        let missing = secrets.get("crm-test-7", "api_key").expect_err("missing");
        assert!(
            missing.contains("APEX_POLL_SECRET_CRM_TEST_7_API_KEY")
                && missing.contains("crm-test-7/api_key"),
            "{missing}"
        );
        std::fs::write(dir.path().join("crm-test-7/empty"), " \n").expect("write");
        assert!(secrets.get("crm-test-7", "empty").is_err());
    }
}
