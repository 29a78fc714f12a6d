//! The gRPC services `qdrant.Qdrant`, `qdrant.Collections` and `qdrant.Points`, on the server
//! traits `qdrant-client` generates. Methods outside the supported set answer `UNIMPLEMENTED`.
//!
//! Here: the shared [`Vectord`], its helpers and `qdrant.Qdrant`; [`collections`] and
//! [`points`] implement the other two services.

mod collections;
mod points;

use std::sync::Arc;
use std::time::Instant;

use qdrant_client::qdrant::{self, qdrant_server::Qdrant};
use qdrant_edge::{
    DEFAULT_VECTOR_NAME, NamedQuery, QueryEnum, SearchParams, SearchRequest, VectorInternal,
};
use tonic::{Request, Response, Status};

use crate::convert::{self, VectorConfig};
use crate::error::{bad_input, unimplemented, validation};
use crate::store::{Collection, Store};

/// What `HealthCheck` reports: the Qdrant API version whose protos this server implements.
pub const QDRANT_API_VERSION: &str = "1.20.0";

/// The three Qdrant services over one [`Store`].
#[derive(Debug, Clone)]
pub(crate) struct Vectord {
    store: Arc<Store>,
}

impl Vectord {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Self { store }
    }
}

/// Runs blocking engine work off the async runtime.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, Status> + Send + 'static,
) -> Result<R, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("Service internal error: engine task failed: {e}")))?
}

fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn update_result(operation_id: u64, wait: Option<bool>) -> qdrant::UpdateResult {
    // The engine applies every update before answering, so `wait` only chooses the status
    // Qdrant would report: Completed when the caller waited, Acknowledged otherwise.
    let status = if wait.unwrap_or(false) {
        qdrant::UpdateStatus::Completed
    } else {
        qdrant::UpdateStatus::Acknowledged
    };
    qdrant::UpdateResult {
        operation_id: Some(operation_id),
        status: status as i32,
    }
}

fn vector_config(collection: &Collection) -> Result<VectorConfig, Status> {
    collection.read(|shard| Ok(shard.config().vectors.clone()))
}

fn refuse_shard_key(selector: Option<&qdrant::ShardKeySelector>) -> Result<(), Status> {
    if selector.is_some() {
        return Err(bad_input(
            "Shard key selector is not allowed: the collection uses automatic sharding",
        ));
    }
    Ok(())
}

fn search_params_in(params: Option<qdrant::SearchParams>) -> Result<Option<SearchParams>, Status> {
    let Some(p) = params else { return Ok(None) };
    if p.quantization.is_some() || p.acorn.is_some() {
        return Err(unimplemented("search params `quantization` and `acorn`"));
    }
    Ok(Some(SearchParams {
        hnsw_ef: p.hnsw_ef.map(|ef| ef as usize),
        exact: p.exact.unwrap_or(false),
        indexed_only: p.indexed_only.unwrap_or(false),
        ..Default::default()
    }))
}

/// The shared core of `Search` and `Query`: a nearest-neighbour search with a dense vector.
struct Nearest {
    vector: Vec<f32>,
    using: String,
    filter: Option<qdrant::Filter>,
    params: Option<qdrant::SearchParams>,
    limit: u64,
    offset: u64,
    score_threshold: Option<f32>,
    with_payload: Option<qdrant::WithPayloadSelector>,
    with_vectors: Option<qdrant::WithVectorsSelector>,
}

impl Nearest {
    async fn run(self, collection: Arc<Collection>) -> Result<Vec<qdrant::ScoredPoint>, Status> {
        if self.limit == 0 {
            return Err(validation("limit: value 0 invalid, must be 1 or larger"));
        }
        let filter = convert::optional_filter_in(self.filter)?;
        let params = search_params_in(self.params)?;
        let with_payload = convert::with_payload_in(self.with_payload, false)?;
        let with_vector = convert::with_vectors_in(self.with_vectors);
        let limit = usize::try_from(self.limit).map_err(|_| validation("limit is too large"))?;
        let offset = usize::try_from(self.offset).map_err(|_| validation("offset is too large"))?;
        blocking(move || {
            collection.read(|shard| {
                convert::check_vector(&shard.config().vectors, &self.using, &self.vector)?;
                let using = (self.using != DEFAULT_VECTOR_NAME).then_some(self.using);
                let request = SearchRequest {
                    query: QueryEnum::Nearest(NamedQuery {
                        query: VectorInternal::Dense(self.vector),
                        using,
                    }),
                    filter,
                    params,
                    limit,
                    offset,
                    with_payload: Some(with_payload),
                    with_vector: Some(with_vector),
                    score_threshold: self.score_threshold,
                };
                let points = shard.search(request).map_err(crate::error::engine)?;
                Ok(points.into_iter().map(convert::scored_out).collect())
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl Qdrant for Vectord {
    async fn health_check(
        &self,
        _request: Request<qdrant::HealthCheckRequest>,
    ) -> Result<Response<qdrant::HealthCheckReply>, Status> {
        Ok(Response::new(qdrant::HealthCheckReply {
            title: "qdrant - vector search engine".to_owned(),
            version: QDRANT_API_VERSION.to_owned(),
            commit: Some(format!(
                "apex-vectord {} on qdrant-edge 0.7.2",
                env!("CARGO_PKG_VERSION")
            )),
        }))
    }
}
