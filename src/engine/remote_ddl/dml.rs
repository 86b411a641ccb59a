//! `UPDATE` and `DELETE` naming a source's table: what Koios refuses before
//! DataFusion plans them. DataFusion hands the table only the conditions
//! that name the target table itself; a statement whose rows depend on
//! anything else (`UPDATE … FROM`, `DELETE … USING`, a subquery) would then
//! change rows it should not. Such statements are refused with 0A000
//! until Koios changes rows by primary key; the others reach the table's
//! `delete_from` / `update`, which run them remotely when the backend
//! evaluates them exactly (`connectors/sql/src/dml.rs`).

use std::ops::ControlFlow;

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FromTable, Statement as SqlStatement, TableFactor, TableWithJoins, Visit,
    Visitor,
};
use koios_connector::sql_err;

use super::statement::{Names, resolve_table};
use crate::engine::error::codes;

/// Refuses an `UPDATE`/`DELETE` of a source's table whose rows Koios
/// cannot choose exactly; `Ok` for anything else.
pub fn check_dml(statement: &SqlStatement, names: &Names) -> Result<()> {
    let (what, target, extra) = match statement {
        SqlStatement::Delete(delete) => {
            let tables = match &delete.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let extra = if !delete.tables.is_empty() || tables.len() != 1 {
                Some("several tables")
            } else if delete.using.is_some() {
                Some("USING")
            } else if delete.returning.is_some() {
                Some("RETURNING")
            } else if !delete.order_by.is_empty() || delete.limit.is_some() {
                Some("ORDER BY or LIMIT")
            } else if has_subquery(&delete.selection) {
                Some("a subquery")
            } else {
                None
            };
            ("DELETE", tables.first(), extra)
        }
        SqlStatement::Update(update) => {
            let extra = if update.from.is_some() {
                Some("FROM")
            } else if update.returning.is_some() {
                Some("RETURNING")
            } else if has_subquery(&update.selection)
                || update
                    .assignments
                    .iter()
                    .any(|a| has_subquery(&Some(a.value.clone())))
            {
                Some("a subquery")
            } else {
                None
            };
            ("UPDATE", Some(&update.table), extra)
        }
        _ => return Ok(()),
    };
    let Some(TableWithJoins { relation, joins }) = target else {
        return Ok(());
    };
    let TableFactor::Table { name, .. } = relation else {
        return Ok(());
    };
    let Some((source, table)) = resolve_table(names, name)? else {
        return Ok(());
    };
    let extra = if joins.is_empty() {
        extra
    } else {
        Some("a join")
    };
    match extra {
        None => Ok(()),
        Some(extra) => sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "{what} with {extra} on {source}.{table} is not supported yet: Koios runs {what} on a source's table as one remote statement over that table alone"
        ),
    }
}

fn has_subquery(expr: &Option<SqlExpr>) -> bool {
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
    expr.as_ref()
        .is_some_and(|e| e.visit(&mut Finder).is_break())
}
