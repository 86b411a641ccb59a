//! `UPDATE … FROM`, `DELETE … USING`, and `UPDATE`/`DELETE` whose
//! condition holds a subquery, on a source's table. DataFusion plans the rows such a statement changes
//! as a join (or a subquery filter), which the table's own `update` and
//! `delete_from` hooks cannot take: they see only conditions on the table
//! itself. Koios instead turns the plan into the query listing the chosen
//! rows' primary keys (and, for an update, their new values) and hands it
//! to the table's connector, which changes those rows by key in one remote
//! transaction (`Capabilities::plan_keyed_change`, planned through
//! [`RemoteWriteNode`]). A table without a primary key is refused (0A000).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::Column;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, Projection, WriteOp, cast};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Expr as SqlExpr, FromTable, Ident, Statement as SqlStatement, TableFactor,
    UpdateTableFromKind, Visit, Visitor,
};
use koios_connector::remote_sql::KeyedChange;
use koios_connector::{Capabilities, sql_err};

use super::statement::normalize;
use super::write_node::{RemoteWrite, RemoteWriteNode};
use crate::engine::error::codes;

/// An `UPDATE … FROM`'s or `DELETE … USING`'s statement without its other
/// tables (which DataFusion does not plan), to plan for its target table.
pub fn without_from(statement: &DfStatement) -> Option<DfStatement> {
    let DfStatement::Statement(sql) = statement else {
        return None;
    };
    // Only the target matters: no condition (and an update's one column
    // set to NULL; never run), so nothing in it names the other tables.
    let plain = match sql.as_ref() {
        SqlStatement::Update(update) => {
            update.from.as_ref()?;
            let mut plain = update.clone();
            plain.from = None;
            plain.selection = None;
            plain.assignments.truncate(1);
            for assignment in &mut plain.assignments {
                assignment.value = SqlExpr::value(datafusion::sql::sqlparser::ast::Value::Null);
            }
            SqlStatement::Update(plain)
        }
        SqlStatement::Delete(delete) => {
            delete.using.as_ref()?;
            let mut plain = delete.clone();
            plain.using = None;
            plain.selection = None;
            SqlStatement::Delete(plain)
        }
        _ => return None,
    };
    Some(DfStatement::Statement(Box::new(plain)))
}

/// The query listing the rows an `UPDATE … FROM` or `DELETE … USING`
/// changes, by their `key` (with an update's new values) — `SELECT
/// target.k AS k, …, (value) AS c, … FROM target, others… WHERE …`, written
/// from the statement's own parts — and the change.
pub fn rows_query(statement: &DfStatement, key: &[String]) -> Result<(String, KeyedChange)> {
    let not_ours = || {
        sql_err!(
            codes::INTERNAL_ERROR,
            "not an UPDATE … FROM or DELETE … USING"
        )
    };
    let DfStatement::Statement(sql) = statement else {
        return not_ours();
    };
    let (target, others, selection, assignments) = match sql.as_ref() {
        SqlStatement::Update(update) => (
            &update.table,
            match &update.from {
                Some(
                    UpdateTableFromKind::BeforeSet(tables) | UpdateTableFromKind::AfterSet(tables),
                ) => tables.as_slice(),
                None => &[],
            },
            update.selection.as_ref(),
            Some(update.assignments.as_slice()),
        ),
        SqlStatement::Delete(delete) => {
            let tables = match &delete.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let Some(target) = tables.first() else {
                return not_ours();
            };
            (
                target,
                delete.using.as_deref().unwrap_or(&[]),
                delete.selection.as_ref(),
                None,
            )
        }
        _ => return not_ours(),
    };
    let qualifier = match &target.relation {
        TableFactor::Table {
            alias: Some(alias), ..
        } => alias.name.to_string(),
        TableFactor::Table { name, .. } => match name.0.last().and_then(|p| p.as_ident()) {
            Some(ident) => ident.to_string(),
            None => name.to_string(),
        },
        other => {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "changing {other} is not supported"
            );
        }
    };
    let quoted = |name: &str| Ident::with_quote('"', name).to_string();
    let mut columns: Vec<String> = key
        .iter()
        .map(|k| format!("{qualifier}.{} AS {}", quoted(k), quoted(k)))
        .collect();
    let change = match assignments {
        None => KeyedChange::Delete,
        Some(assignments) => {
            let mut set = Vec::new();
            for assignment in assignments {
                let AssignmentTarget::ColumnName(name) = &assignment.target else {
                    return sql_err!(
                        codes::FEATURE_NOT_SUPPORTED,
                        "UPDATE … SET (a, b) = … is not supported: set each column"
                    );
                };
                let Some(column) = name.0.last().and_then(|p| p.as_ident()).map(normalize) else {
                    return sql_err!(codes::SYNTAX_ERROR, "invalid column name {name}");
                };
                if key.contains(&column) {
                    return sql_err!(
                        codes::FEATURE_NOT_SUPPORTED,
                        "UPDATE … FROM sets the primary key column \"{column}\": Koios changes such rows by that key and cannot set it here"
                    );
                }
                columns.push(format!("({}) AS {}", assignment.value, quoted(&column)));
                set.push(column);
            }
            KeyedChange::Update(set)
        }
    };
    let mut query = format!("SELECT {} FROM {target}", columns.join(", "));
    for table in others {
        query.push_str(&format!(", {table}"));
    }
    if let Some(selection) = selection {
        query.push_str(&format!(" WHERE {selection}"));
    }
    Ok((query, change))
}

/// The change by key of an `UPDATE … FROM` or `DELETE … USING`: `plain` is
/// the statement planned without its other tables (for its target), `rows`
/// the planned query of [`rows_query`].
pub fn plan_rows_change(
    plain: LogicalPlan,
    rows: LogicalPlan,
    change: KeyedChange,
) -> Result<LogicalPlan> {
    let LogicalPlan::Dml(DmlStatement {
        table_name,
        target,
        output_schema,
        ..
    }) = plain
    else {
        return sql_err!(codes::FEATURE_NOT_SUPPORTED, "UPDATE … FROM of this table");
    };
    let table = source_as_provider(&target)?;
    let schema = table.schema();
    let set_count = match &change {
        KeyedChange::Delete => 0,
        KeyedChange::Update(set) => set.len(),
    };
    let key_count = rows.schema().fields().len() - set_count;
    // The new values as the columns' types, as an UPDATE stores them.
    let mut columns = Vec::with_capacity(rows.schema().fields().len());
    for (i, (qualifier, field)) in rows.schema().iter().enumerate() {
        let column = Expr::Column(Column::from((qualifier, field)));
        columns.push(if i < key_count {
            column
        } else {
            let target = schema.field_with_name(field.name())?;
            cast(column, target.data_type().clone()).alias(field.name())
        });
    }
    let input = Projection::try_new(columns, Arc::new(rows))?;
    Ok(RemoteWriteNode::plan(
        table_name.to_string(),
        table,
        RemoteWrite::ByKey(change),
        LogicalPlan::Projection(input),
        output_schema,
    ))
}

/// The primary key of the source table `plan` (a planned `UPDATE` or
/// `DELETE`) writes.
pub fn key_of(plan: &LogicalPlan, capabilities: &Capabilities) -> Result<Vec<String>> {
    let LogicalPlan::Dml(dml) = plan else {
        return sql_err!(codes::FEATURE_NOT_SUPPORTED, "UPDATE … FROM of this table");
    };
    let table = source_as_provider(&dml.target)?;
    match capabilities.table(table.as_ref()) {
        Some(found) if !found.primary_key.is_empty() => Ok(found.primary_key),
        Some(_) => sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "UPDATE … FROM of {}: it has no primary key to change its rows by",
            dml.table_name
        ),
        None => sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "UPDATE … FROM of {} is not supported: only a source's tables take it",
            dml.table_name
        ),
    }
}

/// Whether `statement` chooses its rows through other tables: `UPDATE …
/// FROM`, or a subquery in the `WHERE` of an `UPDATE` or `DELETE`.
pub fn chooses_by_query(statement: &DfStatement) -> bool {
    let DfStatement::Statement(sql) = statement else {
        return false;
    };
    match sql.as_ref() {
        SqlStatement::Update(update) => {
            update.from.is_some() || has_subquery(update.selection.as_ref())
        }
        SqlStatement::Delete(delete) => has_subquery(delete.selection.as_ref()),
        _ => false,
    }
}

/// Whether `expr` holds a subquery.
pub fn has_subquery(expr: Option<&SqlExpr>) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &SqlExpr) -> ControlFlow<()> {
            match expr {
                SqlExpr::Subquery(_) | SqlExpr::InSubquery { .. } | SqlExpr::Exists { .. } => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    expr.is_some_and(|e| e.visit(&mut Finder).is_break())
}

/// `plan` (DataFusion's plan of `statement`) as a change by key of a
/// source's table; `plan` itself for a table of Koios's own catalog.
pub fn plan(
    plan: LogicalPlan,
    statement: &DfStatement,
    capabilities: &Capabilities,
) -> Result<LogicalPlan> {
    let LogicalPlan::Dml(DmlStatement {
        table_name,
        target,
        op,
        input,
        output_schema,
    }) = &plan
    else {
        return Ok(plan);
    };
    if !matches!(op, WriteOp::Update | WriteOp::Delete) {
        return Ok(plan);
    }
    let table = source_as_provider(target)?;
    let Some(found) = capabilities.table(table.as_ref()) else {
        return Ok(plan);
    };
    let key = found.primary_key;
    if key.is_empty() {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "this statement chooses the rows of {table_name} through other tables, and {table_name} has no primary key to change them by"
        );
    }
    let (change, input) = match op {
        WriteOp::Delete => {
            let columns = key
                .iter()
                .map(|k| Expr::Column(Column::from_name(k)).alias(k))
                .collect::<Vec<_>>();
            let input = Projection::try_new(columns, Arc::clone(input))?;
            (KeyedChange::Delete, LogicalPlan::Projection(input))
        }
        _ => {
            let assigned = assigned_columns(statement);
            let LogicalPlan::Projection(top) = input.as_ref() else {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "UPDATE of {table_name}: an unexpected plan shape"
                );
            };
            let schema = table.schema();
            let value_of = |column: &str| -> Result<Expr> {
                let index = schema.index_of(column)?;
                let expr = top.expr.get(index).cloned().ok_or_else(|| {
                    koios_connector::sql_error!(
                        codes::INTERNAL_ERROR,
                        "UPDATE of {table_name}: no value for column {column}"
                    )
                })?;
                Ok(expr.unalias().alias(column))
            };
            let mut columns = Vec::with_capacity(key.len() + assigned.len());
            for k in &key {
                if assigned.contains(k) {
                    return sql_err!(
                        codes::FEATURE_NOT_SUPPORTED,
                        "UPDATE of {table_name} sets its primary key column \"{k}\": Koios changes such rows by that key and cannot set it here"
                    );
                }
                columns.push(value_of(k)?);
            }
            let mut set = Vec::with_capacity(assigned.len());
            for field in schema.fields() {
                if assigned.contains(field.name()) {
                    columns.push(value_of(field.name())?);
                    set.push(field.name().clone());
                }
            }
            let input = Projection::try_new(columns, Arc::clone(&top.input))?;
            (KeyedChange::Update(set), LogicalPlan::Projection(input))
        }
    };
    Ok(RemoteWriteNode::plan(
        table_name.to_string(),
        table,
        RemoteWrite::ByKey(change),
        input,
        Arc::clone(output_schema),
    ))
}

/// The columns an `UPDATE` sets, as PostgreSQL names them.
fn assigned_columns(statement: &DfStatement) -> HashSet<String> {
    let DfStatement::Statement(sql) = statement else {
        return HashSet::new();
    };
    let SqlStatement::Update(update) = sql.as_ref() else {
        return HashSet::new();
    };
    update
        .assignments
        .iter()
        .filter_map(|a| match &a.target {
            AssignmentTarget::ColumnName(name) => name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .map(normalize),
            AssignmentTarget::Tuple(_) => None,
        })
        .collect()
}
