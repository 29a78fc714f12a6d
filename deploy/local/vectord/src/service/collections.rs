//! `qdrant.Collections`: create, get, list, delete and check collections; aliases, shard
//! keys and cluster calls answer `UNIMPLEMENTED`.

use std::collections::HashMap;
use std::time::Instant;

use qdrant_client::qdrant::{self, collections_server::Collections};
use qdrant_edge::{EdgeConfig, EdgeVectorParams};
use tonic::{Request, Response, Status};

use crate::convert::{self, DEFAULT_VECTOR, VectorConfig};
use crate::error::{unimplemented, validation};
use crate::store::{Collection, check_collection_name};

use super::*;

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
