//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand next to the handlers
//! it describes (a test checks every route of the router is in it).

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Apex Ingest gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Upload documents for ingestion (through Temporal or the legacy path, as the rollout decides), follow their status, delete them and search what was ingested."
        },
        "paths": {
            "/v1/documents": {"post": upload()},
            "/v1/documents/{id}": document_by_id(),
            "/v1/search": {"get": search()},
            "/v1/webhooks/{source}": webhooks(),
            "/v1/rollout": {"get": {
                "summary": "The rollout percentage (set it with `apex rollout set N`) and decisions so far (scope `admin`)",
                "responses": {"200": {"description": "Rollout"}}
            }},
            "/livez": {"get": {"summary": "The process is up", "security": [], "responses": {"200": {"description": "Up"}}}},
            "/readyz": {"get": {"summary": "Redis, the writer and Temporal (optional with fallback) answer", "security": [],
                "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready, with the failing checks"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "Text format"}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}}
        },
        "security": [{"apiKey": []}],
        "components": {
        "securitySchemes": {"apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key `apex_<id>_<secret>` (`apex keys create --name N --scopes ingest,read`). Scopes: `ingest` (POST /v1/documents), `read` (GET /v1/documents/{id}, /v1/search), `delete` (DELETE /v1/documents/{id}), `admin` (/v1/rollout, and every other scope). No key or a bad one: 401 with WWW-Authenticate; a key without the scope: 403; a key over its rate (`auth.rate_per_sec`, when set): 429 with Retry-After."
        }},
        "schemas": {
            "Error": error_schema(),
            "UploadByReference": upload_by_reference_schema(),
            "Accepted": accepted_schema(),
            "Status": status_schema(),
            "SearchResult": search_result_schema()
        }}
    })
}

/// `POST` and `HEAD /v1/webhooks/{source}`.
fn webhooks() -> Value {
    let source = json!({"name": "source", "in": "path", "required": true,
        "schema": {"type": "string"},
        "description": "front, front-rule, samsara, stripe, plaid, standard, turvo, sonar, or one added in `webhooks.schemes`"});
    json!({
        "post": {
            "summary": "A signed delivery from a SaaS source: verified on the raw bytes by the provider's scheme (no API key), stored, answered; its ingestion starts from the outbox",
            "security": [],
            "parameters": [source],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": {"description": "`{\"accepted\": true, \"status\": \"received\", \"event_id\", \"document_id\", \"workflow_id\", \"status_url\"}`, or `{\"duplicate\": true}` for an event delivered before, or Front's `{\"challenge\"}`"},
                "400": error_response("A missing header, a malformed signature or body, no event id"),
                "401": error_response("A signature no secret matches, an unknown Plaid key, a timestamp outside the tolerance"),
                "404": error_response("No such source"),
                "413": error_response("Over `webhooks.max_body_bytes`"),
                "503": error_response("The source has no secret, Plaid's keys cannot be fetched, or a store is away: retry after `Retry-After`")
            }
        },
        "head": {
            "summary": "200 for a known source (Sonar checks its endpoint this way)",
            "security": [],
            "parameters": [source],
            "responses": {"200": {"description": "Known"}, "404": {"description": "Unknown"}}
        }
    })
}

/// `POST /v1/documents`.
fn upload() -> Value {
    json!({
        "summary": "Accept a document for ingestion",
        "requestBody": {"required": true, "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "source": {"type": "string", "default": "upload"},
                    "priority": {"type": "integer", "default": 0},
                    "metadata": {"type": "string", "description": "a JSON object of strings"},
                    "external_id": {"type": "string", "description": "the document's id in its source; default the SHA-256 of the bytes"},
                    "document_id": {"type": "string", "format": "uuid"}
                }}},
            "application/json": {"schema": {"$ref": "#/components/schemas/UploadByReference"}}
        }},
        "responses": {
            "202": {"description": "Accepted", "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
            "400": error_response("Empty file, bad field, malformed body"),
            "409": error_response("The document is being ingested with other bytes, or deleted; see Retry-After"),
            "413": error_response("Over max_upload_bytes"),
            "415": error_response("Not a format the parser reads, or a body that is neither multipart nor JSON"),
            "429": error_response("max_in_flight ingestions are running; see Retry-After"),
            "503": error_response("Temporal unreachable and fallback_to_legacy off, or the blob store down")
        }
    })
}

/// `GET` (status) and `DELETE` of `/v1/documents/{id}`.
fn document_by_id() -> Value {
    json!({
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
        "get": {
            "summary": "An ingestion's status: the running workflow's, the legacy path's, or what PostgreSQL holds",
            "responses": {
                "200": {"description": "Status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
                "400": error_response("Not a UUID"),
                "404": error_response("No such document"),
                "503": error_response("Redis, or Temporal for a document on the Temporal path, cannot be asked")
            }
        },
        "delete": {
            "summary": "Delete a document from every store",
            "responses": {
                "200": {"description": "Deleted (or was not there)", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "document_id": {"type": "string"}, "deleted": {"type": "boolean"},
                        "path": {"type": "string", "enum": ["temporal", "legacy"]}}}}}},
                "400": error_response("Not a UUID"),
                "404": error_response("No such document"),
                "409": error_response("The document is being ingested; see Retry-After"),
                "503": error_response("A store is down, or Temporal unreachable without fallback")
            }
        }
    })
}

/// `GET /v1/search`.
fn search() -> Value {
    json!({
        "summary": "The chunks nearest a query, with their document, score and entities",
        "parameters": [
            {"name": "q", "in": "query", "required": true, "schema": {"type": "string", "maxLength": 2000}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}},
            {"name": "source", "in": "query", "schema": {"type": "string"}}
        ],
        "responses": {
            "200": {"description": "Hits, best first", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchResult"}}}},
            "400": error_response("Missing query or bad limit")
        }
    })
}

/// The body of every error answer ([`crate::error::ApiError::body`]).
fn error_schema() -> Value {
    json!({"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message", "details", "retryable"],
    "properties": {
        "code": {"type": "string", "enum": ["invalid_argument", "not_found", "already_exists", "failed_precondition", "resource_exhausted", "unavailable", "timeout", "cancelled", "unimplemented", "internal", "too_large", "unsupported_type"]},
        "message": {"type": "string"},
        "details": {"type": "object"},
        "retryable": {"type": "boolean", "description": "whether the same request may succeed when sent again (after Retry-After, when given): the code's retry class, or a conflict that ends by itself (the 409 of a document being ingested or deleted). Gateways older than this field leave it out"}
    }}}})
}

/// The JSON body of an upload by reference (a URL or an object-store key).
fn upload_by_reference_schema() -> Value {
    json!({"type": "object", "properties": {
        "url": {"type": "string", "description": "http(s) URL the ingestion fetches"},
        "key": {"type": "string", "description": "object-store key: blob:<key>, s3://, gs://, az://; file:///path only when the gateway allows local files"},
        "source": {"type": "string"}, "priority": {"type": "integer"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "external_id": {"type": "string"}, "document_id": {"type": "string", "format": "uuid"},
        "file_name": {"type": "string"}, "mime_type": {"type": "string"}}})
}

/// The `202` of an upload.
fn accepted_schema() -> Value {
    json!({"type": "object", "properties": {
        "document_id": {"type": "string"},
        "version": {"type": ["integer", "null"], "description": "the version this ingestion will write (the stored one when unchanged); null when the writer could not be asked"},
        "status": {"type": "string"}, "status_url": {"type": "string"},
        "path": {"type": "string", "enum": ["temporal", "legacy"]},
        "fallback": {"type": ["object", "null"], "properties": {"reason": {"type": "string"}}},
        "workflow_id": {"type": ["string", "null"]},
        "content_sha256": {"type": ["string", "null"]},
        "attached": {"type": "boolean", "description": "true when the same bytes were already being ingested: nothing new started"}}})
}

/// An ingestion's status.
fn status_schema() -> Value {
    json!({"type": "object", "properties": {
        "document_id": {"type": "string"}, "path": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["pending", "fetched", "parsed", "entities_extracted", "embedded", "completed", "unchanged", "failed"]},
        "version": {"type": "integer"}, "chunk_count": {"type": "integer"},
        "entity_count": {"type": "integer"}, "vector_count": {"type": "integer"},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "error": {"type": ["string", "null"]}}})
}

/// The answer of a search.
fn search_result_schema() -> Value {
    json!({"type": "object", "properties": {
        "query": {"type": "string"}, "model_id": {"type": "string"},
        "hits": {"type": "array", "items": {"type": "object", "properties": {
            "score": {"type": "number"}, "document_id": {"type": "string"},
            "chunk_id": {"type": "string"}, "text": {"type": "string"},
            "entities": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "type": {"type": "string"}, "name": {"type": "string"}}}},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "How the chunk's text was obtained when not read directly: for OCR'd text text_source = ocr, ocr_engine and ocr_confidence (0 to 1)"}}}}}})
}
