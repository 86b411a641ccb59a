//! The `koios` commands that talk to a running server over the PostgreSQL
//! protocol, as any client would: `koios sources list|add|drop|refresh`,
//! `koios status` and `koios jobs [--watch]`. They send Koios's own statements (`SHOW SOURCES`,
//! `CREATE SOURCE` …) and print the answers as tables; nothing here reaches
//! the engine directly.
//!
//! * [`remote`]: the connection (`--server`, `PGUSER`/`PGPASSWORD`) and
//!   the statements each command sends;
//! * [`jobs`]: the jobs table, and live progress bars (indicatif).
//!
//! Answers are printed by [`crate::pg::types::table`], the same psql
//! layout `koios query` uses.

pub mod jobs;
pub mod remote;
