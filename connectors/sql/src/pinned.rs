//! Which connection a statement of a session's transaction block runs on
//! ([`koios_connector::transaction`]): the plan nodes of this layer ask
//! here, once per execution, and hand the answer to the backend — `None`
//! for a pooled connection, or the block's open remote transaction.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use koios_connector::transaction::block_of;

pub use crate::backend::Pinned;
use crate::backend::SqlBackend;

/// Where a read of `backend` runs: in the block's transaction when the
/// block wrote to this source (so it sees those writes), else pooled.
pub fn for_reading<B: SqlBackend>(task: &TaskContext, backend: &B) -> Pinned {
    block_of(task)?.reading(backend.source_name())
}

/// Where a write to `backend` runs: inside a block, its transaction on
/// this source (opened now at the block's first write; refused when the
/// block wrote to another source); outside, pooled and committed alone.
pub async fn for_writing<B: SqlBackend>(task: &TaskContext, backend: &Arc<B>) -> Result<Pinned> {
    let Some(block) = block_of(task) else {
        return Ok(None);
    };
    block
        .writing(backend.source_name(), || backend.begin())
        .await
}

/// `rows`, read to their end first when the write runs in a block's
/// transaction: the rows may be read through that same connection (a read
/// of the source the block wrote), which cannot stream a read and a write
/// at once. Outside a block, and in a statement's own block (whose reads
/// stay pooled), as they come.
pub async fn buffered_if_pinned(
    rows: SendableRecordBatchStream,
    pinned: &Pinned,
    task: &TaskContext,
) -> Result<SendableRecordBatchStream> {
    let shared = block_of(task).is_some_and(|block| block.reads_share_connection());
    if pinned.is_none() || !shared {
        return Ok(rows);
    }
    let schema = rows.schema();
    let batches = datafusion::physical_plan::common::collect(rows).await?;
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches.into_iter().map(Ok)),
    )))
}
