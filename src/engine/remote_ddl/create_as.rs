//! `CREATE TABLE src.schema.t AS query`: a table in a backend made from
//! any query over any sources. The table is created with the query's
//! column types (Arrow's, as declared types: [`arrow_column_type`]), then
//! filled through the backend's bulk insert path, streaming — memory is
//! bounded by the batch size, not the table. Where DDL is transactional
//! (PostgreSQL), the table is created and filled in one remote transaction:
//! a failure, or Koios stopping half-way, leaves nothing. Elsewhere, if
//! filling fails, the table is dropped again.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, Statement as SqlStatement};
use koios_connector::Source;
use koios_connector::ddl::{ColumnDefinition, ColumnType, SchemaChange, TableDefinition};
use koios_connector::transaction::{RemoteTransaction, TransactionBlock};
use koios_connector::{sql_err, sql_error};

use super::RemoteDdl;
use crate::engine::Engine;
use crate::engine::error::codes;

/// A `CREATE TABLE … AS query` into a source.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTableAs {
    pub source: String,
    /// The table to create; its columns are filled in from the query.
    pub definition: TableDefinition,
    pub query: Box<ast::Query>,
}

/// The declared type of a query's column of Arrow type `data_type`.
pub fn arrow_column_type(column: &str, data_type: &DataType) -> Result<ColumnType> {
    Ok(match data_type {
        DataType::Boolean => ColumnType::Boolean,
        DataType::Int8 => ColumnType::Int(8),
        DataType::Int16 => ColumnType::Int(16),
        DataType::Int32 => ColumnType::Int(32),
        DataType::Int64 => ColumnType::Int(64),
        DataType::UInt8 => ColumnType::UInt(8),
        DataType::UInt16 => ColumnType::UInt(16),
        DataType::UInt32 => ColumnType::UInt(32),
        DataType::UInt64 => ColumnType::UInt(64),
        DataType::Float16 | DataType::Float32 => ColumnType::Real,
        DataType::Float64 => ColumnType::Double,
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => ColumnType::Numeric(Some((*p, *s))),
        // A column of NULLs (`SELECT NULL AS x`) has no type of its own.
        DataType::Null | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            ColumnType::Text
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ColumnType::Bytea,
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Time32(_) | DataType::Time64(_) => ColumnType::Time,
        DataType::Timestamp(_, None) => ColumnType::Timestamp,
        DataType::Timestamp(_, Some(_)) => ColumnType::TimestampTz,
        DataType::Interval(_) | DataType::Duration(_) => ColumnType::Interval,
        DataType::List(element) | DataType::LargeList(element) => {
            ColumnType::Array(Box::new(arrow_column_type(column, element.data_type())?))
        }
        DataType::Dictionary(_, value) => arrow_column_type(column, value)?,
        other => {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "column \"{column}\" of type {other} cannot be stored in a source's table"
            );
        }
    })
}

impl CreateTableAs {
    /// Creates the table and fills it; returns the rows written.
    pub async fn run(&self, engine: &Engine, ctx: &SessionContext) -> Result<u64> {
        let query = DfStatement::Statement(Box::new(SqlStatement::Query(self.query.clone())));
        let plan = ctx.state().statement_to_plan(query).await?;
        let mut definition = self.definition.clone();
        for field in plan.schema().fields() {
            if definition.columns.iter().any(|c| &c.name == field.name()) {
                return sql_err!(
                    codes::DUPLICATE_COLUMN,
                    "column \"{}\" specified more than once (name the query's columns apart with AS)",
                    field.name()
                );
            }
            definition.columns.push(ColumnDefinition {
                name: field.name().clone(),
                data_type: arrow_column_type(field.name(), field.data_type())?,
                nullable: true,
                default: None,
            });
        }
        let reference = TableReference::full(
            self.source.as_str(),
            definition.name.schema.as_str(),
            definition.name.table.as_str(),
        );
        if definition.if_not_exists && ctx.table_exist(reference.clone())? {
            return Ok(0);
        }
        let source = engine.live_source(&self.source)?;
        if let Some(transaction) = source.begin_ddl().await? {
            let filled =
                in_one_transaction(&source, &definition, ctx, plan, reference, &transaction).await;
            return match filled {
                Ok(rows) => {
                    transaction.commit().await?;
                    // Visible to every session once committed.
                    let reloaded = source.reload_schema(&definition.name.schema).await;
                    engine.catalog_changed();
                    reloaded.map(|()| rows)
                }
                Err(e) => {
                    if let Err(undo) = transaction.rollback().await {
                        tracing::warn!(source = %self.source, "could not roll back a failed CREATE TABLE AS: {undo}");
                    }
                    Err(e)
                }
            };
        }
        let name = definition.name.clone();
        let create = RemoteDdl {
            source: self.source.clone(),
            changes: vec![SchemaChange::CreateTable(definition)],
        };
        engine.change_schema(&create).await?;
        let filled = match ctx.table_provider(reference.clone()).await {
            Ok(table) => fill(ctx, plan, reference, table).await,
            Err(e) => Err(e),
        };
        if filled.is_err() {
            // Leave nothing behind; the insert itself was one transaction.
            let drop = RemoteDdl {
                source: self.source.clone(),
                changes: vec![SchemaChange::DropTable {
                    name,
                    if_exists: true,
                }],
            };
            if let Err(e) = engine.change_schema(&drop).await {
                tracing::warn!(source = %self.source, "could not drop the table of a failed CREATE TABLE AS: {e}");
            }
        }
        filled
    }
}

/// Creates the table inside `transaction` and fills it there, in a block
/// of the statement's own (its reads stay on pooled connections, so the
/// rows stream); the caller commits or rolls back.
async fn in_one_transaction(
    source: &Arc<dyn Source>,
    definition: &TableDefinition,
    ctx: &SessionContext,
    plan: datafusion::logical_expr::LogicalPlan,
    reference: TableReference,
    transaction: &Arc<dyn RemoteTransaction>,
) -> Result<u64> {
    if source.catalog().schema(&definition.name.schema).is_none() {
        return sql_err!(
            codes::UNDEFINED_SCHEMA,
            "schema \"{}\" does not exist in source '{}'",
            definition.name.schema,
            reference.catalog().unwrap_or_default()
        );
    }
    let table = source.create_table_in(definition, transaction).await?;
    let block = Arc::new(TransactionBlock::for_statement(
        reference.catalog().unwrap_or_default(),
        Arc::clone(transaction),
    ));
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_config(ctx.copied_config().with_extension(block))
        .build();
    fill(
        &SessionContext::new_with_state(state),
        plan,
        reference,
        table,
    )
    .await
}

/// Inserts the query's rows into the new table, each column cast to the
/// type the backend reads it back as.
async fn fill(
    ctx: &SessionContext,
    plan: datafusion::logical_expr::LogicalPlan,
    reference: TableReference,
    table: Arc<dyn TableProvider>,
) -> Result<u64> {
    let target = table.schema();
    if target.fields().len() != plan.schema().fields().len() {
        return sql_err!(
            codes::INTERNAL_ERROR,
            "the created table {reference} has {} columns where the query has {}",
            target.fields().len(),
            plan.schema().fields().len()
        );
    }
    let columns: Vec<Expr> = plan
        .schema()
        .iter()
        .zip(target.fields())
        .map(|((qualifier, field), to)| {
            cast(
                Expr::Column(Column::from((qualifier, field))),
                to.data_type().clone(),
            )
            .alias(to.name())
        })
        .collect();
    let insert = LogicalPlanBuilder::from(plan)
        .project(columns)?
        .build()
        .and_then(|input| {
            LogicalPlanBuilder::insert_into(
                input,
                reference,
                provider_as_source(Arc::clone(&table)),
                InsertOp::Append,
            )?
            .build()
        })?;
    let batches = ctx.execute_logical_plan(insert).await?.collect().await?;
    let mut rows = 0u64;
    for batch in &batches {
        let counts = batch
            .column_by_name("count")
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::UInt64Array>())
            .ok_or_else(|| sql_error!(codes::INTERNAL_ERROR, "an insert returned no count"))?;
        rows += counts.iter().flatten().sum::<u64>();
    }
    Ok(rows)
}
