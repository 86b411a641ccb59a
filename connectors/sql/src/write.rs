//! `INSERT INTO` a remote table: DataFusion's `DataSinkExec` feeding the backend.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};

use crate::backend::SqlBackend;
use crate::remote::RemoteTable;

/// Writes every inserted row to one remote table in one transaction.
pub struct RemoteSink<B: SqlBackend> {
    backend: Arc<B>,
    table: Arc<RemoteTable<B::Codec>>,
}

impl<B: SqlBackend> RemoteSink<B> {
    pub fn new(backend: Arc<B>, table: Arc<RemoteTable<B::Codec>>) -> Self {
        Self { backend, table }
    }
}

impl<B: SqlBackend> fmt::Debug for RemoteSink<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteSink({}.{})",
            self.backend.source_name(),
            self.table.name
        )
    }
}

impl<B: SqlBackend> DisplayAs for RemoteSink<B> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteSink: source={}, table={}",
            self.backend.source_name(),
            self.table.name
        )
    }
}

#[async_trait]
impl<B: SqlBackend> DataSink for RemoteSink<B> {
    fn schema(&self) -> &SchemaRef {
        &self.table.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let pinned = crate::pinned::for_writing(context, &self.backend).await?;
        self.backend
            .insert(Arc::clone(&self.table), data, pinned)
            .await
    }
}
