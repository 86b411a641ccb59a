//! DataFusion's dynamic filters as remote SQL predicates.
//!
//! A hash join that has built its small side publishes the keys it saw as a
//! *dynamic filter* (`k >= min AND k <= max AND k IN (…)`, the list only up
//! to `hash_join_inlist_pushdown_max_distinct_values` keys) to the scans of
//! its other side. A remote scan translates the parts of it the server
//! evaluates exactly like DataFusion — comparisons and IN lists of one column
//! with literals, on columns whose [`Semantics`] allow it — into predicates
//! for its SQL; a partitioned join's filter (one branch of keys per
//! partition) as the union of its branches. Anything else is left out: the join still checks every row,
//! so a weaker remote filter is always safe.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::utils::{conjunction, disjunction};
use datafusion::logical_expr::{Expr, Operator, binary_expr, in_list, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, CastExpr, Column, DynamicFilterPhysicalExpr, InListExpr, Literal,
};
use datafusion::physical_plan::filter_pushdown::{ChildPushdownResult, PushedDown};

use crate::remote::Semantics;

/// A column of the scan's output as the remote query refers to it.
pub struct FilterColumn {
    /// The reference in remote SQL.
    pub expr: Expr,
    pub semantics: Semantics,
    /// The column's Arrow type (literals are converted to it).
    pub data_type: DataType,
}

/// Splits the filters parents pushed into a leaf: none is claimed (the
/// parents keep applying them), the dynamic ones are kept.
pub fn take(result: ChildPushdownResult) -> (Vec<PushedDown>, Vec<Arc<dyn PhysicalExpr>>) {
    let filters = result.parent_filters;
    let unclaimed = vec![PushedDown::No; filters.len()];
    let dynamic = filters
        .into_iter()
        .map(|f| f.filter)
        .filter(|f| {
            f.as_ref()
                .downcast_ref::<DynamicFilterPhysicalExpr>()
                .is_some()
        })
        .collect();
    (unclaimed, dynamic)
}

/// The remote predicates for the current state of `filters`; `resolve`
/// maps an output column to its remote reference (or `None`: not
/// filterable), `literal_pushable` says which values may go into SQL.
pub fn predicates(
    filters: &[Arc<dyn PhysicalExpr>],
    resolve: impl Fn(&Column) -> Option<FilterColumn>,
    literal_pushable: impl Fn(&ScalarValue) -> bool,
) -> Result<Vec<Expr>> {
    let mut out = Vec::new();
    for filter in filters {
        let current = match filter.as_ref().downcast_ref::<DynamicFilterPhysicalExpr>() {
            Some(dynamic) => dynamic.current()?,
            None => Arc::clone(filter),
        };
        collect(&current, &resolve, &literal_pushable, &mut out);
    }
    Ok(out)
}

fn collect(
    expr: &Arc<dyn PhysicalExpr>,
    resolve: &impl Fn(&Column) -> Option<FilterColumn>,
    literal_pushable: &impl Fn(&ScalarValue) -> bool,
    out: &mut Vec<Expr>,
) {
    if let Some(binary) = expr.as_ref().downcast_ref::<BinaryExpr>() {
        let op = *binary.op();
        if op == Operator::And {
            collect(binary.left(), resolve, literal_pushable, out);
            collect(binary.right(), resolve, literal_pushable, out);
            return;
        }
        let need: fn(Semantics) -> bool = match op {
            Operator::Eq => |s| s.equality,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => |s| s.ordering,
            _ => return,
        };
        if let Some(column) = column_of(binary.left(), resolve)
            && need(column.semantics)
            && let Some(value) = literal_of(binary.right(), &column.data_type)
            && literal_pushable(&value)
        {
            out.push(binary_expr(column.expr, op, lit(value)));
        }
    } else if let Some(case) = expr.as_ref().downcast_ref::<CaseExpr>() {
        // A partitioned join's filter: each partition's keys in its own
        // branch (`CASE hash % n WHEN 0 THEN … END`). A row passes only its
        // own partition's branch, so the union of the branches is weaker
        // and safe; a branch that cannot be bounded leaves nothing.
        if case.else_expr().is_some_and(|e| !is_false(e)) {
            return;
        }
        let mut branches = Vec::new();
        for (_, then) in case.when_then_expr() {
            if is_false(then) {
                continue;
            }
            let mut found = Vec::new();
            collect(then, resolve, literal_pushable, &mut found);
            match conjunction(found) {
                Some(predicate) => branches.push(predicate),
                None => return,
            }
        }
        if let Some(predicate) = disjunction(branches) {
            out.push(predicate);
        }
    } else if let Some(list) = expr.as_ref().downcast_ref::<InListExpr>()
        && !list.negated()
        && let Some(column) = column_of(list.expr(), resolve)
        && column.semantics.equality
    {
        let values: Option<Vec<Expr>> = list
            .list()
            .iter()
            .map(|item| {
                literal_of(item, &column.data_type)
                    .filter(|v| literal_pushable(v))
                    .map(lit)
            })
            .collect();
        if let Some(values) = values.filter(|v| !v.is_empty()) {
            out.push(in_list(column.expr, values, false));
        }
    }
}

/// Whether `expr` is the literal `false` (a partition whose build side
/// holds no key).
fn is_false(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.as_ref()
        .downcast_ref::<Literal>()
        .is_some_and(|l| l.value() == &ScalarValue::Boolean(Some(false)))
}

/// The column `expr` reads, directly or through a cast that keeps values
/// and their order (integer widening, integer → decimal, string → string).
fn column_of(
    expr: &Arc<dyn PhysicalExpr>,
    resolve: &impl Fn(&Column) -> Option<FilterColumn>,
) -> Option<FilterColumn> {
    let (expr, cast_to) = match expr.as_ref().downcast_ref::<CastExpr>() {
        Some(cast) => (cast.expr(), Some(cast.cast_type())),
        None => (expr, None),
    };
    let column = resolve(expr.as_ref().downcast_ref::<Column>()?)?;
    if let Some(to) = cast_to {
        let from = &column.data_type;
        let widening_number =
            from.is_integer() && (to.is_integer() || matches!(to, DataType::Decimal128(..)));
        // Utf8 ↔ Utf8View ↔ LargeUtf8 keep every string as it is.
        let string_to_string = is_string(from) && is_string(to);
        if !(widening_number || string_to_string) {
            return None;
        }
    }
    Some(column)
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}

/// A literal as a value of the column's type, if it converts without loss.
fn literal_of(expr: &Arc<dyn PhysicalExpr>, data_type: &DataType) -> Option<ScalarValue> {
    let value = expr.as_ref().downcast_ref::<Literal>()?.value();
    if value.data_type() == *data_type {
        return Some(value.clone());
    }
    let converted = value.cast_to(data_type).ok()?;
    (converted.cast_to(&value.data_type()).ok()? == *value).then_some(converted)
}
