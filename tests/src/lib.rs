//! Cross-process end-to-end tests of Apex Ingest against the real local stack. They arrive
//! with the ingestion issues; the stack's own smoke tests live in `cli/tests`.
