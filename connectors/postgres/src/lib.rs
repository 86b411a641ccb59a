//! The `postgres` connector: every schema, table and view of a PostgreSQL
//! database as `<source>.<schema>.<table>`.
//!
//! Built on the shared SQL layer (`koios-connector-sql`); this crate adds
//! what is PostgreSQL's own, one concern per module:
//! - [`options`]: the source's options, one serde struct;
//! - [`backend`]: the connection pool and the `SqlBackend` implementation,
//!   which hands each question to the modules below;
//! - [`catalog`]: discovery of schemas, tables and columns from `pg_catalog`;
//! - [`types`]: PostgreSQL types as Arrow types (the column codecs);
//!   [`decode`]: binary values into Arrow builders or client rows;
//! - [`pushdown`]: which filters, literals and joins PostgreSQL evaluates
//!   exactly as DataFusion does;
//! - [`scan`]: split predicates and reads (`COPY … TO STDOUT (FORMAT
//!   binary)`, or one bound statement), cancelled on the server when
//!   dropped; [`copy`]: the binary COPY decoder; `rows`: rows written
//!   straight into client `DataRow` bodies;
//! - [`write`]: inserts through `COPY … FROM STDIN`;
//! - [`tls`]: rustls for the pool; `statements`: statements kept prepared
//!   per connection; `error`: PostgreSQL errors as Koios errors.

pub mod backend;
pub mod catalog;
pub mod copy;
pub mod decode;
mod error;
pub mod options;
pub mod pushdown;
mod rows;
pub mod scan;
mod statements;
pub mod tls;
pub mod types;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::optimizer::OptimizerRule;
use datafusion::physical_planner::ExtensionPlanner;
use koios_connector::{Connector, Source, SourceSpec};
use koios_connector_sql::{SubplanPlanner, SubplanPushdown};

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

    fn extension_planners(&self) -> Vec<Arc<dyn ExtensionPlanner + Send + Sync>> {
        vec![Arc::new(SubplanPlanner)]
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
