//! `koios.system.sources` (every source: kind, where it is defined, its URL
//! without password, health, latency, table count) and
//! `koios.system.tables` (every table of every attached source, with the
//! backend's row estimate where it keeps one).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;
use futures::FutureExt;

use super::{BuildRows, SystemTable, micros};
use crate::engine::Engine;

fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The columns of `koios.system.sources` (and `SHOW SOURCES`).
pub fn sources_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("since", timestamptz(), false),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("latency_ms", DataType::Float64, true),
        Field::new("tables", DataType::Int64, true),
    ]))
}

pub(super) const SOURCES: SystemTable = SystemTable {
    name: "sources",
    schema: sources_schema,
    rows: BuildRows::Sync(sources_batch),
};

/// The rows of `koios.system.sources`.
pub fn sources_batch(engine: &Engine) -> Result<RecordBatch> {
    let statuses = engine.source_statuses();
    let mut name = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut origin = StringBuilder::new();
    let mut url = StringBuilder::new();
    let mut state = StringBuilder::new();
    let mut since = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut last_error = StringBuilder::new();
    let mut latency = Float64Builder::new();
    let mut tables = Int64Builder::new();
    for s in statuses {
        name.append_value(&s.name);
        kind.append_value(&s.kind);
        origin.append_value(s.origin);
        url.append_value(&s.url);
        state.append_value(s.state);
        since.append_value(micros(s.since));
        last_error.append_option(s.last_error.as_deref());
        latency.append_option(s.latency_ms);
        tables.append_option(s.tables.map(|n| n as i64));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(origin.finish()),
        Arc::new(url.finish()),
        Arc::new(state.finish()),
        Arc::new(since.finish()),
        Arc::new(last_error.finish()),
        Arc::new(latency.finish()),
        Arc::new(tables.finish()),
    ];
    Ok(RecordBatch::try_new(sources_schema(), columns)?)
}

fn tables_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("schema", DataType::Utf8, false),
        Field::new("table", DataType::Utf8, false),
        Field::new("estimated_rows", DataType::Int64, true),
    ]))
}

pub(super) const TABLES: SystemTable = SystemTable {
    name: "tables",
    schema: tables_schema,
    rows: BuildRows::Async(|engine| async move { tables_batch(&engine).await }.boxed()),
};

/// Every table of every source that is up. Opening a table may ask its
/// backend (lazily discovered catalogs), so this reads sources in turn.
async fn tables_batch(engine: &Engine) -> Result<RecordBatch> {
    let mut source = StringBuilder::new();
    let mut schema_column = StringBuilder::new();
    let mut table_column = StringBuilder::new();
    let mut rows = Int64Builder::new();
    for (name, catalog) in engine.ready_catalogs() {
        let mut schemas = catalog.schema_names();
        schemas.sort();
        for schema_name in schemas {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            let mut tables = schema.table_names();
            tables.sort();
            for table_name in tables {
                // A table that cannot be opened (an unsupported type) is
                // still listed; its estimate is unknown.
                let estimate = match schema.table(&table_name).await {
                    Ok(Some(table)) => engine
                        .capabilities()
                        .table(table.as_ref())
                        .and_then(|c| c.estimated_rows)
                        .map(|n| n as i64)
                        .or_else(|| {
                            table
                                .statistics()
                                .and_then(|s| s.num_rows.get_value().map(|n| *n as i64))
                        }),
                    _ => None,
                };
                source.append_value(&name);
                schema_column.append_value(&schema_name);
                table_column.append_value(&table_name);
                rows.append_option(estimate);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(source.finish()),
        Arc::new(schema_column.finish()),
        Arc::new(table_column.finish()),
        Arc::new(rows.finish()),
    ];
    Ok(RecordBatch::try_new(tables_schema(), columns)?)
}

fn server_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("started_at", timestamptz(), false),
        Field::new("uptime_seconds", DataType::Float64, false),
        Field::new("sources", DataType::Int64, false),
        Field::new("sources_down", DataType::Int64, false),
        Field::new("metadata_store", DataType::Utf8, false),
    ]))
}

/// `koios.system.server`: one row about this server (what `koios status`
/// prints first).
pub(super) const SERVER: SystemTable = SystemTable {
    name: "server",
    schema: server_schema,
    rows: BuildRows::Sync(server_batch),
};

fn server_batch(engine: &Engine) -> Result<RecordBatch> {
    let statuses = engine.source_statuses();
    let down = statuses.iter().filter(|s| s.state != "ready").count();
    let uptime = engine
        .started_at
        .elapsed()
        .unwrap_or_default()
        .as_secs_f64();
    let mut started = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    started.append_value(micros(engine.started_at));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(started.finish()),
        Arc::new(datafusion::arrow::array::Float64Array::from(vec![uptime])),
        Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            statuses.len() as i64,
        ])),
        Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            down as i64,
        ])),
        Arc::new(datafusion::arrow::array::StringArray::from(vec![
            engine.metadata_location(),
        ])),
    ];
    Ok(RecordBatch::try_new(server_schema(), columns)?)
}
