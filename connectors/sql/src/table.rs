//! A remote table as a DataFusion `TableProvider`: filter, projection and
//! limit pushdown, split scans, inserts.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::common::{Constraint, Constraints};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::backend::SqlBackend;
use crate::query::RemoteQuery;
use crate::remote::RemoteTable;
use crate::scan::RemoteScanExec;
use crate::write::RemoteSink;

/// One remote table or view.
pub struct SqlTable<B: SqlBackend> {
    backend: Arc<B>,
    table: Arc<RemoteTable<B::Codec>>,
    /// The remote primary key, which clients see through `pg_index`.
    constraints: Option<Constraints>,
    /// The server's constant column defaults, by column name.
    defaults: std::collections::HashMap<String, datafusion::logical_expr::Expr>,
    /// A range of the server's physical row order every scan reads alone
    /// (one chunk of a copy: see [`crate::row_order`]).
    scope: Option<Expr>,
}

impl<B: SqlBackend> Clone for SqlTable<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            table: Arc::clone(&self.table),
            constraints: self.constraints.clone(),
            defaults: self.defaults.clone(),
            scope: self.scope.clone(),
        }
    }
}

impl<B: SqlBackend> SqlTable<B> {
    pub fn new(backend: Arc<B>, table: RemoteTable<B::Codec>) -> Self {
        let key: Option<Vec<usize>> = table
            .primary_key
            .iter()
            .map(|name| table.schema.index_of(name).ok())
            .collect();
        let constraints = key
            .filter(|k| !k.is_empty())
            .map(|k| Constraints::new_unverified(vec![Constraint::PrimaryKey(k)]));
        let defaults = table
            .columns
            .iter()
            .filter_map(|c| {
                c.default
                    .clone()
                    .map(|v| (c.name.clone(), datafusion::logical_expr::lit(v)))
            })
            .collect();
        Self {
            backend,
            table: Arc::new(table),
            constraints,
            defaults,
            scope: None,
        }
    }

    /// The table reading only the rows `scope` (a predicate of
    /// [`SqlBackend::row_position_range`]) picks, in one query.
    pub fn scoped(&self, scope: Expr) -> Self {
        Self {
            scope: Some(scope),
            ..self.clone()
        }
    }

    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    pub fn remote_table(&self) -> &Arc<RemoteTable<B::Codec>> {
        &self.table
    }
}

impl<B: SqlBackend> std::fmt::Debug for SqlTable<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SqlTable({}.{})",
            self.backend.source_name(),
            self.table.name
        )
    }
}

#[async_trait]
impl<B: SqlBackend> TableProvider for SqlTable<B> {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.table.schema)
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.constraints.as_ref()
    }

    fn get_column_default(&self, column: &str) -> Option<&datafusion::logical_expr::Expr> {
        self.defaults.get(column)
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match crate::dml::plan_delete(&self.backend, &self.table, filters.clone())? {
            Ok(plan) => Ok(plan),
            Err(why) => {
                crate::keyed::plan_keyed(
                    &self.backend,
                    &self.table,
                    self,
                    state,
                    filters,
                    None,
                    &why,
                )
                .await
            }
        }
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match crate::dml::plan_update(&self.backend, &self.table, &assignments, filters.clone())? {
            Ok(plan) => Ok(plan),
            Err(why) => {
                crate::keyed::plan_keyed(
                    &self.backend,
                    &self.table,
                    self,
                    state,
                    filters,
                    Some(assignments),
                    &why,
                )
                .await
            }
        }
    }

    fn table_type(&self) -> TableType {
        if self.table.is_view {
            TableType::View
        } else {
            TableType::Base
        }
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| self.backend.filter_pushdown(&self.table, f))
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.table.columns.len()).collect(),
        };
        // DataFusion only passes filters this table accepted; keep the exact
        // ones (inexact ones are re-checked above the scan anyway).
        let filters: Vec<Expr> = filters
            .iter()
            .filter(|f| {
                self.backend.filter_pushdown(&self.table, f)
                    != TableProviderFilterPushDown::Unsupported
            })
            .cloned()
            .collect();
        // A limited scan or an index lookup reads few rows: one query is
        // cheapest.
        let splits = if let Some(scope) = &self.scope {
            vec![Some(scope.clone())]
        } else if limit.is_some()
            || crate::query::pins_leading_key(&self.table.primary_key, &filters)
        {
            vec![None]
        } else {
            let max = state.config().target_partitions();
            self.backend.split_predicates(&self.table, max).await?
        };
        // Placeholders of a statement planned once for many executions.
        let (filters, params) = crate::query::parameterize(filters)?;
        let queries: Vec<RemoteQuery<B::Codec>> = splits
            .into_iter()
            .map(|split| RemoteQuery {
                table: Arc::clone(&self.table),
                projection: projection.clone(),
                filters: filters.clone(),
                split,
                limit,
                params: params.clone(),
            })
            .collect();
        let schema = queries.first().map(|q| q.output_schema()).ok_or_else(|| {
            DataFusionError::Internal("a scan needs at least one partition".into())
        })?;
        Ok(Arc::new(RemoteScanExec::try_new(
            Arc::clone(&self.backend),
            queries,
            schema,
        )?))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        koios_connector::append_only(
            insert_op,
            &format!("{}.{}", self.backend.source_name(), self.table.name),
        )?;
        if self.table.is_view {
            return Err(DataFusionError::Plan(format!(
                "cannot insert into view {}.{}",
                self.backend.source_name(),
                self.table.name
            )));
        }
        let sink = RemoteSink::new(Arc::clone(&self.backend), Arc::clone(&self.table));
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
