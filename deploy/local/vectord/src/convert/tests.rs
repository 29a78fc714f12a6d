//! Unit tests for the conversions: point ids, dimensions, refused vectors and filters.

use qdrant_edge::Condition;

use super::*;

fn cfg(size: usize) -> VectorConfig {
    HashMap::from([(
        DEFAULT_VECTOR.to_owned(),
        EdgeVectorParams::builder(size, Distance::Cosine).build(),
    )])
}

#[test]
fn uuid_ids_round_trip_in_hyphenated_form() {
    let id = qdrant::PointId::from("936DA01F9ABD4d9d80C702AF85C822A8".to_owned());
    let parsed = point_id_in(id).expect("valid uuid");
    assert_eq!(
        point_id_out(parsed),
        qdrant::PointId::from("936da01f-9abd-4d9d-80c7-02af85c822a8".to_owned())
    );
}

#[test]
fn bad_uuid_and_missing_id_are_invalid_argument() {
    let err =
        point_id_in(qdrant::PointId::from("not-a-uuid".to_owned())).expect_err("must be refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("Unable to parse UUID"), "{err:?}");
    let err = point_id_in(qdrant::PointId::default()).expect_err("must be refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[test]
fn wrong_dimension_names_the_point_and_both_sizes() {
    let point = qdrant::PointStruct::new(7, vec![1.0_f32, 2.0], qdrant_client::Payload::new());
    let err = points_in(vec![point], &cfg(3)).expect_err("must be refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "Wrong input: Vector dimension error: expected dim: 3, got 2 (point 7)"
    );
}

#[test]
fn sparse_vectors_are_refused_as_unimplemented() {
    let point = qdrant::PointStruct::new(
        1,
        qdrant::Vector::new_sparse(vec![1_u32], vec![0.5_f32]),
        qdrant_client::Payload::new(),
    );
    let err = points_in(vec![point], &cfg(3)).expect_err("must be refused");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}

#[test]
fn empty_field_condition_is_refused() {
    let filter = qdrant::Filter::must([qdrant::Condition {
        condition_one_of: Some(qdrant::condition::ConditionOneOf::Field(
            qdrant::FieldCondition {
                key: "kind".into(),
                ..Default::default()
            },
        )),
    }]);
    let err = filter_in(filter).expect_err("must be refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[test]
fn keyword_integer_and_has_id_conditions_convert() {
    let filter = qdrant::Filter {
        must: vec![qdrant::Condition::matches("kind", "invoice".to_owned())],
        should: vec![qdrant::Condition::matches("year", 2026_i64)],
        must_not: vec![qdrant::Condition::has_id([3_u64])],
        min_should: None,
    };
    let f = filter_in(filter).expect("converts");
    assert_eq!(f.must.as_ref().map(Vec::len), Some(1));
    assert_eq!(f.should.as_ref().map(Vec::len), Some(1));
    assert!(matches!(f.must_not.as_deref(), Some([Condition::HasId(_)])));
}
