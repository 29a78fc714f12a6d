//! `PollingWorkflow` as a client sees it: its input (the account and where it stands), its
//! `get_stats` query, and what one `poll_page` activity takes and gives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use temporalio_common::{HasWorkflowDefinition, QueryDefinition, WorkflowDefinition};

use crate::checked::Checked;
use crate::input::{Blob, IngestInput, document_id};

/// The APIs a polling account can read.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `POST /transactions/sync`.
    #[default]
    Plaid,
    /// `POST /crm/v3/objects/{object}/search`.
    Hubspot,
    /// `GET /v1/events`.
    Stripe,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Plaid, Provider::Hubspot, Provider::Stripe];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Plaid => "plaid",
            Provider::Hubspot => "hubspot",
            Provider::Stripe => "stripe",
        }
    }

    pub fn parse(name: &str) -> Option<Provider> {
        Self::ALL.into_iter().find(|p| p.as_str() == name.trim())
    }

    /// The secrets an account of this provider needs (read on the worker, never stored in
    /// the workflow or the database): see [`super::Secrets`].
    pub fn secret_names(self) -> &'static [&'static str] {
        match self {
            Provider::Plaid => &["secret", "access_token"],
            Provider::Hubspot => &["token"],
            Provider::Stripe => &["api_key"],
        }
    }

    /// The options an account of this provider must set.
    pub fn required_options(self) -> &'static [&'static str] {
        match self {
            Provider::Plaid => &["client_id"],
            Provider::Hubspot | Provider::Stripe => &[],
        }
    }

    /// The provider's production API.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::Plaid => "https://production.plaid.com",
            Provider::Hubspot => "https://api.hubapi.com",
            Provider::Stripe => "https://api.stripe.com",
        }
    }
}

/// A source account: which API, where, and how (no secrets: those are named by the account
/// and read on the worker).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Account {
    /// Lower-case letters, digits and `-`, at most 64: the workflow id is `poll-<name>`.
    pub name: String,
    pub provider: Provider,
    /// The API's address (empty: the provider's production API).
    pub base_url: String,
    /// Provider options: `client_id` (Plaid), `object` (HubSpot: contacts, companies, deals
    /// or tickets), `page_size`.
    pub options: BTreeMap<String, String>,
}

impl Account {
    pub fn base_url(&self) -> &str {
        let url = self.base_url.trim().trim_end_matches('/');
        if url.is_empty() {
            self.provider.default_base_url()
        } else {
            url
        }
    }

    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The page size asked of the API: the `page_size` option within `1..=max`, else `max`.
    pub fn page_size(&self, max: u32) -> u32 {
        self.option("page_size")
            .and_then(|v| v.parse::<u32>().ok())
            .map_or(max, |n| n.clamp(1, max))
    }

    /// What is wrong with this account, each problem a sentence.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            p.push(format!(
                "account name `{}` must be 1 to 64 lower-case letters, digits and `-`",
                self.name
            ));
        }
        for key in self.provider.required_options() {
            if self.option(key).is_none() {
                p.push(format!(
                    "a {} account needs the option `{key}`",
                    self.provider.as_str()
                ));
            }
        }
        if let Err(e) = url::Url::parse(self.base_url()) {
            p.push(format!("base_url `{}`: {e}", self.base_url()));
        }
        if self.provider == Provider::Hubspot {
            let object = self.option("object").unwrap_or("contacts");
            if !["contacts", "companies", "deals", "tickets"].contains(&object) {
                p.push(format!(
                    "HubSpot object `{object}` is not one of contacts, companies, deals, tickets"
                ));
            }
        }
        p
    }
}

/// The workflow id of an account's poller.
pub fn polling_workflow_id(account: &str) -> String {
    format!("poll-{account}")
}

/// The source of a polled record's document (`poll:<provider>`), which the parser reads
/// as a business event of that provider.
fn source_of(provider: Provider) -> String {
    format!("poll:{}", provider.as_str())
}

/// The document a record of `account` is: the same record is always the same document, so
/// a change updates it and a deletion removes it.
pub fn record_document_id(account: &Account, record_id: &str) -> String {
    document_id(
        &source_of(account.provider),
        &format!("{}/{record_id}", account.name),
    )
}

/// The ingestion of a record stored in the blob store.
pub fn record_input(account: &Account, record: &PolledRecord) -> IngestInput {
    let provider = account.provider.as_str();
    IngestInput {
        document_id: record_document_id(account, &record.id),
        source: source_of(account.provider),
        external_id: format!("{}/{}", account.name, record.id),
        location: format!("blob:{}", record.blob.key),
        file_name: format!("{provider}-{}.json", record.kind.replace(['/', '.'], "-")),
        mime_type: "application/json".to_owned(),
        metadata: BTreeMap::from([
            ("poll_account".to_owned(), account.name.clone()),
            ("poll_provider".to_owned(), provider.to_owned()),
            ("record_kind".to_owned(), record.kind.clone()),
            ("record_id".to_owned(), record.id.clone()),
        ]),
        ..IngestInput::default()
    }
}

/// Input of `PollingWorkflow`; a continued run gets its predecessor's state and counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PollInput {
    pub account: Account,
    /// Seconds between the end of one poll and the start of the next (0: 15 minutes).
    pub interval_secs: u64,
    /// The provider's cursor (opaque JSON; empty: a first, full sync).
    pub state: String,
    pub paused: bool,
    pub stats: PollStats,
    /// Polls before the run continues as new (0: 100).
    pub polls_per_run: u64,
}

impl PollInput {
    pub fn polls_per_run(&self) -> u64 {
        match self.polls_per_run {
            0 => 100,
            n => n,
        }
    }

    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(match self.interval_secs {
            0 => 15 * 60,
            s => s,
        })
    }
}

/// What `get_stats` answers: counts over the poller's life (carried across
/// continue-as-new), the cursor, the last error, and when the last poll finished.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PollStats {
    /// `polling`, `waiting`, `paused` or `failed`.
    pub status: String,
    /// Polls finished (an empty poll counts).
    pub polls: u64,
    pub pages: u64,
    /// Records ingested (new or changed) and deleted.
    pub records: u64,
    pub deleted: u64,
    /// Records whose ingestion found the document already stored as it is.
    pub unchanged: u64,
    /// Ingestions that ended failed (the poll goes on; the record is tried again when it
    /// changes).
    pub failed: u64,
    /// Paginations the provider restarted (Plaid's mutation during pagination).
    pub restarts: u64,
    /// The cursor after the last page, as the provider shows it.
    pub last_cursor: String,
    pub last_error: Option<String>,
    /// Unix milliseconds: the last poll's start and end (0: none yet).
    pub last_poll_started_ms: u64,
    pub last_poll_finished_ms: u64,
    /// Runs of the workflow so far (continue-as-new starts the next).
    pub runs: u64,
}

/// One `poll_page` call: the account and the cursor to read from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PageRequest {
    pub account: Account,
    pub state: String,
}

/// A record of a page, its JSON in the blob store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PolledRecord {
    pub id: String,
    pub kind: String,
    pub blob: Blob,
}

/// What one page gave.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PolledPage {
    pub records: Vec<PolledRecord>,
    /// Record ids the API reports deleted.
    pub removed: Vec<String>,
    pub state: String,
    /// Another page follows in this poll.
    pub more: bool,
    pub cursor: String,
    pub restarted: bool,
}

/// `PollingWorkflow`: polls one account for ever (continuing as new), ingesting what
/// changed and deleting what the API reports deleted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Polling;

impl WorkflowDefinition for Polling {
    type Input = Checked<PollInput>;
    type Output = PollStats;
    fn name(&self) -> &str {
        "PollingWorkflow"
    }
}

impl HasWorkflowDefinition for Polling {
    type Run = Self;
}

/// Its `get_stats` query.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollingStats;

impl QueryDefinition for PollingStats {
    type Workflow = Polling;
    type Input = ();
    type Output = PollStats;
    fn name(&self) -> &str {
        "get_stats"
    }
}

/// The poller's signals: `pause` (after the current poll), `resume` (and poll at once),
/// `poll_now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollSignal {
    Pause,
    Resume,
    PollNow,
}

impl temporalio_common::SignalDefinition for PollSignal {
    type Workflow = Polling;
    type Input = ();
    fn name(&self) -> &str {
        match self {
            PollSignal::Pause => "pause",
            PollSignal::Resume => "resume",
            PollSignal::PollNow => "poll_now",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_checked_and_its_records_are_stable_documents() {
        let mut a = Account {
            name: "plaid-main".into(),
            provider: Provider::Plaid,
            ..Account::default()
        };
        assert_eq!(
            a.problems(),
            vec!["a plaid account needs the option `client_id`"]
        );
        a.options.insert("client_id".into(), "cid".into());
        assert!(a.problems().is_empty(), "{:?}", a.problems());
        assert_eq!(a.base_url(), "https://production.plaid.com");
        a.name = "Plaid Main".into();
        assert_eq!(a.problems().len(), 1);
        a.name = "plaid-main".into();

        let record = PolledRecord {
            id: "tx-1".into(),
            kind: "transaction".into(),
            blob: Blob {
                key: "documents/ab".into(),
                ..Blob::default()
            },
        };
        let input = record_input(&a, &record);
        assert_eq!(input.document_id, record_document_id(&a, "tx-1"));
        assert_eq!(input.resolved_document_id(), input.document_id);
        assert_eq!(input.source, "poll:plaid");
        assert_eq!(input.location, "blob:documents/ab");
        assert_ne!(
            record_document_id(&a, "tx-1"),
            record_document_id(
                &Account {
                    name: "plaid-other".into(),
                    ..a.clone()
                },
                "tx-1"
            )
        );
        let hub = Account {
            name: "crm".into(),
            provider: Provider::Hubspot,
            options: BTreeMap::from([("object".into(), "leads".into())]),
            ..Account::default()
        };
        assert!(hub.problems()[0].contains("leads"), "{:?}", hub.problems());
        assert_eq!(Provider::parse("stripe"), Some(Provider::Stripe));
        assert_eq!(Provider::parse("quickbooks"), None);
        assert_eq!(a.page_size(500), 500);
        a.options.insert("page_size".into(), "9999".into());
        assert_eq!(a.page_size(500), 500);
        a.options.insert("page_size".into(), "3".into());
        assert_eq!(a.page_size(500), 3);
    }
}
