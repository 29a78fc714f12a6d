//! Reading an upload: multipart or JSON, the size and type checks, and every field checked
//! before anything is stored. A bad field is a 400 naming it.

use std::collections::BTreeMap;

use apex_common::error::ErrorCode;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;

/// An ingestion as received, before it is stored and routed.
#[derive(Debug, Default)]
pub(crate) struct Upload {
    pub(crate) bytes: Option<Bytes>,
    pub(crate) location: String,
    pub(crate) file_name: String,
    pub(crate) mime_type: String,
    pub(crate) source: String,
    pub(crate) priority: i64,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) external_id: String,
    pub(crate) document_id: String,
}

/// `POST /v1/documents` as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UploadJson {
    url: String,
    key: String,
    source: String,
    priority: i64,
    metadata: BTreeMap<String, String>,
    external_id: String,
    document_id: String,
    file_name: String,
    mime_type: String,
}

/// Object-store schemes a JSON `key` may use (besides local files when allowed).
const KEY_SCHEMES: &[&str] = &["blob:", "s3://", "gs://", "az://", "abfs://", "abfss://"];

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::TooLarge,
        format!("the document is over the upload limit of {limit} bytes"),
    )
    .with_details(json!({ "limit_bytes": limit, "setting": "max_upload_bytes" }))
}

fn parse_metadata(raw: &str) -> Result<BTreeMap<String, String>, ApiError> {
    if raw.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str::<BTreeMap<String, String>>(raw).map_err(|e| {
        ApiError::invalid(
            "metadata",
            format!("metadata must be a JSON object of strings: {e}"),
        )
    })
}

fn multipart_error(e: &axum::extract::multipart::MultipartError, limit: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        ApiError::invalid(
            "body",
            format!("malformed multipart body: {}", e.body_text()),
        )
    }
}

async fn read_multipart(mut form: Multipart, limit: u64) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    let mut priority = String::new();
    let mut metadata = String::new();
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, limit))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            upload.file_name = field.file_name().unwrap_or_default().to_owned();
            upload.mime_type = field.content_type().unwrap_or_default().to_owned();
            let mut body = Vec::new();
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| multipart_error(&e, limit))?
            {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > limit {
                    return Err(too_large(limit));
                }
            }
            upload.bytes = Some(body.into());
            continue;
        }
        let text = field.text().await.map_err(|e| multipart_error(&e, limit))?;
        match name.as_str() {
            "source" => upload.source = text,
            "priority" => priority = text,
            "metadata" => metadata = text,
            "external_id" => upload.external_id = text,
            "document_id" => upload.document_id = text,
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!(
                        "unknown form field `{other}`; the fields are file, source, priority, metadata, external_id, document_id"
                    ),
                ));
            }
        }
    }
    if upload.bytes.is_none() {
        return Err(ApiError::invalid(
            "file",
            "the form has no `file` field with the document",
        ));
    }
    if !priority.trim().is_empty() {
        upload.priority = priority.trim().parse().map_err(|_| {
            ApiError::invalid(
                "priority",
                format!("priority must be an integer, not `{priority}`"),
            )
        })?;
    }
    upload.metadata = parse_metadata(&metadata)?;
    Ok(upload)
}

fn read_json(body: &[u8], allow_local_files: bool) -> Result<Upload, ApiError> {
    let j: UploadJson = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("invalid JSON body: {e}")))?;
    let location = match (j.url.trim(), j.key.trim()) {
        ("", "") => {
            return Err(ApiError::invalid(
                "url",
                "give `url` (http(s)://…) or `key` (an object-store key such as s3://bucket/key or blob:<key>), or upload the file as multipart/form-data",
            ));
        }
        (url, "") => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ApiError::invalid(
                    "url",
                    format!("`{url}` is not an http(s) URL"),
                ));
            }
            url.to_owned()
        }
        ("", key) => {
            let local = key.starts_with("file://") || key.starts_with('/');
            if local && !allow_local_files {
                return Err(ApiError::invalid(
                    "key",
                    format!(
                        "`{key}` names a local file, which this gateway does not read (allow_local_files is off)"
                    ),
                ));
            }
            if !local && !KEY_SCHEMES.iter().any(|s| key.starts_with(s)) {
                return Err(ApiError::invalid(
                    "key",
                    format!(
                        "`{key}` is not an object-store key; use one of {}",
                        KEY_SCHEMES.join(", ")
                    ),
                ));
            }
            key.to_owned()
        }
        _ => return Err(ApiError::invalid("url", "give `url` or `key`, not both")),
    };
    let name = if j.file_name.is_empty() {
        // The last path segment: never the query, which may carry a token.
        let path = url::Url::parse(&location)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map_or_else(|| location.clone(), |u| u.path().to_owned());
        path.rsplit('/').next().unwrap_or_default().to_owned()
    } else {
        j.file_name
    };
    Ok(Upload {
        bytes: None,
        // A URL's password and query may be credentials: its identity keeps neither.
        external_id: if !j.external_id.is_empty() {
            j.external_id
        } else {
            url::Url::parse(&location)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .map_or_else(|| location.clone(), |u| apex_common::fetch::identity(&u))
        },
        location,
        file_name: name,
        mime_type: j.mime_type,
        source: j.source,
        priority: j.priority,
        metadata: j.metadata,
        document_id: j.document_id,
    })
}

/// Reads the body by its content type.
pub(crate) async fn read_upload(
    request: Request,
    limit: u64,
    allow_local_files: bool,
) -> Result<Upload, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::invalid("body", e.body_text()))?;
        read_multipart(form, limit).await
    } else if content_type.starts_with("application/json") {
        let body = Bytes::from_request(request, &()).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(limit)
            } else {
                ApiError::invalid("body", e.body_text())
            }
        })?;
        read_json(&body, allow_local_files)
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedType,
            format!(
                "Content-Type `{content_type}` is not accepted: send multipart/form-data with a `file` field, or application/json with `url` or `key`"
            ),
        )
        .with_details(json!({ "accepted": ["multipart/form-data", "application/json"] })))
    }
}

/// Checks the fields every upload has; normalises the source and the document id.
pub(crate) fn check_fields(upload: &mut Upload) -> Result<(), ApiError> {
    if upload.source.trim().is_empty() {
        upload.source = "upload".to_owned();
    }
    if upload.source.len() > 100
        || !upload
            .source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::invalid(
            "source",
            "source must be 1–100 characters of letters, digits, `-`, `_` or `.`",
        ));
    }
    let given = upload.document_id.trim();
    if !given.is_empty() {
        // One spelling per id: the store key, the workflow id, the rollout bucket and the
        // status lookups all use the canonical lower-case hyphenated form.
        upload.document_id = uuid::Uuid::parse_str(given)
            .map_err(|_| {
                ApiError::invalid(
                    "document_id",
                    format!("document_id `{given}` is not a UUID"),
                )
            })?
            .to_string();
    }
    if let Some(bytes) = &upload.bytes {
        if bytes.is_empty() {
            return Err(ApiError::invalid("file", "the file is empty"));
        }
        if !crate::formats::accepted(&upload.file_name, &upload.mime_type) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedType,
                format!(
                    "`{}` ({}) is not a format the parser reads",
                    upload.file_name,
                    if upload.mime_type.is_empty() {
                        "no media type"
                    } else {
                        &upload.mime_type
                    }
                ),
            )
            .with_details(json!({
                "media_types": crate::formats::MEDIA_TYPES,
                "extensions": crate::formats::EXTENSIONS,
            })));
        }
    }
    Ok(())
}
