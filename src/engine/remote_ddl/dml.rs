//! `UPDATE` and `DELETE` naming a source's table: what Koios refuses before
//! DataFusion plans them. `UPDATE … FROM`, `DELETE … USING` and a subquery
//! in the condition are changed by key (`keyed.rs`); the others reach the table's
//! `delete_from` / `update` (`connectors/sql/src/dml.rs`). What neither can
//! take exactly — several target tables, `RETURNING`, `ORDER BY`/`LIMIT`,
//! a subquery in a new value — is refused with 0A000.

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{
    FromTable, Statement as SqlStatement, TableFactor, TableWithJoins,
};
use koios_connector::sql_err;

use super::keyed::has_subquery;
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
            } else if delete.returning.is_some() {
                Some("RETURNING")
            } else if !delete.order_by.is_empty() || delete.limit.is_some() {
                Some("ORDER BY or LIMIT")
            } else {
                None
            };
            ("DELETE", tables.first(), extra)
        }
        SqlStatement::Update(update) => {
            let extra = if update.returning.is_some() {
                Some("RETURNING")
            } else if update
                .assignments
                .iter()
                .any(|a| has_subquery(Some(&a.value)))
            {
                Some("a subquery in a new value")
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
            "{what} with {extra} on {source}.{table} is not supported"
        ),
    }
}
