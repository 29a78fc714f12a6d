//! HubSpot CRM v3 search, `POST /crm/v3/objects/{object}/search`: records modified at or
//! after an anchor (`hs_lastmodifieddate GTE`), oldest first, `after` paging. A search
//! gives at most 10,000 results, so before `after` would pass that the poll re-anchors on
//! the last modification it has seen and pages again from there. Records at exactly the
//! anchor's millisecond that were already ingested are skipped, so an incremental poll
//! ingests only what changed; an archived record is a deletion.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::page::{excerpt, json as parse_json};
use super::secrets::Secret;
use super::time::{format_ms, parse_ms};
use super::{Account, Answer, Item, PollError, last_per_id};

/// HubSpot's largest `limit`.
pub const MAX_LIMIT: u32 = 200;
/// The results one search can page through.
pub const SEARCH_CAP: u64 = 10_000;

/// The cursor: the search's anchor, the page within it, and the records at the anchor's
/// millisecond already ingested.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
struct State {
    anchor_ms: i64,
    after: Option<String>,
    at_anchor: BTreeSet<String>,
    /// The newest modification seen in this poll, and the records at it.
    newest_ms: i64,
    at_newest: BTreeSet<String>,
}

fn state(text: &str) -> Result<State, PollError> {
    super::read_state("hubspot", text)
}

fn object(account: &Account) -> &str {
    account.option("object").unwrap_or("contacts")
}

pub(crate) fn request(
    http: &reqwest::Client,
    account: &Account,
    state_text: &str,
    secret: impl Fn(&str) -> Result<Secret, PollError>,
) -> Result<reqwest::RequestBuilder, PollError> {
    let s = state(state_text)?;
    let mut body = json!({
        "filterGroups": [{"filters": [{
            "propertyName": "hs_lastmodifieddate",
            "operator": "GTE",
            "value": s.anchor_ms.to_string(),
        }]}],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "limit": account.page_size(MAX_LIMIT),
    });
    if let Some(props) = account.option("properties") {
        body["properties"] = props.split(',').map(|p| Value::from(p.trim())).collect();
    }
    if let Some(after) = &s.after {
        body["after"] = Value::String(after.clone());
    }
    Ok(http
        .post(format!(
            "{}/crm/v3/objects/{}/search",
            account.base_url(),
            object(account)
        ))
        .bearer_auth(secret("token")?.expose())
        .json(&body))
}

/// A result's last modification: `properties.hs_lastmodifieddate`, else `updatedAt`.
fn modified_ms(result: &Value) -> Option<i64> {
    let prop = &result["properties"]["hs_lastmodifieddate"];
    let text = prop.as_str().or_else(|| result["updatedAt"].as_str())?;
    parse_ms(text).or_else(|| text.parse().ok())
}

pub(crate) fn answer(
    account: &Account,
    state_text: &str,
    status: u16,
    body: &[u8],
) -> Result<Answer, PollError> {
    let mut s = state(state_text)?;
    let v = parse_json("hubspot", body)?;
    if !(200..300).contains(&status) {
        let category = v["category"].as_str().unwrap_or("HubSpotError");
        return Err(PollError::refused(
            category,
            format!(
                "hubspot: HTTP {status}: {}",
                v["message"]
                    .as_str()
                    .map_or_else(|| excerpt(body), str::to_owned)
            ),
        ));
    }
    let results = v["results"]
        .as_array()
        .ok_or_else(|| PollError::refused("InvalidAnswer", "hubspot: the answer has no results"))?;
    let kind = match object(account) {
        "companies" => "company".to_owned(),
        plural => plural.trim_end_matches('s').to_owned(),
    };
    let (mut records, mut removed) = (Vec::new(), Vec::new());
    for r in results {
        let id = match &r["id"] {
            Value::String(id) => id.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(PollError::refused(
                    "InvalidAnswer",
                    "hubspot: a result has no id",
                ));
            }
        };
        let modified = modified_ms(r).ok_or_else(|| {
            PollError::refused(
                "InvalidAnswer",
                format!("hubspot: result {id} has no hs_lastmodifieddate or updatedAt"),
            )
        })?;
        if modified > s.newest_ms {
            s.newest_ms = modified;
            s.at_newest.clear();
        }
        if modified == s.newest_ms {
            s.at_newest.insert(id.clone());
        }
        // Seen at the anchor already (by the previous poll, or before a re-anchor).
        if modified == s.anchor_ms && s.at_anchor.contains(&id) {
            continue;
        }
        if r["archived"].as_bool() == Some(true) {
            removed.push(id);
        } else {
            records.push(Item {
                id,
                kind: kind.clone(),
                json: r.clone(),
            });
        }
    }
    let next_after = v["paging"]["next"]["after"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| v["paging"]["next"]["after"].as_u64().map(|n| n.to_string()));
    let page_size = u64::from(account.page_size(MAX_LIMIT));
    let more = match next_after {
        // Within the cap: the next page of this search.
        Some(after) if !matches!(after.parse::<u64>(), Ok(n) if n + page_size > SEARCH_CAP) => {
            s.after = Some(after);
            true
        }
        // At the cap: a new search from the newest modification seen. (Should more than
        // 10,000 records share one millisecond it cannot move on; HubSpot's own limit.)
        Some(_) => {
            reanchor(&mut s);
            true
        }
        None => {
            if s.newest_ms >= s.anchor_ms && !s.at_newest.is_empty() {
                reanchor(&mut s);
            } else {
                s.after = None;
            }
            false
        }
    };
    Ok(Answer {
        records: last_per_id(records, &removed),
        removed,
        cursor: format_ms(s.anchor_ms),
        state: serde_json::to_string(&s).unwrap_or_default(),
        more,
        restarted: false,
    })
}

/// The next search starts at the newest modification seen, skipping the records at it.
fn reanchor(s: &mut State) {
    if s.newest_ms == s.anchor_ms {
        s.at_anchor.extend(std::mem::take(&mut s.at_newest));
    } else {
        s.anchor_ms = s.newest_ms;
        s.at_anchor = std::mem::take(&mut s.at_newest);
    }
    s.at_newest = s.at_anchor.clone();
    s.after = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            name: "crm".into(),
            provider: super::super::Provider::Hubspot,
            options: [
                ("object".to_owned(), "companies".to_owned()),
                ("page_size".to_owned(), "2".to_owned()),
            ]
            .into(),
            ..Account::default()
        }
    }

    fn page(results: &[(&str, &str)], after: Option<&str>) -> Vec<u8> {
        let results: Vec<Value> = results
            .iter()
            .map(|(id, at)| json!({"id": id, "properties": {"name": format!("Co {id}"), "hs_lastmodifieddate": at}, "archived": false}))
            .collect();
        let mut v = json!({"total": results.len(), "results": results});
        if let Some(a) = after {
            v["paging"] = json!({"next": {"after": a}});
        }
        serde_json::to_vec(&v).expect("json")
    }

    const T1: &str = "2024-01-05T10:00:00.000Z";
    const T2: &str = "2024-01-05T11:00:00.000Z";
    const T3: &str = "2024-01-05T12:00:00.000Z";

    #[test]
    fn a_full_sync_then_an_incremental_one_ingests_only_what_changed() {
        let a = account();
        let p1 = answer(&a, "", 200, &page(&[("1", T1), ("2", T2)], Some("2"))).expect("p1");
        assert!(p1.more);
        assert_eq!(p1.records.len(), 2);
        assert_eq!(p1.records[0].kind, "company");
        let p2 = answer(&a, &p1.state, 200, &page(&[("3", T2)], None)).expect("p2");
        assert!(!p2.more);
        let s = state(&p2.state).expect("state");
        assert_eq!(s.anchor_ms, parse_ms(T2).expect("t2"));
        assert_eq!(
            s.at_anchor,
            BTreeSet::from(["2".to_owned(), "3".to_owned()])
        );
        assert_eq!(p2.cursor, T2);
        // The next poll's search from T2 gives 2 and 3 again (GTE) and 4, changed since.
        let inc = answer(
            &a,
            &p2.state,
            200,
            &page(&[("2", T2), ("3", T2), ("4", T3)], None),
        )
        .expect("incremental");
        let ids: Vec<_> = inc.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["4"]);
        // Nothing new: an empty poll keeps the anchor.
        let s = state(&inc.state).expect("state");
        let empty = answer(&a, &inc.state, 200, &page(&[("4", T3)], None)).expect("empty");
        assert!(empty.records.is_empty());
        assert_eq!(state(&empty.state).expect("state").anchor_ms, s.anchor_ms);
        // A record changed again at the anchor's millisecond is skipped only if seen.
        let again =
            answer(&a, &inc.state, 200, &page(&[("4", T3), ("5", T3)], None)).expect("again");
        assert_eq!(
            again
                .records
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            vec!["5"]
        );
    }

    #[test]
    fn the_search_cap_reanchors_on_the_newest_modification_seen() {
        let a = account();
        // `after` = 9,999: one more page of two would pass 10,000 results.
        let capped =
            answer(&a, "", 200, &page(&[("9", T1), ("10", T2)], Some("9999"))).expect("cap");
        assert!(capped.more);
        let s = state(&capped.state).expect("state");
        assert_eq!(s.after, None);
        assert_eq!(s.anchor_ms, parse_ms(T2).expect("t2"));
        assert!(s.at_anchor.contains("10"));
    }

    #[test]
    fn archived_records_are_deletions_and_errors_carry_hubspots_category() {
        let a = account();
        let body = serde_json::to_vec(&json!({"results": [
            {"id": "7", "properties": {"hs_lastmodifieddate": T1}, "archived": true}
        ]}))
        .expect("json");
        let page = answer(&a, "", 200, &body).expect("page");
        assert_eq!(page.removed, vec!["7"]);
        assert!(page.records.is_empty());
        let err = serde_json::to_vec(&json!({"status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"})).expect("json");
        assert!(matches!(
            answer(&a, "", 401, &err),
            Err(PollError::Refused { code, message }) if code == "INVALID_AUTHENTICATION" && message.contains("credentials")
        ));
        let undated =
            serde_json::to_vec(&json!({"results": [{"id": "8", "properties": {}}]})).expect("json");
        assert!(matches!(
            answer(&a, "", 200, &undated),
            Err(PollError::Refused { code, .. }) if code == "InvalidAnswer"
        ));
    }
}
