//! The rows a member of a hash-striped table owns: a filter Koios applies
//! to a member that may still hold rows a rebalance moved away (until they
//! are deleted, see [`super::rebalance`]), so that no query reads a row
//! twice.
//!
//! The hash is Koios's own, so the filter runs in Koios, above the
//! member's scan: no backend can evaluate it, and nothing above it is
//! pushed into that member while it holds such rows.

use std::sync::Arc;

use arrow::array::{BooleanArray, new_empty_array};
use arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::placement::{Placement, buckets};

/// `koios_owned_by_member(key)`: whether the row of `key` belongs to
/// `group` of `placement`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OwnedBy {
    placement: Placement,
    group: usize,
    signature: Signature,
}

impl OwnedBy {
    /// The filter keeping the rows of `group` over `key`.
    pub fn filter(placement: Placement, group: usize, key: Expr) -> Expr {
        let udf = ScalarUDF::new_from_impl(OwnedBy {
            placement,
            group,
            signature: Signature::any(1, Volatility::Immutable),
        });
        Arc::new(udf).call(vec![key])
    }
}

impl ScalarUDFImpl for OwnedBy {
    fn name(&self) -> &str {
        "koios_owned_by_member"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let Some(key) = args.args.first() else {
            let empty = new_empty_array(&DataType::Boolean);
            return Ok(ColumnarValue::Array(empty));
        };
        let keys = key.to_array(rows)?;
        let groups = self
            .placement
            .groups_of(&buckets(&keys, self.placement.buckets)?);
        let owned: BooleanArray = groups.into_iter().map(|g| Some(g == self.group)).collect();
        Ok(ColumnarValue::Array(Arc::new(owned)))
    }
}
