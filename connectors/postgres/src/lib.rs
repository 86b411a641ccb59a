//! The `postgres` connector: every schema, table and view of a PostgreSQL
//! database as `<source>.<schema>.<table>`.
//!
//! Built on the shared SQL layer (`koios-connector-sql`); this crate adds
//! what is PostgreSQL's own: discovery from `pg_catalog` ([`backend`]), the
//! type mapping and binary decoders ([`types`]), `COPY … TO STDOUT (FORMAT
//! binary)` scans ([`copy`]) and `COPY … FROM STDIN` inserts ([`write`]).

pub mod backend;
pub mod copy;
mod error;
pub mod options;
mod statements;
pub mod tls;
pub mod types;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::optimizer::OptimizerRule;
use koios_connector::{Connector, Source, SourceSpec};
use koios_connector_sql::SubplanPushdown;

pub use backend::PgBackend;
pub use options::PgOptions;

/// The connector registered under `kind = "postgres"`.
#[derive(Debug, Default)]
pub struct PostgresConnector;

#[async_trait]
impl Connector for PostgresConnector {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn check_options(&self, spec: &SourceSpec) -> Result<()> {
        PgOptions::from_spec(spec).map(drop)
    }

    async fn connect(
        &self,
        spec: &SourceSpec,
        _runtime: &Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn Source>> {
        let options = PgOptions::from_spec(spec)?;
        let backend = Arc::new(PgBackend::connect(&spec.name, &spec.url, options).await?);
        let source: Arc<dyn Source> = koios_connector_sql::catalog::attach(backend).await?;
        Ok(source)
    }

    fn optimizer_rules(&self) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
        vec![Arc::new(SubplanPushdown::<PgBackend>::new())]
    }

    fn table_capabilities(
        &self,
        table: &dyn datafusion::catalog::TableProvider,
    ) -> Option<koios_connector::TableCapabilities> {
        koios_connector_sql::capabilities::table_capabilities::<PgBackend>(table)
    }

    fn reads_when_executed(&self, node: &dyn datafusion::physical_plan::ExecutionPlan) -> bool {
        koios_connector_sql::capabilities::reads_when_executed::<PgBackend>(node)
    }

    fn direct_rows(
        &self,
        node: &dyn datafusion::physical_plan::ExecutionPlan,
        request: koios_connector::DirectRowsRequest<'_>,
    ) -> Option<Option<koios_connector::pgtext::StartDataRows>> {
        koios_connector_sql::capabilities::direct_rows::<PgBackend>(node, request)
    }
}
