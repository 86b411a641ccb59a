//! Koios's own tables: the schema `system` of the built-in `koios`
//! catalog (`koios.system.sources`, `koios.system.sessions`, …).
//!
//! Each table is a name, its columns and a function building its rows from
//! the engine, synchronously ([`SystemTable`]) or, when it must ask the
//! sources, asynchronously. Rows are built when a query scans the table (a
//! plan reading a table is never cached, so every run sees the present),
//! and the schema holds the engine weakly: the engine owns the catalog that
//! holds this schema.
//!
//! * [`sources`]: the sources and their health, every table they hold, and
//!   the server itself (`koios.system.server`).
//! * `activity`: client sessions and running statements.
//! * `logical`: logical tables and their members.
//! * `jobs`: background jobs and their progress.

mod activity;
mod jobs;
mod logical;
pub mod sources;

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;
use koios_connector::sql_err;
use koios_connector::sqlstate::codes;

use crate::engine::Engine;

/// The schema's name in the `koios` catalog.
pub const SCHEMA: &str = "system";

/// How a table's rows are built.
#[derive(Clone, Copy)]
pub enum BuildRows {
    /// From what the engine holds.
    Sync(fn(&Engine) -> Result<RecordBatch>),
    /// By asking the sources too.
    Async(fn(Arc<Engine>) -> BoxFuture<'static, Result<RecordBatch>>),
}

/// One table of `koios.system`.
pub struct SystemTable {
    pub name: &'static str,
    /// Its columns.
    pub schema: fn() -> SchemaRef,
    /// Its rows now.
    pub rows: BuildRows,
}

/// Every table of the schema. A new table is one more entry here.
const TABLES: &[SystemTable] = &[
    activity::QUERIES,
    jobs::JOBS,
    logical::LOGICAL_TABLES,
    logical::MEMBERS,
    sources::SERVER,
    activity::SESSIONS,
    sources::SOURCES,
    sources::TABLES,
];

/// The `system` schema of the `koios` catalog.
#[derive(Debug)]
pub struct SystemSchema {
    engine: Weak<Engine>,
}

impl SystemSchema {
    pub fn new(engine: Weak<Engine>) -> Self {
        Self { engine }
    }
}

fn find(name: &str) -> Option<&'static SystemTable> {
    TABLES.iter().find(|t| t.name == name)
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.name.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(find(name).map(|table| {
            Arc::new(SystemTableProvider {
                table,
                schema: (table.schema)(),
                engine: Weak::clone(&self.engine),
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        find(name).is_some()
    }
}

/// One system table as DataFusion scans it.
struct SystemTableProvider {
    table: &'static SystemTable,
    schema: SchemaRef,
    engine: Weak<Engine>,
}

impl std::fmt::Debug for SystemTableProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemTableProvider")
            .field("name", &self.table.name)
            .finish()
    }
}

#[async_trait]
impl TableProvider for SystemTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    // Shown by `\dt` like any table (PostgreSQL's own statistics views are
    // views, but these are Koios's tables).
    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(engine) = self.engine.upgrade() else {
            return sql_err!(codes::ADMIN_SHUTDOWN, "the server is shutting down");
        };
        let batch = match self.table.rows {
            BuildRows::Sync(rows) => rows(&engine)?,
            BuildRows::Async(rows) => rows(engine).await?,
        };
        let table = MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// Microseconds since the epoch (a `timestamptz` column's value).
fn micros(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}
