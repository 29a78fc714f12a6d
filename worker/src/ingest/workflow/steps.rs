//! The ingestion's steps: each one's activity (local first where it may be), its timeouts
//! and retries, and what it records in the status.

use temporalio_sdk::WorkflowContext;
use temporalio_sdk::workflows::join;

use super::local::Ran;
use super::{
    CHECK_TIMEOUT, COMPLETED, DocumentIngestionWorkflow, EMBEDDED, ENTITIES_EXTRACTED,
    FETCH_TIMEOUT, FETCHED, LOCAL_MAX_CHUNKS, LOCAL_PARSE_MAX_BYTES, PARSED, Stop, UNCHANGED,
    WRITE_HEARTBEAT, WRITE_TIMEOUT, local_options, options,
};
use crate::ingest::activities::{
    ArtifactInput, Embedded, Extracted, FetchInput, Fetched, IngestActivities, ParseInput, Parsed,
    WriteInput,
};
use crate::ingest::{DocRef, IngestInput};

impl DocumentIngestionWorkflow {
    /// `fetch_document`: the bytes into the blob store.
    pub(super) async fn fetch_step(
        ctx: &WorkflowContext<Self>,
        input: &IngestInput,
    ) -> Result<Fetched, Stop> {
        let start = Self::begin(ctx);
        let fetch = FetchInput {
            location: input.location.clone(),
            mime_type: input.mime_type.clone(),
        };
        let left = Self::left(ctx, "fetch")?;
        // An uploaded document is a copy within the blob store: local. A URL or an object
        // store may take minutes: a server-side activity, with its own timeouts.
        let fetched = if ctx.state(|s| s.light) && input.location.trim().starts_with("blob:") {
            ctx.execute_local_activity(
                IngestActivities::fetch_document,
                fetch,
                local_options(FETCH_TIMEOUT, left),
            )
            .await
        } else {
            ctx.execute_activity(
                IngestActivities::fetch_document,
                fetch,
                options(FETCH_TIMEOUT, None, 0, left),
            )
            .await
        }
        .map_err(Stop::at("fetch"))?;
        Self::record(ctx, "fetch", start, fetched.attempt);
        ctx.state_mut(|s| s.status.content_sha256 = fetched.blob.sha256.clone());
        Self::set_status(ctx, FETCHED);
        Ok(fetched)
    }

    /// `check_document`: `None` when the writer holds these bytes already (the status is
    /// then `unchanged`), else the document at the version this ingestion writes.
    pub(super) async fn check_step(
        ctx: &WorkflowContext<Self>,
        input: &IngestInput,
        document_id: &str,
        fetched: &Fetched,
    ) -> Result<Option<DocRef>, Stop> {
        let start = Self::begin(ctx);
        let left = Self::left(ctx, "check")?;
        let stored = if ctx.state(|s| s.light) {
            ctx.execute_local_activity(
                IngestActivities::check_document,
                document_id.to_owned(),
                local_options(CHECK_TIMEOUT, left),
            )
            .await
        } else {
            ctx.execute_activity(
                IngestActivities::check_document,
                document_id.to_owned(),
                options(CHECK_TIMEOUT, None, 0, left),
            )
            .await
        }
        .map_err(Stop::at("check"))?;
        Self::record(ctx, "check", start, 1);
        if stored.present && stored.content_sha256 == fetched.blob.sha256 {
            ctx.state_mut(|s| s.status.version = stored.version);
            Self::set_status(ctx, UNCHANGED);
            return Ok(None);
        }
        let version = if stored.present {
            stored.version + 1
        } else {
            1
        };
        ctx.state_mut(|s| s.status.version = version);
        Ok(Some(DocRef {
            document_id: document_id.to_owned(),
            source: input.source.clone(),
            version,
        }))
    }

    /// `parse_document`.
    pub(super) async fn parse_step(
        ctx: &WorkflowContext<Self>,
        input: &IngestInput,
        fetched: &Fetched,
        document: &DocRef,
    ) -> Result<Parsed, Stop> {
        let start = Self::begin(ctx);
        let left = Self::left(ctx, "parse")?;
        let small = fetched.blob.size_bytes <= LOCAL_PARSE_MAX_BYTES;
        let Ran {
            out: parsed,
            earlier,
        } = Self::local_first(
            ctx,
            || IngestActivities::parse_document,
            ParseInput {
                source: fetched.blob.clone(),
                file_name: input.file_name.clone(),
                mime_type: input.mime_type.clone(),
                document: document.clone(),
            },
            small,
            left,
        )
        .await
        .map_err(Stop::at("parse"))?;
        Self::record(ctx, "parse", start, parsed.attempt + earlier);
        ctx.state_mut(|s| s.status.chunk_count = parsed.chunk_count);
        if parsed.chunk_count == 0 {
            ctx.state_mut(|s| {
                s.status.warnings.push(format!(
                    "the document yielded no chunks (format {}, {} characters of text)",
                    parsed.format, parsed.text_chars
                ));
            });
        }
        Self::set_status(ctx, PARSED);
        Ok(parsed)
    }

    /// `extract_entities` and `generate_embeddings`, scheduled together and awaited both.
    pub(super) async fn extract_and_embed(
        ctx: &WorkflowContext<Self>,
        artifact: &ArtifactInput,
        chunk_count: u32,
    ) -> Result<(Extracted, Embedded), Stop> {
        let start = Self::begin(ctx);
        let left = Self::left(ctx, "extract")?;
        let small = chunk_count <= LOCAL_MAX_CHUNKS;
        let (extracted, embedded) = join!(
            async {
                let r = Self::local_first(
                    ctx,
                    || IngestActivities::extract_entities,
                    artifact.clone(),
                    small,
                    left,
                )
                .await;
                r.map(|Ran { out, earlier }| {
                    Self::record(ctx, "extract", start, out.attempt + earlier);
                    out
                })
            },
            async {
                let r = Self::local_first(
                    ctx,
                    || IngestActivities::generate_embeddings,
                    artifact.clone(),
                    small,
                    left,
                )
                .await;
                r.map(|Ran { out, earlier }| {
                    Self::record(ctx, "embed", start, out.attempt + earlier);
                    out
                })
            }
        );
        let extracted = extracted.map_err(Stop::at("extract"))?;
        ctx.state_mut(|s| s.status.entity_count = extracted.entity_count);
        if extracted.entity_count == 0 && artifact.text_chars > 0 {
            ctx.state_mut(|s| {
                s.status.warnings.push(format!(
                    "no entities were found in {} characters of text",
                    artifact.text_chars
                ));
            });
        }
        // Another move follows in this activation (embedded, or failed): one memo.
        Self::move_status(ctx, ENTITIES_EXTRACTED, false);
        let embedded = embedded.map_err(Stop::at("embed"))?;
        ctx.state_mut(|s| s.status.vector_count = embedded.vector_count);
        Self::set_status(ctx, EMBEDDED);
        Ok((extracted, embedded))
    }

    /// `write_to_databases`, with the input's attempts when it sets them: always a
    /// server-side activity. Its completion must be in the history before the document can
    /// be checked again: were it local, a worker lost after the write but before the
    /// workflow task completed would leave the next worker to run the steps again, and its
    /// check would find this run's own write and end the ingestion `unchanged`. Scheduled at
    /// the end of the first workflow task, it is handed straight back to the worker (eager
    /// activity execution).
    pub(super) async fn write_step(
        ctx: &WorkflowContext<Self>,
        input: &IngestInput,
        write: WriteInput,
    ) -> Result<(), Stop> {
        let start = Self::begin(ctx);
        let left = Self::left(ctx, "write")?;
        let written = ctx
            .execute_activity(
                IngestActivities::write_to_databases,
                write,
                options(
                    WRITE_TIMEOUT,
                    Some(WRITE_HEARTBEAT),
                    input.max_write_attempts,
                    left,
                ),
            )
            .await
            .map_err(Stop::at("write"))?;
        Self::record(ctx, "write", start, written.attempt);
        Self::set_status(ctx, COMPLETED);
        Ok(())
    }
}
