//! gRPC statuses worded the way a real Qdrant words them, so that code written against
//! `qdrant-client` sees the same codes and the same message prefixes here as in production.

use qdrant_edge::OperationError;
use tonic::Status;

/// A request that breaks a rule of the data (wrong dimension, unknown vector name, bad id):
/// `INVALID_ARGUMENT`, "Wrong input: …" like Qdrant's `StorageError::BadInput`.
pub(crate) fn bad_input(message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("Wrong input: {message}"))
}

/// A request whose fields fail validation (limit 0, empty name): `INVALID_ARGUMENT`,
/// "Validation error in body: […]" like Qdrant's request validation.
pub(crate) fn validation(message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("Validation error in body: [{message}]"))
}

/// The named collection does not exist: `NOT_FOUND`, Qdrant's wording.
pub(crate) fn collection_not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
}

/// A method or an option this server does not implement: `UNIMPLEMENTED`, never a silent
/// success. `what` names the method (`qdrant.Points/Recommend`) or the option.
pub(crate) fn unimplemented(what: impl std::fmt::Display) -> Status {
    Status::unimplemented(format!(
        "{what} is not implemented by apex-vectord (the local development vector server); \
         see deploy/local/vectord/README.md"
    ))
}

/// An error from the engine, mapped the way Qdrant maps `OperationError` to gRPC codes.
pub(crate) fn engine(err: OperationError) -> Status {
    match err {
        OperationError::WrongVectorDimension { .. }
        | OperationError::VectorNameNotExists { .. }
        | OperationError::TypeError { .. }
        | OperationError::TypeInferenceError { .. }
        | OperationError::WrongSparse
        | OperationError::WrongMulti
        | OperationError::MissingRangeIndexForOrderBy { .. }
        | OperationError::MissingMapIndexForFacet { .. }
        | OperationError::VariableTypeError { .. }
        | OperationError::NonFiniteNumber { .. } => bad_input(err),
        OperationError::ValidationError { .. } => validation(err),
        OperationError::PointIdError { .. } => Status::not_found(format!("Not found: {err}")),
        OperationError::Timeout { .. } => {
            Status::deadline_exceeded(format!("Timeout error: {err}"))
        }
        OperationError::Cancelled { .. } => Status::cancelled(err.to_string()),
        OperationError::OutOfMemory { .. } => Status::resource_exhausted(err.to_string()),
        other => Status::internal(format!("Service internal error: {other}")),
    }
}
