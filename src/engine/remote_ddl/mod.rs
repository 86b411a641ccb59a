//! DDL in the sources: `CREATE TABLE src.schema.t (…)`, `ALTER TABLE`,
//! `DROP TABLE`, `TRUNCATE`, `CREATE/DROP SCHEMA` naming a source's
//! tables are made in that backend (through
//! [`koios_connector::Source::change_schema`]), not in Koios's memory.
//!
//! * [`statement`]: the statements read into backend-neutral changes;
//! * [`types`]: the SQL types a user may declare;
//! * [`create_as`]: `CREATE TABLE … AS query` into a source;
//! * [`dml`]: the `UPDATE`/`DELETE` of a source's table Koios refuses
//!   before planning;
//! * [`upsert`], [`keyed`], [`returning`]: writes Koios plans around
//!   DataFusion's ([`write_node`]): `ON CONFLICT`, changes by key,
//!   `RETURNING` and columns left to the backend's defaults.
//!
//! A column's `DEFAULT` must be a constant (a literal, a cast of one, a
//! typed string, an array of them): it is evaluated once here and written
//! into the backend's DDL as a literal, so it means the same in every
//! backend. An expression such as `now()` is refused rather than frozen.

pub mod create_as;
pub mod dml;
pub mod keyed;
pub mod returning;
pub mod statement;
pub mod types;
pub mod upsert;
pub mod write_node;

use std::sync::Arc;

use arrow::array::RecordBatchOptions;
use arrow::datatypes::Schema;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::ColumnarValue;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, UnaryOperator};
use koios_connector::ddl::SchemaChange;
use koios_connector::sql_err;

use crate::engine::Engine;
use crate::engine::error::codes;

pub use create_as::CreateTableAs;
pub use statement::{Names, ParsedDdl, parse_ddl};

/// The changes of one DDL statement, ready to be made in `source`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteDdl {
    pub source: String,
    pub changes: Vec<SchemaChange>,
}

impl RemoteDdl {
    /// The command tag of the statement.
    pub fn tag(&self) -> &'static str {
        self.changes
            .first()
            .map(SchemaChange::tag)
            .unwrap_or("ALTER TABLE")
    }
}

impl ParsedDdl {
    /// The changes with each `DEFAULT` evaluated (see the module's doc).
    pub fn evaluate_defaults(mut self, state: &SessionState) -> Result<RemoteDdl> {
        debug_assert!(self.as_query.is_none(), "CREATE TABLE AS has no defaults");
        for (column, expr) in std::mem::take(&mut self.defaults) {
            let value = constant(state, &column, expr)?;
            for change in &mut self.changes {
                let columns = match change {
                    SchemaChange::CreateTable(table) => table.columns.iter_mut().collect(),
                    SchemaChange::AddColumn { column, .. } => vec![column],
                    _ => Vec::new(),
                };
                for declared in columns {
                    if declared.name == column {
                        declared.default = Some(value.clone());
                    }
                }
            }
        }
        Ok(RemoteDdl {
            source: self.source,
            changes: self.changes,
        })
    }
}

/// The value of a constant `DEFAULT`.
pub(super) fn constant(state: &SessionState, column: &str, expr: SqlExpr) -> Result<ScalarValue> {
    if !is_constant(&expr) {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "column \"{column}\": DEFAULT {expr} is not a constant; a source's table takes a constant default (a literal or a cast of one)"
        );
    }
    let schema = DFSchema::empty();
    let logical = state.create_logical_expr_from_sql_expr(
        datafusion::sql::sqlparser::ast::ExprWithAlias { expr, alias: None },
        &schema,
    )?;
    let physical = state.create_physical_expr(logical, &schema)?;
    let one_row = arrow::array::RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match physical.evaluate(&one_row)? {
        ColumnarValue::Scalar(value) => Ok(value),
        ColumnarValue::Array(array) => ScalarValue::try_from_array(&array, 0),
    }
}

pub(super) fn is_constant(expr: &SqlExpr) -> bool {
    match expr {
        SqlExpr::Value(_) | SqlExpr::TypedString { .. } => true,
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => is_constant(expr),
        SqlExpr::Cast { expr, .. } | SqlExpr::Nested(expr) => is_constant(expr),
        SqlExpr::Array(array) => array.elem.iter().all(is_constant),
        _ => false,
    }
}

impl Engine {
    /// Makes `ddl`'s changes in its source, one after the other, then
    /// drops every cached plan (a table's columns may have changed).
    pub async fn change_schema(&self, ddl: &RemoteDdl) -> Result<()> {
        let source = self.live_source(&ddl.source)?;
        let catalog = source.catalog();
        let mut outcome = Ok(());
        for change in &ddl.changes {
            if let Some(schema) = change.schema()
                && catalog.schema(schema).is_none()
            {
                outcome = sql_err!(
                    codes::UNDEFINED_SCHEMA,
                    "schema \"{schema}\" does not exist in source '{}'",
                    ddl.source
                );
                break;
            }
            outcome = source.change_schema(change).await;
            if outcome.is_err() {
                break;
            }
        }
        self.catalog_changed();
        outcome
    }
}
