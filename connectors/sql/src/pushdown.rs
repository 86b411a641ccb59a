//! Deciding which filters a backend can evaluate with DataFusion's semantics.
//!
//! Only simple shapes are pushed: a column compared with literals, combined
//! with AND/OR/NOT. Whether a comparison on a given column is exact is the
//! backend's call (collations, float NaN rules, type conversions differ per
//! server); this module walks the expression and asks.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator};

/// The kind of test applied to a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `=`, `<>`, `IN (…)`
    Equality,
    /// `<`, `<=`, `>`, `>=`, `BETWEEN`
    Ordering,
    /// `LIKE` (case-sensitive, no custom escape)
    Like,
    /// `IS [NOT] NULL`
    NullTest,
}

/// Answers whether `column` compared by `comparison` with `literal` is
/// evaluated remotely exactly as DataFusion evaluates it.
pub trait ExactColumns {
    fn is_exact(&self, column: &str, comparison: Comparison, literal: Option<&ScalarValue>)
    -> bool;
}

/// Whether the whole of `expr` can be evaluated remotely with identical results.
pub fn is_exact(expr: &Expr, columns: &dyn ExactColumns) -> bool {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => is_exact(left, columns) && is_exact(right, columns),
            Operator::Eq | Operator::NotEq => compare(left, right, Comparison::Equality, columns),
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                compare(left, right, Comparison::Ordering, columns)
            }
            _ => false,
        },
        Expr::Not(inner) => is_exact(inner, columns),
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => match inner.as_ref() {
            Expr::Column(c) => columns.is_exact(&c.name, Comparison::NullTest, None),
            _ => false,
        },
        Expr::InList(list) => match list.expr.as_ref() {
            Expr::Column(c) => {
                !list.list.is_empty()
                    && list.list.iter().all(|item| match item {
                        Expr::Literal(value, _) => {
                            columns.is_exact(&c.name, Comparison::Equality, Some(value))
                        }
                        _ => false,
                    })
            }
            _ => false,
        },
        Expr::Between(Between {
            expr, low, high, ..
        }) => match (expr.as_ref(), low.as_ref(), high.as_ref()) {
            (Expr::Column(c), Expr::Literal(lo, _), Expr::Literal(hi, _)) => {
                columns.is_exact(&c.name, Comparison::Ordering, Some(lo))
                    && columns.is_exact(&c.name, Comparison::Ordering, Some(hi))
            }
            _ => false,
        },
        Expr::Like(Like {
            expr,
            pattern,
            escape_char,
            case_insensitive,
            ..
        }) => match (expr.as_ref(), pattern.as_ref()) {
            (Expr::Column(c), Expr::Literal(p, _)) => {
                escape_char.is_none()
                    && !case_insensitive
                    && columns.is_exact(&c.name, Comparison::Like, Some(p))
            }
            _ => false,
        },
        _ => false,
    }
}

fn compare(left: &Expr, right: &Expr, comparison: Comparison, columns: &dyn ExactColumns) -> bool {
    match (left, right) {
        (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
            columns.is_exact(&c.name, comparison, Some(v))
        }
        _ => false,
    }
}
