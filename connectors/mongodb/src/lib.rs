//! The `mongodb` connector: each database is a schema and each collection a
//! table, `<source>.<database>.<collection>`.
//!
//! Written for a genuine MongoDB server with the official driver. Columns are
//! inferred by sampling documents ([`schema`]) unless the configuration
//! declares them; documents are decoded from raw BSON straight into Arrow
//! builders ([`decode`]); filters, projections, sort and limit become the
//! `find` command's own arguments ([`filter`], [`scan`], [`topn`]), GROUP BY …
//! count(*) an aggregation pipeline ([`aggregate`]); inserts
//! become `insertMany` ([`write`]).

pub mod aggregate;
pub mod catalog;
pub mod decimal;
pub mod decode;
pub mod discovery;
pub mod filter;
pub mod options;
pub mod scan;
pub mod schema;
pub mod table;
pub mod topn;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use koios_connector::catalog::LazySource;
use koios_connector::{Connector, Source, SourceSpec};

pub use options::MongoOptions;
pub use topn::MongoTopN;

/// The connector registered under `kind = "mongodb"`.
#[derive(Debug, Default)]
pub struct MongoConnector;

#[async_trait]
impl Connector for MongoConnector {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    fn check_options(&self, spec: &SourceSpec) -> Result<()> {
        MongoOptions::from_spec(spec).map(drop)
    }

    async fn connect(
        &self,
        spec: &SourceSpec,
        _runtime: &Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn Source>> {
        let options = MongoOptions::from_spec(spec)?;
        let discovery = discovery::MongoDiscovery::connect(&spec.name, &spec.url, options).await?;
        let source: Arc<dyn Source> = LazySource::attach(Arc::new(discovery)).await?;
        Ok(source)
    }

    fn physical_optimizer_rules(
        &self,
    ) -> Vec<Arc<dyn datafusion::physical_optimizer::PhysicalOptimizerRule + Send + Sync>> {
        vec![Arc::new(MongoTopN)]
    }

    fn optimizer_rules(&self) -> Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> {
        vec![Arc::new(aggregate::MongoAggregatePushdown)]
    }

    fn reads_when_executed(&self, node: &dyn datafusion::physical_plan::ExecutionPlan) -> bool {
        node.downcast_ref::<scan::MongoScanExec>().is_some()
    }
}
