//! The extractor's user gazetteer read from the local stack's PostgreSQL: loaded at start,
//! reloaded with new rows, and kept when a reload fails.

use std::sync::Arc;

use apex_common::blob::BlobStore;
use apex_extractor::metrics::Metrics;
use apex_extractor::{ExtractorGrpc, ExtractorSettings};
use apex_proto::common::v1::Chunk;
use apex_proto::extractor::v1::ExtractRequest;
use apex_proto::extractor::v1::extractor_service_server::ExtractorService as _;

async fn sql(postgres_url: &str, statements: &str) {
    let (client, connection) = tokio_postgres::connect(postgres_url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL of the local stack (run `apex up` or `make test`)");
    let driver = tokio::spawn(connection);
    client.batch_execute(statements).await.expect("sql");
    drop(client);
    let _ = driver.await;
}

async fn found(service: &ExtractorGrpc, text: &str) -> Vec<(String, String)> {
    let result = service
        .extract(tonic::Request::new(ExtractRequest {
            chunks: vec![Chunk {
                chunk_id: "c".to_owned(),
                text: text.to_owned(),
                ..Chunk::default()
            }],
            ..ExtractRequest::default()
        }))
        .await
        .expect("extract")
        .into_inner()
        .result
        .expect("result");
    result
        .entities
        .into_iter()
        .map(|e| (e.entity_type, e.canonical_key))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_gazetteer_loads_reloads_and_survives_a_failed_reload() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let table = format!("apex_test_gazetteer_{}", std::process::id());
    sql(
        &stack.postgres_url(),
        &format!(
            "DROP TABLE IF EXISTS {table};
         CREATE TABLE {table} (entity_type text, name text, canonical_key text, aliases text[]);
         INSERT INTO {table} VALUES
           ('CARRIER', 'Old Dominion Freight Line', 'carrier-odfl', ARRAY['Old Dominion', 'ODFL']),
           ('FACILITY', 'Laredo Cross-Dock 3', NULL, NULL);"
        ),
    )
    .await;
    let mut settings = ExtractorSettings::default();
    settings.gazetteer.postgres_url = stack.postgres_url();
    settings.gazetteer.postgres_query =
        format!("SELECT entity_type, name, canonical_key, aliases FROM {table}");
    let service = ExtractorGrpc::from_settings(
        settings,
        Arc::new(BlobStore::open("memory://").expect("blobs")),
        Metrics::new(),
    )
    .await
    .expect("service with the database gazetteer");
    let text = "ODFL picked up at Laredo Cross-Dock 3 for Kessler Farms.";
    assert_eq!(
        found(&service, text).await,
        [
            ("CARRIER".to_owned(), "carrier-odfl".to_owned()),
            ("FACILITY".to_owned(), "laredo crossdock 3".to_owned()),
            // Not in the gazetteer yet: the rule layer's organisation.
            ("ORGANIZATION".to_owned(), "kessler farms".to_owned()),
        ]
    );

    // A new customer row is picked up by the next reload.
    sql(
        &stack.postgres_url(),
        &format!("INSERT INTO {table} VALUES ('CUSTOMER', 'Kessler Farms', 'cust-77', NULL);"),
    )
    .await;
    assert_eq!(service.reload_gazetteer().await.expect("reload"), 5);
    let after = found(&service, text).await;
    assert!(
        after.contains(&("CUSTOMER".to_owned(), "cust-77".to_owned())),
        "{after:?}"
    );
    assert!(
        !after.iter().any(|(t, _)| t == "ORGANIZATION"),
        "the gazetteer name wins over the rule: {after:?}"
    );

    // A reload that fails (the table is gone) keeps the last good gazetteer.
    sql(&stack.postgres_url(), &format!("DROP TABLE {table};")).await;
    let err = service.reload_gazetteer().await.expect_err("table dropped");
    assert!(format!("{err:#}").contains(&table), "{err:#}");
    assert!(
        found(&service, text)
            .await
            .contains(&("CUSTOMER".to_owned(), "cust-77".to_owned()))
    );

    // Rows the loader cannot use are refused with the row number.
    sql(
        &stack.postgres_url(),
        &format!(
        "CREATE TABLE {table} (entity_type text, name text, canonical_key text, aliases text[]);
         INSERT INTO {table} (entity_type, name) VALUES ('CARRIER', 'Saia'), ('carrier', 'Estes');"
    ),
    )
    .await;
    let err = service.reload_gazetteer().await.expect_err("bad type");
    assert!(
        format!("{err:#}").contains("row 2") && format!("{err:#}").contains("upper snake case"),
        "{err:#}"
    );
    sql(&stack.postgres_url(), &format!("DROP TABLE {table};")).await;
}
