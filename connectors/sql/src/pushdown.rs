//! Deciding which filters a backend can evaluate with DataFusion's semantics.
//!
//! Only simple shapes are pushed: a column compared with literals (or, where
//! the backend allows, a prepared statement's parameters), combined with
//! AND/OR/NOT. Whether a comparison on a given column is exact is the
//! backend's call (collations, float NaN rules, type conversions differ per
//! server); this module walks the expression and asks.
//!
//! A comparison can also be a *superset*: the server returns every row
//! DataFusion would, and maybe more (case-insensitive `=` under MySQL's
//! default collations). Such a filter is pushed as *Inexact* and DataFusion
//! re-checks the rows; it stays safe under AND/OR but not under NOT or `<>`,
//! which turn a superset into a subset.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator};

/// The kind of test applied to a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `=`, `<>`, `IN (…)`
    Equality,
    /// `<`, `<=`, `>`, `>=`, `BETWEEN`
    Ordering,
    /// `LIKE` (case-sensitive, default escape)
    Like,
    /// `IS [NOT] NULL`
    NullTest,
}

/// How a remote evaluation relates to DataFusion's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Safety {
    /// Not pushable.
    No,
    /// The server keeps every row DataFusion keeps, maybe more.
    Superset,
    /// Identical results.
    Exact,
}

impl From<bool> for Safety {
    fn from(exact: bool) -> Self {
        if exact { Safety::Exact } else { Safety::No }
    }
}

/// Answers how `column` compared by `comparison` with `literal` is evaluated
/// remotely, relative to DataFusion.
pub trait ExactColumns {
    fn safety(&self, column: &str, comparison: Comparison, literal: Option<&ScalarValue>)
    -> Safety;

    /// How `column` compared by `comparison` with a parameter of the
    /// statement, of `data_type`, is evaluated remotely. The value is only
    /// known at each execution, so the answer must hold for every value of
    /// the type; by default such comparisons are not pushed.
    fn parameter_safety(
        &self,
        _column: &str,
        _comparison: Comparison,
        _data_type: &DataType,
    ) -> Safety {
        Safety::No
    }
}

/// How `column` compared with `value` (a literal or a parameter) is evaluated.
fn operand(
    columns: &dyn ExactColumns,
    column: &str,
    comparison: Comparison,
    value: &Expr,
) -> Safety {
    match value {
        Expr::Literal(value, _) => columns.safety(column, comparison, Some(value)),
        Expr::Placeholder(Placeholder {
            field: Some(field), ..
        }) => columns.parameter_safety(column, comparison, field.data_type()),
        _ => Safety::No,
    }
}

/// Whether the whole of `expr` can be evaluated remotely with identical results.
pub fn is_exact(expr: &Expr, columns: &dyn ExactColumns) -> bool {
    classify(expr, columns) == Safety::Exact
}

/// How safely `expr` can be evaluated remotely.
pub fn classify(expr: &Expr, columns: &dyn ExactColumns) -> Safety {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => classify(left, columns).min(classify(right, columns)),
            Operator::Eq => compare(left, right, Comparison::Equality, columns),
            // `<>` keeps fewer rows under a coarser comparison: exact only.
            Operator::NotEq => exact_only(compare(left, right, Comparison::Equality, columns)),
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                compare(left, right, Comparison::Ordering, columns)
            }
            _ => Safety::No,
        },
        // A superset under NOT becomes a subset: only exact parts survive.
        Expr::Not(inner) => exact_only(classify(inner, columns)),
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => match inner.as_ref() {
            Expr::Column(c) => columns.safety(&c.name, Comparison::NullTest, None),
            _ => Safety::No,
        },
        Expr::InList(list) => {
            let safety = match list.expr.as_ref() {
                Expr::Column(c) if !list.list.is_empty() => list
                    .list
                    .iter()
                    .map(|item| operand(columns, &c.name, Comparison::Equality, item))
                    .min()
                    .unwrap_or(Safety::No),
                _ => Safety::No,
            };
            if list.negated {
                exact_only(safety)
            } else {
                safety
            }
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let safety = match expr.as_ref() {
                Expr::Column(c) => operand(columns, &c.name, Comparison::Ordering, low)
                    .min(operand(columns, &c.name, Comparison::Ordering, high)),
                _ => Safety::No,
            };
            if *negated { exact_only(safety) } else { safety }
        }
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            case_insensitive: false,
        }) => {
            let safety = match (expr.as_ref(), pattern.as_ref()) {
                (Expr::Column(c), Expr::Literal(p, _)) => {
                    columns.safety(&c.name, Comparison::Like, Some(p))
                }
                _ => Safety::No,
            };
            if *negated { exact_only(safety) } else { safety }
        }
        _ => Safety::No,
    }
}

fn exact_only(safety: Safety) -> Safety {
    if safety == Safety::Exact {
        Safety::Exact
    } else {
        Safety::No
    }
}

fn compare(
    left: &Expr,
    right: &Expr,
    comparison: Comparison,
    columns: &dyn ExactColumns,
) -> Safety {
    match (left, right) {
        (Expr::Column(c), value) | (value, Expr::Column(c)) => {
            operand(columns, &c.name, comparison, value)
        }
        _ => Safety::No,
    }
}

/// `expr` with its columns unqualified (the table's own names).
pub fn unqualified(expr: Expr) -> Result<Expr> {
    Ok(expr
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                c.name,
            )))),
            other => Ok(Transformed::no(other)),
        })?
        .data)
}
