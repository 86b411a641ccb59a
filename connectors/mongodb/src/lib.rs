//! The `mongodb` connector: each database is a schema and each collection a
//! table, `<source>.<database>.<collection>`.
//!
//! Written for a genuine MongoDB server with the official driver. Columns are
//! inferred by sampling documents unless the configuration declares them
//! ([`options`], [`types::schema`]); documents are decoded from raw BSON
//! straight into Arrow builders ([`types::decode`]); filters, projections,
//! sort and limit become the `find` command's own arguments ([`scan`],
//! [`pushdown::filter`], [`pushdown::topn`]), GROUP BY … count(*) an
//! aggregation pipeline ([`pushdown::aggregate`]); inserts become
//! `insertMany` ([`write`]), updates and deletes `updateMany` and
//! `deleteMany` ([`dml`]), `INSERT … ON CONFLICT` one `updateOne` per row
//! (`upsert`); `CREATE TABLE` a collection whose validator
//! records the declared columns (`ddl`). [`discovery`] holds the client and lists
//! databases and collections, [`catalog`] makes them schemas and tables,
//! [`table`] is a collection as a DataFusion table.

pub mod catalog;
mod ddl;
pub mod discovery;
pub mod dml;
pub mod options;
pub mod pushdown;
pub mod scan;
pub mod table;
pub mod types;
mod upsert;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use koios_connector::catalog::LazySource;
use koios_connector::{Connector, Source, SourceSpec};

pub use options::MongoOptions;
pub use pushdown::topn::MongoTopN;

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
        vec![Arc::new(pushdown::aggregate::MongoAggregatePushdown)]
    }

    fn reads_when_executed(&self, node: &dyn datafusion::physical_plan::ExecutionPlan) -> bool {
        node.downcast_ref::<scan::MongoScanExec>().is_some()
    }

    /// A collection's `estimatedDocumentCount`, for `koios.system.tables`
    /// (no remote engine is named: MongoDB takes no pushed-down joins, so its
    /// tables are not grouped with each other).
    fn plan_upsert(
        &self,
        table: &dyn datafusion::catalog::TableProvider,
        input: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        on_conflict: &koios_connector::upsert::OnConflict,
    ) -> Option<Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>>> {
        let table = table.downcast_ref::<table::MongoTable>()?;
        Some(table.plan_upsert(input, on_conflict))
    }

    fn table_capabilities(
        &self,
        table: &dyn datafusion::catalog::TableProvider,
    ) -> Option<koios_connector::TableCapabilities> {
        let table = table.downcast_ref::<table::MongoTable>()?;
        // `_id` is every collection's key (unique, indexed), when the
        // collection shows it.
        let primary_key =
            match datafusion::catalog::TableProvider::schema(table).field_with_name("_id") {
                Ok(_) => vec!["_id".to_string()],
                Err(_) => Vec::new(),
            };
        Some(koios_connector::TableCapabilities {
            remote: None,
            primary_key,
            estimated_rows: table.row_estimate,
            server_defaults: Vec::new(),
        })
    }

    fn node_source(
        &self,
        node: &dyn datafusion::physical_plan::ExecutionPlan,
    ) -> Option<koios_connector::RemoteIdentity> {
        let source = match node.downcast_ref::<scan::MongoScanExec>() {
            Some(scan) => scan.source_name(),
            None => node.downcast_ref::<dml::MongoDmlExec>()?.source_name(),
        };
        Some(koios_connector::RemoteIdentity(source.to_string()))
    }

    /// What `EXPLAIN` shows of the scan: its collection, projection and
    /// finds or pipeline (MongoDB has no statement text).
    fn node_remote_sql(
        &self,
        node: &dyn datafusion::physical_plan::ExecutionPlan,
    ) -> Option<Vec<String>> {
        if let Some(change) = node.downcast_ref::<dml::MongoDmlExec>() {
            return Some(vec![change.command()]);
        }
        node.downcast_ref::<scan::MongoScanExec>()?;
        let shown = datafusion::physical_plan::displayable(node)
            .one_line()
            .to_string();
        Some(vec![shown.trim_end().to_string()])
    }
}
