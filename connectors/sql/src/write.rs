//! `INSERT INTO` a remote table: DataFusion's `DataSinkExec` feeding the
//! backend — its bulk insert, or its upsert for `INSERT … ON CONFLICT`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};

use koios_connector::upsert::OnConflict;

use crate::backend::SqlBackend;
use crate::remote::RemoteTable;

/// Writes every inserted row to one remote table in one transaction.
pub struct RemoteSink<B: SqlBackend> {
    backend: Arc<B>,
    table: Arc<RemoteTable<B::Codec>>,
    /// What a row whose key is already there does (`None`: plain insert).
    on_conflict: Option<OnConflict>,
}

impl<B: SqlBackend> RemoteSink<B> {
    pub fn new(backend: Arc<B>, table: Arc<RemoteTable<B::Codec>>) -> Self {
        Self {
            backend,
            table,
            on_conflict: None,
        }
    }

    /// A sink inserting with `on_conflict`.
    pub fn upsert(
        backend: Arc<B>,
        table: Arc<RemoteTable<B::Codec>>,
        on_conflict: OnConflict,
    ) -> Self {
        Self {
            backend,
            table,
            on_conflict: Some(on_conflict),
        }
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
        )?;
        if let Some(on_conflict) = &self.on_conflict {
            write!(f, ", {}", on_conflict.describe())?;
        }
        Ok(())
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
        let data = crate::pinned::buffered_if_pinned(data, &pinned, context).await?;
        let table = Arc::clone(&self.table);
        match &self.on_conflict {
            Some(on_conflict) => {
                crate::staged::upsert(self.backend.as_ref(), &table, data, on_conflict, pinned)
                    .await
            }
            None => self.backend.insert(table, data, pinned).await,
        }
    }
}
