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
//! - [`write`]: inserts through `COPY … FROM STDIN`; `ddl`: declared
//!   column types as PostgreSQL's, and DDL run in a transaction;
//! - [`tls`]: rustls for the pool; `statements`: statements kept prepared
//!   per connection; `error`: PostgreSQL errors as Koios errors.

pub mod backend;
pub mod catalog;
pub mod copy;
mod ddl;
pub mod decode;
mod error;
pub mod options;
pub mod pushdown;
mod rows;
pub mod scan;
mod statements;
pub mod tls;
mod transaction;
pub mod types;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use koios_connector::{Connector, Source, SourceSpec};

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

    koios_connector_sql::sql_connector_methods!(PgBackend);
}
