//! Rows of a mirrored table's copy read and rewritten by key, through the
//! copy's own table (so each backend's dialect and bulk path are used):
//! undoing a write below quorum, replaying a stale copy's journal
//! ([`super::catchup`]).
//!
//! Rewriting the rows of some keys on a copy is *delete those keys, insert
//! these rows*: the copy ends with exactly the given rows for those keys
//! whatever it held before, so doing it twice changes nothing.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;

use super::journal::KEYS_PER_STATEMENT;
use super::keys::key_filter;
use super::write::for_member;

/// Runs a copy's own plan (optimized as a statement's would be) to its end.
async fn run(state: &SessionState, plan: Arc<dyn ExecutionPlan>) -> Result<Vec<RecordBatch>> {
    let plan = super::change::optimized(state, plan)?;
    datafusion::physical_plan::collect(plan, state.task_ctx()).await
}

/// The rows of `table` matching `filter` (every row without one).
pub async fn read(
    state: &SessionState,
    table: &Arc<dyn TableProvider>,
    filter: Option<Expr>,
) -> Result<Vec<RecordBatch>> {
    let mut plan = LogicalPlanBuilder::scan("copy", provider_as_source(Arc::clone(table)), None)?;
    if let Some(filter) = filter {
        plan = plan.filter(filter)?;
    }
    let physical = state.create_physical_plan(&plan.build()?).await?;
    datafusion::physical_plan::collect(physical, state.task_ctx()).await
}

/// The rows of `table` whose keys are in `keys`.
pub async fn read_keys(
    state: &SessionState,
    table: &Arc<dyn TableProvider>,
    keys: &[RecordBatch],
) -> Result<Vec<RecordBatch>> {
    let mut rows = Vec::new();
    for (batch, from, to) in chunks(&merged(keys)?) {
        rows.extend(read(state, table, Some(key_filter(batch, from, to)?)).await?);
    }
    Ok(rows)
}

/// Deletes the rows of `keys` from `table`.
pub async fn delete_keys(
    state: &SessionState,
    table: &Arc<dyn TableProvider>,
    keys: &[RecordBatch],
) -> Result<()> {
    for (batch, from, to) in chunks(&merged(keys)?) {
        let plan = table
            .delete_from(state, vec![key_filter(batch, from, to)?])
            .await?;
        run(state, plan).await?;
    }
    Ok(())
}

/// Inserts `rows` (any copy's columns) into `table`, in its columns.
pub async fn insert(
    state: &SessionState,
    table: &Arc<dyn TableProvider>,
    rows: &[RecordBatch],
) -> Result<()> {
    let schema = table.schema();
    let rows = rows
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| for_member(b, &schema))
        .collect::<Result<Vec<_>>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    let input = MemorySourceConfig::try_new_exec(&[rows], schema, None)?;
    let plan = table.insert_into(state, input, InsertOp::Append).await?;
    run(state, plan).await?;
    Ok(())
}

/// Gives `table` exactly `rows` for the keys `keys`.
pub async fn rewrite_keys(
    state: &SessionState,
    table: &Arc<dyn TableProvider>,
    keys: &[RecordBatch],
    rows: &[RecordBatch],
) -> Result<()> {
    delete_keys(state, table, keys).await?;
    insert(state, table, rows).await
}

/// Gives `to` the rows `from` holds for `keys`.
pub async fn copy_keys(
    state: &SessionState,
    from: &Arc<dyn TableProvider>,
    to: &Arc<dyn TableProvider>,
    keys: &[RecordBatch],
) -> Result<()> {
    let keys = merged(keys)?;
    for (batch, start, end) in chunks(&keys) {
        let piece = batch.slice(start, end - start);
        let rows = read_keys(state, from, std::slice::from_ref(&piece)).await?;
        rewrite_keys(state, to, std::slice::from_ref(&piece), &rows).await?;
    }
    Ok(())
}

/// Gives `to` every row of `from` and nothing else.
pub async fn copy_all(
    state: &SessionState,
    from: &Arc<dyn TableProvider>,
    to: &Arc<dyn TableProvider>,
) -> Result<()> {
    let rows = read(state, from, None).await?;
    let plan = to.delete_from(state, Vec::new()).await?;
    run(state, plan).await?;
    insert(state, to, &rows).await
}

/// `keys` (from many journal entries, say) as one batch, so that they are
/// sent a few hundred at a time rather than entry by entry.
fn merged(keys: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    match keys.first() {
        Some(first) if keys.len() > 1 => {
            Ok(vec![arrow::compute::concat_batches(&first.schema(), keys)?])
        }
        _ => Ok(keys.to_vec()),
    }
}

/// `(batch, from, to)` pieces of `keys`, at most [`KEYS_PER_STATEMENT`]
/// rows each.
fn chunks(keys: &[RecordBatch]) -> Vec<(&RecordBatch, usize, usize)> {
    let mut pieces = Vec::new();
    for batch in keys {
        let mut from = 0;
        while from < batch.num_rows() {
            let to = (from + KEYS_PER_STATEMENT).min(batch.num_rows());
            pieces.push((batch, from, to));
            from = to;
        }
    }
    pieces
}
