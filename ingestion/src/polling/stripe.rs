//! Stripe `GET /v1/events`, newest first. A first poll pages back through the events Stripe
//! keeps (30 days) with `starting_after`; later polls page forward from the newest event
//! seen with `ending_before` (each page is the events just newer than it). Every event is
//! about one object (`data.object`): the object is the document, the event its latest
//! content, and a `*.deleted` event deletes it.

use serde::{Deserialize, Serialize};

use super::page::{excerpt, json as parse_json};
use super::secrets::Secret;
use super::{Account, Answer, Item, PollError};

/// Stripe's largest `limit`.
pub const MAX_LIMIT: u32 = 100;

/// The cursor: the newest event of the last finished poll, and this poll's progress.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
struct State {
    newest: Option<String>,
    /// A first poll: the newest event seen, and the oldest (to page back from).
    head: Option<String>,
    back_from: Option<String>,
    /// A later poll: the newest event read so far (to page forward from).
    forward_from: Option<String>,
}

fn state(text: &str) -> Result<State, PollError> {
    super::read_state("stripe", text)
}

pub(crate) fn request(
    http: &reqwest::Client,
    account: &Account,
    state_text: &str,
    secret: impl Fn(&str) -> Result<Secret, PollError>,
) -> Result<reqwest::RequestBuilder, PollError> {
    let s = state(state_text)?;
    let mut query = vec![("limit", account.page_size(MAX_LIMIT).to_string())];
    match (&s.newest, &s.back_from) {
        (Some(newest), _) => {
            let from = s.forward_from.clone().unwrap_or_else(|| newest.clone());
            query.push(("ending_before", from));
        }
        (None, Some(back)) => query.push(("starting_after", back.clone())),
        (None, None) => {}
    }
    Ok(http
        .get(format!("{}/v1/events", account.base_url()))
        .query(&query)
        .bearer_auth(secret("api_key")?.expose()))
}

pub(crate) fn answer(state_text: &str, status: u16, body: &[u8]) -> Result<Answer, PollError> {
    let mut s = state(state_text)?;
    let v = parse_json("stripe", body)?;
    if !(200..300).contains(&status) {
        let e = &v["error"];
        let code = e["code"]
            .as_str()
            .or_else(|| e["type"].as_str())
            .unwrap_or("StripeError");
        return Err(PollError::refused(
            code,
            format!(
                "stripe: HTTP {status}: {}",
                e["message"]
                    .as_str()
                    .map_or_else(|| excerpt(body), str::to_owned)
            ),
        ));
    }
    let data = v["data"].as_array().ok_or_else(|| {
        PollError::refused(
            "InvalidAnswer",
            "stripe: the answer is not a list of events",
        )
    })?;
    let has_more = v["has_more"].as_bool().unwrap_or(false);
    let mut ids = Vec::with_capacity(data.len());
    for event in data {
        let id = event["id"]
            .as_str()
            .ok_or_else(|| PollError::refused("InvalidAnswer", "stripe: an event has no id"))?;
        ids.push(id.to_owned());
    }
    // Oldest first, the last event of each object deciding what becomes of it.
    let (mut records, mut removed): (Vec<Item>, Vec<String>) = (Vec::new(), Vec::new());
    for event in data.iter().rev() {
        let object = &event["data"]["object"];
        let Some(object_id) = object["id"].as_str() else {
            continue; // Events about no object (none in Stripe's list today) are skipped.
        };
        let kind = object["object"].as_str().unwrap_or("object").to_owned();
        records.retain(|r| r.id != object_id);
        removed.retain(|r| r != object_id);
        if event["type"]
            .as_str()
            .is_some_and(|t| t.ends_with(".deleted"))
        {
            removed.push(object_id.to_owned());
        } else {
            records.push(Item {
                id: object_id.to_owned(),
                kind,
                json: event.clone(),
            });
        }
    }
    let more = match s.newest.clone() {
        None => {
            if s.head.is_none() {
                s.head = ids.first().cloned();
            }
            if has_more && let Some(last) = ids.last() {
                s.back_from = Some(last.clone());
                true
            } else {
                s.newest = s.head.take();
                s.back_from = None;
                false
            }
        }
        Some(newest) => {
            let from = ids.first().cloned().or(s.forward_from.take());
            if has_more && !ids.is_empty() {
                s.forward_from = from;
                true
            } else {
                s.newest = Some(from.unwrap_or(newest));
                s.forward_from = None;
                false
            }
        }
    };
    Ok(Answer {
        records,
        removed,
        cursor: s.newest.clone().or(s.head.clone()).unwrap_or_default(),
        state: serde_json::to_string(&s).unwrap_or_default(),
        more,
        restarted: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event(id: &str, kind: &str, object: &str) -> Value {
        json!({"id": id, "object": "event", "type": kind, "created": 1_700_000_000,
               "data": {"object": {"id": object, "object": kind.split('.').next().unwrap_or(""), "amount_due": 1200}}})
    }

    fn list(events: &[Value], more: bool) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"object": "list", "has_more": more, "data": events, "url": "/v1/events"}),
        )
        .expect("json")
    }

    #[test]
    fn a_first_poll_pages_back_and_later_polls_page_forward_from_the_newest() {
        // Newest first: evt_4, evt_3 | evt_2, evt_1.
        let p1 = answer(
            "",
            200,
            &list(
                &[
                    event("evt_4", "invoice.paid", "in_2"),
                    event("evt_3", "invoice.created", "in_2"),
                ],
                true,
            ),
        )
        .expect("p1");
        assert!(p1.more);
        assert_eq!(
            p1.records.len(),
            1,
            "two events of one invoice: one document"
        );
        assert_eq!(p1.records[0].json["type"], "invoice.paid");
        let s = state(&p1.state).expect("state");
        assert_eq!(
            (s.head.as_deref(), s.back_from.as_deref()),
            (Some("evt_4"), Some("evt_3"))
        );
        let p2 = answer(
            &p1.state,
            200,
            &list(
                &[
                    event("evt_2", "customer.created", "cus_1"),
                    event("evt_1", "invoice.created", "in_1"),
                ],
                false,
            ),
        )
        .expect("p2");
        assert!(!p2.more);
        assert_eq!(
            state(&p2.state).expect("state").newest.as_deref(),
            Some("evt_4")
        );
        assert_eq!(p2.cursor, "evt_4");
        // Later: events newer than evt_4, a page at a time.
        let f1 = answer(
            &p2.state,
            200,
            &list(
                &[
                    event("evt_6", "invoice.updated", "in_1"),
                    event("evt_5", "invoice.updated", "in_2"),
                ],
                true,
            ),
        )
        .expect("f1");
        assert!(f1.more);
        assert_eq!(
            state(&f1.state).expect("state").forward_from.as_deref(),
            Some("evt_6")
        );
        let f2 = answer(
            &f1.state,
            200,
            &list(&[event("evt_7", "customer.deleted", "cus_1")], false),
        )
        .expect("f2");
        assert!(!f2.more);
        assert_eq!(f2.removed, vec!["cus_1"]);
        assert_eq!(
            state(&f2.state).expect("state").newest.as_deref(),
            Some("evt_7")
        );
        // Nothing new: the cursor stays.
        let empty = answer(&f2.state, 200, &list(&[], false)).expect("empty");
        assert!(empty.records.is_empty() && !empty.more);
        assert_eq!(
            state(&empty.state).expect("state").newest.as_deref(),
            Some("evt_7")
        );
    }

    #[test]
    fn a_deletion_then_a_recreation_in_one_page_keeps_the_last() {
        let page = answer(
            "",
            200,
            &list(
                &[
                    event("evt_9", "customer.created", "cus_2"),
                    event("evt_8", "customer.deleted", "cus_2"),
                ],
                false,
            ),
        )
        .expect("page");
        assert!(page.removed.is_empty());
        assert_eq!(page.records.len(), 1);
    }

    #[test]
    fn stripe_errors_carry_stripes_code() {
        let body = serde_json::to_vec(&json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****1234"}})).expect("json");
        assert!(matches!(
            answer("", 401, &body),
            Err(PollError::Refused { code, .. }) if code == "invalid_request_error"
        ));
        assert!(matches!(
            answer("", 200, br#"{"object":"list"}"#),
            Err(PollError::Refused { code, .. }) if code == "InvalidAnswer"
        ));
    }
}
