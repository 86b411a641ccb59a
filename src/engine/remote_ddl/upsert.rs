//! `INSERT … ON CONFLICT (key) DO NOTHING | DO UPDATE SET …` into a
//! source's table.
//!
//! DataFusion plans inserts but refuses the clause, so the session plans
//! the statement without it ([`split_conflict`]) and wraps the resulting
//! insert's input in a [`RemoteWriteNode`] carrying the clause, read into
//! backend-neutral terms ([`OnConflict`]). The node's physical plan comes
//! from the connector that made the table (`Capabilities::plan_upsert`),
//! so parameters, `EXPLAIN`, metering and transaction blocks work as for
//! any insert.
//!
//! The new values of `DO UPDATE` are the proposed row's (`EXCLUDED.col`)
//! or constants; anything else (an expression over the existing row, a
//! `WHERE` on the update, `ON CONSTRAINT`) is refused with 0A000 rather
//! than carried out differently.

use std::sync::Arc;

use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, ConflictTarget, Expr as SqlExpr, OnConflictAction, OnInsert,
    Statement as SqlStatement,
};
use koios_connector::upsert::{ConflictAction, OnConflict, UpsertValue};
use koios_connector::{Capabilities, sql_err, sql_error};

use super::statement::normalize;
use super::write_node::{RemoteWrite, RemoteWriteNode};
use crate::engine::error::codes;
use crate::engine::logical::provider::LogicalTableProvider;

/// An `INSERT … ON CONFLICT` (or its `EXPLAIN`) taken apart.
pub struct ConflictStatement {
    /// The insert without its clause, for DataFusion to plan.
    pub insert: DfStatement,
    pub clause: OnInsert,
}

/// `statement` taken apart, when it is an `INSERT … ON CONFLICT`.
pub fn split_conflict(statement: &DfStatement) -> Result<Option<ConflictStatement>> {
    let DfStatement::Statement(sql) = statement else {
        return Ok(None);
    };
    let SqlStatement::Insert(insert) = sql.as_ref() else {
        return Ok(None);
    };
    let Some(clause) = insert.on.clone() else {
        return Ok(None);
    };
    if insert.returning.is_some() {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "INSERT … ON CONFLICT … RETURNING is not supported"
        );
    }
    let mut stripped = insert.clone();
    stripped.on = None;
    Ok(Some(ConflictStatement {
        insert: DfStatement::Statement(Box::new(SqlStatement::Insert(stripped))),
        clause,
    }))
}

/// The plan of `statement`: the upsert of `insert` (the statement planned
/// without its clause).
pub fn plan_statement(
    statement: ConflictStatement,
    insert: LogicalPlan,
    state: &SessionState,
    capabilities: &Capabilities,
) -> Result<LogicalPlan> {
    plan(insert, statement.clause, state, capabilities)
}

/// The upsert plan of `insert` (the statement planned without its clause).
fn plan(
    insert: LogicalPlan,
    clause: OnInsert,
    state: &SessionState,
    capabilities: &Capabilities,
) -> Result<LogicalPlan> {
    let LogicalPlan::Dml(DmlStatement {
        table_name,
        target,
        op: WriteOp::Insert(_),
        input,
        output_schema,
    }) = insert
    else {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "ON CONFLICT belongs to an INSERT"
        );
    };
    let table = source_as_provider(&target)?;
    let logical = table.as_ref().downcast_ref::<LogicalTableProvider>();
    let key = match capabilities.table(table.as_ref()) {
        Some(found) => found.primary_key,
        None if let Some(logical) = logical => logical.table.definition.primary_key.clone(),
        None => {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "INSERT … ON CONFLICT into {table_name} is not supported: only a source's tables and Koios's striped and mirrored tables take it"
            );
        }
    };
    let on_conflict = read_clause(clause, key, state, &table_name.to_string())?;
    Ok(RemoteWriteNode::plan(
        table_name.to_string(),
        table,
        RemoteWrite::Upsert(on_conflict),
        Arc::unwrap_or_clone(input),
        output_schema,
    ))
}

fn read_clause(
    clause: OnInsert,
    key: Vec<String>,
    state: &SessionState,
    table: &str,
) -> Result<OnConflict> {
    let OnInsert::OnConflict(clause) = clause else {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "ON DUPLICATE KEY UPDATE is MySQL's spelling: write ON CONFLICT (key) DO UPDATE SET …"
        );
    };
    let target = match clause.conflict_target {
        Some(ConflictTarget::Columns(columns)) => columns.iter().map(normalize).collect(),
        Some(ConflictTarget::OnConstraint(name)) => {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "ON CONFLICT ON CONSTRAINT {name} is not supported: name the key's columns"
            );
        }
        // PostgreSQL takes any unique constraint; Koios knows the primary key.
        None if !key.is_empty() && matches!(clause.action, OnConflictAction::DoNothing) => key,
        None => {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "ON CONFLICT needs its key's columns here: ON CONFLICT (column, …) (table {table})"
            );
        }
    };
    let action = match clause.action {
        OnConflictAction::DoNothing => ConflictAction::Nothing,
        OnConflictAction::DoUpdate(update) => {
            if let Some(condition) = update.selection {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "ON CONFLICT … DO UPDATE … WHERE {condition} is not supported"
                );
            }
            let mut assignments = Vec::with_capacity(update.assignments.len());
            for assignment in update.assignments {
                let AssignmentTarget::ColumnName(name) = &assignment.target else {
                    return sql_err!(
                        codes::FEATURE_NOT_SUPPORTED,
                        "ON CONFLICT … DO UPDATE SET (a, b) = … is not supported: set each column"
                    );
                };
                let column = match name.0.as_slice() {
                    [part] => part.as_ident().map(normalize),
                    _ => None,
                }
                .ok_or_else(|| {
                    sql_error!(
                        codes::SYNTAX_ERROR,
                        "invalid column name {name} in DO UPDATE"
                    )
                })?;
                let value = new_value(&column, assignment.value, state)?;
                assignments.push((column, value));
            }
            ConflictAction::Update(assignments)
        }
    };
    Ok(OnConflict { target, action })
}

/// `EXCLUDED.col`, or a constant.
fn new_value(column: &str, value: SqlExpr, state: &SessionState) -> Result<UpsertValue> {
    if let SqlExpr::CompoundIdentifier(parts) = &value
        && let [from, name] = parts.as_slice()
        && from.value.eq_ignore_ascii_case("excluded")
    {
        return Ok(UpsertValue::Proposed(normalize(name)));
    }
    if !super::is_constant(&value) {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "ON CONFLICT … DO UPDATE SET {column} = {value} is not supported: a new value is EXCLUDED.column or a constant"
        );
    }
    super::constant(state, column, value).map(UpsertValue::Constant)
}
