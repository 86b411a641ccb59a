//! `DELETE` and `UPDATE` that cannot run as one remote statement — a
//! condition the backend would evaluate differently, a new value Koios
//! must compute (`upper(x)`, `n * 2`): Koios reads the rows, pushing down
//! the conditions that are exact there, evaluates the rest of the
//! condition and the new values itself, and changes the rows by primary key
//! through a staging table in one remote transaction
//! ([`crate::staged::change_by_key`]). A table without a primary key gets
//! 0A000: there is no way to name the rows Koios picked.
//!
//! `EXPLAIN` shows the read below the change
//! (`RemoteKeyedChange: … DELETE by key (id)`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, cast};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use koios_connector::remote_sql::KeyedChange;
use koios_connector::sql_err;
use koios_connector::sqlstate::codes;

use crate::backend::SqlBackend;
use crate::remote::RemoteTable;

/// The plan changing the rows of `table` that match `filters`: deleting
/// them (`assignments` `None`) or setting the assigned columns.
/// `table` is the provider that scans `remote` of `backend`.
pub async fn plan_keyed<B: SqlBackend>(
    backend: &Arc<B>,
    remote: &Arc<RemoteTable<B::Codec>>,
    table: &dyn TableProvider,
    state: &dyn Session,
    filters: Vec<Expr>,
    assignments: Option<Vec<(String, Expr)>>,
    why: &str,
) -> Result<Arc<dyn ExecutionPlan>> {
    if remote.primary_key.is_empty() {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "this statement cannot run in source '{}' as one statement on {}: {why}, and the table has no primary key to change its rows by",
            backend.source_name(),
            remote.name
        );
    }
    let filters = filters
        .into_iter()
        .map(crate::pushdown::unqualified)
        .collect::<Result<Vec<_>>>()?;
    let exact: Vec<Expr> = filters
        .iter()
        .filter(|f| backend.filter_pushdown(remote, f) == TableProviderFilterPushDown::Exact)
        .cloned()
        .collect();
    let mut input = table.scan(state, None, &exact, None).await?;
    let schema = DFSchema::try_from(remote.schema.as_ref().clone())?;
    if let Some(condition) = conjunction(filters) {
        let predicate = state.create_physical_expr(condition, &schema)?;
        input = Arc::new(FilterExec::try_new(predicate, input)?);
    }
    let mut outputs = Vec::new();
    for key in &remote.primary_key {
        let column = Expr::Column(Column::new_unqualified(key));
        outputs.push((state.create_physical_expr(column, &schema)?, key.clone()));
    }
    let change = match assignments {
        None => KeyedChange::Delete,
        Some(assignments) => {
            let mut set = Vec::with_capacity(assignments.len());
            for (column, value) in assignments {
                let Some(target) = remote.column(&column) else {
                    return sql_err!(
                        codes::UNDEFINED_COLUMN,
                        "column \"{column}\" of {} does not exist",
                        remote.name
                    );
                };
                let value = cast(
                    crate::pushdown::unqualified(value)?,
                    target.field.data_type().clone(),
                );
                outputs.push((state.create_physical_expr(value, &schema)?, column.clone()));
                set.push(column);
            }
            KeyedChange::Update(set)
        }
    };
    let input = Arc::new(ProjectionExec::try_new(outputs, input)?);
    Ok(keyed_sink(backend, remote, input, change))
}

/// The change by key of `remote`'s rows listed by `input` (key columns,
/// then the new values of `change`'s columns).
pub fn keyed_sink<B: SqlBackend>(
    backend: &Arc<B>,
    remote: &Arc<RemoteTable<B::Codec>>,
    input: Arc<dyn ExecutionPlan>,
    change: KeyedChange,
) -> Arc<dyn ExecutionPlan> {
    let sink = KeyedSink {
        backend: Arc::clone(backend),
        table: Arc::clone(remote),
        schema: input.schema(),
        change,
    };
    Arc::new(DataSinkExec::new(input, Arc::new(sink), None))
}

/// Changes the rows whose keys (and new values) arrive.
struct KeyedSink<B: SqlBackend> {
    backend: Arc<B>,
    table: Arc<RemoteTable<B::Codec>>,
    schema: SchemaRef,
    change: KeyedChange,
}

impl<B: SqlBackend> fmt::Debug for KeyedSink<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyedSink({}.{})",
            self.backend.source_name(),
            self.table.name
        )
    }
}

impl<B: SqlBackend> DisplayAs for KeyedSink<B> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.table.primary_key.join(", ");
        match &self.change {
            KeyedChange::Delete => write!(
                f,
                "RemoteKeyedChange: source={}, table={}, DELETE by key ({key})",
                self.backend.source_name(),
                self.table.name
            ),
            KeyedChange::Update(set) => write!(
                f,
                "RemoteKeyedChange: source={}, table={}, UPDATE {} by key ({key})",
                self.backend.source_name(),
                self.table.name,
                set.join(", ")
            ),
        }
    }
}

#[async_trait]
impl<B: SqlBackend> DataSink for KeyedSink<B> {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let pinned = crate::pinned::for_writing(context, &self.backend).await?;
        let data = crate::pinned::buffered_if_pinned(data, &pinned, context).await?;
        crate::staged::change_by_key(
            self.backend.as_ref(),
            &self.table,
            data,
            &self.change,
            pinned,
        )
        .await
    }
}
