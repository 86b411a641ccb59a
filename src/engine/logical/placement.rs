//! Which member holds a row.
//!
//! Hash striping hashes the key's value with a hash of Koios's own (FNV-1a
//! over a canonical byte form, then a 64-bit finalizer), not Rust's or
//! DataFusion's seeded hashers: the same value must land on the same member
//! in every Koios server and after every upgrade. The canonical form makes
//! equal values of different widths hash alike (`42::int` and `42::bigint`,
//! `'a'` as Utf8 or Utf8View). The hash picks one of
//! [`HASH_BUCKETS`](super::definition::HASH_BUCKETS) virtual buckets and
//! bucket `b` belongs to group `b % groups` — a group being one member, or
//! `copies` members holding the same rows (see
//! [`LogicalTableDef::groups`](super::definition::LogicalTableDef::groups))
//! — until members are added or dropped: the table then keeps the owner
//! of each bucket ([`Placement`]), and a rebalance changes the owners of
//! as few buckets as it can ([`super::rebalance`]).
//!
//! Round robin puts rows `[k·batch, (k+1)·batch)` of the table's insertion
//! pointer on member `k % members`.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use koios_connector::sql_err;

use super::gate::GateValue;
use crate::engine::error::codes;

/// Whether a key column of this type can be hashed.
pub fn hashable(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Decimal128(..)
                | DataType::Date32
                | DataType::Timestamp(..)
                | DataType::Boolean
        )
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Koios's stable hash of `bytes` (`tag` keeps different uses apart).
pub(crate) fn fnv(tag: u8, bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET ^ u64::from(tag);
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    // MurmurHash3's finalizer: spreads FNV's weak low bits over the word.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The bucket of every row of `array` (`None` for NULL keys, which live
/// on the first member).
pub fn buckets(array: &ArrayRef, buckets: u32) -> Result<Vec<Option<u32>>> {
    let to_bucket = |h: u64| (h % u64::from(buckets)) as u32;
    let data_type = array.data_type();
    let out: Vec<Option<u32>> = if data_type.is_integer() && !matches!(data_type, DataType::UInt64)
    {
        // Every signed and narrower unsigned integer is an i64 exactly.
        let wide = arrow::compute::cast(array, &DataType::Int64)?;
        wide.as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(|v| to_bucket(fnv(1, &v.to_le_bytes()))))
            .collect()
    } else {
        match data_type {
            DataType::UInt64 => array
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .iter()
                .map(|v| {
                    v.map(|v| match i64::try_from(v) {
                        Ok(small) => to_bucket(fnv(1, &small.to_le_bytes())),
                        Err(_) => to_bucket(fnv(2, &v.to_le_bytes())),
                    })
                })
                .collect(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let text = arrow::compute::cast(array, &DataType::Utf8)?;
                text.as_string::<i32>()
                    .iter()
                    .map(|v| v.map(|v| to_bucket(fnv(3, v.as_bytes()))))
                    .collect()
            }
            DataType::Decimal128(_, scale) => {
                let scale = *scale;
                array
                    .as_primitive::<arrow::datatypes::Decimal128Type>()
                    .iter()
                    .map(|v| v.map(|v| to_bucket(fnv(4, &decimal_bytes(v, scale)))))
                    .collect()
            }
            DataType::Date32 => array
                .as_primitive::<arrow::datatypes::Date32Type>()
                .iter()
                .map(|v| v.map(|v| to_bucket(fnv(5, &i64::from(v).to_le_bytes()))))
                .collect(),
            DataType::Timestamp(_, _) => {
                let micros = arrow::compute::cast(
                    array,
                    &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                )?;
                micros
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .iter()
                    .map(|v| v.map(|v| to_bucket(fnv(6, &v.to_le_bytes()))))
                    .collect()
            }
            DataType::Boolean => array
                .as_boolean()
                .iter()
                .map(|v| v.map(|v| to_bucket(fnv(7, &[u8::from(v)]))))
                .collect(),
            other => {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "a striping key of type {other} cannot be hashed"
                );
            }
        }
    };
    Ok(out)
}

/// A decimal's canonical bytes: trailing zeros of the fraction removed, so
/// 1.50 (scale 2) and 1.5 (scale 1) hash alike.
fn decimal_bytes(mut value: i128, mut scale: i8) -> Vec<u8> {
    while scale > 0 && value % 10 == 0 {
        value /= 10;
        scale -= 1;
    }
    let mut bytes = value.to_le_bytes().to_vec();
    bytes.push(scale as u8);
    bytes
}

/// Which group owns each bucket of a hash-striped table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct Placement {
    /// How many buckets keys hash to.
    pub buckets: u32,
    pub groups: usize,
    /// The owner of each bucket (`None`: bucket `b` in group `b % groups`).
    pub owners: Option<Arc<[u32]>>,
}

impl Placement {
    /// The group owning `bucket`.
    pub fn group(&self, bucket: u32) -> usize {
        let fallback = bucket as usize % self.groups.max(1);
        match &self.owners {
            Some(owners) => owners
                .get(bucket as usize)
                .map_or(fallback, |&g| g as usize),
            None => fallback,
        }
    }

    /// The owner of every bucket, spelled out.
    pub fn owners(&self) -> Vec<u32> {
        (0..self.buckets).map(|b| self.group(b) as u32).collect()
    }

    /// The group of each row: the owner of its bucket (NULL keys: the
    /// first group).
    pub fn groups_of(&self, buckets: &[Option<u32>]) -> Vec<usize> {
        buckets
            .iter()
            .map(|b| b.map_or(0, |b| self.group(b)))
            .collect()
    }

    /// The group holding `value` of a key column of type `key_type`.
    pub fn group_of_value(
        &self,
        value: &ScalarValue,
        key_type: &DataType,
    ) -> Result<Option<usize>> {
        let Ok(value) = value.cast_to(key_type) else {
            return Ok(None);
        };
        let array = value.to_array()?;
        let bucket = buckets(&array, self.buckets)?;
        Ok(Some(self.groups_of(&bucket)[0]))
    }
}

/// The groups that can hold rows passing `filters` (conjuncts) of a table
/// hash-striped on `key`: `key = v` and `key IN (v, …)` with constant
/// values narrow the set; anything else leaves every group (a comparison
/// with a placeholder is left to a [`super::gate`]).
pub fn prune(
    filters: &[Expr],
    key: &str,
    key_type: &DataType,
    placement: &Placement,
) -> Result<BTreeSet<usize>> {
    let groups = placement.groups;
    let mut chosen: BTreeSet<usize> = (0..groups).collect();
    for filter in filters {
        let Some(operands) = key_operands(filter, key) else {
            continue;
        };
        let mut holding = BTreeSet::new();
        for operand in operands {
            let Expr::Literal(value, _) = operand else {
                // A placeholder: known only when the plan runs.
                holding = (0..groups).collect();
                break;
            };
            match placement.group_of_value(value, key_type)? {
                Some(member) => {
                    holding.insert(member);
                }
                // A value not of the key's type: no pruning from it.
                None => return Ok((0..groups).collect()),
            }
        }
        chosen = chosen.intersection(&holding).copied().collect();
    }
    Ok(chosen)
}

/// The comparisons of the key with placeholders among `filters`, for a
/// [`super::gate::Gate`]: one list of values per conjunct that compares
/// the key with at least one placeholder.
pub fn placeholder_comparisons(filters: &[Expr], key: &str) -> Vec<Vec<GateValue>> {
    filters
        .iter()
        .filter_map(|filter| {
            let operands = key_operands(filter, key)?;
            if !operands.iter().any(|e| matches!(e, Expr::Placeholder(_))) {
                return None;
            }
            operands
                .into_iter()
                .map(|operand| match operand {
                    Expr::Literal(value, _) => Some(GateValue::Constant(value.clone())),
                    Expr::Placeholder(placeholder) => placeholder
                        .id
                        .strip_prefix('$')?
                        .parse::<usize>()
                        .ok()?
                        .checked_sub(1)
                        .map(GateValue::Param),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// The values `filter` compares the key column with — non-NULL constants
/// or placeholders — if it is `key = v`, `v = key` or `key IN (v, …)`.
fn key_operands<'a>(filter: &'a Expr, key: &str) -> Option<Vec<&'a Expr>> {
    let is_key = |e: &Expr| matches!(e, Expr::Column(c) if c.name == key);
    let operand = |e: &'a Expr| match e {
        Expr::Literal(value, _) if !value.is_null() => Some(e),
        Expr::Placeholder(_) => Some(e),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if is_key(left) {
                operand(right).map(|v| vec![v])
            } else if is_key(right) {
                operand(left).map(|v| vec![v])
            } else {
                None
            }
        }
        Expr::InList(list) if !list.negated && is_key(&list.expr) => {
            list.list.iter().map(operand).collect()
        }
        // DataFusion writes a short IN list as equalities joined by OR.
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut values = key_operands(left, key)?;
            values.extend(key_operands(right, key)?);
            Some(values)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};
    use std::sync::Arc;

    #[test]
    fn the_hash_is_stable_and_width_independent() {
        let ints: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![42, 7]));
        let bigs: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![42, 7]));
        assert_eq!(buckets(&ints, 4096).unwrap(), buckets(&bigs, 4096).unwrap());
        // Fixed forever: a change here moves rows between members.
        assert_eq!(
            fnv(1, &42i64.to_le_bytes()) % 4096,
            buckets(&bigs, 4096).unwrap()[0].unwrap() as u64
        );
        let a = buckets(
            &(Arc::new(arrow::array::StringArray::from(vec!["a"])) as ArrayRef),
            4096,
        )
        .unwrap();
        let b = buckets(
            &(Arc::new(arrow::array::StringViewArray::from(vec!["a"])) as ArrayRef),
            4096,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(decimal_bytes(150, 2), decimal_bytes(15, 1));
    }

    fn three() -> Placement {
        Placement {
            buckets: 4096,
            groups: 3,
            owners: None,
        }
    }

    #[test]
    fn key_equality_prunes_members() {
        let placement = three();
        let member = |v: i64| {
            placement
                .group_of_value(&ScalarValue::Int64(Some(v)), &DataType::Int64)
                .unwrap()
                .unwrap()
        };
        let chosen = prune(
            &[col("id").eq(lit(42i64))],
            "id",
            &DataType::Int64,
            &placement,
        )
        .unwrap();
        assert_eq!(chosen.into_iter().collect::<Vec<_>>(), vec![member(42)]);
        let both = prune(
            &[col("id").in_list(vec![lit(1i64), lit(2i64)], false)],
            "id",
            &DataType::Int64,
            &placement,
        )
        .unwrap();
        assert!(both.contains(&member(1)) && both.contains(&member(2)));
        let all = prune(
            &[col("id").gt(lit(1i64))],
            "id",
            &DataType::Int64,
            &placement,
        )
        .unwrap();
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn an_owner_map_overrides_the_modulo() {
        let mut placement = three();
        assert_eq!(placement.group(4), 1);
        let mut owners = placement.owners();
        owners[4] = 2;
        placement.owners = Some(Arc::from(owners));
        assert_eq!((placement.group(4), placement.group(5)), (2, 2));
        assert_eq!(placement.group(3), 0);
    }
}
