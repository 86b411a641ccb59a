//! The connector-contract capabilities ([`koios_connector::capabilities`])
//! of every SQL backend's tables and plan nodes, written once: a SQL
//! connector answers with these for its own backend type.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;
use koios_connector::pgtext::StartDataRows;
use koios_connector::remote_sql::KeyedChange;
use koios_connector::sql_err;
use koios_connector::sqlstate::codes;
use koios_connector::upsert::{ConflictAction, OnConflict};
use koios_connector::{DirectRowsRequest, RemoteIdentity, TableCapabilities};

use crate::SqlBackend;
use crate::dml::RemoteDmlExec;
use crate::scan::RemoteScanExec;
use crate::subplan::RemoteSubqueryExec;
use crate::table::SqlTable;
use crate::write::RemoteSink;

/// What a table of backend `B` is: served by its source, with its key.
pub fn table_capabilities<B: SqlBackend>(table: &dyn TableProvider) -> Option<TableCapabilities> {
    let table = table.downcast_ref::<SqlTable<B>>()?;
    Some(TableCapabilities {
        remote: Some(RemoteIdentity(table.backend().source_name().to_string())),
        primary_key: table.remote_table().primary_key.clone(),
        estimated_rows: table.remote_table().row_estimate,
        server_defaults: table
            .remote_table()
            .columns
            .iter()
            .filter(|c| c.server_default)
            .map(|c| c.name.clone())
            .collect(),
    })
}

/// Whether `node` is a scan or a pushed-down query of backend `B` (both
/// read when executed).
pub fn reads_when_executed<B: SqlBackend>(node: &dyn ExecutionPlan) -> bool {
    node.downcast_ref::<RemoteScanExec<B>>().is_some()
        || node.downcast_ref::<RemoteSubqueryExec<B>>().is_some()
}

/// The source a scan or pushed-down query of backend `B` reads, or an
/// update or delete changes.
pub fn node_source<B: SqlBackend>(node: &dyn ExecutionPlan) -> Option<RemoteIdentity> {
    let name = if let Some(scan) = node.downcast_ref::<RemoteScanExec<B>>() {
        scan.source_name()
    } else if let Some(dml) = node.downcast_ref::<RemoteDmlExec<B>>() {
        dml.source_name()
    } else {
        node.downcast_ref::<RemoteSubqueryExec<B>>()?.source_name()
    };
    Some(RemoteIdentity(name.to_string()))
}

/// The SQL a scan (one statement per partition) or pushed-down query of
/// backend `B` sends.
pub fn node_remote_sql<B: SqlBackend>(node: &dyn ExecutionPlan) -> Option<Vec<String>> {
    if let Some(scan) = node.downcast_ref::<RemoteScanExec<B>>() {
        return Some(scan.sent_sql());
    }
    if let Some(dml) = node.downcast_ref::<RemoteDmlExec<B>>() {
        return Some(vec![dml.sql().to_string()]);
    }
    Some(vec![
        node.downcast_ref::<RemoteSubqueryExec<B>>()?.sent_sql(),
    ])
}

/// The rows of a scan or pushed-down query of backend `B`, written by the
/// backend straight as `DataRow` bodies (see [`SqlBackend::execute_data_rows`]).
pub fn direct_rows<B: SqlBackend>(
    node: &dyn ExecutionPlan,
    request: DirectRowsRequest<'_>,
) -> Option<Option<StartDataRows>> {
    let columns = request.columns.to_vec();
    if let Some(scan) = node.downcast_ref::<RemoteScanExec<B>>() {
        // A limit above needs the scan to send a LIMIT as small.
        let limited = request
            .fetch
            .is_none_or(|fetch| scan.limit().is_some_and(|l| l <= fetch));
        return Some(
            limited
                .then(|| scan.data_rows(request.params, columns))
                .flatten(),
        );
    }
    if let Some(query) = node.downcast_ref::<RemoteSubqueryExec<B>>() {
        return Some(
            request
                .fetch
                .is_none()
                .then(|| query.data_rows(columns))
                .flatten(),
        );
    }
    None
}

/// The plan of an insert with `on_conflict` into a table of backend `B`:
/// the bulk path's sink, upserting (see [`SqlBackend::upsert`]).
pub fn plan_upsert<B: SqlBackend>(
    table: &dyn TableProvider,
    input: Arc<dyn ExecutionPlan>,
    on_conflict: &OnConflict,
) -> Option<Result<Arc<dyn ExecutionPlan>>> {
    let table = table.downcast_ref::<SqlTable<B>>()?;
    let remote = table.remote_table();
    let name = format!("{}.{}", table.backend().source_name(), remote.name);
    let check = || -> Result<()> {
        if remote.is_view {
            return sql_err!(codes::WRONG_OBJECT_TYPE, "cannot insert into view {name}");
        }
        let columns = on_conflict.target.iter().chain(
            match &on_conflict.action {
                ConflictAction::Nothing => [].iter(),
                ConflictAction::Update(assignments) => assignments.iter(),
            }
            .map(|(column, _)| column),
        );
        for column in columns {
            if remote.column(column).is_none() {
                return sql_err!(
                    codes::UNDEFINED_COLUMN,
                    "column \"{column}\" of {name} does not exist"
                );
            }
        }
        Ok(())
    };
    Some(check().map(|()| {
        let sink = RemoteSink::upsert(
            Arc::clone(table.backend()),
            Arc::clone(table.remote_table()),
            on_conflict.clone(),
        );
        Arc::new(DataSinkExec::new(input, Arc::new(sink), None)) as Arc<dyn ExecutionPlan>
    }))
}

/// The plan of a change by key whose rows the engine chose (`UPDATE …
/// FROM`, a subquery in the condition): for a table of backend `B`.
pub fn plan_keyed_change<B: SqlBackend>(
    table: &dyn TableProvider,
    input: Arc<dyn ExecutionPlan>,
    change: &KeyedChange,
) -> Option<Result<Arc<dyn ExecutionPlan>>> {
    let table = table.downcast_ref::<SqlTable<B>>()?;
    if table.remote_table().primary_key.is_empty() {
        return Some(sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "{}.{} has no primary key to change its rows by",
            table.backend().source_name(),
            table.remote_table().name
        ));
    }
    Some(Ok(crate::keyed::keyed_sink(
        table.backend(),
        table.remote_table(),
        input,
        change.clone(),
    )))
}

/// The `Connector` methods every SQL backend's connector has alike, for one
/// `SqlBackend` type: whole-subplan pushdown and its planner, and the
/// capabilities above. Used inside `impl Connector for …`.
#[macro_export]
macro_rules! sql_connector_methods {
    ($backend:ty) => {
        fn optimizer_rules(
            &self,
        ) -> Vec<std::sync::Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> {
            vec![std::sync::Arc::new(
                $crate::SubplanPushdown::<$backend>::new(),
            )]
        }

        fn extension_planners(
            &self,
        ) -> Vec<std::sync::Arc<dyn datafusion::physical_planner::ExtensionPlanner + Send + Sync>> {
            vec![std::sync::Arc::new($crate::SubplanPlanner)]
        }

        fn table_capabilities(
            &self,
            table: &dyn datafusion::catalog::TableProvider,
        ) -> Option<koios_connector::TableCapabilities> {
            $crate::capabilities::table_capabilities::<$backend>(table)
        }

        fn reads_when_executed(&self, node: &dyn datafusion::physical_plan::ExecutionPlan) -> bool {
            $crate::capabilities::reads_when_executed::<$backend>(node)
        }

        fn node_source(
            &self,
            node: &dyn datafusion::physical_plan::ExecutionPlan,
        ) -> Option<koios_connector::RemoteIdentity> {
            $crate::capabilities::node_source::<$backend>(node)
        }

        fn node_remote_sql(
            &self,
            node: &dyn datafusion::physical_plan::ExecutionPlan,
        ) -> Option<Vec<String>> {
            $crate::capabilities::node_remote_sql::<$backend>(node)
        }

        fn direct_rows(
            &self,
            node: &dyn datafusion::physical_plan::ExecutionPlan,
            request: koios_connector::DirectRowsRequest<'_>,
        ) -> Option<Option<koios_connector::pgtext::StartDataRows>> {
            $crate::capabilities::direct_rows::<$backend>(node, request)
        }

        fn plan_upsert(
            &self,
            table: &dyn datafusion::catalog::TableProvider,
            input: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
            on_conflict: &koios_connector::upsert::OnConflict,
        ) -> Option<
            datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        > {
            $crate::capabilities::plan_upsert::<$backend>(table, input, on_conflict)
        }

        fn plan_insert(
            &self,
            table: &dyn datafusion::catalog::TableProvider,
            input: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
            insert: &koios_connector::insert::ColumnInsert,
        ) -> Option<
            datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        > {
            $crate::insert::plan_insert::<$backend>(table, input, insert)
        }

        fn plan_keyed_change(
            &self,
            table: &dyn datafusion::catalog::TableProvider,
            input: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
            change: &koios_connector::remote_sql::KeyedChange,
        ) -> Option<
            datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        > {
            $crate::capabilities::plan_keyed_change::<$backend>(table, input, change)
        }

        fn row_order(
            &self,
            table: &dyn datafusion::catalog::TableProvider,
        ) -> Option<std::sync::Arc<dyn koios_connector::RowOrder>> {
            $crate::row_order::row_order::<$backend>(table)
        }
    };
}
