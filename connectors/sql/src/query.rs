//! Remote queries and their SQL, written by DataFusion's unparser.
//!
//! The query is built as a DataFusion logical plan over a stand-in for the
//! remote table (scan → filter → projection → limit) and unparsed in the
//! backend's dialect; identifiers and literals are quoted by
//! [`RemoteDialect::render`], never spliced into SQL by hand.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, LogicalTableSource, lit};
use koios_connector::{QueryParams, RemoteDialect};

use crate::remote::RemoteTable;

/// One scan of one remote table.
#[derive(Debug, Clone)]
pub struct RemoteQuery<C> {
    pub table: Arc<RemoteTable<C>>,
    /// Indexes of the exposed columns to return; empty for `count(*)`-style scans.
    pub projection: Vec<usize>,
    /// Filters the backend promised to evaluate.
    pub filters: Vec<Expr>,
    /// The partition's share of the table, if split.
    pub split: Option<Expr>,
    pub limit: Option<usize>,
    /// The statement's placeholders the filters compare with, in the order
    /// of the remote query's own `$1`, `$2`, … (see [`parameterize`]).
    pub params: Vec<RemoteParam>,
}

/// A placeholder of the statement, sent as a parameter of the remote query.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteParam {
    /// The statement's placeholder (`"$3"`): where the value comes from.
    pub id: String,
    pub data_type: DataType,
}

/// Renumbers the placeholders in `filters` `$1`, `$2`, … in order of first
/// appearance (a scan may use the statement's `$3` alone), returning what
/// each remote parameter stands for.
pub fn parameterize(filters: Vec<Expr>) -> Result<(Vec<Expr>, Vec<RemoteParam>)> {
    let mut params: Vec<RemoteParam> = Vec::new();
    let filters = filters
        .into_iter()
        .map(|filter| {
            filter
                .transform(|e| match e {
                    Expr::Placeholder(Placeholder { id, field }) => {
                        let data_type =
                            field
                                .as_ref()
                                .map(|f| f.data_type().clone())
                                .ok_or_else(|| {
                                    DataFusionError::Plan(format!(
                                        "parameter {id} has no type to send"
                                    ))
                                })?;
                        let index = match params.iter().position(|p| p.id == id) {
                            Some(i) => i,
                            None => {
                                params.push(RemoteParam { id, data_type });
                                params.len() - 1
                            }
                        };
                        Ok(Transformed::yes(Expr::Placeholder(Placeholder {
                            id: format!("${}", index + 1),
                            field,
                        })))
                    }
                    other => Ok(Transformed::no(other)),
                })
                .map(|t| t.data)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((filters, params))
}

/// Whether `expr` holds a placeholder of the statement.
pub fn has_placeholder(expr: &Expr) -> bool {
    expr.exists(|e| Ok(matches!(e, Expr::Placeholder(_))))
        .unwrap_or(false)
}

impl<C> RemoteQuery<C> {
    /// This execution's values of the remote query's parameters, in order.
    pub fn bind(&self, values: Option<&QueryParams>) -> Result<Vec<ScalarValue>> {
        if self.params.is_empty() {
            return Ok(Vec::new());
        }
        let values = values.ok_or_else(|| {
            DataFusionError::Internal("a parameterized scan ran without its values".into())
        })?;
        self.params
            .iter()
            .map(|p| values.value(&p.id, &p.data_type))
            .collect()
    }

    /// Schema of the batches this query produces.
    pub fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.projection
                .iter()
                .map(|i| Arc::clone(&self.table.columns[*i].field))
                .collect::<Vec<_>>(),
        ))
    }

    /// Writes `values` (of [`RemoteQuery::bind`]) into the filters in place
    /// of the placeholders, as literals quoted when rendered: for reads of
    /// many rows, which the backend serves faster without parameters
    /// (PostgreSQL's COPY takes none).
    pub fn inline(&mut self, values: &[ScalarValue]) -> Result<()> {
        let literal = |id: &str| {
            id.strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| values.get(n.checked_sub(1)?))
                .cloned()
                .ok_or_else(|| DataFusionError::Internal(format!("no value for {id}")))
        };
        self.filters = std::mem::take(&mut self.filters)
            .into_iter()
            .map(|filter| {
                filter
                    .transform(|e| match e {
                        Expr::Placeholder(Placeholder { id, .. }) => {
                            Ok(Transformed::yes(Expr::Literal(literal(&id)?, None)))
                        }
                        other => Ok(Transformed::no(other)),
                    })
                    .map(|t| t.data)
            })
            .collect::<Result<_>>()?;
        self.params.clear();
        Ok(())
    }

    /// Whether the query reads few rows by construction: it has a LIMIT, or
    /// its filters pin the leading primary-key column with `=`, `IN (…)` or
    /// a range bounded on both sides — what the server's index serves. Such
    /// a read is one query (not split), sent in one round trip where the
    /// backend can.
    pub fn is_point_read(&self) -> bool {
        self.limit.is_some() || pins_leading_key(&self.table.primary_key, &self.filters)
    }

    /// The SQL text sent to the server.
    ///
    /// `select` gives the expression reading each column. With an empty
    /// projection the query selects the constant 1, so rows are still counted.
    pub fn to_sql(&self, dialect: RemoteDialect, select: impl Fn(usize) -> Expr) -> Result<String> {
        let table = &self.table;
        let mut fields: Vec<_> = table
            .columns
            .iter()
            .map(|c| c.field.as_ref().clone())
            .collect();
        fields.extend(table.pseudo_columns.iter().cloned());
        let source = Arc::new(LogicalTableSource::new(Arc::new(Schema::new(fields))));
        let reference =
            TableReference::partial(table.name.schema.as_str(), table.name.table.as_str());
        let mut builder = LogicalPlanBuilder::scan(reference, source, None)?;
        let predicates: Vec<Expr> = self
            .filters
            .iter()
            .cloned()
            .chain(self.split.clone())
            .collect();
        if let Some(predicate) = conjunction(predicates) {
            builder = builder.filter(predicate)?;
        }
        let projection: Vec<Expr> = if self.projection.is_empty() {
            vec![lit(1i32).alias("koios_row")]
        } else {
            self.projection
                .iter()
                .map(|i| {
                    let expr = select(*i);
                    let name = &table.columns[*i].name;
                    match &expr {
                        Expr::Column(c) if &c.name == name => expr,
                        _ => expr.alias(name),
                    }
                })
                .collect()
        };
        builder = builder.project(projection)?;
        if let Some(limit) = self.limit {
            builder = builder.limit(0, Some(limit))?;
        }
        let plan = builder.build()?;
        dialect.plan_to_sql(&plan)
    }
}

/// Whether `filters` constrain `key`'s first column to a point, a list or a
/// bounded range.
pub fn pins_leading_key(key: &[String], filters: &[Expr]) -> bool {
    use datafusion::logical_expr::{Between, BinaryExpr, Operator, utils::split_conjunction};
    let Some(leading) = key.first() else {
        return false;
    };
    let is_key = |e: &Expr| matches!(e, Expr::Column(c) if &c.name == leading);
    let is_value = |e: &Expr| matches!(e, Expr::Literal(..) | Expr::Placeholder(_));
    // `key = a OR key = b …` (DataFusion's form of a short IN list).
    fn points(expr: &Expr, is_key: &dyn Fn(&Expr) -> bool) -> bool {
        match expr {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Or,
                right,
            }) => points(left, is_key) && points(right, is_key),
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => {
                (is_key(left) && matches!(right.as_ref(), Expr::Literal(..) | Expr::Placeholder(_)))
                    || (is_key(right)
                        && matches!(left.as_ref(), Expr::Literal(..) | Expr::Placeholder(_)))
            }
            _ => false,
        }
    }
    let (mut lower, mut upper) = (false, false);
    for filter in filters {
        for conjunct in split_conjunction(filter) {
            if points(conjunct, &is_key) {
                return true;
            }
            match conjunct {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    let (column_left, value) = if is_key(left) && is_value(right) {
                        (true, true)
                    } else if is_key(right) && is_value(left) {
                        (false, true)
                    } else {
                        (false, false)
                    };
                    if !value {
                        continue;
                    }
                    match (op, column_left) {
                        (Operator::Eq, _) => return true,
                        (Operator::Gt | Operator::GtEq, true)
                        | (Operator::Lt | Operator::LtEq, false) => lower = true,
                        (Operator::Lt | Operator::LtEq, true)
                        | (Operator::Gt | Operator::GtEq, false) => upper = true,
                        _ => {}
                    }
                }
                Expr::InList(list) if !list.negated && is_key(&list.expr) => return true,
                Expr::Between(Between {
                    expr,
                    negated: false,
                    low,
                    high,
                }) if is_key(expr) && is_value(low) && is_value(high) => return true,
                _ => {}
            }
        }
    }
    lower && upper
}
