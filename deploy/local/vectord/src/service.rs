//! The gRPC services `qdrant.Qdrant`, `qdrant.Collections` and `qdrant.Points`, on the server
//! traits `qdrant-client` generates. Methods outside the supported set answer `UNIMPLEMENTED`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use qdrant_client::qdrant::{
    self, collections_server::Collections, points_server::Points, qdrant_server::Qdrant,
};
use qdrant_edge::{
    CountRequest, CreateIndex, DEFAULT_VECTOR_NAME, EdgeConfig, EdgeVectorParams,
    FieldIndexOperations, NamedQuery, PayloadFieldSchema, PointInsertOperations, PointOperations,
    QueryEnum, ScrollRequest, SearchParams, SearchRequest, UpdateOperation, VectorInternal,
};
use tonic::{Request, Response, Status};

use crate::convert::{self, DEFAULT_VECTOR, VectorConfig};
use crate::error::{bad_input, unimplemented, validation};
use crate::store::{Collection, Store, check_collection_name};

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

fn collection_info(collection: &Collection) -> Result<qdrant::CollectionInfo, Status> {
    collection.read(|shard| {
        let config = shard.config().clone();
        let info = shard.info();
        let vectors_config = vectors_config_out(&config.vectors);
        let payload_schema = info
            .payload_schema
            .into_iter()
            .map(|(key, index)| {
                (
                    key.to_string(),
                    qdrant::PayloadSchemaInfo {
                        data_type: convert::schema_type_out(index.data_type) as i32,
                        params: None,
                        points: Some(index.points as u64),
                    },
                )
            })
            .collect();
        let hnsw = &config.hnsw_config;
        Ok(qdrant::CollectionInfo {
            status: qdrant::CollectionStatus::Green as i32,
            optimizer_status: Some(qdrant::OptimizerStatus {
                ok: true,
                error: String::new(),
            }),
            segments_count: info.segments_count as u64,
            config: Some(qdrant::CollectionConfig {
                params: Some(qdrant::CollectionParams {
                    shard_number: 1,
                    vectors_config,
                    replication_factor: Some(1),
                    write_consistency_factor: Some(1),
                    ..Default::default()
                }),
                hnsw_config: Some(qdrant::HnswConfigDiff {
                    m: Some(hnsw.m as u64),
                    ef_construct: Some(hnsw.ef_construct as u64),
                    full_scan_threshold: Some(hnsw.full_scan_threshold as u64),
                    payload_m: hnsw.payload_m.map(|m| m as u64),
                    ..Default::default()
                }),
                optimizer_config: Some(qdrant::OptimizersConfigDiff::default()),
                wal_config: Some(qdrant::WalConfigDiff::default()),
                quantization_config: None,
                strict_mode_config: None,
                metadata: HashMap::new(),
            }),
            payload_schema,
            points_count: Some(info.points_count as u64),
            indexed_vectors_count: Some(info.indexed_vectors_count as u64),
            warnings: Vec::new(),
            update_queue: None,
            ..Default::default()
        })
    })
}

fn vectors_config_out(vectors: &VectorConfig) -> Option<qdrant::VectorsConfig> {
    use qdrant::vectors_config::Config;
    let params = |p: &EdgeVectorParams| qdrant::VectorParams {
        size: p.size as u64,
        distance: convert::distance_out(p.distance) as i32,
        ..Default::default()
    };
    if vectors.is_empty() {
        return None;
    }
    let config = match vectors.get(DEFAULT_VECTOR) {
        Some(p) if vectors.len() == 1 => Config::Params(params(p)),
        _ => Config::ParamsMap(qdrant::VectorParamsMap {
            map: vectors
                .iter()
                .map(|(k, p)| (k.clone(), params(p)))
                .collect(),
        }),
    };
    Some(qdrant::VectorsConfig {
        config: Some(config),
    })
}

fn vector_params_in(p: qdrant::VectorParams, at: &str) -> Result<EdgeVectorParams, Status> {
    if p.size == 0 || p.size > 65536 {
        return Err(validation(format!(
            "{at}.size: value {} invalid, must be from 1 to 65536",
            p.size
        )));
    }
    if p.multivector_config.is_some() {
        return Err(unimplemented("multivector collections"));
    }
    if p.quantization_config.is_some() {
        return Err(unimplemented("quantization"));
    }
    if p.datatype
        .is_some_and(|d| d != qdrant::Datatype::Float32 as i32)
    {
        return Err(unimplemented("vector datatypes other than float32"));
    }
    Ok(EdgeVectorParams::builder(p.size as usize, convert::distance_in(p.distance)?).build())
}

fn edge_config_in(request: &qdrant::CreateCollection) -> Result<EdgeConfig, Status> {
    use qdrant::vectors_config::Config;
    if request.sparse_vectors_config.is_some() {
        return Err(unimplemented("sparse vector collections"));
    }
    if request.quantization_config.is_some() {
        return Err(unimplemented("quantization"));
    }
    if request.shard_number.is_some_and(|n| n != 1)
        || request.replication_factor.is_some_and(|n| n != 1)
    {
        return Err(unimplemented(
            "several shards or replicas (this is a single-node, single-shard server)",
        ));
    }
    if request.sharding_method == Some(qdrant::ShardingMethod::Custom as i32) {
        return Err(unimplemented("custom sharding"));
    }
    let mut builder = EdgeConfig::builder();
    match request
        .vectors_config
        .as_ref()
        .and_then(|v| v.config.clone())
    {
        Some(Config::Params(p)) => {
            builder = builder.vector(DEFAULT_VECTOR, vector_params_in(p, "vectors_config")?);
        }
        Some(Config::ParamsMap(map)) => {
            for (name, p) in map.map {
                let params = vector_params_in(p, &format!("vectors_config.{name}"))?;
                builder = builder.vector(name, params);
            }
        }
        None => {}
    }
    Ok(builder.build())
}

#[tonic::async_trait]
impl Collections for Vectord {
    async fn get(
        &self,
        request: Request<qdrant::GetCollectionInfoRequest>,
    ) -> Result<Response<qdrant::GetCollectionInfoResponse>, Status> {
        let start = Instant::now();
        let collection = self.store.get(&request.into_inner().collection_name)?;
        let info = blocking(move || collection_info(&collection)).await?;
        Ok(Response::new(qdrant::GetCollectionInfoResponse {
            result: Some(info),
            time: seconds(start),
        }))
    }

    async fn list(
        &self,
        _request: Request<qdrant::ListCollectionsRequest>,
    ) -> Result<Response<qdrant::ListCollectionsResponse>, Status> {
        let start = Instant::now();
        let collections = self
            .store
            .names()
            .into_iter()
            .map(|name| qdrant::CollectionDescription { name })
            .collect();
        Ok(Response::new(qdrant::ListCollectionsResponse {
            collections,
            time: seconds(start),
        }))
    }

    async fn create(
        &self,
        request: Request<qdrant::CreateCollection>,
    ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        check_collection_name(&request.collection_name)?;
        let config = edge_config_in(&request)?;
        let store = self.store.clone();
        blocking(move || store.create(&request.collection_name, config)).await?;
        Ok(Response::new(qdrant::CollectionOperationResponse {
            result: true,
            time: seconds(start),
        }))
    }

    async fn update(
        &self,
        _request: Request<qdrant::UpdateCollection>,
    ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
        Err(unimplemented("qdrant.Collections/Update"))
    }

    async fn delete(
        &self,
        request: Request<qdrant::DeleteCollection>,
    ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
        let start = Instant::now();
        let name = request.into_inner().collection_name;
        let store = self.store.clone();
        let result = blocking(move || store.delete(&name)).await?;
        Ok(Response::new(qdrant::CollectionOperationResponse {
            result,
            time: seconds(start),
        }))
    }

    async fn update_aliases(
        &self,
        _request: Request<qdrant::ChangeAliases>,
    ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
        Err(unimplemented("qdrant.Collections/UpdateAliases"))
    }

    async fn list_collection_aliases(
        &self,
        _request: Request<qdrant::ListCollectionAliasesRequest>,
    ) -> Result<Response<qdrant::ListAliasesResponse>, Status> {
        Err(unimplemented("qdrant.Collections/ListCollectionAliases"))
    }

    async fn list_aliases(
        &self,
        _request: Request<qdrant::ListAliasesRequest>,
    ) -> Result<Response<qdrant::ListAliasesResponse>, Status> {
        Err(unimplemented("qdrant.Collections/ListAliases"))
    }

    async fn collection_cluster_info(
        &self,
        _request: Request<qdrant::CollectionClusterInfoRequest>,
    ) -> Result<Response<qdrant::CollectionClusterInfoResponse>, Status> {
        Err(unimplemented("qdrant.Collections/CollectionClusterInfo"))
    }

    async fn collection_exists(
        &self,
        request: Request<qdrant::CollectionExistsRequest>,
    ) -> Result<Response<qdrant::CollectionExistsResponse>, Status> {
        let start = Instant::now();
        let exists = self.store.exists(&request.into_inner().collection_name);
        Ok(Response::new(qdrant::CollectionExistsResponse {
            result: Some(qdrant::CollectionExists { exists }),
            time: seconds(start),
        }))
    }

    async fn update_collection_cluster_setup(
        &self,
        _request: Request<qdrant::UpdateCollectionClusterSetupRequest>,
    ) -> Result<Response<qdrant::UpdateCollectionClusterSetupResponse>, Status> {
        Err(unimplemented(
            "qdrant.Collections/UpdateCollectionClusterSetup",
        ))
    }

    async fn create_shard_key(
        &self,
        _request: Request<qdrant::CreateShardKeyRequest>,
    ) -> Result<Response<qdrant::CreateShardKeyResponse>, Status> {
        Err(unimplemented("qdrant.Collections/CreateShardKey"))
    }

    async fn delete_shard_key(
        &self,
        _request: Request<qdrant::DeleteShardKeyRequest>,
    ) -> Result<Response<qdrant::DeleteShardKeyResponse>, Status> {
        Err(unimplemented("qdrant.Collections/DeleteShardKey"))
    }

    async fn list_shard_keys(
        &self,
        _request: Request<qdrant::ListShardKeysRequest>,
    ) -> Result<Response<qdrant::ListShardKeysResponse>, Status> {
        Err(unimplemented("qdrant.Collections/ListShardKeys"))
    }
}

/// Implements `Points`: the methods given in braces, and every method named after
/// `unimplemented` answering `UNIMPLEMENTED` with its full name. (The macro emits the whole
/// impl so that `async_trait` sees the generated methods too.)
macro_rules! impl_points {
    (
        { $($implemented:tt)* }
        unimplemented { $($method:ident($req:ident) -> $resp:ident = $name:literal;)* }
    ) => {
        #[tonic::async_trait]
        impl Points for Vectord {
            $($implemented)*
            $(
                async fn $method(
                    &self,
                    _request: Request<qdrant::$req>,
                ) -> Result<Response<qdrant::$resp>, Status> {
                    Err(unimplemented(concat!("qdrant.Points/", $name)))
                }
            )*
        }
    };
}

impl_points! {
{
    async fn upsert(
        &self,
        request: Request<qdrant::UpsertPoints>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        refuse_shard_key(request.shard_key_selector.as_ref())?;
        if request.update_filter.is_some() {
            return Err(unimplemented("conditional upserts (`update_filter`)"));
        }
        if request
            .update_mode
            .is_some_and(|m| m != qdrant::UpdateMode::Upsert as i32)
        {
            return Err(unimplemented("update modes other than Upsert"));
        }
        let collection = self.store.get(&request.collection_name)?;
        let wait = request.wait;
        let operation_id = blocking(move || {
            let config = vector_config(&collection)?;
            let points = convert::points_in(request.points, &config)?;
            collection.update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                PointInsertOperations::PointsList(points),
            )))
        })
        .await?;
        Ok(Response::new(qdrant::PointsOperationResponse {
            result: Some(update_result(operation_id, wait)),
            time: seconds(start),
            usage: None,
        }))
    }

    async fn delete(
        &self,
        request: Request<qdrant::DeletePoints>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        use qdrant::points_selector::PointsSelectorOneOf as S;
        let start = Instant::now();
        let request = request.into_inner();
        refuse_shard_key(request.shard_key_selector.as_ref())?;
        let operation = match request.points.and_then(|p| p.points_selector_one_of) {
            Some(S::Points(list)) => PointOperations::DeletePoints {
                ids: convert::point_ids_in(list.ids)?,
            },
            Some(S::Filter(filter)) => {
                PointOperations::DeletePointsByFilter(convert::filter_in(filter)?)
            }
            None => return Err(bad_input("points selector is required: ids or a filter")),
        };
        let collection = self.store.get(&request.collection_name)?;
        let operation_id =
            blocking(move || collection.update(UpdateOperation::PointOperation(operation)))
                .await?;
        Ok(Response::new(qdrant::PointsOperationResponse {
            result: Some(update_result(operation_id, request.wait)),
            time: seconds(start),
            usage: None,
        }))
    }

    async fn get(
        &self,
        request: Request<qdrant::GetPoints>,
    ) -> Result<Response<qdrant::GetResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        refuse_shard_key(request.shard_key_selector.as_ref())?;
        let ids = convert::point_ids_in(request.ids)?;
        let with_payload = convert::with_payload_in(request.with_payload, true)?;
        let with_vector = convert::with_vectors_in(request.with_vectors);
        let collection = self.store.get(&request.collection_name)?;
        let result = blocking(move || {
            collection.read(|shard| {
                let records = shard
                    .retrieve(&ids, Some(with_payload), Some(with_vector))
                    .map_err(crate::error::engine)?;
                Ok(records.into_iter().map(convert::record_out).collect())
            })
        })
        .await?;
        Ok(Response::new(qdrant::GetResponse {
            result,
            time: seconds(start),
            usage: None,
        }))
    }

    async fn create_field_index(
        &self,
        request: Request<qdrant::CreateFieldIndexCollection>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        let field_type = convert::field_type_in(request.field_type)?;
        let field_name = qdrant_edge::JsonPath::try_from(request.field_name.as_str())
            .map_err(|()| bad_input(format!("`{}` is not a valid payload key", request.field_name)))?;
        let collection = self.store.get(&request.collection_name)?;
        let operation = FieldIndexOperations::CreateIndex(CreateIndex {
            field_name,
            field_schema: Some(PayloadFieldSchema::FieldType(field_type)),
        });
        let operation_id =
            blocking(move || collection.update(UpdateOperation::FieldIndexOperation(operation)))
                .await?;
        Ok(Response::new(qdrant::PointsOperationResponse {
            result: Some(update_result(operation_id, request.wait)),
            time: seconds(start),
            usage: None,
        }))
    }

    async fn delete_field_index(
        &self,
        request: Request<qdrant::DeleteFieldIndexCollection>,
    ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        let field_name = qdrant_edge::JsonPath::try_from(request.field_name.as_str())
            .map_err(|()| bad_input(format!("`{}` is not a valid payload key", request.field_name)))?;
        let collection = self.store.get(&request.collection_name)?;
        let operation = FieldIndexOperations::DeleteIndex(field_name);
        let operation_id =
            blocking(move || collection.update(UpdateOperation::FieldIndexOperation(operation)))
                .await?;
        Ok(Response::new(qdrant::PointsOperationResponse {
            result: Some(update_result(operation_id, request.wait)),
            time: seconds(start),
            usage: None,
        }))
    }

    async fn search(
        &self,
        request: Request<qdrant::SearchPoints>,
    ) -> Result<Response<qdrant::SearchResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        refuse_shard_key(request.shard_key_selector.as_ref())?;
        if request.sparse_indices.is_some() {
            return Err(unimplemented("sparse vectors"));
        }
        let collection = self.store.get(&request.collection_name)?;
        let result = Nearest {
            vector: request.vector,
            using: request.vector_name.unwrap_or_default(),
            filter: request.filter,
            params: request.params,
            limit: request.limit,
            offset: request.offset.unwrap_or(0),
            score_threshold: request.score_threshold,
            with_payload: request.with_payload,
            with_vectors: request.with_vectors,
        }
        .run(collection)
        .await?;
        Ok(Response::new(qdrant::SearchResponse {
            result,
            time: seconds(start),
            usage: None,
        }))
    }

    async fn query(
        &self,
        request: Request<qdrant::QueryPoints>,
    ) -> Result<Response<qdrant::QueryResponse>, Status> {
        use qdrant::query::Variant as Q;
        use qdrant::vector_input::Variant as V;
        let start = Instant::now();
        let request = request.into_inner();
        refuse_shard_key(request.shard_key_selector.as_ref())?;
        if !request.prefetch.is_empty() {
            return Err(unimplemented("query `prefetch`"));
        }
        if request.lookup_from.is_some() {
            return Err(unimplemented("query `lookup_from`"));
        }
        let vector = match request.query.and_then(|q| q.variant) {
            Some(Q::Nearest(input)) => match input.variant {
                Some(V::Dense(dense)) => dense.data,
                Some(V::Id(_)) => return Err(unimplemented("query by point id")),
                Some(V::Sparse(_)) => return Err(unimplemented("sparse vectors")),
                Some(V::MultiDense(_)) => return Err(unimplemented("multivectors")),
                Some(V::Document(_) | V::Image(_) | V::Object(_)) => {
                    return Err(unimplemented("server-side inference"));
                }
                None => return Err(bad_input("query.nearest holds no vector")),
            },
            Some(other) => {
                let name = match other {
                    Q::Recommend(_) => "recommend",
                    Q::Discover(_) => "discover",
                    Q::Context(_) => "context",
                    Q::OrderBy(_) => "order_by",
                    Q::Fusion(_) | Q::Rrf(_) => "fusion",
                    Q::Sample(_) => "sample",
                    Q::Formula(_) => "formula",
                    Q::NearestWithMmr(_) => "nearest with MMR",
                    Q::RelevanceFeedback(_) => "relevance feedback",
                    Q::Text(_) => "text",
                    Q::Nearest(_) => "nearest",
                };
                return Err(unimplemented(format!("query `{name}`")));
            }
            None => {
                return Err(unimplemented(
                    "query without a vector (use Scroll to list points)",
                ));
            }
        };
        let collection = self.store.get(&request.collection_name)?;
        let result = Nearest {
            vector,
            using: request.using.unwrap_or_default(),
            filter: request.filter,
            params: request.params,
            limit: request.limit.unwrap_or(10),
            offset: request.offset.unwrap_or(0),
            score_threshold: request.score_threshold,
            with_payload: request.with_payload,
            with_vectors: request.with_vectors,
        }
        .run(collection)
        .await?;
        Ok(Response::new(qdrant::QueryResponse {
            result,
            time: seconds(start),
            usage: None,
        }))
    }

    async fn scroll(
        &self,
        request: Request<qdrant::ScrollPoints>,
    ) -> Result<Response<qdrant::ScrollResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        refuse_shard_key(request.shard_key_selector.as_ref())?;
        if request.order_by.is_some() {
            return Err(unimplemented("scroll `order_by`"));
        }
        if request.limit == Some(0) {
            return Err(validation("limit: value 0 invalid, must be 1 or larger"));
        }
        let scroll = ScrollRequest {
            offset: request.offset.map(convert::point_id_in).transpose()?,
            limit: Some(request.limit.unwrap_or(10) as usize),
            filter: convert::optional_filter_in(request.filter)?,
            with_payload: Some(convert::with_payload_in(request.with_payload, true)?),
            with_vector: convert::with_vectors_in(request.with_vectors),
            order_by: None,
        };
        let collection = self.store.get(&request.collection_name)?;
        let (records, next) = blocking(move || {
            collection.read(|shard| shard.scroll(scroll).map_err(crate::error::engine))
        })
        .await?;
        Ok(Response::new(qdrant::ScrollResponse {
            next_page_offset: next.map(convert::point_id_out),
            result: records.into_iter().map(convert::record_out).collect(),
            time: seconds(start),
            usage: None,
        }))
    }

    async fn count(
        &self,
        request: Request<qdrant::CountPoints>,
    ) -> Result<Response<qdrant::CountResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        refuse_shard_key(request.shard_key_selector.as_ref())?;
        // Counts are always exact here, whatever `exact` asks for.
        let count = CountRequest {
            filter: convert::optional_filter_in(request.filter)?,
            exact: true,
        };
        let collection = self.store.get(&request.collection_name)?;
        let count = blocking(move || {
            collection.read(|shard| shard.count(count).map_err(crate::error::engine))
        })
        .await?;
        Ok(Response::new(qdrant::CountResponse {
            result: Some(qdrant::CountResult {
                count: count as u64,
            }),
            time: seconds(start),
            usage: None,
        }))
    }

}
unimplemented {
        update_vectors(UpdatePointVectors) -> PointsOperationResponse = "UpdateVectors";
        delete_vectors(DeletePointVectors) -> PointsOperationResponse = "DeleteVectors";
        set_payload(SetPayloadPoints) -> PointsOperationResponse = "SetPayload";
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse = "OverwritePayload";
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse = "DeletePayload";
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse = "ClearPayload";
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse = "CreateVectorName";
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse = "DeleteVectorName";
        search_batch(SearchBatchPoints) -> SearchBatchResponse = "SearchBatch";
        search_groups(SearchPointGroups) -> SearchGroupsResponse = "SearchGroups";
        recommend(RecommendPoints) -> RecommendResponse = "Recommend";
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse = "RecommendBatch";
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse = "RecommendGroups";
        discover(DiscoverPoints) -> DiscoverResponse = "Discover";
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse = "DiscoverBatch";
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse = "UpdateBatch";
        query_batch(QueryBatchPoints) -> QueryBatchResponse = "QueryBatch";
        query_groups(QueryPointGroups) -> QueryGroupsResponse = "QueryGroups";
        facet(FacetCounts) -> FacetResponse = "Facet";
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse = "SearchMatrixPairs";
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse = "SearchMatrixOffsets";
    }
}
