//! The execution node that reads a remote table, one partition per query.
//!
//! `EXPLAIN` prints the source and the exact SQL each partition sends.
//!
//! The node also takes DataFusion's *dynamic filters*: when a hash join
//! above has built its (small) side, the join keys it saw — a range and, for
//! up to `hash_join_inlist_pushdown_max_distinct_values` keys, the list — are
//! added to the remote query's WHERE before it starts, wherever the server
//! compares those values exactly as DataFusion does. `EXPLAIN ANALYZE` shows
//! the SQL that was sent.

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, col};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::TryStreamExt;

use crate::backend::{DeferredSql, SqlBackend};
use crate::dynamic;
use crate::query::RemoteQuery;
use koios_connector::QueryParams;
use koios_connector::pgtext::StartDataRows;

/// Reads one remote table through one query per partition.
pub struct RemoteScanExec<B: SqlBackend> {
    backend: Arc<B>,
    // Shared: a cached plan is copied for every run of it.
    queries: Arc<[RemoteQuery<B::Codec>]>,
    sql: Arc<[String]>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// Dynamic filters from joins above, applied when a partition starts.
    dynamic_filters: Vec<Arc<dyn PhysicalExpr>>,
    /// The SQL each partition actually sent, once it has run.
    sent: Arc<Mutex<Vec<Option<String>>>>,
    /// This execution's parameter values, for queries with placeholders.
    bound: Option<Arc<QueryParams>>,
    metrics: ExecutionPlanMetricsSet,
}

impl<B: SqlBackend> Clone for RemoteScanExec<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            queries: Arc::clone(&self.queries),
            sql: Arc::clone(&self.sql),
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
            dynamic_filters: self.dynamic_filters.clone(),
            sent: Arc::new(Mutex::new(vec![None; self.queries.len()])),
            bound: self.bound.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
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
            sent: Arc::new(Mutex::new(vec![None; queries.len()])),
            queries: queries.into(),
            sql: sql.into(),
            schema,
            properties,
            dynamic_filters: Vec::new(),
            bound: None,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The backend this scan reads from.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// The SQL of every partition, in order.
    pub fn sql(&self) -> &[String] {
        &self.sql
    }

    /// The source this scan reads.
    pub fn source_name(&self) -> &str {
        self.backend.source_name()
    }

    /// The SQL each partition sent once it has started, else the SQL
    /// planned for it.
    pub fn sent_sql(&self) -> Vec<String> {
        let sent = self.sent.lock().map(|s| s.clone()).unwrap_or_default();
        self.sql
            .iter()
            .enumerate()
            .map(|(i, planned)| {
                sent.get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| planned.clone())
            })
            .collect()
    }

    /// The LIMIT every partition's query sends, if any.
    pub fn limit(&self) -> Option<usize> {
        self.queries.iter().map(|q| q.limit).max().flatten()
    }

    /// This scan's rows written straight as `DataRow` bodies
    /// ([`SqlBackend::execute_data_rows`]), for a plan that is this scan alone:
    /// one query, no dynamic filters. `params` are the values of a generic
    /// plan's placeholders (this copy's own bound values if `None`);
    /// `columns` the scan's output columns to write, in order. `None` when
    /// the scan cannot be served so.
    pub fn data_rows(
        &self,
        params: Option<&QueryParams>,
        columns: Vec<usize>,
    ) -> Option<StartDataRows> {
        let [query] = &self.queries[..] else {
            return None;
        };
        if !self.dynamic_filters.is_empty() {
            return None;
        }
        // Values stay parameters of the query (no COPY here to inline them
        // for), unless the backend takes none: then they are written into
        // the SQL when the rows start.
        let mut values = query.bind(params.or(self.bound.as_deref())).ok()?;
        let sql: DeferredSql = if !values.is_empty() && !self.backend.binds_parameters() {
            let mut query = query.clone();
            let inlined = std::mem::take(&mut values);
            let backend = Arc::clone(&self.backend);
            Box::new(move || {
                query.inline(&inlined)?;
                query.to_sql(backend.dialect(), |i| {
                    backend.select_expr(&query.table.columns[i])
                })
            })
        } else {
            let sql = self.sql[0].clone();
            Box::new(move || Ok(sql))
        };
        let codecs = query
            .projection
            .iter()
            .map(|i| query.table.columns[*i].codec.clone())
            .collect();
        tracing::debug!(source = self.backend.source_name(), sql = %self.sql[0], "remote scan as data rows");
        self.backend.execute_data_rows(
            sql,
            values,
            codecs,
            &self.schema,
            columns,
            format!("reading {}", query.table.name),
        )
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
        // After execution (EXPLAIN ANALYZE): what was sent, dynamic filters included.
        let sent = self.sent.lock().map(|s| s.clone()).unwrap_or_default();
        let sql: Vec<&String> = self
            .sql
            .iter()
            .zip(sent.iter().chain(std::iter::repeat(&None)))
            .map(|(planned, sent)| sent.as_ref().unwrap_or(planned))
            .collect();
        if sql.len() == 1 {
            write!(f, ", sql={}", sql[0])?;
        } else {
            write!(f, ", partitions={}", sql.len())?;
            for (i, sql) in sql.iter().enumerate() {
                write!(f, ", sql[{i}]={sql}")?;
            }
        }
        for filter in &self.dynamic_filters {
            write!(f, ", dynamic_filter={filter}")?;
        }
        Ok(())
    }
}

impl<B: SqlBackend> ExecutionPlan for RemoteScanExec<B> {
    koios_connector::leaf_execution_plan_methods!("RemoteScanExec", dynamic_filters);

    /// A copy to run again (a plan a session cached): metrics and the SQL
    /// sent start afresh instead of growing with every run.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new((*self).clone()))
    }

    /// Binds a statement's parameter values ([`QueryParams`]) into a scan
    /// whose queries compare with its placeholders.
    fn with_new_state(
        &self,
        state: Arc<dyn std::any::Any + Send + Sync>,
    ) -> Option<Arc<dyn ExecutionPlan>> {
        if self.queries.iter().all(|q| q.params.is_empty()) {
            return None;
        }
        let values = state.downcast::<QueryParams>().ok()?;
        let mut bound = self.clone();
        bound.bound = Some(values);
        Some(Arc::new(bound))
    }

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
        let batch_size = context.session_config().batch_size();
        let pinned = crate::pinned::for_reading(&context, self.backend.as_ref());
        let mut query = query;
        let mut params = query.bind(self.bound.as_deref())?;
        let mut sql = self.sql[partition].clone();
        if !params.is_empty() && (!query.is_point_read() || !self.backend.binds_parameters()) {
            // Many rows: read as other large scans are (COPY for
            // PostgreSQL), with the values written in by the unparser; so
            // too for a backend that takes no parameters.
            query.inline(&std::mem::take(&mut params))?;
            sql = query.to_sql(self.backend.dialect(), |i| {
                self.backend.select_expr(&query.table.columns[i])
            })?;
        }
        if self.dynamic_filters.is_empty() {
            tracing::debug!(source = self.backend.source_name(), sql = %sql, "remote scan");
            return Ok(koios_connector::count_output_rows(
                self.backend
                    .execute(query, sql, params, batch_size, pinned)?,
                &self.metrics,
                partition,
            ));
        }
        // Deferred to the first poll: a hash join polls its probe side only
        // once the build side is complete, so the filter then holds its keys.
        let backend = Arc::clone(&self.backend);
        let filters = self.dynamic_filters.clone();
        let sent = Arc::clone(&self.sent);
        let start = async move {
            let mut query = query;
            let found = dynamic::predicates(
                &filters,
                |column| {
                    let index = *query.projection.get(column.index())?;
                    let remote = query.table.columns.get(index)?;
                    // Columns read through a cast compare as their remote type.
                    let plain = matches!(backend.select_expr(remote), Expr::Column(_));
                    (remote.name == column.name() && plain).then(|| dynamic::FilterColumn {
                        expr: col(remote.name.as_str()),
                        semantics: backend.column_semantics(remote),
                        data_type: remote.field.data_type().clone(),
                    })
                },
                |value| backend.literal_pushable(value),
            )?;
            query.filters.extend(found);
            let sql = query.to_sql(backend.dialect(), |i| {
                backend.select_expr(&query.table.columns[i])
            })?;
            tracing::debug!(source = backend.source_name(), sql = %sql, "remote scan");
            if let Ok(mut sent) = sent.lock()
                && let Some(slot) = sent.get_mut(partition)
            {
                *slot = Some(sql.clone());
            }
            backend.execute(query, sql, params, batch_size, pinned)
        };
        Ok(koios_connector::count_output_rows(
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::once(start).try_flatten(),
            )),
            &self.metrics,
            partition,
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    /// Keeps the dynamic filters of joins above (never claiming them: the
    /// join still checks every row, so applying part of one is safe).
    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let (unclaimed, dynamic) = dynamic::take(child_pushdown_result);
        if phase != FilterPushdownPhase::Post || dynamic.is_empty() {
            return Ok(FilterPushdownPropagation::with_parent_pushdown_result(
                unclaimed,
            ));
        }
        let mut updated = self.clone();
        updated.dynamic_filters.extend(dynamic);
        Ok(
            FilterPushdownPropagation::with_parent_pushdown_result(unclaimed)
                .with_updated_node(Arc::new(updated)),
        )
    }
}
