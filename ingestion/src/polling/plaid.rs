//! Plaid `POST /transactions/sync`: `{client_id, secret, access_token, cursor, count}` →
//! `{added, modified, removed, next_cursor, has_more}`. The cursor is kept only once a poll
//! has read every page (`has_more` false); when Plaid answers
//! `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION` the poll starts again from the cursor it
//! began with (the records already ingested are ingested again as `unchanged`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::page::{excerpt, json as parse_json};
use super::secrets::Secret;
use super::{Account, Answer, Item, PollError, last_per_id};

/// Plaid's largest `count`.
pub const MAX_COUNT: u32 = 500;

/// The cursor: where the poll began (kept between polls) and the next page's.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
struct State {
    start: String,
    page: String,
}

fn state(text: &str) -> Result<State, PollError> {
    super::read_state("plaid", text)
}

fn text(s: &State) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

pub(crate) fn request(
    http: &reqwest::Client,
    account: &Account,
    state_text: &str,
    secret: impl Fn(&str) -> Result<Secret, PollError>,
) -> Result<reqwest::RequestBuilder, PollError> {
    let s = state(state_text)?;
    let mut body = json!({
        "client_id": account.option("client_id").unwrap_or_default(),
        "secret": secret("secret")?.expose(),
        "access_token": secret("access_token")?.expose(),
        "count": account.page_size(MAX_COUNT),
    });
    if !s.page.is_empty() {
        body["cursor"] = Value::String(s.page);
    }
    Ok(http
        .post(format!("{}/transactions/sync", account.base_url()))
        .json(&body))
}

pub(crate) fn answer(state_text: &str, status: u16, body: &[u8]) -> Result<Answer, PollError> {
    let s = state(state_text)?;
    let v = parse_json("plaid", body)?;
    if !(200..300).contains(&status) {
        let code = v["error_code"].as_str().unwrap_or_default();
        if code == "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION" {
            let restart = State {
                page: s.start.clone(),
                start: s.start,
            };
            return Ok(Answer {
                cursor: restart.page.clone(),
                state: text(&restart),
                more: true,
                restarted: true,
                ..Answer::default()
            });
        }
        let code = if code.is_empty() { "PlaidError" } else { code };
        return Err(PollError::refused(
            code,
            format!(
                "plaid: HTTP {status}: {}",
                v["error_message"]
                    .as_str()
                    .map_or_else(|| excerpt(body), str::to_owned)
            ),
        ));
    }
    let next = v["next_cursor"].as_str().ok_or_else(|| {
        PollError::refused("InvalidAnswer", "plaid: the answer has no next_cursor")
    })?;
    let has_more = v["has_more"].as_bool().unwrap_or(false);
    let mut records = Vec::new();
    for list in ["added", "modified"] {
        for tx in v[list].as_array().into_iter().flatten() {
            let Some(id) = tx["transaction_id"].as_str() else {
                return Err(PollError::refused(
                    "InvalidAnswer",
                    format!("plaid: a transaction in `{list}` has no transaction_id"),
                ));
            };
            records.push(Item {
                id: id.to_owned(),
                kind: "transaction".to_owned(),
                json: tx.clone(),
            });
        }
    }
    let removed: Vec<String> = v["removed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["transaction_id"].as_str().map(str::to_owned))
        .collect();
    let next_state = if has_more {
        State {
            start: s.start,
            page: next.to_owned(),
        }
    } else {
        State {
            start: next.to_owned(),
            page: next.to_owned(),
        }
    };
    Ok(Answer {
        records: last_per_id(records, &removed),
        removed,
        state: text(&next_state),
        more: has_more,
        cursor: next.to_owned(),
        restarted: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(added: &[&str], removed: &[&str], next: &str, more: bool) -> Vec<u8> {
        let tx = |id: &&str| json!({"transaction_id": id, "account_id": "acc", "amount": 12.5, "name": "Fuel"});
        serde_json::to_vec(&json!({
            "added": added.iter().map(tx).collect::<Vec<_>>(),
            "modified": [],
            "removed": removed.iter().map(|id| json!({"transaction_id": id, "account_id": "acc"})).collect::<Vec<_>>(),
            "next_cursor": next,
            "has_more": more,
            "request_id": "r1",
        }))
        .expect("json")
    }

    #[test]
    fn pages_advance_the_cursor_which_is_kept_only_at_the_end() {
        let first = answer("", 200, &page(&["t1", "t2"], &[], "c1", true)).expect("page 1");
        assert!(first.more);
        assert_eq!(first.records.len(), 2);
        assert_eq!(state(&first.state).expect("state").start, "");
        let last = answer(&first.state, 200, &page(&["t3"], &["t0"], "c2", false)).expect("page 2");
        assert!(!last.more);
        assert_eq!(last.removed, vec!["t0"]);
        assert_eq!(
            state(&last.state).expect("state"),
            State {
                start: "c2".into(),
                page: "c2".into()
            }
        );
        // An empty poll is normal.
        let empty = answer(&last.state, 200, &page(&[], &[], "c2", false)).expect("empty");
        assert!(empty.records.is_empty() && !empty.more);
    }

    #[test]
    fn a_mutation_during_pagination_restarts_from_the_polls_first_cursor() {
        let mid = text(&State {
            start: "c1".into(),
            page: "c5".into(),
        });
        let err = serde_json::to_vec(&json!({
            "error_type": "TRANSACTIONS_ERROR",
            "error_code": "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
            "error_message": "Underlying transaction data changed since last page was fetched. Please restart pagination from last update."
        }))
        .expect("json");
        let restarted = answer(&mid, 400, &err).expect("restart");
        assert!(restarted.restarted && restarted.more && restarted.records.is_empty());
        assert_eq!(state(&restarted.state).expect("state").page, "c1");
    }

    #[test]
    fn plaid_errors_are_refusals_with_plaids_code_and_bad_answers_are_named() {
        let err = serde_json::to_vec(&json!({
            "error_type": "INVALID_INPUT",
            "error_code": "INVALID_ACCESS_TOKEN",
            "error_message": "provided access token is in an invalid format"
        }))
        .expect("json");
        match answer("", 400, &err) {
            Err(PollError::Refused { code, message }) => {
                assert_eq!(code, "INVALID_ACCESS_TOKEN");
                assert!(message.contains("invalid format"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            answer("", 200, b"<html>"),
            Err(PollError::Refused { code, .. }) if code == "InvalidAnswer"
        ));
        assert!(matches!(
            answer("", 200, br#"{"added":[]}"#),
            Err(PollError::Refused { code, .. }) if code == "InvalidAnswer"
        ));
        assert!(matches!(
            answer("not json", 200, &page(&[], &[], "c", false)),
            Err(PollError::Refused { code, .. }) if code == "InvalidState"
        ));
    }
}
