//! `DELETE` and `UPDATE` on a remote table, run as one remote statement
//! when the backend evaluates the statement exactly as DataFusion would:
//! every `WHERE` conjunct is one the scan would push down exactly
//! ([`SqlBackend::filter_pushdown`]), and every new value is a constant the
//! backend reads as the same value ([`SqlBackend::literal_pushable`]).
//! Anything else is left to Koios ([`crate::keyed`]: rows read, the
//! condition and new values evaluated locally, changed by primary key),
//! never evaluated in part remotely: a statement that changes rows must not
//! change more (or other) rows than Koios would.
//!
//! The statement runs when the plan executes ([`RemoteDmlExec`]), and
//! `EXPLAIN` shows its SQL.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use koios_connector::sql_err;
use koios_connector::sqlstate::codes;

use crate::backend::SqlBackend;
use crate::remote::RemoteTable;

/// Why a statement cannot run remotely as one.
pub type NotRemote = String;

/// The plan of `DELETE FROM table WHERE filters` as one remote statement,
/// or why it cannot be one.
pub fn plan_delete<B: SqlBackend>(
    backend: &Arc<B>,
    table: &RemoteTable<B::Codec>,
    filters: Vec<Expr>,
) -> Result<std::result::Result<Arc<dyn ExecutionPlan>, NotRemote>> {
    let filter = match remote_filter(backend.as_ref(), table, filters, "DELETE")? {
        Ok(filter) => filter,
        Err(why) => return Ok(Err(why)),
    };
    let sql = backend
        .dialect()
        .delete_sql(&crate::staged::table_name(table), filter.as_ref())?;
    Ok(Ok(Arc::new(RemoteDmlExec::new(Arc::clone(backend), sql))))
}

/// The plan of `UPDATE table SET assignments WHERE filters` as one remote
/// statement, or why it cannot be one.
pub fn plan_update<B: SqlBackend>(
    backend: &Arc<B>,
    table: &RemoteTable<B::Codec>,
    assignments: &[(String, Expr)],
    filters: Vec<Expr>,
) -> Result<std::result::Result<Arc<dyn ExecutionPlan>, NotRemote>> {
    let filter = match remote_filter(backend.as_ref(), table, filters, "UPDATE")? {
        Ok(filter) => filter,
        Err(why) => return Ok(Err(why)),
    };
    let mut values = Vec::with_capacity(assignments.len());
    for (column, value) in assignments {
        let Some(constant) = koios_connector::constant_value(value) else {
            return Ok(Err(format!(
                "the new value of \"{column}\" ({value}) is not a constant"
            )));
        };
        if !constant.is_null() && !backend.literal_pushable(&constant) {
            return Ok(Err(format!(
                "the new value of \"{column}\" cannot be written in its SQL exactly"
            )));
        }
        values.push((column.clone(), Expr::Literal(constant, None)));
    }
    if values.is_empty() {
        // Every column set to itself (`SET n = n`; DataFusion drops such
        // assignments): the matching rows are counted, as PostgreSQL does,
        // by setting one column to itself there.
        let Some(first) = table.columns.first() else {
            return sql_err!(codes::SYNTAX_ERROR, "UPDATE sets no column");
        };
        values.push((
            first.name.clone(),
            Expr::Column(datafusion::common::Column::new_unqualified(&first.name)),
        ));
    }
    let sql = backend.dialect().update_sql(
        &crate::staged::table_name(table),
        &values,
        filter.as_ref(),
    )?;
    Ok(Ok(Arc::new(RemoteDmlExec::new(Arc::clone(backend), sql))))
}

/// The `WHERE` clause as the backend will read it, if every conjunct is
/// exact there (else why not).
fn remote_filter<B: SqlBackend>(
    backend: &B,
    table: &RemoteTable<B::Codec>,
    filters: Vec<Expr>,
    what: &str,
) -> Result<std::result::Result<Option<Expr>, NotRemote>> {
    if table.is_view {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "cannot {} view {}.{}",
            what.to_ascii_lowercase(),
            backend.source_name(),
            table.name
        );
    }
    let mut unqualified = Vec::with_capacity(filters.len());
    for filter in filters {
        let filter = crate::pushdown::unqualified(filter)?;
        if backend.filter_pushdown(table, &filter) != TableProviderFilterPushDown::Exact {
            return Ok(Err(format!(
                "its condition {filter} cannot run there exactly as in Koios"
            )));
        }
        unqualified.push(filter);
    }
    Ok(Ok(conjunction(unqualified)))
}

/// One `DELETE` or `UPDATE` run remotely when executed; its one output row
/// is the count of rows it changed.
pub struct RemoteDmlExec<B: SqlBackend> {
    backend: Arc<B>,
    sql: String,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// Its one output row, counted (the statement ran).
    metrics: ExecutionPlanMetricsSet,
}

impl<B: SqlBackend> RemoteDmlExec<B> {
    fn new(backend: Arc<B>, sql: String) -> Self {
        let schema = koios_connector::count_schema();
        Self {
            properties: koios_connector::leaf_plan_properties(&schema, 1),
            backend,
            sql,
            schema,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The statement it runs.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The source it changes.
    pub fn source_name(&self) -> &str {
        self.backend.source_name()
    }
}

impl<B: SqlBackend> fmt::Debug for RemoteDmlExec<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteDmlExec({}: {})",
            self.backend.source_name(),
            self.sql
        )
    }
}

impl<B: SqlBackend> DisplayAs for RemoteDmlExec<B> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteDmlExec: source={}, sql={}",
            self.backend.source_name(),
            self.sql
        )
    }
}

impl<B: SqlBackend> ExecutionPlan for RemoteDmlExec<B> {
    koios_connector::leaf_execution_plan_methods!("RemoteDmlExec");

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let backend = Arc::clone(&self.backend);
        let sql = self.sql.clone();
        Ok(koios_connector::count_row_stream(
            async move {
                let pinned = crate::pinned::for_writing(&context, &backend).await?;
                backend.execute_statement(sql, pinned).await
            },
            &self.metrics,
            partition,
        ))
    }
}
