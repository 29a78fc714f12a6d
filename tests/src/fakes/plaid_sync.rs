//! Plaid `POST /transactions/sync` over a change log: a cursor is a position in the log,
//! each page the next `count` changes as `added`, `modified` and `removed`. It checks
//! `client_id`, `secret` and `access_token`, answers `count` over 500 with
//! `INVALID_FIELD`, can answer the next requests with 429 (`RATE_LIMIT_EXCEEDED`), and can
//! report `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION` once on a later page.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::faults::{Admit, Faults};

/// The access token the fake's item has.
pub const ACCESS_TOKEN: &str = "access-sandbox-5cd6e1b1-1b5b-459d-9284-366e2da89755";

#[derive(Debug, Clone)]
enum Change {
    Added(Value),
    Modified(Value),
    Removed(String),
}

/// The item's transactions as a log of changes.
#[derive(Debug, Default)]
pub struct Ledger {
    log: Mutex<Vec<Change>>,
    /// Where the last sync ended (its last page's `next_cursor`): a request from anywhere
    /// else is a later page of a sync.
    synced_to: Mutex<usize>,
    mutate_once: AtomicBool,
    pub faults: Faults,
}

/// A transaction as Plaid gives it.
pub fn transaction(id: &str, name: &str, amount: f64, date: &str) -> Value {
    json!({
        "account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp",
        "amount": amount,
        "iso_currency_code": "USD",
        "date": date,
        "name": name,
        "merchant_name": name,
        "payment_channel": "in store",
        "pending": false,
        "transaction_id": id,
        "category": ["Travel", "Gas Stations"],
    })
}

impl Ledger {
    pub fn add(&self, tx: Value) {
        self.push(Change::Added(tx));
    }

    pub fn modify(&self, tx: Value) {
        self.push(Change::Modified(tx));
    }

    pub fn remove(&self, id: &str) {
        self.push(Change::Removed(id.to_owned()));
    }

    fn push(&self, change: Change) {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(change);
    }

    /// The next request for a page after the first of a sync is refused with
    /// `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`, once.
    pub fn mutate_during_next_pagination(&self) {
        self.mutate_once.store(true, Ordering::SeqCst);
    }

    pub(crate) async fn sync(&self, request: Value) -> Response {
        if self.faults.admit().await == Admit::RateLimit {
            return super::plaid::plaid_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMIT_EXCEEDED",
                "TRANSACTIONS_SYNC_LIMIT",
                "rate limit exceeded for attempts to access this item. please try again later",
            );
        }
        if request["client_id"] != super::plaid::CLIENT_ID
            || request["secret"] != super::plaid::SECRET
        {
            return super::plaid::plaid_error(
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                "INVALID_API_KEYS",
                "invalid client_id or secret provided",
            );
        }
        if request["access_token"] != ACCESS_TOKEN {
            return super::plaid::plaid_error(
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                "INVALID_ACCESS_TOKEN",
                "provided access token is in an invalid format. expected format: access-<environment>-<identifier>",
            );
        }
        let count = request["count"].as_u64().unwrap_or(100);
        if !(1..=500).contains(&count) {
            return super::plaid::plaid_error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "INVALID_FIELD",
                "count must be between 1 and 500",
            );
        }
        let from = match request["cursor"].as_str().unwrap_or("") {
            "" => 0,
            c => match c.strip_prefix("c").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => n,
                None => {
                    return super::plaid::plaid_error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_REQUEST",
                        "INVALID_FIELD",
                        "cursor is invalid",
                    );
                }
            },
        };
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let synced_to = *self
            .synced_to
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A page after the first of a sync: the data may have changed under it.
        if from != synced_to && self.mutate_once.swap(false, Ordering::SeqCst) {
            return super::plaid::plaid_error(
                StatusCode::BAD_REQUEST,
                "TRANSACTIONS_ERROR",
                "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
                "Underlying transaction data changed since last page was fetched. Please restart pagination from last update.",
            );
        }
        let from = from.min(log.len());
        let to = (from + count as usize).min(log.len());
        if to == log.len() {
            *self
                .synced_to
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
        }
        let (mut added, mut modified, mut removed) = (Vec::new(), Vec::new(), Vec::new());
        for change in &log[from..to] {
            match change {
                Change::Added(tx) => added.push(tx.clone()),
                Change::Modified(tx) => modified.push(tx.clone()),
                Change::Removed(id) => removed.push(json!({
                    "account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp",
                    "transaction_id": id,
                })),
            }
        }
        Json(json!({
            "accounts": [],
            "added": added,
            "modified": modified,
            "removed": removed,
            "next_cursor": format!("c{to}"),
            "has_more": to < log.len(),
            "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
            "request_id": uuid::Uuid::new_v4().simple().to_string(),
        }))
        .into_response()
    }
}
