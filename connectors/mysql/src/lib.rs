//! The `mysql` connector (MySQL and MariaDB): each exposed database is a
//! schema, `<source>.<database>.<table>`.
//!
//! Built on the shared SQL layer (`koios-connector-sql`); this crate adds
//! what is MySQL's own, one concern per module:
//! - [`options`]: the source's options, one serde struct;
//! - [`backend`]: the connection pool and the `SqlBackend` implementation,
//!   which hands each question to the modules below; `error`: the
//!   server's errors as Koios's;
//! - [`catalog`]: discovery of databases, tables and columns from
//!   `information_schema`;
//! - [`types`]: MySQL types as Arrow types and binary-protocol decoding;
//! - [`pushdown`]: which filters, literals and joins MySQL evaluates exactly
//!   as DataFusion does;
//! - [`scan`]: split predicates and streamed reads, killed on the server
//!   when dropped; `rows`: a whole query's rows written straight as the
//!   `DataRow` bodies a client reads, skipping Arrow;
//! - [`write`]: inserts — a few rows as parameterised multi-row
//!   statements, many through `load` (`LOAD DATA LOCAL INFILE` fed from
//!   the stream); `ddl`: declared column types as MySQL's, and the DDL
//!   statements.

pub mod backend;
pub mod catalog;
mod ddl;
mod error;
mod load;
pub mod options;
pub mod pushdown;
mod rows;
pub mod scan;
mod transaction;
pub mod types;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use koios_connector::{Connector, Source, SourceSpec};

pub use backend::MyBackend;
pub use options::MyOptions;

/// The connector registered under `kind = "mysql"`.
#[derive(Debug, Default)]
pub struct MySqlConnector;

#[async_trait]
impl Connector for MySqlConnector {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn check_options(&self, spec: &SourceSpec) -> Result<()> {
        MyOptions::from_spec(spec).map(drop)
    }

    async fn connect(
        &self,
        spec: &SourceSpec,
        _runtime: &Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn Source>> {
        let options = MyOptions::from_spec(spec)?;
        let backend = Arc::new(MyBackend::connect(&spec.name, &spec.url, options).await?);
        let source: Arc<dyn Source> = koios_connector_sql::catalog::attach(backend).await?;
        Ok(source)
    }

    koios_connector_sql::sql_connector_methods!(MyBackend);
}
