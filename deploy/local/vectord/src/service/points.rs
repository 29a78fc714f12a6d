//! `qdrant.Points`: upsert, delete, get, field indexes, search, query, scroll and count;
//! the rest answers `UNIMPLEMENTED`.

use std::time::Instant;

use qdrant_client::qdrant::{self, points_server::Points};
use qdrant_edge::{
    CountRequest, CreateIndex, FieldIndexOperations, PayloadFieldSchema, PointInsertOperations,
    PointOperations, ScrollRequest, UpdateOperation,
};
use tonic::{Request, Response, Status};

use crate::convert::{self};
use crate::error::{bad_input, unimplemented, validation};

use super::*;

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
