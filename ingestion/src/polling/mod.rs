//! Polled sources: APIs that do not call us, read on an interval by a `PollingWorkflow` per
//! source account. The workflow keeps the account's cursor; each `poll_page` activity makes
//! one call to the API ([`Poller::page`]), stores every record it returns in the blob store
//! and hands back their references, the records the API reports deleted, and the cursor for
//! the next call. The workflow starts one `DocumentIngestionWorkflow` per new or changed
//! record and one `DocumentDeletionWorkflow` per deleted one.
//!
//! Each provider ([`Provider`]) reads its own cursor, opaque to the workflow (a JSON text):
//! - [`plaid`]: `/transactions/sync`, restarted from the poll's first cursor when Plaid
//!   reports a mutation during pagination;
//! - [`hubspot`]: CRM search on `hs_lastmodifieddate`, re-anchored on the last modification
//!   seen before the search's 10,000-result cap;
//! - [`stripe`]: `/v1/events`, newest first, the newest event seen as the cursor.

mod accounts;
mod contract;
pub mod hubspot;
mod page;
pub mod plaid;
mod secrets;
pub mod stripe;
mod time;

pub use accounts::{AccountStore, StoredAccount};
pub use contract::{
    Account, PageRequest, PollInput, PollSignal, PollStats, PolledPage, PolledRecord, Polling,
    PollingStats, Provider, polling_workflow_id, record_document_id, record_input,
};
pub use page::{PollError, Poller};
pub use secrets::{Secret, Secrets, env_name as secret_env_name};
pub use time::{format_ms, parse_ms};

/// What a provider makes of one answer: the records to ingest (in order), the ids the API
/// reports deleted, the state for the next call, whether the poll goes on, and whether the
/// provider restarted its pagination.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Answer {
    pub records: Vec<Item>,
    pub removed: Vec<String>,
    pub state: String,
    pub more: bool,
    pub cursor: String,
    pub restarted: bool,
}

/// One record as the API gave it: its id, its kind, and its JSON (stored as the document).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub kind: String,
    pub json: serde_json::Value,
}

/// A provider's cursor from its JSON text (empty: a first poll's).
pub(crate) fn read_state<T: serde::de::DeserializeOwned + Default>(
    provider: &str,
    text: &str,
) -> Result<T, PollError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(text)
        .map_err(|e| PollError::refused("InvalidState", format!("{provider} cursor: {e}")))
}

/// Keeps the last of several records with one id (a page may hold two events of one
/// object; two ingestions of one document cannot run at once), in the order of their last
/// occurrence, and drops an upsert that a later removal in the page supersedes.
pub(crate) fn last_per_id(records: Vec<Item>, removed: &[String]) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::with_capacity(records.len());
    for item in records {
        out.retain(|o| o.id != item.id);
        out.push(item);
    }
    out.retain(|o| !removed.contains(&o.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, n: i64) -> Item {
        Item {
            id: id.to_owned(),
            kind: "k".to_owned(),
            json: serde_json::json!({ "n": n }),
        }
    }

    #[test]
    fn a_page_keeps_the_last_version_of_each_record_and_none_removed() {
        let kept = last_per_id(
            vec![item("a", 1), item("b", 1), item("a", 2), item("c", 1)],
            &["c".to_owned()],
        );
        let ids: Vec<_> = kept
            .iter()
            .map(|i| (i.id.as_str(), i.json["n"].clone()))
            .collect();
        assert_eq!(ids, vec![("b", 1.into()), ("a", 2.into())]);
    }
}
