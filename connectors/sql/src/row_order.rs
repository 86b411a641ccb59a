//! A SQL table's rows by physical position ([`koios_connector::RowOrder`]),
//! where its backend has such an order (PostgreSQL's `ctid`): what a
//! migration copies a table without a key by, chunk by chunk.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::error::{DataFusionError, Result};
use koios_connector::RowOrder;

use crate::SqlBackend;
use crate::table::SqlTable;

/// A table of backend `B`, by position.
struct SqlRowOrder<B: SqlBackend> {
    table: SqlTable<B>,
}

/// `table`'s rows by position, if it is a table of backend `B` and `B`
/// addresses rows so.
pub fn row_order<B: SqlBackend>(table: &dyn TableProvider) -> Option<Arc<dyn RowOrder>> {
    let table = table.downcast_ref::<SqlTable<B>>()?;
    // A backend without a physical order says so for any range.
    table
        .backend()
        .row_position_range(table.remote_table(), None, None)?;
    Some(Arc::new(SqlRowOrder {
        table: table.clone(),
    }))
}

#[async_trait]
impl<B: SqlBackend> RowOrder for SqlRowOrder<B> {
    async fn positions(&self) -> Result<u64> {
        let positions = self
            .table
            .backend()
            .row_positions(self.table.remote_table())
            .await?;
        Ok(positions.unwrap_or(0))
    }

    fn range(&self, from: Option<i64>, to: Option<i64>) -> Result<Arc<dyn TableProvider>> {
        let scope = self
            .table
            .backend()
            .row_position_range(self.table.remote_table(), from, to)
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "{:?} has no physical row order to read a range of",
                    self.table
                ))
            })?;
        Ok(Arc::new(self.table.scoped(scope)))
    }
}
