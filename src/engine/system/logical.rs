//! `koios.system.logical_tables` (every logical table: layout, placement,
//! key, member count, origin) and `koios.system.members` (each member of
//! each logical table, with whether its source is up).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;

use super::{BuildRows, SystemTable};
use crate::engine::Engine;
use crate::engine::logical::Layout;

fn logical_tables_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("layout", DataType::Utf8, false),
        Field::new("placement", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("members", DataType::Int64, false),
        Field::new("columns", DataType::Int64, false),
        Field::new("inserted_rows", DataType::Int64, true),
        Field::new("origin", DataType::Utf8, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        // Members holding each row (every member of a mirrored table).
        Field::new("copies", DataType::Int64, false),
        // Copies a write must reach (NULL: a table without copies).
        Field::new("write_quorum", DataType::Int64, true),
    ]))
}

pub(super) const LOGICAL_TABLES: SystemTable = SystemTable {
    name: "logical_tables",
    schema: logical_tables_schema,
    rows: BuildRows::Sync(logical_tables_batch),
};

fn logical_tables_batch(engine: &Engine) -> Result<RecordBatch> {
    let mut name = StringBuilder::new();
    let mut layout = StringBuilder::new();
    let mut placement = StringBuilder::new();
    let mut key = StringBuilder::new();
    let mut members = Int64Builder::new();
    let mut columns = Int64Builder::new();
    let mut inserted = Int64Builder::new();
    let mut origin = StringBuilder::new();
    let mut created = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut copies = Int64Builder::new();
    let mut write_quorum = Int64Builder::new();
    for table in engine.logical_tables().values() {
        let definition = &table.definition;
        name.append_value(definition.display_name());
        layout.append_value(definition.layout.kind());
        placement.append_value(definition.layout.placement());
        key.append_option(definition.layout.key());
        members.append_value(definition.members.len() as i64);
        columns.append_value(definition.columns.len() as i64);
        // The round-robin pointer; hash placement keeps no count.
        inserted.append_option(match definition.layout {
            Layout::StripedRoundRobin { .. } => {
                Some(table.position.load(std::sync::atomic::Ordering::Acquire))
            }
            Layout::StripedHash { .. } | Layout::Mirrored { .. } => None,
        });
        origin.append_value(table.origin.as_str());
        created.append_option(
            chrono::DateTime::parse_from_rfc3339(&table.created_at)
                .ok()
                .map(|t| t.timestamp_micros()),
        );
        copies.append_value(definition.copies() as i64);
        write_quorum.append_option(definition.layout.write_quorum().map(|q| q as i64));
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(name.finish()),
        Arc::new(layout.finish()),
        Arc::new(placement.finish()),
        Arc::new(key.finish()),
        Arc::new(members.finish()),
        Arc::new(columns.finish()),
        Arc::new(inserted.finish()),
        Arc::new(origin.finish()),
        Arc::new(created.finish()),
        Arc::new(copies.finish()),
        Arc::new(write_quorum.finish()),
    ];
    Ok(RecordBatch::try_new(logical_tables_schema(), arrays)?)
}

fn members_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("position", DataType::Int64, false),
        Field::new("member", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("schema", DataType::Utf8, false),
        Field::new("member_table", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        // A copy's state: 'current' or 'stale' (NULL: rows without copies).
        Field::new("copy_state", DataType::Utf8, true),
        // Journal entries a stale copy has still to replay.
        Field::new("journal_length", DataType::Int64, true),
        // Seconds since a stale copy missed its first write (0: current).
        Field::new("lag_seconds", DataType::Float64, true),
    ]))
}

pub(super) const MEMBERS: SystemTable = SystemTable {
    name: "members",
    schema: members_schema,
    rows: BuildRows::Sync(members_batch),
};

fn members_batch(engine: &Engine) -> Result<RecordBatch> {
    let mut table = StringBuilder::new();
    let mut position = Int64Builder::new();
    let mut member = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut schema = StringBuilder::new();
    let mut member_table = StringBuilder::new();
    let mut state = StringBuilder::new();
    let mut copy_state = StringBuilder::new();
    let mut journal = Int64Builder::new();
    let mut lag = Float64Builder::new();
    let now = chrono::Utc::now();
    for logical in engine.logical_tables().values() {
        let mirrored = logical.definition.layout.has_copies();
        for (index, name) in logical.definition.members.iter().enumerate() {
            table.append_value(logical.display_name());
            position.append_value(index as i64 + 1);
            member.append_value(name.to_string());
            source.append_value(&name.source);
            schema.append_value(&name.schema);
            member_table.append_value(&name.table);
            state.append_value(if engine.live_source(&name.source).is_ok() {
                "up"
            } else {
                "down"
            });
            let copy = &logical.mirror.copies[index];
            if !mirrored {
                copy_state.append_null();
                journal.append_null();
                lag.append_null();
                continue;
            }
            copy_state.append_value(if copy.is_stale() { "stale" } else { "current" });
            journal.append_value(copy.entries().max(0));
            let behind = copy
                .since()
                .and_then(|since| chrono::DateTime::parse_from_rfc3339(&since).ok())
                .map(|since| {
                    (now - since.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
                })
                .unwrap_or(0.0);
            lag.append_value(behind.max(0.0));
        }
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(table.finish()),
        Arc::new(position.finish()),
        Arc::new(member.finish()),
        Arc::new(source.finish()),
        Arc::new(schema.finish()),
        Arc::new(member_table.finish()),
        Arc::new(state.finish()),
        Arc::new(copy_state.finish()),
        Arc::new(journal.finish()),
        Arc::new(lag.finish()),
    ];
    Ok(RecordBatch::try_new(members_schema(), arrays)?)
}
