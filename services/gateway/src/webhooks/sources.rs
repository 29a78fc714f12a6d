//! The webhook sources the gateway knows, how each signs, where its secrets come from, and
//! what in a delivery names the event.
//!
//! Secrets never come from the settings file: `APEX_WEBHOOK_SECRETS_<SOURCE>` holds one or
//! more (comma-separated; several are active together while a secret rotates), or
//! `APEX_WEBHOOK_SECRETS_<SOURCE>_FILE` names a file with one per line, or the file
//! `<source>` in `webhooks.secrets_dir` (a mounted secret volume) does. `<SOURCE>` is the
//! source's name upper-cased with `-` as `_` (`FRONT_RULE`). Plaid signs with its own keys:
//! it needs `APEX_PLAID_CLIENT_ID` and `APEX_PLAID_SECRET` (or `_FILE`, or the files
//! `plaid-client-id` and `plaid-secret` in the directory) to fetch them.
//! A source without its secrets refuses every delivery (`503`, so the sender retries)
//! and is named at start and by `/readyz`: nothing is ever accepted unsigned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::plaid::PlaidKeys;
use super::verify::{Delivery, Refusal, Scheme, Secret};

/// The built-in sources and their schemes. Turvo and Sonar publish no signature scheme:
/// they get Standard Webhooks unless `webhooks.schemes` says otherwise, and the partner is
/// asked to sign that way.
pub const BUILT_IN: [(&str, Scheme); 8] = [
    ("front", Scheme::FrontApp),
    ("front-rule", Scheme::FrontRule),
    ("samsara", Scheme::Samsara),
    ("stripe", Scheme::Stripe),
    ("plaid", Scheme::Plaid),
    ("standard", Scheme::StandardWebhooks),
    ("turvo", Scheme::StandardWebhooks),
    ("sonar", Scheme::StandardWebhooks),
];

/// `webhooks.*` of the gateway's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WebhookSettings {
    /// Largest delivery accepted; a larger one is a `413`.
    pub max_body_bytes: u64,
    /// How far a signed timestamp may be from now, either way (the providers' 5 minutes).
    pub tolerance_secs: i64,
    /// How long a delivered event id is remembered: a delivery of it within this time is
    /// answered `200` and not ingested again.
    pub replay_ttl_secs: u64,
    /// The scheme of a source, by name: changes a built-in one's, or adds a source
    /// (`partner = "standard-webhooks"`). Schemes: front-app, front-rule, samsara, stripe,
    /// standard-webhooks, plaid.
    pub schemes: BTreeMap<String, String>,
    /// Plaid's API, where its verification keys are fetched.
    pub plaid_url: String,
    /// A directory of secret files, one per source named like it (empty: none); the
    /// environment variables come first.
    pub secrets_dir: String,
    /// Whether this replica starts the ingestions of stored events (the outbox's
    /// dispatcher). Off only for a replica that must not start work (tests).
    pub dispatch: bool,
    /// How often the secrets are read again (a rotation without a restart), in seconds;
    /// 0: only at start.
    pub reload_secs: u64,
    /// Ingestions the dispatcher starts at once. Deliveries are answered whatever it is;
    /// a higher value drains a burst sooner and takes more CPU from the request path
    /// (`make bench-webhooks`: 32 at once doubled the webhook p99 on 2 cores).
    pub dispatch_parallel: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            tolerance_secs: 300,
            replay_ttl_secs: 7 * 24 * 3600,
            schemes: BTreeMap::new(),
            plaid_url: "https://production.plaid.com".to_owned(),
            secrets_dir: String::new(),
            dispatch: true,
            dispatch_parallel: 4,
            reload_secs: 10,
        }
    }
}

impl WebhookSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.max_body_bytes == 0 {
            p.push("webhooks.max_body_bytes must be at least 1".to_owned());
        }
        if self.tolerance_secs < 1 {
            p.push("webhooks.tolerance_secs must be at least 1".to_owned());
        }
        if !(1..=256).contains(&self.dispatch_parallel) {
            p.push("webhooks.dispatch_parallel must be 1–256".to_owned());
        }
        if self.replay_ttl_secs < 60 {
            p.push("webhooks.replay_ttl_secs must be at least 60".to_owned());
        }
        for (name, scheme) in &self.schemes {
            if !valid_name(name) {
                p.push(format!(
                    "webhooks.schemes: `{name}` is not a source name (a-z, 0-9 and -)"
                ));
            }
            if Scheme::parse(scheme).is_none() {
                p.push(format!(
                    "webhooks.schemes.{name}: `{scheme}` is not one of {}",
                    Scheme::NAMES.join(", ")
                ));
            }
        }
        p
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// How a source's deliveries are verified, or why they cannot be.
#[derive(Debug)]
pub enum Verifier {
    Hmac(Vec<Secret>),
    Plaid(PlaidKeys),
    Unconfigured(String),
}

/// One webhook source.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub scheme: Scheme,
    pub verifier: Verifier,
}

impl Source {
    /// Verifies a delivery.
    pub async fn verify(&self, d: &Delivery<'_>) -> Result<super::verify::Verified, Refusal> {
        match &self.verifier {
            Verifier::Hmac(secrets) => super::verify::verify(self.scheme, secrets, d),
            Verifier::Plaid(keys) => keys.verify(d).await,
            Verifier::Unconfigured(why) => Err(Refusal::KeyUnavailable(why.clone())),
        }
    }
}

/// Every source the gateway answers for.
#[derive(Debug, Default)]
pub struct Sources {
    by_name: BTreeMap<String, Source>,
    /// A digest of every source's scheme and secret text (or why it has none): two loads
    /// with the same fingerprint verify the same way.
    fingerprint: Vec<u8>,
}

/// The environment variable holding a source's secrets.
pub fn secrets_variable(source: &str) -> String {
    format!(
        "APEX_WEBHOOK_SECRETS_{}",
        source.to_ascii_uppercase().replace('-', "_")
    )
}

/// Where a secret is looked up: the environment (`env`), then `secrets_dir`.
struct Lookup<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    dir: &'a str,
}

impl Lookup<'_> {
    /// `variable`, or the file `variable_FILE` names, or `file` in the secrets directory.
    fn get(&self, variable: &str, file: &str) -> Result<Option<String>, String> {
        let env = self.env;
        if let Some(v) = env(variable).filter(|v| !v.trim().is_empty()) {
            return Ok(Some(v));
        }
        let file_var = format!("{variable}_FILE");
        if let Some(path) = env(&file_var).filter(|v| !v.trim().is_empty()) {
            return std::fs::read_to_string(path.trim())
                .map(Some)
                .map_err(|e| format!("{file_var}: cannot read {}: {e}", path.trim()));
        }
        if self.dir.trim().is_empty() {
            return Ok(None);
        }
        let path = std::path::Path::new(self.dir.trim()).join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

impl Sources {
    /// The sources of `settings`, with their secrets from `env` (the process environment
    /// in the binary). `http` is the guarded client, for Plaid's keys.
    pub fn load(
        settings: &WebhookSettings,
        env: &dyn Fn(&str) -> Option<String>,
        http: &reqwest::Client,
    ) -> Self {
        let mut schemes: BTreeMap<String, Scheme> = BUILT_IN
            .iter()
            .map(|(n, s)| ((*n).to_owned(), *s))
            .collect();
        for (name, scheme) in &settings.schemes {
            if let (true, Some(s)) = (valid_name(name), Scheme::parse(scheme)) {
                schemes.insert(name.clone(), s);
            }
        }
        let lookup = Lookup {
            env,
            dir: &settings.secrets_dir,
        };
        let mut digest = Sha256::new();
        let by_name = schemes
            .into_iter()
            .map(|(name, scheme)| {
                let (verifier, seen) = verifier(&name, scheme, settings, &lookup, http);
                digest.update(format!("{name}\u{1f}{}\u{1f}", scheme.as_str()));
                digest.update(seen.as_bytes());
                digest.update([0x1e]);
                (
                    name.clone(),
                    Source {
                        name,
                        scheme,
                        verifier,
                    },
                )
            })
            .collect();
        Self {
            by_name,
            fingerprint: digest.finalize().to_vec(),
        }
    }

    /// How many secrets each source verifies with (0: it refuses every delivery).
    pub fn secret_counts(&self) -> Vec<(&str, usize)> {
        self.by_name
            .values()
            .map(|s| {
                let n = match &s.verifier {
                    Verifier::Hmac(secrets) => secrets.len(),
                    Verifier::Plaid(_) => 1,
                    Verifier::Unconfigured(_) => 0,
                };
                (s.name.as_str(), n)
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Source> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The sources that refuse every delivery, and why.
    pub fn unconfigured(&self) -> Vec<(&str, &str)> {
        self.by_name
            .values()
            .filter_map(|s| match &s.verifier {
                Verifier::Unconfigured(why) => Some((s.name.as_str(), why.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// The source's verifier, and the text it was made from (secrets or the reason there are
/// none), for the fingerprint.
fn verifier(
    name: &str,
    scheme: Scheme,
    settings: &WebhookSettings,
    lookup: &Lookup<'_>,
    http: &reqwest::Client,
) -> (Verifier, String) {
    if scheme == Scheme::Plaid {
        let id = lookup.get("APEX_PLAID_CLIENT_ID", "plaid-client-id");
        let secret = lookup.get("APEX_PLAID_SECRET", "plaid-secret");
        let seen = format!("{id:?}{secret:?}");
        let verifier = match (id, secret) {
            (Ok(Some(id)), Ok(Some(secret))) => Verifier::Plaid(PlaidKeys::new(
                &settings.plaid_url,
                id.trim().to_owned(),
                secret.trim().to_owned(),
                http.clone(),
            )),
            (Err(e), _) | (_, Err(e)) => Verifier::Unconfigured(e),
            _ => Verifier::Unconfigured(
                "APEX_PLAID_CLIENT_ID and APEX_PLAID_SECRET are not set".to_owned(),
            ),
        };
        return (verifier, seen);
    }
    let variable = secrets_variable(name);
    let text = match lookup.get(&variable, name) {
        Ok(Some(t)) => t,
        Ok(None) => {
            let why =
                format!("{variable} is not set (nor a file `{name}` in webhooks.secrets_dir)");
            return (Verifier::Unconfigured(why.clone()), why);
        }
        Err(e) => return (Verifier::Unconfigured(e.clone()), e),
    };
    let mut secrets = Vec::new();
    for (i, part) in text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        match scheme.key(part) {
            Ok(s) => secrets.push(s),
            // Which one is wrong, never what it is.
            Err(e) => {
                let why = format!("{variable}, secret {}: {e}", i + 1);
                return (Verifier::Unconfigured(why), text);
            }
        }
    }
    if secrets.is_empty() {
        return (
            Verifier::Unconfigured(format!("{variable} holds no secret")),
            text,
        );
    }
    (Verifier::Hmac(secrets), text)
}

/// Where the registry reads environment variables (the process environment in the binary).
pub type Environment = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The sources, read again from their secrets now and then (`webhooks.reload_secs`), so a
/// rotation needs no restart: put the new secret beside the old one, let the provider
/// switch, remove the old one.
pub struct Registry {
    current: std::sync::RwLock<std::sync::Arc<Sources>>,
    settings: WebhookSettings,
    env: Environment,
    http: reqwest::Client,
    secrets: prometheus::IntGaugeVec,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new(
        settings: &WebhookSettings,
        env: Environment,
        http: reqwest::Client,
        secrets: prometheus::IntGaugeVec,
    ) -> Self {
        let sources = Sources::load(settings, &*env, &http);
        for (name, n) in sources.secret_counts() {
            secrets.with_label_values(&[name]).set(n as i64);
        }
        Self {
            current: std::sync::RwLock::new(std::sync::Arc::new(sources)),
            settings: settings.clone(),
            env,
            http,
            secrets,
        }
    }

    /// The sources as last read.
    pub fn current(&self) -> std::sync::Arc<Sources> {
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::sync::Arc::clone(&guard)
    }

    /// Reads the secrets again and swaps the sources in when anything changed (every source
    /// is then rebuilt: Plaid's keys are fetched again, once). Returns whether it changed.
    pub fn reload(&self) -> bool {
        let fresh = Sources::load(&self.settings, &*self.env, &self.http);
        if fresh.fingerprint == self.current().fingerprint {
            return false;
        }
        for (name, n) in fresh.secret_counts() {
            self.secrets.with_label_values(&[name]).set(n as i64);
        }
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = std::sync::Arc::new(fresh);
        true
    }
}

/// What names a delivered event: its id (the dedup key) and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventName {
    pub id: String,
    pub kind: String,
}

/// The event id and type of a verified delivery. Standard Webhooks' `webhook-id` is the
/// id; Front, Samsara and Stripe put theirs in the body; Plaid and Sonar send none, so the
/// body's SHA-256 is the id (a retried delivery has the same body).
pub fn event_name(scheme: Scheme, d: &Delivery<'_>, body: &Value) -> Result<EventName, Refusal> {
    let text = |pointer: &str| {
        body.pointer(pointer).and_then(|v| match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let first = |pointers: &[&str]| pointers.iter().find_map(|p| text(p));
    let digest = || hex::encode(Sha256::digest(d.body));
    let (id, kind) = match scheme {
        Scheme::StandardWebhooks => (
            Some(d.header("webhook-id")?.to_owned()),
            first(&["/type", "/event_type", "/eventType", "/event"]),
        ),
        Scheme::FrontApp | Scheme::FrontRule => (
            first(&["/payload/id", "/id"]),
            first(&["/payload/type", "/type"]),
        ),
        Scheme::Samsara => (first(&["/eventId"]), first(&["/eventType"])),
        Scheme::Stripe => (first(&["/id"]), first(&["/type"])),
        Scheme::Plaid => (
            Some(digest()),
            match (text("/webhook_type"), text("/webhook_code")) {
                (Some(t), Some(c)) => Some(format!("{t}.{c}")),
                (t, c) => t.or(c),
            },
        ),
    };
    let id = id.ok_or_else(|| {
        Refusal::Malformed(format!(
            "a {} delivery without its event id",
            scheme.as_str()
        ))
    })?;
    if id.len() > 256 || id.chars().any(char::is_control) {
        return Err(Refusal::Malformed(
            "the event id is longer than 256 characters or holds control characters".into(),
        ));
    }
    Ok(EventName {
        id,
        kind: kind.unwrap_or_else(|| "event".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use serde_json::json;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn secrets_come_from_the_environment_and_files_and_are_checked() {
        let dir = tempfile::tempdir().expect("well-formed in the test");
        let file = dir.path().join("samsara");
        std::fs::write(&file, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n\n")
            .expect("well-formed in the test");
        let env = env_of(&[
            ("APEX_WEBHOOK_SECRETS_STRIPE", "whsec_old, whsec_new"),
            (
                "APEX_WEBHOOK_SECRETS_SAMSARA_FILE",
                file.to_str().expect("well-formed in the test"),
            ),
            ("APEX_WEBHOOK_SECRETS_STANDARD", "whsec_not base64!"),
            ("APEX_WEBHOOK_SECRETS_PARTNER", "whsec_c2VjcmV0"),
        ]);
        std::fs::write(dir.path().join("front"), "one\ntwo\n").expect("write");
        let settings = WebhookSettings {
            schemes: [("partner".to_owned(), "standard-webhooks".to_owned())].into(),
            secrets_dir: dir.path().display().to_string(),
            ..Default::default()
        };
        let sources = Sources::load(&settings, &env, &reqwest::Client::new());
        let secrets =
            |name: &str| match &sources.get(name).expect("well-formed in the test").verifier {
                Verifier::Hmac(s) => s.len(),
                other => panic!("{name}: {other:?}"),
            };
        assert_eq!(secrets("stripe"), 2);
        assert_eq!(secrets("samsara"), 1);
        assert_eq!(secrets("partner"), 1);
        assert_eq!(secrets("front"), 2, "from the secrets directory");
        let unconfigured: BTreeMap<&str, &str> = sources.unconfigured().into_iter().collect();
        // A bad secret is named by its position, never shown.
        assert!(unconfigured["standard"].contains("secret 1"));
        assert!(!unconfigured["standard"].contains("not base64"));
        assert!(!unconfigured.contains_key("front"));
        assert!(
            unconfigured["turvo"].starts_with("APEX_WEBHOOK_SECRETS_TURVO is not set"),
            "{unconfigured:?}"
        );
        assert!(unconfigured["plaid"].contains("APEX_PLAID_CLIENT_ID"));
        assert!(sources.get("unknown").is_none());
    }

    #[test]
    fn bad_scheme_settings_are_named() {
        let settings = WebhookSettings {
            schemes: [
                ("Bad Name".to_owned(), "stripe".to_owned()),
                ("ok".to_owned(), "hmac-md5".to_owned()),
            ]
            .into(),
            ..Default::default()
        };
        let p = settings.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("Bad Name") && p[1].contains("hmac-md5"));
    }

    #[test]
    fn event_ids_per_scheme() {
        let h = HeaderMap::new();
        let body = br#"{}"#;
        let d = Delivery {
            headers: &h,
            body,
            now_secs: 0,
            tolerance_secs: 300,
        };
        let front = json!({"type": "x", "payload": {"id": "evt_1", "type": "inbound"}});
        assert_eq!(
            event_name(Scheme::FrontApp, &d, &front).expect("well-formed in the test"),
            EventName {
                id: "evt_1".into(),
                kind: "inbound".into()
            }
        );
        let samsara = json!({"eventId": "e-9", "eventType": "AlertIncident"});
        assert_eq!(
            event_name(Scheme::Samsara, &d, &samsara)
                .expect("well-formed in the test")
                .id,
            "e-9"
        );
        let plaid =
            json!({"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE"});
        let named = event_name(Scheme::Plaid, &d, &plaid).expect("well-formed in the test");
        assert_eq!(named.id, hex::encode(Sha256::digest(body)));
        assert_eq!(named.kind, "TRANSACTIONS.SYNC_UPDATES_AVAILABLE");
        assert_eq!(
            event_name(Scheme::Stripe, &d, &json!({"type": "invoice.paid"}))
                .expect_err("refused")
                .reason(),
            "malformed"
        );
        assert_eq!(
            event_name(Scheme::StandardWebhooks, &d, &json!({})).expect_err("refused"),
            Refusal::MissingHeader("webhook-id")
        );
    }
}
