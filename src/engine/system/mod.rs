//! Koios's own tables: the schema `system` of the `koios` catalog
//! (`koios.system.sources`, `koios.system.tables` …), built from the live
//! engine each time they are scanned.
//!
//! * [`sources`]: the sources and their health, every table they hold, and
//!   the server itself (`koios.system.server`).

pub mod sources;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;

use crate::engine::Engine;

/// Name of the schema.
pub const SYSTEM_SCHEMA: &str = "system";

/// Builds a system table's rows from the engine.
pub type BuildRows = fn(Arc<Engine>) -> BoxFuture<'static, Result<RecordBatch>>;

/// One system table: its columns and how its rows are built.
#[derive(Clone)]
pub struct SystemTableDef {
    pub name: &'static str,
    pub schema: SchemaRef,
    pub build: BuildRows,
}

/// Every system table.
fn definitions() -> Vec<SystemTableDef> {
    vec![
        sources::sources_table(),
        sources::tables_table(),
        sources::server_table(),
    ]
}

/// The `koios.system` schema. It holds the engine weakly: the engine owns
/// the catalog that owns this schema.
#[derive(Debug)]
pub struct SystemSchema {
    engine: Weak<Engine>,
    tables: BTreeMap<&'static str, Arc<SystemTable>>,
}

impl SystemSchema {
    pub fn new(engine: &Arc<Engine>) -> SystemSchema {
        let tables = definitions()
            .into_iter()
            .map(|def| {
                (
                    def.name,
                    Arc::new(SystemTable {
                        def,
                        engine: Arc::downgrade(engine),
                    }),
                )
            })
            .collect();
        SystemSchema {
            engine: Arc::downgrade(engine),
            tables,
        }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.keys().map(|n| n.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let _ = &self.engine;
        Ok(self
            .tables
            .get(name)
            .map(|t| Arc::clone(t) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}

/// A system table: rows built at each scan.
pub struct SystemTable {
    def: SystemTableDef,
    engine: Weak<Engine>,
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SystemTable({})", self.def.name)
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.def.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let engine = self
            .engine
            .upgrade()
            .ok_or_else(|| DataFusionError::Execution("the engine is shutting down".into()))?;
        let batch = (self.def.build)(engine).await?;
        let table = MemTable::try_new(Arc::clone(&self.def.schema), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}
