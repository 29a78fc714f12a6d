//! Filters: Qdrant's `must` / `should` / `must_not` / `min_should` conditions as the
//! engine's `Filter`, with the conditions this server cannot evaluate refused.

use qdrant_client::qdrant;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    AnyVariants, Condition, FieldCondition, Filter, HasIdCondition, IsEmptyCondition,
    IsNullCondition, JsonPath, Match, MinShould, Range, RangeInterface, ValueVariants,
};
use tonic::Status;

use super::point_ids_in;
use crate::error::{bad_input, unimplemented, validation};

pub(super) fn json_path(key: &str) -> Result<JsonPath, Status> {
    JsonPath::try_from(key).map_err(|()| bad_input(format!("`{key}` is not a valid payload key")))
}

pub(crate) fn filter_in(filter: qdrant::Filter) -> Result<Filter, Status> {
    let list = |conditions: Vec<qdrant::Condition>| -> Result<Option<Vec<Condition>>, Status> {
        if conditions.is_empty() {
            return Ok(None);
        }
        conditions
            .into_iter()
            .map(condition_in)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    let min_should = match filter.min_should {
        Some(m) => Some(MinShould {
            conditions: m
                .conditions
                .into_iter()
                .map(condition_in)
                .collect::<Result<_, _>>()?,
            min_count: usize::try_from(m.min_count)
                .map_err(|_| validation("min_should.min_count is too large"))?,
        }),
        None => None,
    };
    Ok(Filter {
        should: list(filter.should)?,
        min_should,
        must: list(filter.must)?,
        must_not: list(filter.must_not)?,
    })
}

pub(crate) fn optional_filter_in(filter: Option<qdrant::Filter>) -> Result<Option<Filter>, Status> {
    filter.map(filter_in).transpose()
}

fn condition_in(condition: qdrant::Condition) -> Result<Condition, Status> {
    use qdrant::condition::ConditionOneOf as C;
    match condition.condition_one_of {
        Some(C::Field(field)) => field_condition_in(field).map(Condition::Field),
        Some(C::HasId(has_id)) => Ok(Condition::HasId(
            point_ids_in(has_id.has_id)?
                .into_iter()
                .collect::<HasIdCondition>(),
        )),
        Some(C::Filter(inner)) => filter_in(inner).map(Condition::Filter),
        Some(C::IsEmpty(c)) => Ok(Condition::IsEmpty(IsEmptyCondition::from(json_path(
            &c.key,
        )?))),
        Some(C::IsNull(c)) => Ok(Condition::IsNull(IsNullCondition::from(json_path(&c.key)?))),
        Some(C::Nested(_)) => Err(unimplemented("filter condition `nested`")),
        Some(C::HasVector(_)) => Err(unimplemented("filter condition `has_vector`")),
        Some(C::Slice(_)) => Err(unimplemented("filter condition `slice`")),
        None => Err(bad_input("empty filter condition")),
    }
}

fn field_condition_in(field: qdrant::FieldCondition) -> Result<FieldCondition, Status> {
    use qdrant::r#match::MatchValue as M;
    let key = json_path(&field.key)?;
    if field.geo_bounding_box.is_some() || field.geo_radius.is_some() || field.geo_polygon.is_some()
    {
        return Err(unimplemented("geo filter conditions"));
    }
    if field.values_count.is_some() {
        return Err(unimplemented("filter condition `values_count`"));
    }
    if field.datetime_range.is_some() {
        return Err(unimplemented("filter condition `datetime_range`"));
    }
    let r#match = match field.r#match.and_then(|m| m.match_value) {
        None => None,
        Some(M::Keyword(s)) => Some(Match::new_value(ValueVariants::String(s))),
        Some(M::Integer(i)) => Some(Match::new_value(ValueVariants::Integer(i))),
        Some(M::Boolean(b)) => Some(Match::new_value(ValueVariants::Bool(b))),
        Some(M::Keywords(k)) => Some(Match::new_any(AnyVariants::Strings(
            k.strings.into_iter().collect(),
        ))),
        Some(M::Integers(i)) => Some(Match::new_any(AnyVariants::Integers(
            i.integers.into_iter().collect(),
        ))),
        Some(M::ExceptKeywords(k)) => Some(Match::new_except(AnyVariants::Strings(
            k.strings.into_iter().collect(),
        ))),
        Some(M::ExceptIntegers(i)) => Some(Match::new_except(AnyVariants::Integers(
            i.integers.into_iter().collect(),
        ))),
        Some(M::Text(_) | M::TextAny(_) | M::Phrase(_) | M::Prefix(_) | M::Substring(_)) => {
            return Err(unimplemented("full-text match conditions"));
        }
    };
    let range = field.range.map(|r| Range {
        lt: r.lt.map(OrderedFloat),
        gt: r.gt.map(OrderedFloat),
        gte: r.gte.map(OrderedFloat),
        lte: r.lte.map(OrderedFloat),
    });
    if r#match.is_none() && range.is_none() && field.is_empty.is_none() && field.is_null.is_none() {
        return Err(bad_input(format!(
            "field condition on `{}` has nothing to check: set match, range, is_empty or is_null",
            field.key
        )));
    }
    Ok(FieldCondition {
        key,
        r#match,
        range: range.map(RangeInterface::Float),
        geo_bounding_box: None,
        geo_radius: None,
        geo_polygon: None,
        values_count: None,
        is_empty: field.is_empty,
        is_null: field.is_null,
    })
}
