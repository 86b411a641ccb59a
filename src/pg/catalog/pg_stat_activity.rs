//! `pg_stat_activity`: every client session, with PostgreSQL 15's columns
//! (what psql, pgAdmin and monitoring tools read), from the engine's
//! activity registry — the same sessions as `koios.system.sessions`.

use std::time::SystemTime;

use datafusion::common::ScalarValue;

use super::SystemContext;
use super::relations::{OWNER, stable_oid};
use super::rows::{Col, NULL, Row, int4, text};

use Col::*;

pub(super) const COLUMNS: &[(&str, Col)] = &[
    ("datid", Oid),
    ("datname", Name),
    ("pid", Int4),
    ("leader_pid", Int4),
    ("usesysid", Oid),
    ("usename", Name),
    ("application_name", Text),
    ("client_addr", Text),
    ("client_hostname", Text),
    ("client_port", Int4),
    ("backend_start", Timestamptz),
    ("xact_start", Timestamptz),
    ("query_start", Timestamptz),
    ("state_change", Timestamptz),
    ("wait_event_type", Text),
    ("wait_event", Text),
    ("state", Text),
    ("backend_xid", Int4),
    ("backend_xmin", Int4),
    ("query_id", Int8),
    ("query", Text),
    ("backend_type", Text),
];

fn timestamptz(time: SystemTime) -> ScalarValue {
    let micros = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_micros()).ok());
    ScalarValue::TimestampMicrosecond(micros, Some("UTC".into()))
}

/// One row per connected session, in pid order.
pub(super) fn rows(context: &SystemContext) -> Vec<Row> {
    context
        .sessions
        .sessions()
        .iter()
        .map(|session| {
            let s = session.snapshot();
            let info = &s.info;
            let usesysid = if info.user == context.user {
                OWNER
            } else {
                stable_oid("role", &[&info.user])
            };
            vec![
                int4(stable_oid("database", &[&info.database])),
                text(&info.database),
                int4(info.pid),
                NULL,
                int4(usesysid),
                text(&info.user),
                text(&s.application_name),
                info.client_addr
                    .map(|a| text(a.ip().to_canonical().to_string()))
                    .unwrap_or(NULL),
                NULL,
                info.client_addr
                    .map(|a| int4(i32::from(a.port())))
                    .unwrap_or(NULL),
                timestamptz(s.backend_start),
                NULL,
                s.query_start.map(timestamptz).unwrap_or(NULL),
                timestamptz(s.state_change),
                NULL,
                NULL,
                text(s.state.as_str()),
                NULL,
                NULL,
                NULL,
                s.query.as_deref().map(text).unwrap_or_else(|| text("")),
                text("client backend"),
            ]
        })
        .collect()
}
