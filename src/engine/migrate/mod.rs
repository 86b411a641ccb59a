//! `MIGRATE TABLE`: a table copied between any two sources as a
//! background job ([`crate::engine::jobs`]) that checkpoints, verifies and
//! resumes.
//!
//! * [`statement`]: the statement and its options, read;
//! * [`spec`]: what a migration is and its checkpoints (kept in the job's
//!   spec in the metadata store);
//! * [`job`]: the job — the chunks planned and run, resumed at start and
//!   on `RESUME JOB`; [`work`]: one chunk run and checkpointed;
//!   [`destination`]: the destination prepared
//!   (created with the source's columns in the destination's types,
//!   emptied, or checked) before any row moves;
//! * [`chunk`]: one chunk — a range of the source's integer primary key
//!   (the whole table without one) — cleared on the destination if an
//!   earlier run may have left part of it, streamed through the
//!   destination's bulk path, and verified by row count and an
//!   order-independent checksum of both sides' rows in the source's types;
//! * [`row_order`]: a source without an integer key, in chunks of its
//!   physical row order (PostgreSQL's heap blocks), resumed and verified as
//!   a whole.

pub mod chunk;
mod destination;
pub mod job;
pub mod row_order;
pub mod spec;
pub mod statement;
mod work;

/// The kind of the jobs in `koios.system.jobs`.
pub const MIGRATE_JOB: &str = "migrate";

/// The row `MIGRATE TABLE` answers with: the job's id, its state and the
/// rows it has copied.
pub fn answer_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("job", DataType::Int64, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("rows_done", DataType::Int64, false),
    ]))
}
