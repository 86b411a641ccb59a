//! A table's physical row order (PostgreSQL's heap, addressed by `ctid`),
//! for copying a table that has no key to range over in chunks.
//!
//! A migration splits a keyed table by ranges of its key. A table without
//! one can still be split where the backend addresses its rows by
//! position: the positions (PostgreSQL: heap blocks) are cut into ranges,
//! and each range is read as a table of its own. The ranges are disjoint
//! and, with the last one open-ended, cover every row — also rows written
//! after the positions were counted.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::error::Result;

/// A table's rows by position, as its connector reads them.
#[async_trait]
pub trait RowOrder: Send + Sync {
    /// How many positions the table spans now (PostgreSQL: its heap
    /// blocks).
    async fn positions(&self) -> Result<u64>;

    /// The table reading only the rows at positions `from <= p < to` (an
    /// open end where `None`).
    fn range(&self, from: Option<i64>, to: Option<i64>) -> Result<Arc<dyn TableProvider>>;
}
