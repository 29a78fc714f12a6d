//! The legacy path: the same stages the workflow runs, called directly and in sequence from
//! the gateway, through the same services and the same writer (no Temporal). It keeps the
//! workflow's decisions (unchanged content ends early; the version is the stored one plus
//! one) and its per-step deadlines, so both paths leave the same store state for the same
//! document (the gateway lets one document have one ingestion at a time, on either path).
//! What it lacks is what Temporal adds: durability across a gateway restart, and retries
//! beyond a few attempts per step.

use std::future::Future;
use std::time::{Duration, Instant};

use apex_common::retry::backoff;
use apex_ingestion::stages::{
    ArtifactInput, Embedded, Extracted, FetchInput, ParseInput, Parsed, StageError, Stages,
    WriteInput,
};
use apex_ingestion::status::{
    COMPLETED, EMBEDDED, ENTITIES_EXTRACTED, FAILED, FETCHED, IngestStatus, PARSED, PENDING,
    StepRecord, UNCHANGED,
};
use apex_ingestion::steps::{CHECK_TIMEOUT, FETCH_TIMEOUT, SERVICE_TIMEOUT, WRITE_TIMEOUT};
use apex_ingestion::{Blob, DocRef, IngestInput};

/// Runs ingestions on the legacy path.
#[derive(Debug, Clone)]
pub struct Legacy {
    stages: Stages,
    attempts: u32,
}

/// Where an ingestion stopped.
struct Stop {
    step: &'static str,
    error: StageError,
}

impl Stop {
    fn at(step: &'static str) -> impl FnOnce(StageError) -> Stop {
        move |error| Stop { step, error }
    }
}

impl Legacy {
    pub fn new(stages: Stages, attempts: u32) -> Self {
        Self {
            stages,
            attempts: attempts.max(1),
        }
    }

    /// The longest one ingestion can take: every attempt of every step at its deadline
    /// (extract and embed run side by side), plus the waits between attempts.
    pub fn longest(&self) -> Duration {
        let one = FETCH_TIMEOUT + CHECK_TIMEOUT + SERVICE_TIMEOUT * 2 + WRITE_TIMEOUT;
        one * self.attempts + Duration::from_secs(30) * 5 * self.attempts
    }

    pub fn stages(&self) -> &Stages {
        &self.stages
    }

    /// Calls `call` until it succeeds, fails for good, or the attempts run out; returns the
    /// result and the attempts made. Each attempt has `deadline` (the workflow's for the
    /// step), enforced here as well as sent to the service: a service that never answers
    /// is a transient failure, not a hang.
    async fn attempt<T, F, Fut>(
        &self,
        deadline: Duration,
        mut call: F,
    ) -> (Result<T, StageError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StageError>>,
    {
        let mut n = 0u32;
        loop {
            n += 1;
            let result = tokio::time::timeout(deadline, call())
                .await
                .unwrap_or_else(|_| {
                    Err(StageError::transient(format!(
                        "no answer within {} s",
                        deadline.as_secs()
                    )))
                });
            match result {
                Ok(v) => return (Ok(v), n),
                Err(e) if e.retryable && n < self.attempts => {
                    let jitter = f32::from(uuid::Uuid::new_v4().as_bytes()[0]) / 256.0;
                    let wait = backoff(
                        Duration::from_millis(500),
                        Duration::from_secs(30),
                        n - 1,
                        jitter,
                    );
                    tracing::warn!(attempt = n, error = %e, retry_in_ms = wait.as_millis() as u64, "legacy stage failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return (Err(e), n),
            }
        }
    }

    /// Ingests `input`, calling `report` with the status after every step. The final status
    /// is `completed`, `unchanged` or `failed` (with the reason in `error`).
    pub async fn ingest<R, Fut>(&self, input: &IngestInput, mut report: R) -> IngestStatus
    where
        R: FnMut(IngestStatus) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut status = IngestStatus {
            status: PENDING.to_owned(),
            document_id: input.resolved_document_id(),
            source: input.source.clone(),
            ..Default::default()
        };
        match self.run(input, &mut status, &mut report).await {
            Ok(()) => {}
            Err(stop) => {
                status.error = Some(format!("{} failed: {}", stop.step, stop.error.message));
                status.status = FAILED.to_owned();
            }
        }
        report(status.clone()).await;
        status
    }

    async fn run<R, Fut>(
        &self,
        input: &IngestInput,
        status: &mut IngestStatus,
        report: &mut R,
    ) -> Result<(), Stop>
    where
        R: FnMut(IngestStatus) -> Fut,
        Fut: Future<Output = ()>,
    {
        let fetched = self.fetch_step(input, status).await?;
        report(status.clone()).await;
        let Some(document) = self.check_step(input, status, &fetched).await? else {
            return Ok(());
        };
        let parsed = self.parse_step(input, status, &fetched, &document).await?;
        report(status.clone()).await;
        let artifact = ArtifactInput {
            parsed: parsed.artifact.clone(),
            document: document.clone(),
            metadata: input.metadata.clone(),
            text_chars: parsed.text_chars,
        };
        let (extracted, embedded) = self.extract_and_embed(status, &artifact).await?;
        report(status.clone()).await;
        let write = WriteInput {
            document,
            metadata: input.metadata.clone(),
            content_sha256: fetched.sha256.clone(),
            parsed: parsed.artifact,
            entities: Some(extracted.artifact),
            vectors: Some(embedded.artifact),
        };
        self.write_step(status, &write).await?;
        status.status = COMPLETED.to_owned();
        Ok(())
    }

    /// Copies the document's bytes into the blob store.
    async fn fetch_step(
        &self,
        input: &IngestInput,
        status: &mut IngestStatus,
    ) -> Result<Blob, Stop> {
        let start = Instant::now();
        let (fetched, n) = self
            .attempt(FETCH_TIMEOUT, || {
                self.stages.fetch(FetchInput {
                    location: input.location.clone(),
                    mime_type: input.mime_type.clone(),
                })
            })
            .await;
        let fetched = fetched.map_err(Stop::at("fetch"))?;
        step(status, "fetch", start, n);
        status.content_sha256 = fetched.sha256.clone();
        status.status = FETCHED.to_owned();
        Ok(fetched)
    }

    /// Asks the writer what it holds: `None` when it holds these bytes already (the status
    /// is then `unchanged`), else the document at the version this ingestion writes.
    async fn check_step(
        &self,
        input: &IngestInput,
        status: &mut IngestStatus,
        fetched: &Blob,
    ) -> Result<Option<DocRef>, Stop> {
        let document_id = status.document_id.clone();
        let start = Instant::now();
        let (stored, n) = self
            .attempt(CHECK_TIMEOUT, || {
                self.stages.check(document_id.clone(), sent(CHECK_TIMEOUT))
            })
            .await;
        let stored = stored.map_err(Stop::at("check"))?;
        step(status, "check", start, n);
        if stored.present && stored.content_sha256 == fetched.sha256 {
            status.version = stored.version;
            status.status = UNCHANGED.to_owned();
            return Ok(None);
        }
        status.version = if stored.present {
            stored.version + 1
        } else {
            1
        };
        Ok(Some(DocRef {
            document_id,
            source: input.source.clone(),
            version: status.version,
        }))
    }

    async fn parse_step(
        &self,
        input: &IngestInput,
        status: &mut IngestStatus,
        fetched: &Blob,
        document: &DocRef,
    ) -> Result<Parsed, Stop> {
        let start = Instant::now();
        let (parsed, n) = self
            .attempt(SERVICE_TIMEOUT, || {
                self.stages.parse(
                    ParseInput {
                        source: fetched.clone(),
                        file_name: input.file_name.clone(),
                        mime_type: input.mime_type.clone(),
                        document: document.clone(),
                    },
                    sent(SERVICE_TIMEOUT),
                )
            })
            .await;
        let parsed = parsed.map_err(Stop::at("parse"))?;
        step(status, "parse", start, n);
        status.chunk_count = parsed.chunk_count;
        if parsed.chunk_count == 0 {
            status.warnings.push(format!(
                "the document yielded no chunks (format {}, {} characters of text)",
                parsed.format, parsed.text_chars
            ));
        }
        status.status = PARSED.to_owned();
        Ok(parsed)
    }

    /// Entities and vectors, side by side (both read the parsed artifact).
    async fn extract_and_embed(
        &self,
        status: &mut IngestStatus,
        artifact: &ArtifactInput,
    ) -> Result<(Extracted, Embedded), Stop> {
        let start = Instant::now();
        let ((extracted, ne), (embedded, nv)) = tokio::join!(
            self.attempt(SERVICE_TIMEOUT, || {
                self.stages.extract(artifact.clone(), sent(SERVICE_TIMEOUT))
            }),
            self.attempt(SERVICE_TIMEOUT, || {
                self.stages.embed(artifact.clone(), sent(SERVICE_TIMEOUT))
            }),
        );
        let extracted = extracted.map_err(Stop::at("extract"))?;
        step(status, "extract", start, ne);
        status.entity_count = extracted.entity_count;
        if extracted.entity_count == 0 && artifact.text_chars > 0 {
            status.warnings.push(format!(
                "no entities were found in {} characters of text",
                artifact.text_chars
            ));
        }
        status.status = ENTITIES_EXTRACTED.to_owned();
        let embedded = embedded.map_err(Stop::at("embed"))?;
        step(status, "embed", start, nv);
        status.vector_count = embedded.vector_count;
        status.status = EMBEDDED.to_owned();
        Ok((extracted, embedded))
    }

    async fn write_step(&self, status: &mut IngestStatus, write: &WriteInput) -> Result<(), Stop> {
        // One key for every attempt of this write, so a retry after a lost answer is
        // answered from the writer's record of the first.
        let key = format!("legacy/{}/{}", status.document_id, uuid::Uuid::new_v4());
        let start = Instant::now();
        let (written, n) = self
            .attempt(WRITE_TIMEOUT, || {
                self.stages
                    .write(write.clone(), key.clone(), sent(WRITE_TIMEOUT))
            })
            .await;
        written.map_err(Stop::at("write"))?;
        step(status, "write", start, n);
        Ok(())
    }
}

/// The deadline sent to a service: the step's, less a margin for the answer.
fn sent(d: Duration) -> Option<Duration> {
    Some(d - d / 20)
}

fn step(status: &mut IngestStatus, name: &str, start: Instant, attempts: u32) {
    status.steps.push(StepRecord {
        step: name.to_owned(),
        millis: start.elapsed().as_millis() as u64,
        attempts,
    });
}
