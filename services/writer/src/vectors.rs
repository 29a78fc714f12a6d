//! Vectors in Qdrant (the local `apex-vectord` here, real Qdrant in production) through
//! `qdrant-client`: one collection per model and dimension, one point per chunk with the
//! chunk id as point id, `wait=true` upserts, superseded versions' points deleted.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use apex_common::ServiceError;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, PointStruct, ScrollPointsBuilder,
    SearchPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder, vectors_config::Config,
};
use uuid::Uuid;

use crate::model::DocumentData;

fn unavailable(what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Unavailable(format!("vectors (qdrant): {what}: {e}"))
}

/// The collection for a model and dimension: `<prefix>_<model slug>_<dimension>`.
pub fn collection_name(prefix: &str, model_id: &str, dimension: u32) -> String {
    let mut slug = String::with_capacity(model_id.len());
    for c in model_id.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    let slug = slug.trim_matches('_');
    format!("{prefix}_{slug}_{dimension}")
}

/// The vector store's view of a document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorView {
    /// Versions found in the points' payloads (one when consistent).
    pub versions: Vec<u64>,
    pub points: u32,
}

pub struct VectorStore {
    client: Qdrant,
    prefix: String,
    batch_size: usize,
    /// Collections known to exist with the right dimension.
    ready: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for VectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn document_filter(document_id: Uuid) -> Filter {
    Filter::must([Condition::matches("document_id", document_id.to_string())])
}

impl VectorStore {
    pub fn connect(
        url: &str,
        api_key: Option<String>,
        prefix: &str,
        batch_size: usize,
        timeout: Duration,
    ) -> Result<Self, ServiceError> {
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .timeout(timeout)
            .connect_timeout(timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| ServiceError::invalid_field("vectors.url", format!("{url}: {e}")))?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            batch_size: batch_size.max(1),
            ready: Mutex::new(HashSet::new()),
        })
    }

    pub fn collection_for(&self, model_id: &str, dimension: u32) -> String {
        collection_name(&self.prefix, model_id, dimension)
    }

    fn is_ready(&self, name: &str) -> bool {
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }

    /// Creates the collection when absent (cosine distance, payload indexes on
    /// `document_id` and `version`); refuses one that exists with another dimension.
    pub async fn ensure_collection(&self, name: &str, dimension: u32) -> Result<(), ServiceError> {
        if self.is_ready(name) {
            return Ok(());
        }
        if !self.exists(name).await? {
            let created = self
                .client
                .create_collection(CreateCollectionBuilder::new(name).vectors_config(
                    VectorParamsBuilder::new(u64::from(dimension), Distance::Cosine),
                ))
                .await;
            if let Err(e) = created {
                // Another writer may have created it first; the check below decides.
                tracing::debug!(collection = name, error = %e, "create collection");
            }
            for (field, kind) in [
                ("document_id", FieldType::Keyword),
                ("version", FieldType::Integer),
            ] {
                self.client
                    .create_field_index(CreateFieldIndexCollectionBuilder::new(name, field, kind))
                    .await
                    .map_err(|e| unavailable("payload index", e))?;
            }
        }
        let info = self
            .client
            .collection_info(name)
            .await
            .map_err(|e| unavailable("collection info", e))?;
        let size = info
            .result
            .and_then(|r| r.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config)
            .and_then(|c| match c {
                Config::Params(p) => Some(p.size),
                Config::ParamsMap(_) => None,
            });
        match size {
            Some(size) if size == u64::from(dimension) => {
                self.ready
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_owned());
                Ok(())
            }
            Some(size) => Err(ServiceError::FailedPrecondition(format!(
                "vector collection {name} holds vectors of dimension {size}; \
                 {dimension}-dimensional vectors cannot be mixed into it"
            ))),
            None => Err(ServiceError::FailedPrecondition(format!(
                "vector collection {name} has named vectors; the writer needs one unnamed vector"
            ))),
        }
    }

    /// Upserts the document's points into `collection` and deletes every other version's
    /// points there and in `stale` (the collection an older version used, when the model
    /// changed).
    pub async fn write(
        &self,
        doc: &DocumentData,
        collection: &str,
        stale: Option<&str>,
    ) -> Result<(), ServiceError> {
        if let Some(set) = &doc.vectors {
            self.ensure_collection(collection, set.dimension).await?;
            for batch in set.points.chunks(self.batch_size) {
                let points: Vec<PointStruct> = batch
                    .iter()
                    .map(|p| {
                        let payload: qdrant_client::Payload = serde_json::json!({
                            "document_id": doc.document_id.to_string(),
                            "source": doc.source,
                            "version": doc.version as i64,
                            "ordinal": p.ordinal,
                        })
                        .try_into()
                        .unwrap_or_default();
                        PointStruct::new(p.chunk_id.to_string(), p.values.clone(), payload)
                    })
                    .collect();
                self.client
                    .upsert_points(UpsertPointsBuilder::new(collection, points).wait(true))
                    .await
                    .map_err(|e| unavailable("upsert", e))?;
            }
            let superseded = Filter {
                must: vec![Condition::matches(
                    "document_id",
                    doc.document_id.to_string(),
                )],
                must_not: vec![Condition::matches("version", doc.version as i64)],
                ..Default::default()
            };
            self.client
                .delete_points(
                    DeletePointsBuilder::new(collection)
                        .points(superseded)
                        .wait(true),
                )
                .await
                .map_err(|e| unavailable("delete superseded points", e))?;
        }
        if let Some(stale) = stale.filter(|s| *s != collection || doc.vectors.is_none()) {
            self.delete_in(stale, doc.document_id).await?;
        }
        Ok(())
    }

    /// Deletes the document's points in one collection; an absent collection is fine.
    pub async fn delete_in(&self, collection: &str, document_id: Uuid) -> Result<(), ServiceError> {
        if !self.exists(collection).await? {
            return Ok(());
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(collection)
                    .points(document_filter(document_id))
                    .wait(true),
            )
            .await
            .map_err(|e| unavailable("delete points", e))?;
        Ok(())
    }

    /// The writer's collections (those with its prefix).
    pub async fn collections(&self) -> Result<Vec<String>, ServiceError> {
        let list = self
            .client
            .list_collections()
            .await
            .map_err(|e| unavailable("list collections", e))?;
        let prefix = format!("{}_", self.prefix);
        Ok(list
            .collections
            .into_iter()
            .map(|c| c.name)
            .filter(|n| n.starts_with(&prefix))
            .collect())
    }

    /// Deletes the document's points in every collection of the writer.
    pub async fn delete_everywhere(&self, document_id: Uuid) -> Result<(), ServiceError> {
        for c in self.collections().await? {
            self.delete_in(&c, document_id).await?;
        }
        Ok(())
    }

    async fn exists(&self, collection: &str) -> Result<bool, ServiceError> {
        self.client
            .collection_exists(collection)
            .await
            .map_err(|e| unavailable("collection exists", e))
    }

    /// The `limit` points of `collection` nearest to `vector` (cosine), optionally only
    /// those of `source`: (chunk id, score), best first. An absent collection has none.
    pub async fn search(
        &self,
        collection: &str,
        vector: Vec<f32>,
        limit: u64,
        source: Option<&str>,
    ) -> Result<Vec<(Uuid, f32)>, ServiceError> {
        if !self.exists(collection).await? {
            return Ok(Vec::new());
        }
        let mut request = SearchPointsBuilder::new(collection, vector, limit);
        if let Some(source) = source {
            request = request.filter(Filter::must([Condition::matches(
                "source",
                source.to_owned(),
            )]));
        }
        let found = self
            .client
            .search_points(request)
            .await
            .map_err(|e| unavailable("search", e))?;
        Ok(found
            .result
            .into_iter()
            .filter_map(|p| {
                let id = match p.id?.point_id_options? {
                    qdrant_client::qdrant::point_id::PointIdOptions::Uuid(u) => {
                        Uuid::parse_str(&u).ok()?
                    }
                    qdrant_client::qdrant::point_id::PointIdOptions::Num(_) => return None,
                };
                Some((id, p.score))
            })
            .collect())
    }

    /// Counts the document's points in `collection` and the versions they carry.
    pub async fn inspect(
        &self,
        collection: &str,
        document_id: Uuid,
    ) -> Result<VectorView, ServiceError> {
        if !self.exists(collection).await? {
            return Ok(VectorView::default());
        }
        let count = self
            .client
            .count(
                CountPointsBuilder::new(collection)
                    .filter(document_filter(document_id))
                    .exact(true),
            )
            .await
            .map_err(|e| unavailable("count", e))?
            .result
            .map_or(0, |r| r.count);
        let mut versions: Vec<u64> = Vec::new();
        let mut offset = None;
        loop {
            let mut request = ScrollPointsBuilder::new(collection)
                .filter(document_filter(document_id))
                .limit(256)
                .with_payload(true);
            if let Some(o) = offset.take() {
                request = request.offset(o);
            }
            let page = self
                .client
                .scroll(request)
                .await
                .map_err(|e| unavailable("scroll", e))?;
            for p in &page.result {
                if let Some(v) = p.payload.get("version").and_then(|v| v.as_integer()) {
                    let v = v.max(0) as u64;
                    if !versions.contains(&v) {
                        versions.push(v);
                    }
                }
            }
            match page.next_page_offset {
                Some(o) if !page.result.is_empty() => offset = Some(o),
                _ => break,
            }
        }
        versions.sort_unstable();
        Ok(VectorView {
            versions,
            points: count as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_are_per_model_and_dimension() {
        assert_eq!(
            collection_name("apex_chunks", "sentence-transformers/all-MiniLM-L6-v2", 384),
            "apex_chunks_sentence_transformers_all_minilm_l6_v2_384"
        );
        assert_ne!(
            collection_name("p", "m", 384),
            collection_name("p", "m", 768),
            "a new dimension gets a new collection"
        );
    }
}
