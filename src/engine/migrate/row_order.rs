//! A migration of a table without an integer key, in chunks of the
//! source's physical row order (PostgreSQL's heap blocks, read by `ctid`:
//! [`koios_connector::RowOrder`]).
//!
//! Such chunks cannot be told apart in the destination — it holds no
//! position and no key — so two things differ from key ranges:
//!
//! * **Resuming.** A chunk a stopped run began is not cleared on its own.
//!   Instead the destination (the job's own: created or emptied by it) is
//!   counted. It holds the finished chunks' rows, plus those of any begun
//!   chunk whose write committed before its checkpoint was written (a
//!   chunk is one COPY or `LOAD DATA`: all of it or nothing); the begun
//!   chunks are summed on the source, and the one set of them accounting
//!   for the count (for the checksum, where several sets do) is marked
//!   done, and the job goes on from its checkpoints. When no one set
//!   does — a write kept part of a chunk — the destination is emptied and
//!   the copy starts over.
//! * **Verifying.** Each chunk's source rows are summed as they are copied
//!   and the sums kept with the checkpoints; once every chunk is done the
//!   whole destination is summed once and compared with them (the
//!   checksum is a wrapping sum, so chunks add up to the table's). A
//!   difference empties the destination and copies everything again once;
//!   a second one fails the job.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{LogicalPlanBuilder, lit};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::chunk::{self, Chunk};

/// A finished chunk's source rows, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkSum {
    pub rows: i64,
    pub checksum: u64,
}

/// The sums of the finished chunks, added up.
pub fn total(sums: &BTreeMap<usize, ChunkSum>) -> ChunkSum {
    sums.values()
        .fold(ChunkSum::default(), |all, sum| ChunkSum {
            rows: all.rows + sum.rows,
            checksum: all.checksum.wrapping_add(sum.checksum),
        })
}

/// The chunks of a source of `rows` rows over `positions` positions: about
/// `chunk_rows` rows each (rows assumed evenly spread over the positions),
/// the last open-ended. `None` when one chunk would do.
pub fn plan(positions: u64, rows: u64, chunk_rows: u64) -> Option<Vec<Chunk>> {
    if positions < 2 || rows <= chunk_rows {
        return None;
    }
    let last = i64::try_from(positions - 1).ok()?;
    let chunks = chunk::plan_chunks(0, last, rows, chunk_rows);
    (chunks.len() > 1).then_some(chunks)
}

/// `[from, to)` of the positions, for messages.
pub fn describe(chunk: &Chunk) -> String {
    let from = chunk.from.unwrap_or(0);
    match chunk.to {
        Some(to) => format!("the rows in positions [{from}, {to}) of the source's physical order"),
        None => format!("the rows from position {from} of the source's physical order on"),
    }
}

/// How many rows `table` (named `name`) holds.
pub async fn count_rows(
    state: &SessionState,
    (name, table): (&TableReference, &Arc<dyn TableProvider>),
) -> Result<i64> {
    let plan = LogicalPlanBuilder::scan(
        name.clone(),
        datafusion::datasource::provider_as_source(Arc::clone(table)),
        None,
    )?
    .aggregate(
        Vec::<datafusion::logical_expr::Expr>::new(),
        vec![count(lit(1))],
    )?
    .build()?;
    let physical = state.create_physical_plan(&plan).await?;
    let mut stream = datafusion::physical_plan::execute_stream(physical, state.task_ctx())?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() > 0 {
            let wide = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Int64)?;
            rows =
                arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(&wide).value(0);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_split_by_rows_and_cover_everything() {
        assert_eq!(plan(1, 1_000_000, 10), None, "one block: one chunk");
        assert_eq!(plan(100, 50, 100), None, "few rows: one chunk");
        let chunks = plan(100, 1000, 250).expect("splits");
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[0].from, None);
        assert_eq!(chunks[3].to, None, "the last chunk is open-ended");
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].to, pair[1].from);
        }
        let sums = BTreeMap::from([
            (
                0,
                ChunkSum {
                    rows: 2,
                    checksum: u64::MAX,
                },
            ),
            (
                1,
                ChunkSum {
                    rows: 3,
                    checksum: 2,
                },
            ),
        ]);
        assert_eq!(
            total(&sums),
            ChunkSum {
                rows: 5,
                checksum: 1
            }
        );
    }
}
