//! The `files` connector: Parquet, CSV and newline-delimited JSON files as tables.
//!
//! A source points at a directory URL (`file:///data/demo/`, later `s3://bucket/prefix/`).
//! Every file directly in it becomes a table named by its stem, and every
//! sub-directory holding files of one format becomes one table made of all of
//! them (the usual layout of partitioned Parquet output). All tables live in
//! the schema `public`: `<source>.public.<stem>`.
//!
//! One concern per module:
//! - [`options`]: the source's options (`format`, `csv_has_header`,
//!   `csv_delimiter`, `schema`), one serde struct;
//! - [`catalog`]: discovery of the tables in the directory, refreshed on
//!   demand;
//! - [`types`]: the file formats, recognised by extension;
//! - [`scan`]: reads, through DataFusion's `ListingTable`, so projection,
//!   filter (row-group / page pruning for Parquet) and limit pushdown come
//!   for free.
//!
//! The connector does not write: a `files` source is read-only.

pub mod catalog;
pub mod options;
pub mod scan;
pub mod types;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use koios_connector::{Connector, Source, SourceSpec};

pub use catalog::FilesSource;
pub use options::FileOptions;
pub use types::FileKind;

/// The connector registered under `kind = "files"`.
#[derive(Debug, Default)]
pub struct FilesConnector;

#[async_trait]
impl Connector for FilesConnector {
    fn kind(&self) -> &'static str {
        "files"
    }

    fn check_options(&self, spec: &SourceSpec) -> Result<()> {
        FileOptions::from_spec(spec).map(drop)
    }

    async fn connect(
        &self,
        spec: &SourceSpec,
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn Source>> {
        let options = FileOptions::from_spec(spec)?;
        let source = Arc::new(FilesSource::open(&spec.name, &spec.url, options, runtime)?);
        source.refresh().await?;
        Ok(source)
    }
}
