//! A float compared with an exact number compares as float, as in
//! PostgreSQL.
//!
//! Koios reads `5000.5` as an exact `numeric` (a decimal), and DataFusion's
//! type coercion compares a `float8` with a decimal by casting the float to
//! `Decimal128(30, 15)` — which fails on `Infinity`, `NaN` or any value
//! beyond 10^15 ("Overflowing on inf"). PostgreSQL compares `float8` with
//! `numeric` as `float8`. This analyzer rule, run after coercion, takes
//! such a cast off again: in a comparison (`=`, `<`, …, `BETWEEN`, `IN`)
//! where a float was cast to a decimal, every operand is compared as
//! `float8` instead (a literal's cast is folded by the optimizer, and the
//! filter still reaches the source).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ExprSchema};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Between, Cast, InList};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, cast};
use datafusion::optimizer::analyzer::AnalyzerRule;

/// Compares floats with decimals as floats.
#[derive(Debug, Default)]
pub struct FloatComparisons;

impl AnalyzerRule for FloatComparisons {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = merge_schema(&plan.inputs());
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| rewrite(e, &schema))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "koios_float_comparisons"
    }
}

fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if is_comparison(op)
                && (float_as_decimal(&left, schema) || float_as_decimal(&right, schema)) =>
        {
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(as_float(*left, schema)?),
                op,
                Box::new(as_float(*right, schema)?),
            ))))
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) if [&expr, &low, &high]
            .iter()
            .any(|e| float_as_decimal(e, schema)) =>
        {
            Ok(Transformed::yes(Expr::Between(Between::new(
                Box::new(as_float(*expr, schema)?),
                negated,
                Box::new(as_float(*low, schema)?),
                Box::new(as_float(*high, schema)?),
            ))))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if float_as_decimal(&expr, schema)
            || list.iter().any(|e| float_as_decimal(e, schema)) =>
        {
            let list = list
                .into_iter()
                .map(|e| as_float(e, schema))
                .collect::<Result<Vec<_>>>()?;
            Ok(Transformed::yes(Expr::InList(InList::new(
                Box::new(as_float(*expr, schema)?),
                list,
                negated,
            ))))
        }
        other => Ok(Transformed::no(other)),
    }
}

fn is_decimal(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

fn is_float(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

/// Whether `expr` is a float the coercion cast to a decimal.
fn float_as_decimal(expr: &Expr, schema: &dyn ExprSchema) -> bool {
    match expr {
        Expr::Cast(Cast { expr, field }) if is_decimal(field.data_type()) => {
            expr.get_type(schema).is_ok_and(|inner| is_float(&inner))
        }
        _ => false,
    }
}

/// `expr` (a comparison's operand) as `float8`: a cast to a decimal taken
/// off first.
fn as_float(expr: Expr, schema: &dyn ExprSchema) -> Result<Expr> {
    let inner = match expr {
        Expr::Cast(Cast { expr, field }) if is_decimal(field.data_type()) => *expr,
        other => other,
    };
    Ok(match inner.get_type(schema)? {
        DataType::Float64 => inner,
        _ => cast(inner, DataType::Float64),
    })
}
