//! The traits a backend implements: a [`Connector`] attaches sources of
//! one kind, a [`Source`] is one attached database or directory. What the
//! engine may ask about a connector's tables and nodes is in
//! [`crate::capabilities`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::CatalogProvider;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::optimizer::OptimizerRule;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_planner::ExtensionPlanner;

use crate::capabilities::{DirectRowsRequest, RemoteIdentity, TableCapabilities};
use crate::ddl::SchemaChange;
use crate::pgtext;
use crate::spec::SourceSpec;

/// A live, attached source.
#[async_trait]
pub trait Source: Send + Sync + fmt::Debug {
    /// The catalog holding this source's schemas and tables.
    fn catalog(&self) -> Arc<dyn CatalogProvider>;

    /// Re-reads the backend's list of schemas and tables, so objects created
    /// remotely become visible without a restart.
    async fn refresh(&self) -> Result<()>;

    /// One cheap round trip to the backend, for the engine's health checks
    /// (which bound it with a timeout): `Ok` when the backend answers. A
    /// source with nothing remote (generated data) is always up.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    /// Releases connections and background tasks before the process exits
    /// (drivers that run their own tasks must stop them while the runtime
    /// still runs).
    async fn close(&self) {}

    /// Connections of this source's pool now, for the metrics; `None` for a
    /// source without a pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Makes `change` in the backend (`CREATE TABLE`, `ALTER TABLE` …) and
    /// updates this source's catalog so every session sees the result at
    /// once. A source that cannot change its tables refuses with 0A000.
    async fn change_schema(&self, change: &SchemaChange) -> Result<()> {
        Err(read_only(change))
    }

    /// The type this backend keeps a column declared `ty` as when a table
    /// is made from another backend's columns (`MIGRATE TABLE … WITH (mode
    /// = 'create')`): `ty` itself, or the nearest type it has (MongoDB keeps
    /// a date as a timestamp).
    fn storable_type(&self, ty: &crate::ddl::ColumnType) -> crate::ddl::ColumnType {
        ty.clone()
    }

    /// A remote transaction in which this source's DDL is transactional
    /// (PostgreSQL), so a table can be created and filled as one
    /// ([`Source::create_table_in`]); `None` where DDL commits on its own.
    async fn begin_ddl(&self) -> Result<Option<Arc<dyn crate::transaction::RemoteTransaction>>> {
        Ok(None)
    }

    /// Creates `definition`'s table inside `transaction` (from
    /// [`Source::begin_ddl`]) and opens it as that transaction sees it. The
    /// catalog learns of it once committed ([`Source::reload_schema`]).
    async fn create_table_in(
        &self,
        definition: &crate::ddl::TableDefinition,
        _transaction: &Arc<dyn crate::transaction::RemoteTransaction>,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        Err(read_only(&SchemaChange::CreateTable(definition.clone())))
    }

    /// Re-reads the names of `schema`'s tables (after a change committed
    /// outside [`Source::change_schema`]).
    async fn reload_schema(&self, _schema: &str) -> Result<()> {
        Ok(())
    }
}

/// The error of a source that cannot make `change`.
pub fn read_only(change: &SchemaChange) -> datafusion::error::DataFusionError {
    crate::sql_error!(
        crate::sqlstate::codes::FEATURE_NOT_SUPPORTED,
        "{} is not supported by this source: its tables are read-only",
        change.tag()
    )
}

/// How many of a source's pooled connections are in use and idle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub in_use: usize,
    pub idle: usize,
}

/// Knows how to attach sources of one kind.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The `kind = "…"` value this connector handles.
    fn kind(&self) -> &'static str;

    /// Parses `spec`'s options as [`Connector::connect`] would, without
    /// connecting, so the engine can refuse a mistyped key or value at
    /// start. Errors name the source and the key (see
    /// [`SourceSpec::parse_options`]).
    fn check_options(&self, spec: &SourceSpec) -> Result<()>;

    /// Attaches a source. Errors must name the source and never contain
    /// secrets. Options are parsed the same way as by
    /// [`Connector::check_options`].
    ///
    /// `runtime` is the engine's shared runtime: connectors that read through
    /// `object_store` register their stores there so every session can scan.
    async fn connect(
        &self,
        spec: &SourceSpec,
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn Source>>;

    /// Logical optimizer rules this kind of source needs (pushdown of whole
    /// subplans), run after DataFusion's own.
    fn optimizer_rules(&self) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
        Vec::new()
    }

    /// Physical optimizer rules this kind of source needs.
    fn physical_optimizer_rules(&self) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
        Vec::new()
    }

    /// Physical planners for the logical nodes this connector's rules make
    /// (a whole subplan to run remotely); DataFusion plans everything else.
    fn extension_planners(&self) -> Vec<Arc<dyn ExtensionPlanner + Send + Sync>> {
        Vec::new()
    }

    /// What this connector says of `table`, if it made it (see
    /// [`capabilities`]); `None` for any other table.
    fn table_capabilities(
        &self,
        _table: &dyn datafusion::catalog::TableProvider,
    ) -> Option<TableCapabilities> {
        None
    }

    /// Whether `node` is a leaf of this connector that reads its rows when
    /// executed, so a cached plan holding it can run again.
    fn reads_when_executed(&self, _node: &dyn datafusion::physical_plan::ExecutionPlan) -> bool {
        false
    }

    /// The source `node` reads from, if it is a leaf of this connector that
    /// reads a source (a scan or a pushed-down query); `None` otherwise.
    fn node_source(
        &self,
        _node: &dyn datafusion::physical_plan::ExecutionPlan,
    ) -> Option<RemoteIdentity> {
        None
    }

    /// The statements a leaf of this connector sends to its source (one per
    /// partition; the SQL actually sent once it has started, else the SQL
    /// planned), if the node knows them; `None` otherwise.
    fn node_remote_sql(
        &self,
        _node: &dyn datafusion::physical_plan::ExecutionPlan,
    ) -> Option<Vec<String>> {
        None
    }

    /// The rows of `node` written straight into `DataRow` bodies: `None`
    /// when this connector did not make `node`; `Some(None)` when it did but
    /// cannot serve `request`.
    fn direct_rows(
        &self,
        _node: &dyn datafusion::physical_plan::ExecutionPlan,
        _request: DirectRowsRequest<'_>,
    ) -> Option<Option<pgtext::StartDataRows>> {
        None
    }

    /// The plan inserting `input`'s rows (in `table`'s columns) into this
    /// connector's `table` with `on_conflict`, its output one `count` row:
    /// `None` when this connector did not make `table`; an error (0A000)
    /// when it cannot carry the clause out.
    fn plan_upsert(
        &self,
        _table: &dyn datafusion::catalog::TableProvider,
        _input: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        _on_conflict: &crate::upsert::OnConflict,
    ) -> Option<Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>> {
        None
    }

    /// The plan inserting `input`'s rows (in `insert.columns`) into this
    /// connector's `table`, the other columns left to the backend's
    /// defaults; its output the stored rows (every column of `table`) when
    /// `insert.returning`, else one `count` row. `None` when this connector
    /// did not make `table`; an error (0A000) when it cannot.
    fn plan_insert(
        &self,
        _table: &dyn datafusion::catalog::TableProvider,
        _input: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        _insert: &crate::insert::ColumnInsert,
    ) -> Option<Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>> {
        None
    }

    /// The plan changing the rows of this connector's `table` whose primary
    /// key `input` lists (its columns: the key's, then an update's new
    /// values in `change`'s order), its output one `count` row: `None` when
    /// this connector did not make `table`; an error (0A000) when it cannot
    /// change rows by key.
    fn plan_keyed_change(
        &self,
        _table: &dyn datafusion::catalog::TableProvider,
        _input: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        _change: &crate::remote_sql::KeyedChange,
    ) -> Option<Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>> {
        None
    }

    /// `table`'s rows by physical position, if this connector made it and
    /// its backend addresses rows so (see [`crate::row_order`]); `None`
    /// otherwise.
    fn row_order(
        &self,
        _table: &dyn datafusion::catalog::TableProvider,
    ) -> Option<Arc<dyn crate::row_order::RowOrder>> {
        None
    }
}
