//! `koios.system.jobs`: every background job — what it does, where it is,
//! how far it got, how fast and how long it has left.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;

use super::{BuildRows, SystemTable};
use crate::engine::Engine;

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn jobs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("destination", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("rows_done", DataType::Int64, false),
        Field::new("rows_total", DataType::Int64, true),
        Field::new("bytes", DataType::Int64, false),
        // Rows per second while running on this server.
        Field::new("rate", DataType::Float64, true),
        Field::new("eta_seconds", DataType::Float64, true),
        Field::new("started", timestamp(), true),
        Field::new("updated", timestamp(), true),
        Field::new("finished", timestamp(), true),
        Field::new("error", DataType::Utf8, true),
    ]))
}

pub(super) const JOBS: SystemTable = SystemTable {
    name: "jobs",
    schema: jobs_schema,
    rows: BuildRows::Sync(jobs_batch),
};

fn micros(text: Option<&str>) -> Option<i64> {
    text.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_micros())
}

fn jobs_batch(engine: &Engine) -> Result<RecordBatch> {
    let mut id = Int64Builder::new();
    let mut kind = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut destination = StringBuilder::new();
    let mut state = StringBuilder::new();
    let mut done = Int64Builder::new();
    let mut total = Int64Builder::new();
    let mut bytes = Int64Builder::new();
    let mut rate = Float64Builder::new();
    let mut eta = Float64Builder::new();
    let mut started = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut updated = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut finished = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut error = StringBuilder::new();
    for job in engine.jobs().list() {
        let view = job.view();
        let row = &view.row;
        id.append_value(row.id);
        kind.append_value(&row.kind);
        source.append_value(&row.source);
        destination.append_value(&row.destination);
        state.append_value(&row.state);
        done.append_value(row.rows_done);
        total.append_option(row.rows_total);
        bytes.append_value(row.bytes);
        rate.append_option(view.rate);
        eta.append_option(view.eta_seconds);
        started.append_option(micros(Some(&row.started_at)));
        updated.append_option(micros(Some(&row.updated_at)));
        finished.append_option(micros(row.finished_at.as_deref()));
        error.append_option(row.error.as_deref());
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(kind.finish()),
        Arc::new(source.finish()),
        Arc::new(destination.finish()),
        Arc::new(state.finish()),
        Arc::new(done.finish()),
        Arc::new(total.finish()),
        Arc::new(bytes.finish()),
        Arc::new(rate.finish()),
        Arc::new(eta.finish()),
        Arc::new(started.finish()),
        Arc::new(updated.finish()),
        Arc::new(finished.finish()),
        Arc::new(error.finish()),
    ];
    Ok(RecordBatch::try_new(jobs_schema(), arrays)?)
}
