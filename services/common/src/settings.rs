//! Settings: defaults, then an optional TOML file, then environment variables.
//!
//! Every binary has one settings struct that implements [`Settings`]. Environment variables
//! use the binary's prefix and `__` as the nesting separator, for example
//! `APEX_WORKER__TEMPORAL__NAMESPACE=default`. The file named by `<PREFIX>_CONFIG` (for example
//! `APEX_WORKER_CONFIG=/etc/apex/worker.toml`) is read when set. Unknown keys are errors, and
//! every problem found is reported at once so that one run shows all there is to fix.

use std::{collections::BTreeSet, fmt, path::PathBuf};

use figment::{
    Figment, Provider,
    providers::{Format, Serialized, Toml},
    value::{Dict, Value},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The exit code for bad configuration (`EX_CONFIG` from sysexits.h).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// A settings struct of one binary.
pub trait Settings: Serialize + DeserializeOwned + Default {
    /// Environment prefix without the trailing separator, for example `APEX_WORKER`.
    const ENV_PREFIX: &'static str;

    /// Plain environment variables accepted as aliases: (variable, dotted key).
    fn aliases() -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Checks values that parse but make no sense; returns one message per problem.
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Everything wrong with a configuration, collected in one pass.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// Where settings come from; built from the process environment by [`Source::from_env`],
/// or explicitly in tests.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// Optional TOML file.
    pub file: Option<PathBuf>,
    /// Environment variables to read (name, value).
    pub env: Vec<(String, String)>,
}

impl Source {
    /// Reads the process environment; the file comes from `<PREFIX>_CONFIG` when set.
    pub fn from_env<S: Settings>() -> Self {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let file_var = format!("{}_CONFIG", S::ENV_PREFIX);
        let file = env
            .iter()
            .find(|(k, _)| *k == file_var)
            .map(|(_, v)| PathBuf::from(v));
        Self { file, env }
    }
}

/// Loads and validates settings, collecting every problem.
pub fn load<S: Settings>(source: &Source) -> Result<S, ConfigError> {
    let mut problems = Vec::new();
    let prefix = format!("{}__", S::ENV_PREFIX);

    let mut user = Figment::new();
    if let Some(file) = &source.file {
        if file.is_file() {
            user = user.merge(Toml::file(file));
        } else {
            problems.push(format!("config file {} does not exist", file.display()));
        }
    }
    for (key, value) in env_pairs(&source.env, &prefix, S::aliases()) {
        user = user.merge(Serialized::default(&key, value));
    }

    let known = known_keys(&S::default());
    match user.data() {
        Ok(data) => {
            let mut provided = BTreeSet::new();
            for dict in data.values() {
                collect_keys(dict, "", &mut provided);
            }
            let open = open_maps(&S::default());
            for key in provided.difference(&known) {
                // Keys under a map that is empty by default (`webhooks.schemes.<name>`)
                // are the user's to name.
                if open.iter().any(|m| {
                    key.strip_prefix(m.as_str())
                        .is_some_and(|r| r.starts_with('.'))
                }) {
                    continue;
                }
                problems.push(format!("unknown key `{key}` ({})", env_name(&prefix, key)));
            }
        }
        Err(e) => problems.extend(e.into_iter().map(|e| e.to_string())),
    }

    let figment = Figment::from(Serialized::defaults(S::default())).merge(user);
    match figment.extract::<S>() {
        Ok(settings) if problems.is_empty() => {
            let invalid = settings.validate();
            if invalid.is_empty() {
                Ok(settings)
            } else {
                Err(ConfigError { problems: invalid })
            }
        }
        Ok(settings) => {
            problems.extend(settings.validate());
            Err(ConfigError { problems })
        }
        Err(e) => {
            // Unknown keys were already reported above, each with its variable name.
            problems.extend(
                e.into_iter()
                    .filter(|e| !matches!(e.kind, figment::error::Kind::UnknownField(..)))
                    .map(|e| e.to_string()),
            );
            Err(ConfigError { problems })
        }
    }
}

/// Loads settings from the process environment; on any problem prints them all and exits 64.
pub fn load_or_exit<S: Settings>() -> S {
    match load::<S>(&Source::from_env::<S>()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(EXIT_BAD_CONFIG);
        }
    }
}

fn env_name(prefix: &str, key: &str) -> String {
    format!("{prefix}{}", key.replace('.', "__").to_uppercase())
}

fn env_pairs(
    env: &[(String, String)],
    prefix: &str,
    aliases: &[(&str, &str)],
) -> Vec<(String, Value)> {
    let mut pairs = Vec::new();
    for (name, value) in env {
        let key = if let Some(rest) = name.strip_prefix(prefix) {
            rest.to_lowercase().replace("__", ".")
        } else if let Some((_, key)) = aliases.iter().find(|(alias, _)| alias == name) {
            (*key).to_owned()
        } else {
            continue;
        };
        // figment's own parsing of environment values: "5" is an integer, "true" a bool.
        let parsed: Value = value.parse().unwrap_or_else(|_| Value::from(value.clone()));
        pairs.push((key, parsed));
    }
    pairs
}

/// The dotted paths whose default is an empty map: their keys are free.
fn open_maps<S: Serialize>(defaults: &S) -> Vec<String> {
    fn walk(map: &serde_json::Map<String, serde_json::Value>, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if let serde_json::Value::Object(inner) = v {
                if inner.is_empty() {
                    out.push(path);
                } else {
                    walk(inner, &path, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(defaults) {
        walk(&map, "", &mut out);
    }
    out
}

/// Keys a settings struct knows, as dotted paths (structs are walked, leaves are keys).
fn known_keys<S: Serialize>(defaults: &S) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(defaults) {
        collect_json_keys(&map, "", &mut keys);
    }
    keys
}

fn collect_json_keys(
    map: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    out: &mut BTreeSet<String>,
) {
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        out.insert(path.clone());
        if let serde_json::Value::Object(inner) = v {
            collect_json_keys(inner, &path, out);
        }
    }
}

fn collect_keys(dict: &Dict, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in dict {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Dict(_, inner) => {
                out.insert(path.clone());
                collect_keys(inner, &path, out);
            }
            _ => {
                out.insert(path);
            }
        }
    }
}

/// Where telemetry goes; embedded in every binary's settings as `telemetry`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TelemetrySettings {
    /// `tracing` filter directives, for example `info,apex_worker=debug`.
    pub log_filter: String,
    /// `auto` (JSON when stdout is not a terminal), `json` or `text`.
    pub log_format: String,
    /// OTLP/gRPC endpoint for traces, for example `http://127.0.0.1:4317`; empty = no export.
    pub otlp_endpoint: String,
    /// Share of the traces this process starts that are exported (0.0–1.0); the ones it
    /// continues follow the caller's decision, so a whole trace is kept or dropped.
    pub sample_ratio: Ratio,
}

/// A share between 0 and 1 (a float that settings can compare with `Eq`: by its bits).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ratio(pub f64);

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Ratio {}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_filter: "info".to_owned(),
            log_format: "auto".to_owned(),
            otlp_endpoint: String::new(),
            sample_ratio: Ratio(1.0),
        }
    }
}

impl TelemetrySettings {
    /// Problems with these values, prefixed by `at` (the key they live under).
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut p = Vec::new();
        if !["auto", "json", "text"].contains(&self.log_format.as_str()) {
            p.push(format!(
                "{at}.log_format must be auto, json or text, not `{}`",
                self.log_format
            ));
        }
        if !self.otlp_endpoint.is_empty() && url::Url::parse(&self.otlp_endpoint).is_err() {
            p.push(format!(
                "{at}.otlp_endpoint `{}` is not a URL",
                self.otlp_endpoint
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio.0) {
            p.push(format!(
                "{at}.sample_ratio must be between 0 and 1, not {}",
                self.sample_ratio.0
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_filter).is_err() {
            p.push(format!(
                "{at}.log_filter `{}` is not a valid filter",
                self.log_filter
            ));
        }
        p
    }
}

/// Checks that `addr` is a socket address; pushes a problem naming `key` otherwise.
pub fn check_socket_addr(key: &str, addr: &str, problems: &mut Vec<String>) {
    if addr.parse::<std::net::SocketAddr>().is_err() {
        problems.push(format!(
            "{key} `{addr}` is not an address like 127.0.0.1:50051"
        ));
    }
}

/// A secret (an API key) from a file outside git when `file` is set, else from the
/// environment variable `env`; `None` when neither holds a non-empty value. `key` names the
/// setting in errors.
pub fn read_secret(key: &str, env: &str, file: &str) -> anyhow::Result<Option<String>> {
    let value = if file.is_empty() {
        std::env::var(env).ok()
    } else {
        Some(
            std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("{key} {file}: {e}"))?
                .trim()
                .to_owned(),
        )
    };
    Ok(value.filter(|k| !k.is_empty()))
}

/// `text` (an answer from a provider, say) with every occurrence of `secret` replaced by
/// `<redacted>`: some providers echo the key they were sent in their error messages.
pub fn redact_secret(text: &str, secret: Option<&str>) -> String {
    match secret.map(str::trim) {
        Some(s) if s.len() >= 4 => text.replace(s, "<redacted>"),
        _ => text.to_owned(),
    }
}

/// `url` with its password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn a_secret_echoed_in_a_message_is_replaced_and_short_or_absent_ones_change_nothing() {
        let echoed = "Incorrect API key provided: sk-live-0123456789. See the docs.";
        assert_eq!(
            redact_secret(echoed, Some("sk-live-0123456789")),
            "Incorrect API key provided: <redacted>. See the docs."
        );
        assert_eq!(
            redact_secret(echoed, Some("sk-")),
            echoed,
            "too short to matter"
        );
        assert_eq!(redact_secret(echoed, None), echoed);
        assert_eq!(
            redact_url("postgres://apex:hunter2@db:5432/apex"),
            "postgres://apex:***@db:5432/apex"
        );
    }
}
