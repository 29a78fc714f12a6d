//! `GET /v1/search`: embed the query with the embedder, then ask the writer (which owns the
//! stores) for the nearest chunks with their text and entities.

use std::time::Duration;

use apex_common::error::ErrorCode;
use apex_proto::embedder::v1::EmbedRequest;
use apex_proto::writer::v1::SearchChunksRequest;
use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// Deadline of each service call a search or a status read makes.
pub(crate) const READ_DEADLINE: Duration = Duration::from_secs(10);

/// A service call with [`READ_DEADLINE`], its failure as an API error naming the service.
pub(crate) async fn within<T>(
    service: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(READ_DEADLINE, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(ApiError::from_status(service, &s)),
        Err(_) => Err(ApiError::new(
            ErrorCode::Timeout,
            format!("{service}: no answer within {} s", READ_DEADLINE.as_secs()),
        )),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    limit: Option<String>,
    source: Option<String>,
}

pub(crate) async fn search(
    State(g): State<AppState>,
    Query(params): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let q = params.q.unwrap_or_default();
    if q.trim().is_empty() {
        return Err(ApiError::invalid("q", "the query `q` is required"));
    }
    if q.len() > 2_000 {
        return Err(ApiError::invalid("q", "the query is over 2000 bytes"));
    }
    let limit = match params.limit.as_deref().map(str::trim) {
        None | Some("") => 10,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("limit must be 1–100, not `{raw}`"))
            })?,
    };
    let clients = g.stages().clients();
    let mut embedder = clients.embedder.clone();
    let embedded = within(
        "embedder",
        embedder.embed(EmbedRequest {
            texts: vec![q.clone()],
        }),
    )
    .await?;
    let vector = embedded
        .vectors
        .into_iter()
        .next()
        .map(|v| v.values)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "embedder: no vector for the query"))?;
    let mut writer = clients.writer.clone();
    let found = within(
        "writer",
        writer.search_chunks(SearchChunksRequest {
            vector,
            model_id: embedded.model_id.clone(),
            limit,
            source: params.source.clone().unwrap_or_default(),
        }),
    )
    .await?;
    let hits: Vec<Value> = found
        .hits
        .into_iter()
        .map(|h| {
            json!({
                "score": h.score,
                "document_id": h.document_id,
                "chunk_id": h.chunk_id,
                "source": h.source,
                "version": h.version,
                "ordinal": h.ordinal,
                "page": h.page,
                "section": h.section,
                "text": h.text,
                "entities": h.entities.into_iter().map(|e| json!({
                    "id": e.entity_id, "type": e.entity_type, "name": e.name,
                })).collect::<Vec<_>>(),
                "metadata": h.metadata.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "query": q,
        "model_id": embedded.model_id,
        "collection": found.collection,
        "hits": hits,
    })))
}
