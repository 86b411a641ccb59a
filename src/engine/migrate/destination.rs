//! A migration's destination made ready before any row moves: created
//! with the source's columns (in the destination's types) and primary key
//! for `create`; emptied for `replace`; for `append` (and `replace`), each
//! source column checked against it, an incompatible one refused by name.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use koios_connector::ddl::{ColumnDefinition, SchemaChange, TableDefinition, TableName};
use koios_connector::sql_err;

use super::chunk;
use super::spec::{Migration, SourceTable, table_of};
use super::statement::Mode;
use crate::engine::Engine;
use crate::engine::error::{codes, restate};
use crate::engine::remote_ddl::RemoteDdl;

/// Creates, empties or checks the destination, as the mode says.
pub(super) async fn prepare(
    engine: &Engine,
    state: &SessionState,
    source: &Arc<dyn TableProvider>,
    migration: &Migration,
) -> Result<()> {
    let existing = table_of(engine, &migration.destination).await?;
    let destination = &migration.destination;
    match (&existing, migration.options.mode) {
        (None, Mode::Append) => sql_err!(
            codes::UNDEFINED_TABLE,
            "relation \"{destination}\" does not exist"
        ),
        (None, _) => create_destination(engine, source, destination).await,
        (Some(table), Mode::Replace) => {
            check_columns(source, table, destination)?;
            chunk::clear(state, table, Vec::new()).await
        }
        (Some(table), _) => check_columns(source, table, destination),
    }
}

/// The destination made with the source's columns (in the destination's
/// types) and primary key.
async fn create_destination(
    engine: &Engine,
    source: &Arc<dyn TableProvider>,
    destination: &SourceTable,
) -> Result<()> {
    let primary_key = engine
        .capabilities()
        .table(source.as_ref())
        .map(|c| c.primary_key)
        .unwrap_or_default();
    let backend = engine.live_source(&destination.source)?;
    let columns = source
        .schema()
        .fields()
        .iter()
        .map(|field| {
            Ok(ColumnDefinition {
                name: field.name().clone(),
                data_type: backend.storable_type(
                    &crate::engine::remote_ddl::create_as::arrow_column_type(
                        field.name(),
                        field.data_type(),
                    )?,
                ),
                nullable: field.is_nullable() && !primary_key.contains(field.name()),
                default: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let ddl = RemoteDdl {
        source: destination.source.clone(),
        changes: vec![SchemaChange::CreateTable(TableDefinition {
            name: TableName {
                schema: destination.schema.clone(),
                table: destination.table.clone(),
            },
            columns,
            primary_key,
            if_not_exists: false,
        })],
    };
    engine.change_schema(&ddl).await.map_err(|e| {
        restate(&e, |m| {
            format!("the destination {destination} could not be created: {m}")
        })
    })
}

/// Refuses a destination lacking a source column or holding it in a type
/// of another kind, naming the column.
fn check_columns(
    source: &Arc<dyn TableProvider>,
    destination: &Arc<dyn TableProvider>,
    name: &SourceTable,
) -> Result<()> {
    let target = destination.schema();
    for field in source.schema().fields() {
        let Ok(found) = target.field_with_name(field.name()) else {
            return sql_err!(
                codes::UNDEFINED_COLUMN,
                "the destination {name} has no column \"{}\"; nothing was copied",
                field.name()
            );
        };
        if !crate::engine::logical::definition::compatible(found.data_type(), field.data_type()) {
            return sql_err!(
                codes::DATATYPE_MISMATCH,
                "column \"{}\" is {} in the source and {} in the destination {name}: incompatible, nothing was copied",
                field.name(),
                field.data_type(),
                found.data_type()
            );
        }
    }
    Ok(())
}
