//! The execution node that reads a remote table, one partition per query.
//!
//! `EXPLAIN` prints the source and the exact SQL each partition sends.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use crate::backend::SqlBackend;
use crate::query::RemoteQuery;

/// Reads one remote table through one query per partition.
pub struct RemoteScanExec<B: SqlBackend> {
    backend: Arc<B>,
    queries: Vec<RemoteQuery<B::Codec>>,
    sql: Vec<String>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl<B: SqlBackend> RemoteScanExec<B> {
    pub fn try_new(
        backend: Arc<B>,
        queries: Vec<RemoteQuery<B::Codec>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let sql = queries
            .iter()
            .map(|q| {
                q.to_sql(backend.dialect(), |i| {
                    backend.select_expr(&q.table.columns[i])
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let properties = koios_connector::leaf_plan_properties(&schema, queries.len());
        Ok(Self {
            backend,
            queries,
            sql,
            schema,
            properties,
        })
    }

    /// The SQL of every partition, in order.
    pub fn sql(&self) -> &[String] {
        &self.sql
    }
}

impl<B: SqlBackend> fmt::Debug for RemoteScanExec<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteScanExec")
            .field("source", &self.backend.source_name())
            .field("sql", &self.sql)
            .finish()
    }
}

impl<B: SqlBackend> DisplayAs for RemoteScanExec<B> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteScanExec: source={}", self.backend.source_name())?;
        if self.sql.len() == 1 {
            write!(f, ", sql={}", self.sql[0])
        } else {
            write!(f, ", partitions={}", self.sql.len())?;
            for (i, sql) in self.sql.iter().enumerate() {
                write!(f, ", sql[{i}]={sql}")?;
            }
            Ok(())
        }
    }
}

impl<B: SqlBackend> ExecutionPlan for RemoteScanExec<B> {
    koios_connector::leaf_execution_plan_methods!("RemoteScanExec");

    /// The backend's row estimate for the table (at most the LIMIT), so the
    /// join order can put the smaller input on the build side.
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut statistics = Statistics::new_unknown(&self.schema);
        if let Some(first) = self.queries.first()
            && let Some(total) = first.table.row_estimate
        {
            let rows = match args.partition() {
                Some(_) => total / self.queries.len().max(1) as u64,
                None => total,
            } as usize;
            let rows = first.limit.map_or(rows, |limit| rows.min(limit));
            statistics.num_rows = Precision::Inexact(rows);
        }
        Ok(Arc::new(statistics))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let query = self.queries.get(partition).cloned().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(format!(
                "no partition {partition} in remote scan"
            ))
        })?;
        tracing::debug!(source = self.backend.source_name(), sql = %self.sql[partition], "remote scan");
        self.backend
            .execute(query, context.session_config().batch_size())
    }
}
