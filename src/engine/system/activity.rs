//! `koios.system.sessions` (every client session, what it runs or ran
//! last) and `koios.system.queries` (every running statement, with the
//! statements it has open in each source), from the engine's
//! [`ActivityRegistry`](crate::engine::activity::ActivityRegistry).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;

use super::{BuildRows, SystemTable, micros};
use crate::engine::Engine;
use crate::engine::activity::{SessionState, Snapshot, remote_statements};

pub(super) const SESSIONS: SystemTable = SystemTable {
    name: "sessions",
    schema: sessions_schema,
    rows: BuildRows::Sync(sessions_rows),
};

pub(super) const QUERIES: SystemTable = SystemTable {
    name: "queries",
    schema: queries_schema,
    rows: BuildRows::Sync(queries_rows),
};

fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

// `user_name`, not `user`: `SELECT user FROM …` would be the function
// `user` (the current user), silently.
fn sessions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pid", DataType::Int32, false),
        Field::new("user_name", DataType::Utf8, false),
        Field::new("database", DataType::Utf8, false),
        Field::new("client_addr", DataType::Utf8, true),
        Field::new("backend_start", timestamptz(), false),
        Field::new("state", DataType::Utf8, false),
        Field::new("query_start", timestamptz(), true),
        Field::new("query", DataType::Utf8, true),
    ]))
}

fn queries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pid", DataType::Int32, false),
        Field::new("user_name", DataType::Utf8, false),
        Field::new("database", DataType::Utf8, false),
        Field::new("started", timestamptz(), false),
        Field::new("state", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new(
            "remote_statements",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            false,
        ),
    ]))
}

fn snapshots(engine: &Engine) -> Vec<Snapshot> {
    engine
        .activity()
        .sessions()
        .iter()
        .map(|s| s.snapshot())
        .collect()
}

fn timestamps() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn sessions_rows(engine: &Engine) -> Result<RecordBatch> {
    let sessions = snapshots(engine);
    let mut pid = Int32Builder::new();
    let (mut user, mut database, mut addr) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut backend_start, mut query_start) = (timestamps(), timestamps());
    let (mut state, mut query) = (StringBuilder::new(), StringBuilder::new());
    for s in &sessions {
        pid.append_value(s.info.pid);
        user.append_value(&s.info.user);
        database.append_value(&s.info.database);
        addr.append_option(
            s.info
                .client_addr
                .map(|a| a.ip().to_canonical().to_string()),
        );
        backend_start.append_value(micros(s.backend_start));
        state.append_value(s.state.as_str());
        query_start.append_option(s.query_start.map(micros));
        query.append_option(s.query.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(pid.finish()),
        Arc::new(user.finish()),
        Arc::new(database.finish()),
        Arc::new(addr.finish()),
        Arc::new(backend_start.finish()),
        Arc::new(state.finish()),
        Arc::new(query_start.finish()),
        Arc::new(query.finish()),
    ];
    Ok(RecordBatch::try_new(sessions_schema(), columns)?)
}

fn queries_rows(engine: &Engine) -> Result<RecordBatch> {
    let running: Vec<Snapshot> = snapshots(engine)
        .into_iter()
        .filter(|s| s.state == SessionState::Active)
        .collect();
    let mut pid = Int32Builder::new();
    let (mut user, mut database) = (StringBuilder::new(), StringBuilder::new());
    let mut started = timestamps();
    let (mut state, mut query) = (StringBuilder::new(), StringBuilder::new());
    let mut remote = ListBuilder::new(StringBuilder::new());
    for s in &running {
        pid.append_value(s.info.pid);
        user.append_value(&s.info.user);
        database.append_value(&s.info.database);
        started.append_value(micros(s.query_start.unwrap_or(s.state_change)));
        state.append_value(s.state.as_str());
        query.append_value(s.query.as_deref().unwrap_or_default());
        if let Some(plan) = &s.plan {
            for statement in remote_statements(plan, engine.capabilities()) {
                remote.values().append_value(statement);
            }
        }
        remote.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(pid.finish()),
        Arc::new(user.finish()),
        Arc::new(database.finish()),
        Arc::new(started.finish()),
        Arc::new(state.finish()),
        Arc::new(query.finish()),
        Arc::new(remote.finish()),
    ];
    Ok(RecordBatch::try_new(queries_schema(), columns)?)
}
