//! Filling a copy added by `ALTER TABLE … ADD MIRROR`: a background job
//! ([`crate::engine::jobs`]) with its progress in `koios.system.jobs`. A
//! copy put in doubt with an every-row entry (a restart after Koios
//! stopped mid-write) is brought back the same way, as a `resync copy`
//! job.
//!
//! The new copy joins its table stale, with an every-row journal entry
//! (durable: the fill starts over after a restart). The catch-up task
//! ([`super::catchup`]) meets that entry and runs the fill outside the
//! table's write turn, so writes go on meanwhile and reach the new copy
//! through the journal entries they add after it: the copy's rows are
//! deleted, then the rows of a current copy are read as a stream and
//! inserted a chunk at a time (each chunk one insert through the copy's
//! bulk path), with `PAUSE JOB` / `CANCEL JOB` honoured between chunks.
//! Once the later entries are replayed, in the write turn, the new copy is
//! compared with the current one ([`super::verify`], per key range) — a
//! range that differs is copied again and compared once more — and only
//! then made current and the job done. A cancelled fill drops the copy
//! from its table again (its table stays in the backend).

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::catalog::TableProvider;
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{LogicalPlanBuilder, lit};
use futures::StreamExt;
use koios_connector::sql_err;

use super::members::MOVE_MEMBER_JOB;
use super::{LogicalTable, resync, verify};
use crate::engine::Engine;
use crate::engine::error::codes;
use crate::engine::jobs::{Job, RESYNC_COPY};

/// The kind of the job that fills a new copy.
pub const FILL_JOB: &str = "add mirror";

/// Rows inserted into the new copy per statement.
const CHUNK_ROWS: usize = 50_000;

/// The job filling `copy` of `table` from nothing: the one `ADD MIRROR`
/// started, else the resync a stopped write or a restart asked for (one
/// found unfinished, else a new one).
pub(super) async fn job_for(engine: &Engine, table: &LogicalTable, copy: &str) -> Result<Arc<Job>> {
    if let Some(job) = unfinished(engine, table, copy) {
        return Ok(job);
    }
    let spec = serde_json::json!({ "table": table.definition.key(), "copy": copy }).to_string();
    engine
        .jobs()
        .start(RESYNC_COPY, &table.display_name(), copy, &spec)
        .await
}

/// The unfinished fill (`ADD MIRROR`, `MOVE MEMBER`) or resync of `copy`,
/// if any.
pub(super) fn unfinished(engine: &Engine, table: &LogicalTable, copy: &str) -> Option<Arc<Job>> {
    let name = table.display_name();
    let jobs = engine.jobs();
    jobs.unfinished(FILL_JOB, &name, copy)
        .or_else(|| jobs.unfinished(MOVE_MEMBER_JOB, &name, copy))
        .or_else(|| jobs.unfinished(RESYNC_COPY, &name, copy))
}

/// Starts the job that fills `copy` of `table` (a `move member` job when
/// it `replaces` another copy, dropped once this one is current).
pub(super) async fn start(
    engine: &Engine,
    table: &LogicalTable,
    copy: &str,
    replaces: Option<&super::definition::MemberName>,
) -> Result<Arc<Job>> {
    let mut spec = serde_json::json!({ "table": table.definition.key(), "copy": copy });
    let kind = match replaces {
        Some(old) => {
            spec["replaces"] = old.to_string().into();
            spec["replaced"] = serde_json::to_value(old).map_err(|e| {
                datafusion::error::DataFusionError::Internal(format!("a move's spec: {e}"))
            })?;
            MOVE_MEMBER_JOB
        }
        None => FILL_JOB,
    };
    engine
        .jobs()
        .start(kind, &table.display_name(), copy, &spec.to_string())
        .await
}

/// Gives `target` every row `current` holds, a chunk at a time, as `job`'s
/// work.
pub(super) async fn fill(
    state: &SessionState,
    current: &Arc<dyn TableProvider>,
    target: &Arc<dyn TableProvider>,
    job: &Job,
) -> Result<()> {
    job.gate().await?;
    job.restart_count();
    job.set_total(count_rows(state, current).await.ok());
    let plan = target.delete_from(state, Vec::new()).await?;
    let plan = super::change::optimized(state, plan)?;
    datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
    let scan =
        LogicalPlanBuilder::scan("copy", provider_as_source(Arc::clone(current)), None)?.build()?;
    let physical = state.create_physical_plan(&scan).await?;
    let mut rows = datafusion::physical_plan::execute_stream(physical, state.task_ctx())?;
    let mut chunk: Vec<RecordBatch> = Vec::new();
    let mut held = 0;
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        held += batch.num_rows();
        chunk.push(batch);
        if held >= CHUNK_ROWS {
            write_chunk(state, target, &mut chunk, job).await?;
            held = 0;
            job.gate().await?;
        }
    }
    write_chunk(state, target, &mut chunk, job).await
}

async fn write_chunk(
    state: &SessionState,
    target: &Arc<dyn TableProvider>,
    chunk: &mut Vec<RecordBatch>,
    job: &Job,
) -> Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    resync::insert(state, target, chunk).await?;
    let rows: usize = chunk.iter().map(RecordBatch::num_rows).sum();
    let bytes: usize = chunk.iter().map(RecordBatch::get_array_memory_size).sum();
    chunk.clear();
    job.advance(rows as i64, bytes as i64).await
}

/// `count(*)` of a copy (pushed into its server).
pub(super) async fn count_rows(state: &SessionState, copy: &Arc<dyn TableProvider>) -> Result<i64> {
    let plan = LogicalPlanBuilder::scan("copy", provider_as_source(Arc::clone(copy)), None)?
        .aggregate(
            Vec::<datafusion::logical_expr::Expr>::new(),
            vec![count(lit(1))],
        )?
        .build()?;
    let physical = state.create_physical_plan(&plan).await?;
    let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
    let counted = batches.first().filter(|b| b.num_rows() == 1).and_then(|b| {
        b.column(0)
            .as_primitive_opt::<Int64Type>()
            .map(|c| c.value(0))
    });
    match counted {
        Some(rows) => Ok(rows),
        None => sql_err!(codes::INTERNAL_ERROR, "count(*) gave no row"),
    }
}

/// Compares the filled copy with a current one, copying again the ranges
/// that differ and comparing once more; an error naming the ranges still
/// differing (the catch-up tries again later).
pub(super) async fn verify(
    state: &SessionState,
    table: &LogicalTable,
    current: &Arc<dyn TableProvider>,
    target: &Arc<dyn TableProvider>,
) -> Result<()> {
    let differing = verify::differing_ranges(state, table, current, target).await?;
    if differing.is_empty() {
        return Ok(());
    }
    verify::copy_ranges(state, table, current, target, &differing).await?;
    let still = verify::differing_ranges(state, table, current, target).await?;
    if still.is_empty() {
        return Ok(());
    }
    sql_err!(
        codes::DATA_CORRUPTED,
        "the new copy still differs from a current copy in key ranges {still:?} after copying them again"
    )
}
