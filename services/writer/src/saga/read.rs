//! The reads the writer serves because it owns the stores: `SearchChunks` and
//! `InspectDocument`.

use apex_common::ServiceError;
use apex_proto::writer::v1::{InspectDocumentResponse, StoreView};
use uuid::Uuid;

use super::{StoreKind, Writer};
use crate::graph::GraphView;
use crate::model;
use crate::postgres::PgView;
use crate::redis_store::RedisView;

impl Writer {
    /// `SearchChunks`: the nearest stored chunks to a query vector, with text and entities.
    pub async fn search(
        &self,
        req: apex_proto::writer::v1::SearchChunksRequest,
    ) -> Result<apex_proto::writer::v1::SearchChunksResponse, ServiceError> {
        use apex_proto::writer::v1::{ChunkHit, EntityRef, SearchChunksResponse};
        if req.vector.is_empty() {
            return Err(ServiceError::invalid_field(
                "vector",
                "the query vector is empty",
            ));
        }
        if req.vector.iter().any(|v| !v.is_finite()) {
            return Err(ServiceError::invalid_field(
                "vector",
                "the query vector holds a NaN or an infinity",
            ));
        }
        if req.model_id.trim().is_empty() {
            return Err(ServiceError::invalid_field(
                "model_id",
                "the model id is required",
            ));
        }
        if req.limit > 100 {
            return Err(ServiceError::invalid_field(
                "limit",
                format!("at most 100 hits, not {}", req.limit),
            ));
        }
        let limit = if req.limit == 0 { 10 } else { req.limit };
        let collection = self
            .vectors
            .collection_for(&req.model_id, req.vector.len() as u32);
        let source = Some(req.source.trim()).filter(|s| !s.is_empty());
        let nearest = self
            .timed(
                StoreKind::Vectors,
                "search",
                self.vectors
                    .search(&collection, req.vector, u64::from(limit), source),
            )
            .await?;
        let ids: Vec<Uuid> = nearest.iter().map(|(id, _)| *id).collect();
        let mut rows: std::collections::HashMap<Uuid, crate::postgres::ChunkRow> = self
            .timed(StoreKind::Postgres, "search", self.pg.chunk_hits(&ids))
            .await?
            .into_iter()
            .map(|r| (r.chunk_id, r))
            .collect();
        let hits = nearest
            .into_iter()
            .filter_map(|(id, score)| {
                let r = rows.remove(&id)?;
                Some(ChunkHit {
                    chunk_id: r.chunk_id.to_string(),
                    document_id: r.document_id.to_string(),
                    source: r.source,
                    version: r.version,
                    ordinal: r.ordinal,
                    score,
                    text: r.text,
                    page: r.page,
                    section: r.section,
                    entities: r
                        .entities
                        .into_iter()
                        .map(|(id, t, n)| EntityRef {
                            entity_id: id.to_string(),
                            entity_type: t,
                            name: n,
                        })
                        .collect(),
                    metadata: r.metadata.into_iter().collect(),
                })
            })
            .collect();
        Ok(SearchChunksResponse { hits, collection })
    }

    /// `InspectDocument`: what each store holds, and whether they agree.
    pub async fn inspect(
        &self,
        document_id: &str,
    ) -> Result<InspectDocumentResponse, ServiceError> {
        let id = model::parse_document_id("document_id", document_id)?;
        let pg = self
            .timed(StoreKind::Postgres, "inspect", self.pg.inspect(id))
            .await?;
        let stored = self
            .timed(StoreKind::Postgres, "inspect", self.pg.stored(id))
            .await?;
        let (content_sha256, stored_version) = stored.as_ref().map_or((String::new(), 0), |s| {
            (s.content_sha256.clone(), s.version)
        });
        // PostgreSQL is the source of truth: without it there is no answer. The other
        // stores are read as they can be; one that cannot be read says why.
        let graph = self
            .timed(StoreKind::Graph, "inspect", self.graph.inspect(id))
            .await;
        let redis = self
            .timed(StoreKind::Redis, "inspect", self.redis.state(id))
            .await;
        let vector_view = self
            .vector_view(id, stored.and_then(|s| s.vector_collection))
            .await;
        let (graph_error, redis_error, vector_error) = (
            read_error(&graph),
            read_error(&redis),
            read_error(&vector_view),
        );
        let readable = graph.is_ok() && redis.is_ok() && vector_view.is_ok();
        let (points, mut versions) = vector_view.unwrap_or_default();
        versions.sort_unstable();
        versions.dedup();
        let views = Views {
            pg,
            graph: graph.unwrap_or(None),
            redis: redis.unwrap_or(None),
            points,
            versions,
        };
        Ok(InspectDocumentResponse {
            stores: views.stores(graph_error, vector_error, redis_error),
            consistent: readable && views.agree(),
            content_sha256,
            version: stored_version,
        })
    }

    /// The document's points and the versions in their payloads, in its recorded
    /// collection or, when none is recorded, in every collection.
    async fn vector_view(
        &self,
        id: Uuid,
        collection: Option<String>,
    ) -> Result<(u32, Vec<u64>), ServiceError> {
        let collections = match collection {
            Some(c) => vec![c],
            None => {
                self.timed(StoreKind::Vectors, "inspect", self.vectors.collections())
                    .await?
            }
        };
        let mut points = 0u32;
        let mut versions: Vec<u64> = Vec::new();
        for c in &collections {
            let v = self
                .timed(StoreKind::Vectors, "inspect", self.vectors.inspect(c, id))
                .await?;
            points += v.points;
            versions.extend(v.versions);
        }
        Ok((points, versions))
    }
}

/// What each store holds of one document (`None` where it holds nothing or could not be
/// read); the vectors' versions sorted and deduplicated.
struct Views {
    pg: Option<PgView>,
    graph: Option<GraphView>,
    redis: Option<RedisView>,
    points: u32,
    versions: Vec<u64>,
}

impl Views {
    fn stores(
        &self,
        graph_error: String,
        vector_error: String,
        redis_error: String,
    ) -> Vec<StoreView> {
        let (pg, graph, redis) = (self.pg, self.graph, self.redis.as_ref());
        vec![
            StoreView {
                store: StoreKind::Postgres.wire() as i32,
                version: pg.map_or(0, |p| p.version),
                chunk_count: pg.map_or(0, |p| p.chunks),
                entity_count: pg.map_or(0, |p| p.entities),
                vector_count: pg.map_or(0, |p| p.vectors),
                present: pg.is_some(),
                error: String::new(),
            },
            StoreView {
                store: StoreKind::Graph.wire() as i32,
                version: graph.map_or(0, |g| g.version),
                chunk_count: graph.map_or(0, |g| g.chunks),
                entity_count: graph.map_or(0, |g| g.entities),
                vector_count: 0,
                present: graph.is_some(),
                error: graph_error,
            },
            StoreView {
                store: StoreKind::Vectors.wire() as i32,
                version: if self.versions.len() == 1 {
                    self.versions[0]
                } else {
                    0
                },
                chunk_count: 0,
                entity_count: 0,
                vector_count: self.points,
                present: self.points > 0,
                error: vector_error,
            },
            StoreView {
                store: StoreKind::Redis.wire() as i32,
                version: redis.map_or(0, |r| r.version),
                chunk_count: redis.map_or(0, |r| r.chunks),
                entity_count: redis.map_or(0, |r| r.entities),
                vector_count: redis.map_or(0, |r| r.vectors),
                present: redis.is_some(),
                error: redis_error,
            },
        ]
    }

    /// Whether every store holds what PostgreSQL says: the same version and counts, and
    /// nothing anywhere when PostgreSQL has no document.
    fn agree(&self) -> bool {
        let (graph, redis, points) = (self.graph, self.redis.as_ref(), self.points);
        match self.pg {
            None => graph.is_none() && points == 0 && redis.is_none(),
            Some(p) => {
                graph.is_some_and(|g| {
                    g.version == p.version && g.chunks == p.chunks && g.entities == p.entities
                }) && points == p.vectors
                    && (points == 0 || self.versions == [p.version])
                    && redis.is_some_and(|r| {
                        r.version == p.version
                            && r.chunks == p.chunks
                            && r.entities == p.entities
                            && r.vectors == p.vectors
                    })
            }
        }
    }
}

/// Why a store could not be read, or empty.
fn read_error<T>(r: &Result<T, ServiceError>) -> String {
    r.as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default()
}
