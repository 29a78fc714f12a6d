//! The vectors artifact checked against the document: one model and dimension, finite
//! values, at most one vector per chunk.

use apex_common::ServiceError;
use apex_proto::embedder::v1::EmbeddingSet;
use uuid::Uuid;

use super::{PointRow, VectorSet};

/// Checks an embedding set: a model, a dimension every vector has, finite values, each
/// chunk at most once and every chunk one of the document's.
pub(super) fn check_vectors(
    set: EmbeddingSet,
    chunk: impl Fn(&str) -> Result<(Uuid, u32), ServiceError>,
) -> Result<VectorSet, ServiceError> {
    if set.model_id.trim().is_empty() {
        return Err(ServiceError::invalid_field(
            "vectors",
            "the embedding set names no model",
        ));
    }
    if set.dimension == 0 {
        return Err(ServiceError::invalid_field(
            "vectors",
            "the embedding set has dimension 0",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut points = Vec::with_capacity(set.vectors.len());
    for v in set.vectors {
        let (chunk_id, ordinal) = chunk(&v.chunk_id)?;
        if !seen.insert(chunk_id) {
            return Err(ServiceError::invalid_field(
                "vectors",
                format!("chunk {} has two vectors", v.chunk_id),
            ));
        }
        if v.values.len() != set.dimension as usize {
            return Err(ServiceError::invalid_field(
                "vectors",
                format!(
                    "the vector of chunk {} has {} values, but the set's model {} has dimension {}",
                    v.chunk_id,
                    v.values.len(),
                    set.model_id,
                    set.dimension
                ),
            ));
        }
        if v.values.iter().any(|x| !x.is_finite()) {
            return Err(ServiceError::invalid_field(
                "vectors",
                format!(
                    "the vector of chunk {} has a value that is not finite",
                    v.chunk_id
                ),
            ));
        }
        points.push(PointRow {
            chunk_id,
            ordinal,
            values: v.values,
        });
    }
    Ok(VectorSet {
        model_id: set.model_id,
        dimension: set.dimension,
        points,
    })
}
