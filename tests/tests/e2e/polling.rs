//! Polled APIs through a real worker into the running stack: for Plaid, HubSpot and Stripe
//! (local servers speaking their wire formats) a first full sync, an incremental one that
//! ingests only what changed, deletions removed from every store, a 429 storm that delays
//! and loses nothing, Plaid's mutation-during-pagination restart, continue-as-new keeping
//! the cursor, a worker killed mid-page that resumes without duplicates, and refusals
//! (bad credentials, a missing secret) reported by `get_stats` without a secret in sight.

use std::time::{Duration, Instant};

use apex_e2e::Stack;
use apex_e2e::fakes::hubspot::FakeHubspot;
use apex_e2e::fakes::plaid::{CLIENT_ID, FakePlaid, SECRET};
use apex_e2e::fakes::plaid_sync::{ACCESS_TOKEN, transaction};
use apex_e2e::fakes::stripe::{API_KEY, FakeStripe};
use apex_ingestion::polling::{
    Account, PollInput, PollSignal, PollStats, Polling, PollingStats, Provider,
    polling_workflow_id, record_document_id, secret_env_name,
};
use apex_proto::writer::v1::InspectDocumentRequest;
use apex_proto::writer::v1::writer_service_client::WriterServiceClient;
use serde_json::json;
use temporalio_client::{
    Client, WorkflowHandle, WorkflowQueryOptions, WorkflowSignalOptions, WorkflowStartOptions,
    WorkflowTerminateOptions,
};

use crate::gateway::entities;
use crate::worker::{WorkerProc, mesh_worker, mesh_worker_on};

type Poller = WorkflowHandle<Client, Polling>;

fn name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// A worker that may reach the fakes on 127.0.0.1, with `secrets` as
/// `APEX_POLL_SECRET_<ACCOUNT>_<NAME>` variables.
fn worker(stack: &Stack, secrets: &[(String, &str)]) -> (WorkerProc, String) {
    let mut env: Vec<(&str, &str)> = vec![("APEX_WORKER__INGEST__FETCH_ALLOW", "127.0.0.1")];
    env.extend(secrets.iter().map(|(k, v)| (k.as_str(), *v)));
    mesh_worker(stack, "polling", &env)
}

async fn start(stack: &Stack, queue: &str, account: Account, polls_per_run: u64) -> Poller {
    start_run(stack, queue, account, polls_per_run).await.0
}

/// Starts a poller: a handle on whichever run is current, and one on the first run.
async fn start_run(
    stack: &Stack,
    queue: &str,
    account: Account,
    polls_per_run: u64,
) -> (Poller, Poller) {
    let client = apex_ingestion::workflows::client(&stack.temporal_address(), "default")
        .await
        .expect("temporal");
    let id = polling_workflow_id(&account.name);
    let input = PollInput {
        account,
        interval_secs: 3600,
        polls_per_run,
        ..PollInput::default()
    };
    let first = client
        .start_workflow(
            Polling,
            input.into(),
            WorkflowStartOptions::new(queue, id.clone()).build(),
        )
        .await
        .expect("start the poller");
    // Without a run id: queries and signals reach the current run after continue-as-new.
    (client.get_workflow_handle::<Polling>(id), first)
}

async fn stats(poller: &Poller) -> PollStats {
    poller
        .query(PollingStats, (), WorkflowQueryOptions::default())
        .await
        .expect("get_stats")
}

/// The poller's stats once `done` holds (asked every 200 ms, for at most `within`).
async fn until(poller: &Poller, within: Duration, done: impl Fn(&PollStats) -> bool) -> PollStats {
    let deadline = Instant::now() + within;
    loop {
        let s = stats(poller).await;
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the poller never got there: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn poll_now(poller: &Poller) {
    poller
        .signal(PollSignal::PollNow, (), WorkflowSignalOptions::default())
        .await
        .expect("poll_now");
}

async fn stop(poller: &Poller) {
    let _ = poller
        .terminate(
            WorkflowTerminateOptions::builder()
                .reason("test over".to_owned())
                .build(),
        )
        .await;
}

/// (in every store, in none, version) of a document.
async fn stored(stack: &Stack, document_id: &str) -> (bool, bool, u64) {
    let mut writer = WriterServiceClient::connect(stack.writer_url())
        .await
        .expect("the stack's writer");
    let r = writer
        .inspect_document(InspectDocumentRequest {
            document_id: document_id.to_owned(),
        })
        .await
        .expect("inspect")
        .into_inner();
    let all = !r.stores.is_empty() && r.stores.iter().all(|s| s.present);
    let none = r.stores.iter().all(|s| !s.present);
    (all && r.consistent, none, r.version)
}

fn plaid_account(name: &str, url: &str) -> (Account, Vec<(String, &'static str)>) {
    let account = Account {
        name: name.to_owned(),
        provider: Provider::Plaid,
        base_url: url.to_owned(),
        options: [
            ("client_id".to_owned(), CLIENT_ID.to_owned()),
            ("page_size".to_owned(), "2".to_owned()),
        ]
        .into(),
    };
    let secrets = vec![
        (secret_env_name(name, "secret"), SECRET),
        (secret_env_name(name, "access_token"), ACCESS_TOKEN),
    ];
    (account, secrets)
}

/// A HubSpot account reading companies, two a page.
fn hubspot_account(name: &str, url: &str) -> Account {
    Account {
        name: name.to_owned(),
        provider: Provider::Hubspot,
        base_url: url.to_owned(),
        options: [
            ("object".to_owned(), "companies".to_owned()),
            ("page_size".to_owned(), "2".to_owned()),
        ]
        .into(),
    }
}

/// A Stripe account, two events a page.
fn stripe_account(name: &str, url: &str) -> Account {
    Account {
        name: name.to_owned(),
        provider: Provider::Stripe,
        base_url: url.to_owned(),
        options: [("page_size".to_owned(), "2".to_owned())].into(),
    }
}

const WITHIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaid_syncs_fully_then_incrementally_through_rate_limits_restarts_and_continue_as_new() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let plaid = FakePlaid::start().await.expect("fake plaid");
    let ledger = plaid.ledger();
    ledger.add(transaction("tx-1", "Shell", 84.32, "2026-11-28"));
    ledger.add(transaction("tx-2", "Pilot Flying J", 412.10, "2026-11-29"));
    ledger.add(transaction(
        "tx-3",
        "Love's Travel Stops",
        96.75,
        "2026-11-30",
    ));
    let acct = name("plaid");
    let (account, secrets) = plaid_account(&acct, &plaid.url);
    let (_worker, queue) = worker(&stack, &secrets);
    let (poller, first_run) = start_run(&stack, &queue, account.clone(), 3).await;

    // A first, full sync: two pages of two.
    let s = until(&poller, WITHIN, |s| s.polls >= 1).await;
    assert_eq!((s.records, s.pages, s.failed), (3, 2, 0), "{s:?}");
    assert_eq!(s.last_error, None);
    let doc = |id: &str| record_document_id(&account, id);
    for id in ["tx-1", "tx-2", "tx-3"] {
        assert_eq!(stored(&stack, &doc(id)).await, (true, false, 1), "{id}");
    }

    // Changes, read through a 429 storm and a mutation during pagination.
    ledger.modify(transaction("tx-2", "Pilot Flying J", 415.00, "2026-11-29"));
    ledger.add(transaction("tx-4", "TA Petro", 150.00, "2026-12-01"));
    ledger.remove("tx-1");
    ledger.faults.rate_limit_next(3);
    ledger.mutate_during_next_pagination();
    poll_now(&poller).await;
    let s = until(&poller, WITHIN, |s| s.polls >= 2).await;
    assert_eq!(ledger.faults.throttled(), 3, "the storm was met");
    assert_eq!(s.restarts, 1, "{s:?}");
    // tx-2 and tx-4 ingested, read again after the restart as unchanged; tx-1 deleted.
    assert_eq!(
        (s.records, s.unchanged, s.deleted, s.failed),
        (5, 2, 1, 0),
        "{s:?}"
    );
    assert!(
        stored(&stack, &doc("tx-1")).await.1,
        "tx-1 is gone from every store"
    );
    assert_eq!(stored(&stack, &doc("tx-2")).await, (true, false, 2));
    assert_eq!(stored(&stack, &doc("tx-4")).await, (true, false, 1));
    let found = entities(&stack, &doc("tx-4")).await;
    assert!(
        found
            .iter()
            .any(|(t, k)| t == "ORGANIZATION" && k.contains("petro")),
        "the payee: {found:?}"
    );

    // The third poll ends the run; the next run keeps the cursor and the counts.
    poll_now(&poller).await;
    let s = until(&poller, WITHIN, |s| s.runs >= 2).await;
    assert_eq!(s.polls, 3, "{s:?}");
    ledger.add(transaction("tx-5", "Shell", 61.20, "2026-12-02"));
    poll_now(&poller).await;
    let s = until(&poller, WITHIN, |s| s.polls >= 4).await;
    assert_eq!((s.records, s.unchanged), (6, 2), "only tx-5 is new: {s:?}");
    assert_eq!(stored(&stack, &doc("tx-5")).await, (true, false, 1));
    // The first run (pages, children, a deletion, a restart, signals, continue-as-new) for
    // the worker's replay test.
    crate::worker::record_history(&first_run, "polling-plaid").await;
    // The secrets are read on the worker: none is in the history.
    // (Payloads are raw bytes inside the encoded history.)
    let events = first_run
        .fetch_history(temporalio_client::WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .expect("history");
    let encoded = prost::Message::encode_to_vec(
        &temporalio_common::protos::temporal::api::history::v1::History { events },
    );
    let holds = |text: &str| encoded.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(holds(CLIENT_ID), "the history is the poller's");
    assert!(!holds(SECRET) && !holds(ACCESS_TOKEN));
    stop(&poller).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_and_stripe_sync_incrementally_and_delete_what_they_report_deleted() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let hub = FakeHubspot::start().await.expect("fake hubspot");
    let stripe = FakeStripe::start().await.expect("fake stripe");
    let crm = hub.crm();
    crm.put(
        "companies",
        "101",
        json!({"name": "Keystone Interstate Freight", "domain": "keystone.example"}),
        "2026-11-30T10:00:00.000Z",
    );
    crm.put(
        "companies",
        "102",
        json!({"name": "Harbor Point Beverages"}),
        "2026-11-30T11:00:00.000Z",
    );
    crm.put(
        "companies",
        "103",
        json!({"name": "Great Lakes Industrial Supply"}),
        "2026-11-30T11:00:00.000Z",
    );
    let events = stripe.events();
    events.emit(
        "customer.created",
        json!({"id": "cus_1", "object": "customer", "name": "Harbor Point Beverages"}),
    );
    events.emit("invoice.created", json!({"id": "in_1", "object": "invoice", "number": "INV-0042", "customer_name": "Harbor Point Beverages", "amount_due": 245000, "currency": "usd"}));
    events.emit("invoice.paid", json!({"id": "in_1", "object": "invoice", "number": "INV-0042", "customer_name": "Harbor Point Beverages", "amount_paid": 245000, "currency": "usd"}));

    let (hub_name, stripe_name) = (name("crm"), name("billing"));
    let secrets = vec![
        (
            secret_env_name(&hub_name, "token"),
            apex_e2e::fakes::hubspot::TOKEN,
        ),
        (secret_env_name(&stripe_name, "api_key"), API_KEY),
    ];
    let (_worker, queue) = worker(&stack, &secrets);
    let hub_account = hubspot_account(&hub_name, &hub.url);
    let stripe_account = stripe_account(&stripe_name, &stripe.url);
    // Two polls a run: the second poll ends the first run.
    let hub_poller = start(&stack, &queue, hub_account.clone(), 2).await;
    let stripe_poller = start(&stack, &queue, stripe_account.clone(), 2).await;

    let s = until(&hub_poller, WITHIN, |s| s.polls >= 1).await;
    assert_eq!((s.records, s.failed), (3, 0), "hubspot: {s:?}");
    let s = until(&stripe_poller, WITHIN, |s| s.polls >= 1).await;
    // Three events about two objects: two documents (the invoice at its latest event).
    assert_eq!((s.records, s.failed), (2, 0), "stripe: {s:?}");
    let invoice = record_document_id(&stripe_account, "in_1");
    assert_eq!(stored(&stack, &invoice).await, (true, false, 1));
    // Records become entities through the parser's per-provider reading.
    let found = entities(&stack, &invoice).await;
    assert!(
        found.contains(&("INVOICE_NUMBER".to_owned(), "INV-0042".to_owned())),
        "{found:?}"
    );
    let company = record_document_id(&hub_account, "101");
    let found = entities(&stack, &company).await;
    assert!(
        found
            .iter()
            .any(|(t, k)| t == "ORGANIZATION" && k.contains("keystone")),
        "{found:?}"
    );

    // HubSpot: 102 changes, 103 is archived; 101 and the rest are not ingested again.
    crm.put(
        "companies",
        "102",
        json!({"name": "Harbor Point Beverages", "phone": "+1 419 555 0100"}),
        "2026-12-01T09:00:00.000Z",
    );
    crm.archive("companies", "103", "2026-12-01T09:30:00.000Z");
    // Stripe: the customer is deleted, the invoice changes.
    events.emit("invoice.updated", json!({"id": "in_1", "object": "invoice", "number": "INV-0042", "customer_name": "Harbor Point Beverages", "amount_paid": 245000, "currency": "usd", "description": "Linehaul Toledo to Nashville"}));
    events.emit(
        "customer.deleted",
        json!({"id": "cus_1", "object": "customer", "deleted": true}),
    );
    hub.crm().faults.rate_limit_next(2);
    stripe.events().faults.rate_limit_next(2);
    poll_now(&hub_poller).await;
    poll_now(&stripe_poller).await;
    let s = until(&hub_poller, WITHIN, |s| s.polls >= 2).await;
    assert_eq!(
        (s.records, s.unchanged, s.deleted, s.failed),
        (4, 0, 1, 0),
        "hubspot: {s:?}"
    );
    assert_eq!(hub.crm().faults.throttled(), 2);
    assert!(
        stored(&stack, &record_document_id(&hub_account, "103"))
            .await
            .1
    );
    assert_eq!(
        stored(&stack, &record_document_id(&hub_account, "102")).await,
        (true, false, 2)
    );
    let s = until(&stripe_poller, WITHIN, |s| s.polls >= 2).await;
    assert_eq!((s.records, s.deleted, s.failed), (3, 1, 0), "stripe: {s:?}");
    assert!(
        stored(&stack, &record_document_id(&stripe_account, "cus_1"))
            .await
            .1
    );
    assert_eq!(stored(&stack, &invoice).await, (true, false, 2));
    stop(&hub_poller).await;
    stop(&stripe_poller).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_page_resumes_from_its_cursor_without_duplicates() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    // Four records at each provider, two a page.
    let plaid = FakePlaid::start().await.expect("fake plaid");
    let hub = FakeHubspot::start().await.expect("fake hubspot");
    let stripe = FakeStripe::start().await.expect("fake stripe");
    for i in 1..=4 {
        let tx = transaction(
            &format!("tx-{i}"),
            "Pilot Flying J",
            100.0 + f64::from(i),
            "2026-12-01",
        );
        plaid.ledger().add(tx);
        let at = format!("2026-12-01T0{i}:00:00.000Z");
        hub.crm().put(
            "companies",
            &i.to_string(),
            json!({"name": format!("Carrier {i}")}),
            &at,
        );
        stripe.events().emit(
            "customer.created",
            json!({"id": format!("cus_{i}"), "object": "customer"}),
        );
    }
    let (plaid_name, hub_name, stripe_name) =
        (name("killed"), name("killedcrm"), name("killedbill"));
    let (plaid_account, mut secrets) = plaid_account(&plaid_name, &plaid.url);
    secrets.push((
        secret_env_name(&hub_name, "token"),
        apex_e2e::fakes::hubspot::TOKEN,
    ));
    secrets.push((secret_env_name(&stripe_name, "api_key"), API_KEY));
    let hub_account = hubspot_account(&hub_name, &hub.url);
    let stripe_account = stripe_account(&stripe_name, &stripe.url);
    let faults = [
        &plaid.ledger().faults,
        &hub.crm().faults,
        &stripe.events().faults,
    ];
    // At each, the first page goes through; the second is held while its worker dies.
    for f in faults {
        f.hold_after(1);
    }
    let (mut first, queue) = worker(&stack, &secrets);
    let accounts = [plaid_account, hub_account, stripe_account];
    let mut pollers = Vec::new();
    for a in &accounts {
        pollers.push(start(&stack, &queue, a.clone(), 0).await);
    }
    for f in faults {
        tokio::time::timeout(WITHIN, f.arrival())
            .await
            .expect("the second page was asked for");
    }
    for p in &pollers {
        assert_eq!(stats(p).await.pages, 1);
    }
    first.kill();
    let mut env: Vec<(&str, &str)> = vec![("APEX_WORKER__INGEST__FETCH_ALLOW", "127.0.0.1")];
    env.extend(secrets.iter().map(|(k, v)| (k.as_str(), *v)));
    let _second = mesh_worker_on(&stack, &queue, &env);
    for f in faults {
        f.release();
    }
    let ids = [
        ["tx-1", "tx-2", "tx-3", "tx-4"].map(str::to_owned),
        ["1", "2", "3", "4"].map(str::to_owned),
        ["cus_1", "cus_2", "cus_3", "cus_4"].map(str::to_owned),
    ];
    for ((poller, account), ids) in pollers.iter().zip(&accounts).zip(&ids) {
        let s = until(poller, Duration::from_secs(180), |s| s.polls >= 1).await;
        let provider = account.provider.as_str();
        assert_eq!(
            (s.failed, s.records + s.unchanged),
            (0, 4),
            "{provider}: {s:?}"
        );
        for id in ids {
            let doc = record_document_id(account, id);
            assert_eq!(
                stored(&stack, &doc).await,
                (true, false, 1),
                "{provider} {id} stored once"
            );
        }
        stop(poller).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_missing_secrets_are_reported_and_nothing_is_ingested() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let stripe = FakeStripe::start().await.expect("fake stripe");
    stripe.events().emit(
        "customer.created",
        json!({"id": "cus_9", "object": "customer"}),
    );
    let (wrong, missing) = (name("wrongkey"), name("nokey"));
    let secrets = vec![(
        secret_env_name(&wrong, "api_key"),
        "sk_test_not_the_right_key_0000",
    )];
    let (_worker, queue) = worker(&stack, &secrets);
    let account = |n: &str| Account {
        name: n.to_owned(),
        provider: Provider::Stripe,
        base_url: stripe.url.clone(),
        ..Account::default()
    };
    let refused = start(&stack, &queue, account(&wrong), 0).await;
    let unset = start(&stack, &queue, account(&missing), 0).await;
    let s = until(&refused, WITHIN, |s| {
        s.last_error.is_some() && s.status == "waiting"
    })
    .await;
    let error = s.last_error.clone().unwrap_or_default();
    assert!(error.contains("Invalid API Key"), "{error}");
    assert!(
        !format!("{s:?}").contains("sk_test_not_the_right_key"),
        "{s:?}"
    );
    assert_eq!((s.polls, s.records), (0, 0));
    let s = until(&unset, WITHIN, |s| s.last_error.is_some()).await;
    let error = s.last_error.clone().unwrap_or_default();
    assert!(
        error.contains(&secret_env_name(&missing, "api_key")),
        "{error}"
    );
    assert_eq!(
        stripe.events().faults.served(),
        1,
        "only the wrong key reached Stripe"
    );
    stop(&refused).await;
    stop(&unset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apex_sources_adds_pauses_resumes_lists_and_removes_an_account() {
    use crate::cli::{apex, text};
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let stripe = FakeStripe::start().await.expect("fake stripe");
    stripe.events().emit(
        "customer.created",
        json!({"id": "cus_1", "object": "customer"}),
    );
    let acct = name("cli");
    let secrets = vec![(secret_env_name(&acct, "api_key"), API_KEY)];
    let (_worker, queue) = worker(&stack, &secrets);
    let add = |account: &str, provider: &str| {
        apex(&[
            "sources",
            "add",
            account,
            "--provider",
            provider,
            "--base-url",
            &stripe.url,
            "--interval-secs",
            "3600",
            "--task-queue",
            &queue,
        ])
    };
    let out = add(&acct, "stripe");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&polling_workflow_id(&acct)),
        "{}",
        text(&out)
    );
    let again = add(&acct, "stripe");
    assert!(
        !again.status.success() && text(&again).contains("already exists"),
        "{}",
        text(&again)
    );
    let bad = add(&name("cli"), "quickbooks");
    assert!(
        !bad.status.success() && text(&bad).contains("unknown provider"),
        "{}",
        text(&bad)
    );

    let client = apex_ingestion::workflows::client(&stack.temporal_address(), "default")
        .await
        .expect("temporal");
    let poller = client.get_workflow_handle::<Polling>(polling_workflow_id(&acct));
    until(&poller, WITHIN, |s| s.polls >= 1).await;
    let out = apex(&["sources", "stats", &acct]);
    assert!(text(&out).contains("1 ingested"), "{}", text(&out));

    let out = apex(&["sources", "pause", &acct]);
    assert!(out.status.success(), "{}", text(&out));
    until(&poller, WITHIN, |s| s.status == "paused").await;
    let out = apex(&["sources", "list"]);
    let listed = text(&out);
    let line = listed
        .lines()
        .find(|l| l.contains(&acct))
        .unwrap_or_default();
    assert!(
        line.contains("stripe") && line.contains("(paused)"),
        "{listed}"
    );

    stripe.events().emit(
        "customer.updated",
        json!({"id": "cus_1", "object": "customer", "name": "Harbor Point Beverages"}),
    );
    let out = apex(&["sources", "resume", &acct]);
    assert!(out.status.success(), "{}", text(&out));
    let s = until(&poller, WITHIN, |s| s.polls >= 2).await;
    assert_eq!(s.records, 2, "{s:?}");

    let out = apex(&["sources", "remove", &acct]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = text(&apex(&["sources", "list"]));
    assert!(!listed.contains(&acct), "{listed}");
    let out = apex(&["sources", "pause", &acct]);
    assert!(text(&out).contains("no polling account"), "{}", text(&out));
}

/// `make bench-polling`: a poll of `APEX_BENCH_RECORDS` (default 100) Plaid transactions
/// ingested by the poller's child workflows, 1, 16 and 64 at a time, against the named
/// baseline of the same records' ingestions started directly by a client, 16 in flight.
/// Prints records/s; asserts only that every record was ingested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench-polling"]
async fn bench_polling_children_against_direct_ingestions() {
    use apex_ingestion::polling::PolledRecord;
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let n: usize = std::env::var("APEX_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let plaid = FakePlaid::start().await.expect("fake plaid");
    let txs: Vec<_> = (0..n)
        .map(|i| {
            transaction(
                &format!("tx-{i}"),
                "Pilot Flying J",
                100.0 + i as f64,
                "2026-12-01",
            )
        })
        .collect();
    for tx in &txs {
        plaid.ledger().add(tx.clone());
    }
    let widths = [1usize, 16, 64];
    let names: Vec<String> = widths.iter().map(|w| name(&format!("bench{w}"))).collect();
    let mut secrets = Vec::new();
    for a in &names {
        secrets.extend(plaid_account(a, &plaid.url).1);
    }
    let (_worker, queue) = worker(&stack, &secrets);

    // Baseline: the same records, stored and started by a client, 16 in flight.
    let direct = Account {
        name: name("benchdirect"),
        provider: Provider::Plaid,
        ..Account::default()
    };
    let blobs = apex_common::blob::BlobStore::open(&stack.blob_dir().display().to_string())
        .expect("blob store");
    let client = apex_ingestion::workflows::client(&stack.temporal_address(), "default")
        .await
        .expect("temporal");
    let began = Instant::now();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let runs = txs.iter().enumerate().map(|(i, tx)| {
        let (gate, blobs, client, queue, direct) = (
            gate.clone(),
            blobs.clone(),
            client.clone(),
            queue.clone(),
            direct.clone(),
        );
        let bytes = serde_json::to_vec_pretty(tx).expect("json");
        async move {
            let _slot = gate.acquire().await.expect("gate");
            let blob = blobs
                .put("documents", "application/json", bytes.into())
                .await
                .expect("blob");
            let record = PolledRecord {
                id: format!("tx-{i}"),
                kind: "transaction".into(),
                blob: blob.into(),
            };
            let handle = apex_ingestion::workflows::start_ingestion(
                &client,
                &queue,
                apex_ingestion::polling::record_input(&direct, &record),
            )
            .await
            .expect("start");
            handle.get_result(Default::default()).await.is_ok()
        }
    });
    let ok = futures::future::join_all(runs)
        .await
        .iter()
        .filter(|ok| **ok)
        .count();
    let baseline = began.elapsed();
    assert_eq!(ok, n, "every direct ingestion completed");
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("| how | records | s | records/s | vs direct |");
    println!("|---|---|---|---|---|");
    println!(
        "| direct ingestions, 16 in flight (baseline) | {n} | {:.1} | {:.2} | 1.00× |",
        baseline.as_secs_f64(),
        rate(baseline)
    );

    for (width, account_name) in widths.iter().zip(&names) {
        let (mut account, _) = plaid_account(account_name, &plaid.url);
        account.options.insert("page_size".into(), "100".into());
        account.options.insert("parallel".into(), width.to_string());
        let began = Instant::now();
        let poller = start(&stack, &queue, account, 0).await;
        let s = until(&poller, Duration::from_secs(1800), |s| s.polls >= 1).await;
        let took = began.elapsed();
        stop(&poller).await;
        assert_eq!((s.records, s.failed), (n as u64, 0), "{s:?}");
        println!(
            "| poller, children {width} at a time | {n} | {:.1} | {:.2} | {:.2}× |",
            took.as_secs_f64(),
            rate(took),
            rate(took) / rate(baseline)
        );
    }
}
