//! `INSERT … RETURNING`, and inserts that leave columns to the backend's
//! own defaults, into a source's table.
//!
//! DataFusion plans an insert with every column of the table, filling an
//! omitted one with its constant default or NULL, and has no `RETURNING`.
//! When the statement returns rows, or omits a column whose default only
//! the backend can compute (a `serial`/identity/`AUTO_INCREMENT` key,
//! `now()`; `TableCapabilities::server_defaults`), the session plans it
//! without `RETURNING` and wraps the insert's input, cut down to the named
//! columns, in a [`RemoteWriteNode`] the connector plans
//! (`Capabilities::plan_insert`). Its output is then the rows as stored,
//! over which the `RETURNING` list is an ordinary projection.

use std::sync::Arc;

use datafusion::common::{Column, DFSchema};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, LogicalPlanBuilder, WriteOp};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, ExprWithAlias, SelectItem, Statement as SqlStatement,
};
use koios_connector::insert::ColumnInsert;
use koios_connector::{Capabilities, sql_err};

use super::statement::normalize;
use super::write_node::{RemoteWrite, RemoteWriteNode};
use crate::engine::error::codes;

/// An `INSERT` naming its columns or returning rows, taken apart.
pub struct InsertStatement {
    /// The insert without `RETURNING`, for DataFusion to plan.
    pub insert: DfStatement,
    /// The columns the statement names (empty: all, in table order).
    columns: Vec<String>,
    returning: Option<Vec<SelectItem>>,
}

/// `statement` taken apart, when it is an `INSERT` (not `ON CONFLICT`)
/// that names its columns or has `RETURNING`.
pub fn split_insert(statement: &DfStatement) -> Option<InsertStatement> {
    let DfStatement::Statement(sql) = statement else {
        return None;
    };
    let SqlStatement::Insert(insert) = sql.as_ref() else {
        return None;
    };
    if insert.on.is_some() || (insert.columns.is_empty() && insert.returning.is_none()) {
        return None;
    }
    let columns = insert
        .columns
        .iter()
        .filter_map(|name| match name.0.as_slice() {
            [part] => part.as_ident().map(normalize),
            _ => None,
        })
        .collect();
    let mut stripped = insert.clone();
    stripped.returning = None;
    Some(InsertStatement {
        insert: DfStatement::Statement(Box::new(SqlStatement::Insert(stripped))),
        columns,
        returning: insert.returning.clone(),
    })
}

/// The plan of `statement`, given `planned`, DataFusion's plan of its
/// insert: unchanged when DataFusion's insert does what the statement
/// says. `column_name` names a `RETURNING` item as PostgreSQL does.
pub fn plan_statement(
    statement: InsertStatement,
    planned: LogicalPlan,
    state: &SessionState,
    capabilities: &Capabilities,
    column_name: &dyn Fn(&SqlExpr) -> String,
) -> Result<LogicalPlan> {
    let LogicalPlan::Dml(DmlStatement {
        table_name,
        target,
        op: WriteOp::Insert(_),
        input,
        output_schema,
    }) = &planned
    else {
        return Ok(planned);
    };
    let table = source_as_provider(target)?;
    let Some(found) = capabilities.table(table.as_ref()) else {
        if statement.returning.is_some() {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "INSERT … RETURNING into {table_name} is not supported: only a source's tables take it"
            );
        }
        return Ok(planned);
    };
    let schema = table.schema();
    let columns: Vec<String> = if statement.columns.is_empty() {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    } else {
        statement.columns
    };
    let leaves_to_server = found
        .server_defaults
        .iter()
        .any(|column| !columns.contains(column));
    if statement.returning.is_none() && !leaves_to_server {
        return Ok(planned);
    }
    // DataFusion's input names each table column; the named ones are kept.
    let named = LogicalPlanBuilder::from(Arc::unwrap_or_clone(Arc::clone(input)))
        .project(
            columns
                .iter()
                .map(|c| Expr::Column(Column::new_unqualified(c))),
        )?
        .build()?;
    let returning = statement.returning.is_some();
    let node_schema = if returning {
        Arc::new(DFSchema::try_from_qualified_schema(
            table_name.clone(),
            &schema,
        )?)
    } else {
        Arc::clone(output_schema)
    };
    let node = RemoteWriteNode::plan(
        table_name.to_string(),
        Arc::clone(&table),
        RemoteWrite::Insert(ColumnInsert { columns, returning }),
        named,
        node_schema,
    );
    let Some(items) = statement.returning else {
        return Ok(node);
    };
    let stored = Arc::clone(node.schema());
    let mut exprs = Vec::with_capacity(items.len());
    for item in items {
        let (expr, alias) = match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                exprs.extend(stored.columns().into_iter().map(Expr::Column));
                continue;
            }
            SelectItem::UnnamedExpr(expr) => {
                let name = column_name(&expr);
                (expr, name)
            }
            SelectItem::ExprWithAlias { expr, alias } => (expr, normalize(&alias)),
            other => {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "RETURNING {other} is not supported"
                );
            }
        };
        let planned = state
            .create_logical_expr_from_sql_expr(ExprWithAlias { expr, alias: None }, &stored)?;
        exprs.push(planned.alias(alias));
    }
    LogicalPlanBuilder::from(node).project(exprs)?.build()
}
