//! Inserts the engine plans itself ([`ColumnInsert`]): rows written into
//! only the columns an `INSERT` names, so the server gives the others the
//! defaults it computes (a sequence, `AUTO_INCREMENT`, `now()`), and
//! `INSERT … RETURNING`, whose output is the rows as the server stored them.
//!
//! The first is the bulk path ([`RemoteSink`]) over the named columns. The
//! second stages the rows on the server (as upserts do, so every value goes
//! through the bulk path's codecs) and moves them into the table with one
//! `INSERT … SELECT … RETURNING` read as a query, all in one transaction:
//! the block's, or one of its own. PostgreSQL and MariaDB have `RETURNING`;
//! MySQL refuses it with its own error.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
};
use futures::TryStreamExt;
use koios_connector::insert::ColumnInsert;
use koios_connector::sql_err;
use koios_connector::sqlstate::codes;

use crate::SqlBackend;
use crate::remote::RemoteTable;
use crate::staged::{next_staging_table, staging, table_name};
use crate::table::SqlTable;
use crate::write::RemoteSink;

/// The plan of `insert` into a table of backend `B` (see
/// [`koios_connector::Connector::plan_insert`]).
pub fn plan_insert<B: SqlBackend>(
    table: &dyn TableProvider,
    input: Arc<dyn ExecutionPlan>,
    insert: &ColumnInsert,
) -> Option<Result<Arc<dyn ExecutionPlan>>> {
    let table = table.downcast_ref::<SqlTable<B>>()?;
    Some(plan(table, input, insert))
}

fn plan<B: SqlBackend>(
    table: &SqlTable<B>,
    input: Arc<dyn ExecutionPlan>,
    insert: &ColumnInsert,
) -> Result<Arc<dyn ExecutionPlan>> {
    let backend = table.backend();
    let remote = table.remote_table();
    if remote.is_view {
        return sql_err!(
            codes::WRONG_OBJECT_TYPE,
            "cannot insert into view {}.{}",
            backend.source_name(),
            remote.name
        );
    }
    let written = Arc::new(staging(remote, &table_name(remote), &insert.columns)?);
    if !insert.returning {
        let sink = RemoteSink::new(Arc::clone(backend), written);
        return Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)));
    }
    Ok(Arc::new(InsertReturningExec::new(
        Arc::clone(backend),
        Arc::clone(remote),
        insert.columns.clone(),
        input,
    )))
}

/// `INSERT … RETURNING`: inserts its input's rows (in `columns`) and
/// streams the rows the server stored, every column of the table.
pub struct InsertReturningExec<B: SqlBackend> {
    backend: Arc<B>,
    table: Arc<RemoteTable<B::Codec>>,
    columns: Vec<String>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl<B: SqlBackend> InsertReturningExec<B> {
    fn new(
        backend: Arc<B>,
        table: Arc<RemoteTable<B::Codec>>,
        columns: Vec<String>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&table.schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            backend,
            table,
            columns,
            input,
            properties,
        }
    }
}

impl<B: SqlBackend> fmt::Debug for InsertReturningExec<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InsertReturningExec({}.{})",
            self.backend.source_name(),
            self.table.name
        )
    }
}

impl<B: SqlBackend> DisplayAs for InsertReturningExec<B> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InsertReturningExec: source={}, table={}, columns=[{}]",
            self.backend.source_name(),
            self.table.name,
            self.columns.join(", ")
        )
    }
}

impl<B: SqlBackend> ExecutionPlan for InsertReturningExec<B> {
    fn name(&self) -> &str {
        "InsertReturningExec"
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.into_iter().next() else {
            return sql_err!(codes::INTERNAL_ERROR, "an insert without its input");
        };
        Ok(Arc::new(InsertReturningExec::new(
            Arc::clone(&self.backend),
            Arc::clone(&self.table),
            self.columns.clone(),
            input,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return sql_err!(
                codes::INTERNAL_ERROR,
                "an insert has one partition, not {partition}"
            );
        }
        let rows = self.input.execute(0, Arc::clone(&context))?;
        let run = insert_returning(
            Arc::clone(&self.backend),
            Arc::clone(&self.table),
            self.columns.clone(),
            rows,
            context,
        );
        let stored = futures::stream::once(run)
            .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.table.schema),
            stored,
        )))
    }
}

/// Inserts `rows` (in `columns`) into `table` through a staging table and
/// reads back what was stored, in one transaction.
async fn insert_returning<B: SqlBackend>(
    backend: Arc<B>,
    table: Arc<RemoteTable<B::Codec>>,
    columns: Vec<String>,
    rows: SendableRecordBatchStream,
    context: Arc<TaskContext>,
) -> Result<Vec<RecordBatch>> {
    let pinned = crate::pinned::for_writing(&context, &backend).await?;
    let rows = crate::pinned::buffered_if_pinned(rows, &pinned, &context).await?;
    // Outside a block, a transaction of its own: dropped unfinished (an
    // error below), the backend rolls it back.
    let (transaction, own) = match pinned {
        Some(open) => (open, false),
        None => (backend.begin().await?, true),
    };
    let pinned = Some(Arc::clone(&transaction));
    let name = table_name(&table);
    let staged = next_staging_table(backend.as_ref(), &name);
    let returning: Vec<_> = table
        .columns
        .iter()
        .map(|c| (c.name.clone(), backend.select_expr(c)))
        .collect();
    let statements = backend
        .dialect()
        .insert_returning_sql(&name, &staged, &columns, &returning)?;
    let staging_table = Arc::new(staging(&table, &staged, &columns)?);
    backend
        .execute_statement(statements.create_staging.clone(), pinned.clone())
        .await?;
    backend.insert(staging_table, rows, pinned.clone()).await?;
    let mut stored = Vec::new();
    for query in statements.apply {
        let codecs = table.columns.iter().map(|c| c.codec.clone()).collect();
        let batch_size = context.session_config().batch_size();
        let batches = backend.execute_sql(
            query,
            codecs,
            Arc::clone(&table.schema),
            batch_size,
            pinned.clone(),
        )?;
        stored.extend(datafusion::physical_plan::common::collect(batches).await?);
    }
    backend
        .execute_statement(statements.drop_staging, pinned)
        .await?;
    if own {
        transaction.commit().await?;
    }
    Ok(stored)
}
