-- The writer's schema. PostgreSQL is the source of truth of the saga; the graph, the
-- vectors and Redis are derived from what is stored here.

-- One row per document: the version stored now (the fencing token) and the counts the
-- other stores must agree with.
CREATE TABLE IF NOT EXISTS documents (
    document_id       uuid PRIMARY KEY,
    source            text        NOT NULL,
    version           bigint      NOT NULL CHECK (version > 0),
    content_sha256    text        NOT NULL,
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    chunk_count       integer     NOT NULL,
    entity_count      integer     NOT NULL,
    vector_count      integer     NOT NULL,
    vector_collection text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS documents_source ON documents (source);

-- Every version written, with the artifacts it came from, so a failed write of a newer
-- version can put the previous one back.
CREATE TABLE IF NOT EXISTS document_versions (
    document_id     uuid        NOT NULL REFERENCES documents (document_id) ON DELETE CASCADE,
    version         bigint      NOT NULL,
    content_sha256  text        NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    parsed_key      text        NOT NULL,
    parsed_sha256   text        NOT NULL,
    entities_key    text,
    entities_sha256 text,
    vectors_key     text,
    vectors_sha256  text,
    written_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, version)
);

CREATE TABLE IF NOT EXISTS chunks (
    chunk_id    uuid    PRIMARY KEY,
    document_id uuid    NOT NULL REFERENCES documents (document_id) ON DELETE CASCADE,
    version     bigint  NOT NULL,
    ordinal     integer NOT NULL,
    text        text    NOT NULL,
    token_count integer NOT NULL,
    page        integer NOT NULL,
    section     text    NOT NULL,
    char_start  bigint  NOT NULL,
    char_end    bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id, ordinal);

-- Entities are shared by documents: (type, canonical key) is one row.
CREATE TABLE IF NOT EXISTS entities (
    entity_id     uuid PRIMARY KEY,
    entity_type   text NOT NULL,
    canonical_key text NOT NULL,
    display_name  text NOT NULL,
    UNIQUE (entity_type, canonical_key)
);

CREATE TABLE IF NOT EXISTS document_entities (
    document_id uuid NOT NULL REFERENCES documents (document_id) ON DELETE CASCADE,
    entity_id   uuid NOT NULL REFERENCES entities (entity_id),
    confidence  real NOT NULL,
    PRIMARY KEY (document_id, entity_id)
);
CREATE INDEX IF NOT EXISTS document_entities_entity ON document_entities (entity_id);

CREATE TABLE IF NOT EXISTS mentions (
    chunk_id    uuid   NOT NULL REFERENCES chunks (chunk_id) ON DELETE CASCADE,
    entity_id   uuid   NOT NULL REFERENCES entities (entity_id),
    char_start  bigint NOT NULL,
    char_end    bigint NOT NULL,
    text        text   NOT NULL,
    PRIMARY KEY (chunk_id, entity_id, char_start, char_end)
);
CREATE INDEX IF NOT EXISTS mentions_entity ON mentions (entity_id);

-- Webhook deliveries as received (the gateway records them; dedup by source + event id).
CREATE TABLE IF NOT EXISTS webhook_events (
    source         text        NOT NULL,
    event_id       text        NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    payload_sha256 text        NOT NULL,
    document_id    uuid,
    status         text        NOT NULL,
    PRIMARY KEY (source, event_id)
);

-- One row per saga step: what was done to which store, and how it ended.
CREATE TABLE IF NOT EXISTS saga_log (
    id          bigserial   PRIMARY KEY,
    saga_id     uuid        NOT NULL,
    operation   text        NOT NULL,
    document_id uuid        NOT NULL,
    version     bigint,
    step        text        NOT NULL,
    state       text        NOT NULL,
    error       text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS saga_log_document ON saga_log (document_id, id);
CREATE INDEX IF NOT EXISTS saga_log_saga ON saga_log (saga_id);

-- Which model and dimension each vector collection holds; a collection never mixes them.
CREATE TABLE IF NOT EXISTS vector_collections (
    name       text    PRIMARY KEY,
    model_id   text    NOT NULL,
    dimension  integer NOT NULL
);
