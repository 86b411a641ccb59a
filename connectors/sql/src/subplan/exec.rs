//! The physical plan running one pushed-down query, with the dynamic
//! filters of joins above applied around it when it starts.

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Column;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::TryStreamExt;

use crate::backend::SqlBackend;
use crate::dynamic;
use crate::remote::Semantics;
use crate::subplan::check::MAX_ALIAS_LEN;

/// Reads the result of one pushed-down query.
///
/// Dynamic filters of joins above are applied around the query when it
/// starts (`SELECT * FROM (…) AS koios_dynamic WHERE …`, which the server's
/// planner pushes inside); `EXPLAIN ANALYZE` shows the SQL sent.
pub struct RemoteSubqueryExec<B: SqlBackend> {
    pub(crate) backend: Arc<B>,
    pub(crate) sql: String,
    pub(crate) codecs: Vec<B::Codec>,
    /// How the server compares each output column.
    pub(crate) semantics: Vec<Semantics>,
    pub(crate) rows: Option<u64>,
    pub(crate) schema: SchemaRef,
    pub(crate) properties: Arc<PlanProperties>,
    pub(crate) dynamic_filters: Vec<Arc<dyn PhysicalExpr>>,
    pub(crate) sent: Arc<Mutex<Option<String>>>,
    pub(crate) metrics: ExecutionPlanMetricsSet,
}

/// A copy sharing the record of the SQL sent and the metrics (the stream
/// started by `execute` reports into the node `EXPLAIN ANALYZE` prints).
impl<B: SqlBackend> Clone for RemoteSubqueryExec<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            sql: self.sql.clone(),
            codecs: self.codecs.clone(),
            semantics: self.semantics.clone(),
            rows: self.rows,
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
            dynamic_filters: self.dynamic_filters.clone(),
            sent: Arc::clone(&self.sent),
            metrics: self.metrics.clone(),
        }
    }
}

impl<B: SqlBackend> RemoteSubqueryExec<B> {
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The source this query runs in.
    pub fn source_name(&self) -> &str {
        self.backend.source_name()
    }

    /// The SQL sent once the query has started (with any dynamic filters),
    /// else the SQL planned.
    pub fn sent_sql(&self) -> String {
        self.sent
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_else(|| self.sql.clone())
    }

    /// This query's rows written straight as `DataRow` bodies
    /// ([`SqlBackend::execute_data_rows`]), for a plan that is this query alone
    /// (no dynamic filters to add), writing its output `columns` in order;
    /// `None` when it cannot be served so.
    pub fn data_rows(&self, columns: Vec<usize>) -> Option<koios_connector::pgtext::StartDataRows> {
        if !self.dynamic_filters.is_empty() {
            return None;
        }
        tracing::debug!(source = self.backend.source_name(), sql = %self.sql, "remote subquery as data rows");
        let sql = self.sql.clone();
        self.backend.execute_data_rows(
            Box::new(move || Ok(sql)),
            Vec::new(),
            self.codecs.clone(),
            &self.schema,
            columns,
            "running a pushed-down query".into(),
        )
    }

    /// The output column `column` as the wrapping query refers to it, if
    /// its name is unambiguous and short enough to survive the server.
    pub(crate) fn filter_column(&self, column: &PhysicalColumn) -> Option<dynamic::FilterColumn> {
        let field = self.schema.fields().get(column.index())?;
        let name = field.name();
        let unique = self
            .schema
            .fields()
            .iter()
            .filter(|f| f.name() == name)
            .count()
            == 1;
        (unique && name.len() <= MAX_ALIAS_LEN && name == column.name()).then(|| {
            dynamic::FilterColumn {
                expr: Expr::Column(Column::new(Some(DYNAMIC_ALIAS), name)),
                semantics: self
                    .semantics
                    .get(column.index())
                    .copied()
                    .unwrap_or_default(),
                data_type: field.data_type().clone(),
            }
        })
    }
}

/// The name of the derived table dynamic filters wrap a pushed query in.
pub(crate) const DYNAMIC_ALIAS: &str = "koios_dynamic";

impl<B: SqlBackend> fmt::Debug for RemoteSubqueryExec<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = self.sent.lock().ok().and_then(|s| s.clone());
        write!(
            f,
            "RemoteSubqueryExec: source={}, sql={}",
            self.backend.source_name(),
            sent.as_deref().unwrap_or(&self.sql)
        )?;
        for filter in &self.dynamic_filters {
            write!(f, ", dynamic_filter={filter}")?;
        }
        Ok(())
    }
}

impl<B: SqlBackend> DisplayAs for RemoteSubqueryExec<B> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl<B: SqlBackend> ExecutionPlan for RemoteSubqueryExec<B> {
    koios_connector::leaf_execution_plan_methods!("RemoteSubqueryExec", dynamic_filters);

    /// A copy to run again (a plan a session cached): metrics and the SQL
    /// sent start afresh instead of growing with every run.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        let mut copy = (*self).clone();
        copy.sent = Arc::new(Mutex::new(None));
        copy.metrics = ExecutionPlanMetricsSet::new();
        Ok(Arc::new(copy))
    }

    /// A rough estimate from the tables' row counts, for the join order.
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut statistics = Statistics::new_unknown(&self.schema);
        if let Some(rows) = self.rows {
            statistics.num_rows = Precision::Inexact(rows as usize);
        }
        Ok(Arc::new(statistics))
    }

    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let (unclaimed, filters) = dynamic::take(child_pushdown_result);
        if phase != FilterPushdownPhase::Post || filters.is_empty() {
            return Ok(FilterPushdownPropagation::with_parent_pushdown_result(
                unclaimed,
            ));
        }
        let updated = RemoteSubqueryExec {
            dynamic_filters: self
                .dynamic_filters
                .iter()
                .cloned()
                .chain(filters)
                .collect(),
            sent: Arc::new(Mutex::new(None)),
            metrics: ExecutionPlanMetricsSet::new(),
            ..self.clone()
        };
        Ok(
            FilterPushdownPropagation::with_parent_pushdown_result(unclaimed)
                .with_updated_node(Arc::new(updated)),
        )
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batch_size = context.session_config().batch_size();
        let pinned = crate::pinned::for_reading(&context, self.backend.as_ref());
        // The wrapped query becomes a derived table, whose column names
        // MySQL limits to 64 characters.
        let wrappable = self
            .schema
            .fields()
            .iter()
            .all(|f| f.name().len() <= MAX_ALIAS_LEN);
        if self.dynamic_filters.is_empty() || !wrappable {
            tracing::debug!(source = self.backend.source_name(), sql = %self.sql, "remote subquery");
            return Ok(koios_connector::count_output_rows(
                self.backend.execute_sql(
                    self.sql.clone(),
                    self.codecs.clone(),
                    Arc::clone(&self.schema),
                    batch_size,
                    pinned,
                )?,
                &self.metrics,
                0,
            ));
        }
        // Deferred to the first poll, when the join's build side is complete.
        let this = self.clone();
        let start = async move {
            let predicates = dynamic::predicates(
                &this.dynamic_filters,
                |column| this.filter_column(column),
                |value| this.backend.literal_pushable(value),
            )?;
            let sql = match conjunction(predicates) {
                Some(predicate) => {
                    let condition = this.backend.dialect().expr_to_sql(&predicate)?;
                    format!(
                        "SELECT * FROM ({}) AS {DYNAMIC_ALIAS} WHERE {condition}",
                        this.sql
                    )
                }
                None => this.sql.clone(),
            };
            tracing::debug!(source = this.backend.source_name(), sql = %sql, "remote subquery");
            if let Ok(mut sent) = this.sent.lock() {
                *sent = Some(sql.clone());
            }
            this.backend.execute_sql(
                sql,
                this.codecs.clone(),
                Arc::clone(&this.schema),
                batch_size,
                pinned,
            )
        };
        Ok(koios_connector::count_output_rows(
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::once(start).try_flatten(),
            )),
            &self.metrics,
            0,
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
