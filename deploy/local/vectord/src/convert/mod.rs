//! Conversions between Qdrant's gRPC messages (as `qdrant-client` generates them) and the
//! engine's own types (`qdrant-edge`). Every conversion that can meet bad input returns a
//! `Status` that says what is wrong; every option the server does not support is refused
//! with `UNIMPLEMENTED` instead of being ignored.

mod filter;

use std::collections::HashMap;

use qdrant_client::qdrant;
use qdrant_edge::external::uuid::Uuid;
use qdrant_edge::{
    Distance, EdgeVectorParams, Payload, PayloadSchemaType, PayloadSelector,
    PayloadSelectorExclude, PayloadSelectorInclude, PointId, PointStructPersisted, Record,
    ScoredPoint, VectorInternal, VectorPersisted, VectorStructInternal, VectorStructPersisted,
    WithPayloadInterface, WithVector,
};
use tonic::Status;

use crate::error::{bad_input, unimplemented, validation};
use filter::json_path;
pub(crate) use filter::{filter_in, optional_filter_in};

/// The name Qdrant gives the single unnamed vector of a collection.
pub(crate) const DEFAULT_VECTOR: &str = "";

/// The dense vectors a collection holds, by name (`""` for a single unnamed vector).
pub(crate) type VectorConfig = HashMap<String, EdgeVectorParams>;

pub(crate) fn point_id_in(id: qdrant::PointId) -> Result<PointId, Status> {
    use qdrant::point_id::PointIdOptions;
    match id.point_id_options {
        Some(PointIdOptions::Num(n)) => Ok(PointId::NumId(n)),
        Some(PointIdOptions::Uuid(s)) => Uuid::parse_str(&s)
            .map(PointId::Uuid)
            .map_err(|e| bad_input(format!("Unable to parse UUID: {s}: {e}"))),
        None => Err(bad_input("point id is empty: set a number or a UUID")),
    }
}

pub(crate) fn point_id_out(id: PointId) -> qdrant::PointId {
    use qdrant::point_id::PointIdOptions;
    let options = match id {
        PointId::NumId(n) => PointIdOptions::Num(n),
        PointId::Uuid(u) => PointIdOptions::Uuid(u.hyphenated().to_string()),
    };
    qdrant::PointId {
        point_id_options: Some(options),
    }
}

pub(crate) fn point_ids_in(ids: Vec<qdrant::PointId>) -> Result<Vec<PointId>, Status> {
    ids.into_iter().map(point_id_in).collect()
}

pub(crate) fn distance_in(distance: i32) -> Result<Distance, Status> {
    match qdrant::Distance::try_from(distance) {
        Ok(qdrant::Distance::Cosine) => Ok(Distance::Cosine),
        Ok(qdrant::Distance::Euclid) => Ok(Distance::Euclid),
        Ok(qdrant::Distance::Dot) => Ok(Distance::Dot),
        Ok(qdrant::Distance::Manhattan) => Ok(Distance::Manhattan),
        Ok(qdrant::Distance::UnknownDistance) | Err(_) => Err(validation(format!(
            "vectors_config.distance: unknown distance {distance}: use Cosine, Euclid, Dot or Manhattan"
        ))),
    }
}

pub(crate) fn distance_out(distance: Distance) -> qdrant::Distance {
    match distance {
        Distance::Cosine => qdrant::Distance::Cosine,
        Distance::Euclid => qdrant::Distance::Euclid,
        Distance::Dot => qdrant::Distance::Dot,
        Distance::Manhattan => qdrant::Distance::Manhattan,
    }
}

/// The dense data of a vector, or why it is not one this server stores.
#[allow(deprecated)] // `data`, `indices` and `vectors_count` are the pre-1.13 wire form
pub(crate) fn dense_in(vector: qdrant::Vector) -> Result<Vec<f32>, Status> {
    use qdrant::vector::Vector as V;
    match vector.vector {
        Some(V::Dense(dense)) => Ok(dense.data),
        Some(V::Sparse(_)) => Err(unimplemented("sparse vectors")),
        Some(V::MultiDense(_)) => Err(unimplemented("multivectors")),
        Some(V::Document(_) | V::Image(_) | V::Object(_)) => Err(unimplemented(
            "server-side inference (documents, images, objects)",
        )),
        None if vector.indices.is_some() => Err(unimplemented("sparse vectors")),
        None if vector.vectors_count.is_some() => Err(unimplemented("multivectors")),
        None => Ok(vector.data),
    }
}

/// Checks that `name` is a vector of the collection and `data` has its dimension.
pub(crate) fn check_vector(config: &VectorConfig, name: &str, data: &[f32]) -> Result<(), Status> {
    let params = config
        .get(name)
        .ok_or_else(|| bad_input(format!("Not existing vector name error: {name}")))?;
    if data.len() != params.size {
        return Err(bad_input(format!(
            "Vector dimension error: expected dim: {}, got {}",
            params.size,
            data.len()
        )));
    }
    Ok(())
}

/// Points of an upsert, checked against the collection's vectors before anything is written,
/// so that a bad point fails the whole request and nothing of it is applied.
pub(crate) fn points_in(
    points: Vec<qdrant::PointStruct>,
    config: &VectorConfig,
) -> Result<Vec<PointStructPersisted>, Status> {
    points
        .into_iter()
        .map(|point| {
            let id = point_id_in(point.id.unwrap_or_default())?;
            let vector = match point.vectors.and_then(|v| v.vectors_options) {
                Some(qdrant::vectors::VectorsOptions::Vector(vector)) => {
                    let data = dense_in(vector)?;
                    check_vector(config, DEFAULT_VECTOR, &data)
                        .map_err(|s| point_status(&id, s))?;
                    VectorStructPersisted::Single(data)
                }
                Some(qdrant::vectors::VectorsOptions::Vectors(named)) => {
                    let mut out = HashMap::with_capacity(named.vectors.len());
                    for (name, vector) in named.vectors {
                        let data = dense_in(vector)?;
                        check_vector(config, &name, &data).map_err(|s| point_status(&id, s))?;
                        out.insert(name, VectorPersisted::Dense(data));
                    }
                    if out.len() == 1 && out.contains_key(DEFAULT_VECTOR) {
                        let data = out.remove(DEFAULT_VECTOR).and_then(|v| match v {
                            VectorPersisted::Dense(d) => Some(d),
                            _ => None,
                        });
                        VectorStructPersisted::Single(data.unwrap_or_default())
                    } else {
                        VectorStructPersisted::Named(out)
                    }
                }
                None if config.is_empty() => VectorStructPersisted::Named(HashMap::new()),
                None => {
                    return Err(bad_input(format!(
                        "point {} has no vectors; the collection expects {}",
                        show_id(&id),
                        show_vectors(config)
                    )));
                }
            };
            Ok(PointStructPersisted {
                id,
                vector,
                payload: Some(payload_in(point.payload)),
            })
        })
        .collect()
}

fn point_status(id: &PointId, status: Status) -> Status {
    Status::new(
        status.code(),
        format!("{} (point {})", status.message(), show_id(id)),
    )
}

pub(crate) fn show_id(id: &PointId) -> String {
    match id {
        PointId::NumId(n) => n.to_string(),
        PointId::Uuid(u) => u.hyphenated().to_string(),
    }
}

fn show_vectors(config: &VectorConfig) -> String {
    let mut parts: Vec<String> = config
        .iter()
        .map(|(name, p)| {
            if name.is_empty() {
                format!("one {}-dimensional vector", p.size)
            } else {
                format!("`{name}` ({} dims)", p.size)
            }
        })
        .collect();
    parts.sort();
    parts.join(", ")
}

pub(crate) fn payload_in(payload: HashMap<String, qdrant::Value>) -> Payload {
    Payload(
        payload
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect(),
    )
}

pub(crate) fn payload_out(payload: Option<Payload>) -> HashMap<String, qdrant::Value> {
    payload
        .map(|p| {
            p.0.into_iter()
                .map(|(k, v)| (k, qdrant::Value::from(v)))
                .collect()
        })
        .unwrap_or_default()
}
/// `with_payload`; `default` is what Qdrant does when the request leaves it out.
pub(crate) fn with_payload_in(
    selector: Option<qdrant::WithPayloadSelector>,
    default: bool,
) -> Result<WithPayloadInterface, Status> {
    use qdrant::with_payload_selector::SelectorOptions as S;
    let keys = |fields: Vec<String>| {
        fields
            .iter()
            .map(|f| json_path(f))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match selector.and_then(|s| s.selector_options) {
        None => WithPayloadInterface::Bool(default),
        Some(S::Enable(on)) => WithPayloadInterface::Bool(on),
        Some(S::Include(i)) => {
            WithPayloadInterface::Selector(PayloadSelector::Include(PayloadSelectorInclude {
                include: keys(i.fields)?,
            }))
        }
        Some(S::Exclude(e)) => {
            WithPayloadInterface::Selector(PayloadSelector::Exclude(PayloadSelectorExclude {
                exclude: keys(e.fields)?,
            }))
        }
    })
}

pub(crate) fn with_vectors_in(selector: Option<qdrant::WithVectorsSelector>) -> WithVector {
    use qdrant::with_vectors_selector::SelectorOptions as S;
    match selector.and_then(|s| s.selector_options) {
        None => WithVector::Bool(false),
        Some(S::Enable(on)) => WithVector::Bool(on),
        Some(S::Include(names)) => WithVector::Selector(names.names),
    }
}

fn dense_out(data: Vec<f32>) -> qdrant::VectorOutput {
    qdrant::VectorOutput {
        vector: Some(qdrant::vector_output::Vector::Dense(qdrant::DenseVector {
            data,
        })),
        ..Default::default()
    }
}

fn vector_out(vector: VectorInternal) -> Option<qdrant::VectorOutput> {
    match vector {
        VectorInternal::Dense(data) => Some(dense_out(data)),
        // Only dense vectors can be stored here (see `dense_in`).
        VectorInternal::Sparse(_) | VectorInternal::MultiDense(_) => None,
    }
}

pub(crate) fn vectors_out(vectors: Option<VectorStructInternal>) -> Option<qdrant::VectorsOutput> {
    use qdrant::vectors_output::VectorsOptions as O;
    let options = match vectors? {
        VectorStructInternal::Single(data) => O::Vector(dense_out(data)),
        VectorStructInternal::MultiDense(_) => return None,
        VectorStructInternal::Named(mut named) => {
            if named.len() == 1 && named.contains_key(DEFAULT_VECTOR) {
                O::Vector(vector_out(named.remove(DEFAULT_VECTOR)?)?)
            } else {
                O::Vectors(qdrant::NamedVectorsOutput {
                    vectors: named
                        .into_iter()
                        .filter_map(|(name, v)| Some((name, vector_out(v)?)))
                        .collect(),
                })
            }
        }
    };
    Some(qdrant::VectorsOutput {
        vectors_options: Some(options),
    })
}

pub(crate) fn scored_out(point: ScoredPoint) -> qdrant::ScoredPoint {
    qdrant::ScoredPoint {
        id: Some(point_id_out(point.id)),
        payload: payload_out(point.payload),
        score: point.score,
        version: point.version,
        vectors: vectors_out(point.vector),
        shard_key: None,
        order_value: None,
    }
}

pub(crate) fn record_out(record: Record) -> qdrant::RetrievedPoint {
    qdrant::RetrievedPoint {
        id: Some(point_id_out(record.id)),
        payload: payload_out(record.payload),
        vectors: vectors_out(record.vector),
        shard_key: None,
        order_value: None,
    }
}

pub(crate) fn field_type_in(field_type: Option<i32>) -> Result<PayloadSchemaType, Status> {
    let raw = field_type.ok_or_else(|| {
        bad_input("field_type is required: this server does not infer index types")
    })?;
    Ok(match qdrant::FieldType::try_from(raw) {
        Ok(qdrant::FieldType::Keyword) => PayloadSchemaType::Keyword,
        Ok(qdrant::FieldType::Integer) => PayloadSchemaType::Integer,
        Ok(qdrant::FieldType::Float) => PayloadSchemaType::Float,
        Ok(qdrant::FieldType::Bool) => PayloadSchemaType::Bool,
        Ok(qdrant::FieldType::Uuid) => PayloadSchemaType::Uuid,
        Ok(qdrant::FieldType::Datetime) => PayloadSchemaType::Datetime,
        Ok(qdrant::FieldType::Geo) => PayloadSchemaType::Geo,
        Ok(qdrant::FieldType::Text) => PayloadSchemaType::Text,
        Err(_) => return Err(bad_input(format!("unknown field_type {raw}"))),
    })
}

pub(crate) fn schema_type_out(t: PayloadSchemaType) -> qdrant::PayloadSchemaType {
    match t {
        PayloadSchemaType::Keyword => qdrant::PayloadSchemaType::Keyword,
        PayloadSchemaType::Integer => qdrant::PayloadSchemaType::Integer,
        PayloadSchemaType::Float => qdrant::PayloadSchemaType::Float,
        PayloadSchemaType::Geo => qdrant::PayloadSchemaType::Geo,
        PayloadSchemaType::Text => qdrant::PayloadSchemaType::Text,
        PayloadSchemaType::Bool => qdrant::PayloadSchemaType::Bool,
        PayloadSchemaType::Datetime => qdrant::PayloadSchemaType::Datetime,
        PayloadSchemaType::Uuid => qdrant::PayloadSchemaType::Uuid,
    }
}

#[cfg(test)]
mod tests;
