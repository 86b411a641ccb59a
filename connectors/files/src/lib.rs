//! The `files` connector: Parquet, CSV and newline-delimited JSON files as tables.
//!
//! A source points at a directory URL (`file:///data/demo/`, later `s3://bucket/prefix/`).
//! Every file directly in it becomes a table named by its stem, and every
//! sub-directory holding files of one format becomes one table made of all of
//! them (the usual layout of partitioned Parquet output). All tables live in
//! the schema `public`: `<source>.public.<stem>`.
//!
//! Reading goes through DataFusion's `ListingTable`, so projection, filter
//! (row-group / page pruning for Parquet) and limit pushdown come for free.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use futures::TryStreamExt;
use koios_connector::{Connector, Source, SourceSpec};
use object_store::path::Path as StorePath;

/// Options a `files` source accepts besides `name`, `kind` and `url`.
const KNOWN_OPTIONS: &[&str] = &["format", "csv_has_header", "csv_delimiter", "schema"];

/// File formats the connector reads, recognised by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Parquet,
    Csv,
    Json,
}

impl FileKind {
    /// The format a file name's extension announces, if any.
    pub fn from_file_name(name: &str) -> Option<(FileKind, &str)> {
        let lower = name.to_ascii_lowercase();
        for (ext, kind) in [
            (".parquet", FileKind::Parquet),
            (".csv", FileKind::Csv),
            (".json", FileKind::Json),
            (".jsonl", FileKind::Json),
            (".ndjson", FileKind::Json),
        ] {
            if lower.ends_with(ext) && lower.len() > ext.len() {
                return Some((kind, &name[name.len() - ext.len()..]));
            }
        }
        None
    }

    fn parse(value: &str) -> Option<FileKind> {
        match value.to_ascii_lowercase().as_str() {
            "parquet" => Some(FileKind::Parquet),
            "csv" => Some(FileKind::Csv),
            "json" | "ndjson" | "jsonl" => Some(FileKind::Json),
            _ => None,
        }
    }
}

/// Per-source reading options.
#[derive(Debug, Clone)]
struct FileOptions {
    forced_format: Option<FileKind>,
    csv_has_header: bool,
    csv_delimiter: u8,
    schema: String,
}

impl FileOptions {
    fn from_spec(spec: &SourceSpec) -> Result<Self> {
        spec.reject_unknown_options(KNOWN_OPTIONS)?;
        let forced_format = match spec.option_str("format")? {
            None => None,
            Some(f) => Some(FileKind::parse(f).ok_or_else(|| {
                DataFusionError::Configuration(format!(
                    "source '{}': format must be parquet, csv or json, got '{f}'",
                    spec.name
                ))
            })?),
        };
        let csv_delimiter = match spec.option_str("csv_delimiter")? {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(d) => {
                return Err(DataFusionError::Configuration(format!(
                    "source '{}': csv_delimiter must be one ASCII character, got '{d}'",
                    spec.name
                )));
            }
        };
        Ok(Self {
            forced_format,
            csv_has_header: spec.option_bool("csv_has_header")?.unwrap_or(true),
            csv_delimiter,
            schema: spec.option_str("schema")?.unwrap_or("public").to_string(),
        })
    }

    fn listing_options(&self, kind: FileKind, extension: &str) -> ListingOptions {
        let format: Arc<dyn FileFormat> = match kind {
            FileKind::Parquet => Arc::new(ParquetFormat::default()),
            FileKind::Csv => Arc::new(
                CsvFormat::default()
                    .with_has_header(self.csv_has_header)
                    .with_delimiter(self.csv_delimiter),
            ),
            FileKind::Json => Arc::new(JsonFormat::default()),
        };
        ListingOptions::new(format).with_file_extension(extension.to_string())
    }
}

/// The connector registered under `kind = "files"`.
#[derive(Debug, Default)]
pub struct FilesConnector;

#[async_trait]
impl Connector for FilesConnector {
    fn kind(&self) -> &'static str {
        "files"
    }

    async fn connect(
        &self,
        spec: &SourceSpec,
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn Source>> {
        let options = FileOptions::from_spec(spec)?;
        let root = directory_url(&spec.url)
            .map_err(|e| DataFusionError::Configuration(format!("source '{}': {e}", spec.name)))?;
        // Listing a missing local directory yields nothing; say so instead of
        // serving an empty source.
        if root.scheme() == "file" {
            let path = root.get_url().to_file_path().map_err(|()| {
                DataFusionError::Configuration(format!("source '{}': bad file URL", spec.name))
            })?;
            if !path.is_dir() {
                return Err(DataFusionError::Execution(format!(
                    "source '{}': directory {} does not exist",
                    spec.name,
                    path.display()
                )));
            }
        }
        let source = Arc::new(FilesSource {
            name: spec.name.clone(),
            root,
            options,
            runtime: Arc::clone(runtime),
            catalog: Arc::new(FilesCatalog::default()),
        });
        source.refresh().await?;
        Ok(source)
    }
}

/// Makes sure a directory URL ends with `/`, so listing treats it as a prefix.
fn directory_url(url: &str) -> Result<ListingTableUrl> {
    let with_slash = if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    };
    ListingTableUrl::parse(with_slash)
}

/// An attached `files` source.
#[derive(Debug)]
pub struct FilesSource {
    name: String,
    root: ListingTableUrl,
    options: FileOptions,
    runtime: Arc<RuntimeEnv>,
    catalog: Arc<FilesCatalog>,
}

impl FilesSource {
    /// Lists the directory and builds one table per data file or data directory.
    async fn discover(&self) -> Result<BTreeMap<String, Arc<ListingTable>>> {
        let store = self
            .runtime
            .object_store(&self.root)
            .map_err(|e| self.error(e))?;
        let prefix = self.root.prefix().clone();
        let listing = store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| self.error(e.into()))?;

        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new())
            .with_runtime_env(Arc::clone(&self.runtime))
            .build();

        let mut tables = BTreeMap::new();
        for object in &listing.objects {
            let Some(file_name) = object.location.filename() else {
                continue;
            };
            let Some((kind, extension)) = self.kind_of(file_name) else {
                continue;
            };
            let stem = &file_name[..file_name.len() - extension.len()];
            let url = self.child_url(&object.location, false)?;
            let table = self.open_table(url, kind, extension, &state).await?;
            tables.insert(stem.to_string(), table);
        }
        for dir in &listing.common_prefixes {
            let Some(dir_name) = dir.filename() else {
                continue;
            };
            // A directory is a table when its files share one format.
            let files: Vec<_> = store
                .list(Some(dir))
                .try_collect()
                .await
                .map_err(|e| self.error(e.into()))?;
            let mut kinds = files
                .iter()
                .filter_map(|f| f.location.filename())
                .filter_map(|n| self.kind_of(n));
            let Some((kind, extension)) = kinds.next() else {
                continue;
            };
            if kinds.any(|(k, _)| k != kind) || tables.contains_key(dir_name) {
                tracing::warn!(
                    source = %self.name,
                    directory = dir_name,
                    "skipping directory: mixed file formats or a name clash"
                );
                continue;
            }
            let url = self.child_url(dir, true)?;
            let table = self.open_table(url, kind, extension, &state).await?;
            tables.insert(dir_name.to_string(), table);
        }
        Ok(tables)
    }

    fn kind_of<'a>(&self, file_name: &'a str) -> Option<(FileKind, &'a str)> {
        let (kind, extension) = FileKind::from_file_name(file_name)?;
        match self.options.forced_format {
            Some(forced) if forced != kind => None,
            _ => Some((kind, extension)),
        }
    }

    fn child_url(&self, location: &StorePath, is_dir: bool) -> Result<ListingTableUrl> {
        let mut url = self.root.get_url().clone();
        let suffix = if is_dir { "/" } else { "" };
        url.set_path(&format!("/{}{suffix}", location.as_ref()));
        ListingTableUrl::parse(url.as_str())
    }

    async fn open_table(
        &self,
        url: ListingTableUrl,
        kind: FileKind,
        extension: &str,
        state: &datafusion::execution::SessionState,
    ) -> Result<Arc<ListingTable>> {
        let options = self.options.listing_options(kind, extension);
        let config = ListingTableConfig::new(url.clone())
            .with_listing_options(options)
            .infer_schema(state)
            .await
            .map_err(|e| {
                DataFusionError::Execution(format!(
                    "source '{}': cannot read the schema of {url}: {e}",
                    self.name
                ))
            })?;
        Ok(Arc::new(ListingTable::try_new(config)?))
    }

    fn error(&self, e: DataFusionError) -> DataFusionError {
        DataFusionError::Execution(format!(
            "source '{}': cannot list {}: {e}",
            self.name, self.root
        ))
    }
}

#[async_trait]
impl Source for FilesSource {
    fn catalog(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    async fn refresh(&self) -> Result<()> {
        let tables = self.discover().await?;
        let schema = Arc::new(MemorySchemaProvider::new());
        for (name, table) in tables {
            schema.register_table(name, table)?;
        }
        self.catalog.replace(&self.options.schema, schema);
        tracing::info!(source = %self.name, root = %self.root, "files source discovered");
        Ok(())
    }
}

/// A catalog whose one schema is swapped whole on refresh, so readers never
/// see a half-built table list.
#[derive(Debug, Default)]
struct FilesCatalog {
    schemas: RwLock<BTreeMap<String, Arc<dyn SchemaProvider>>>,
}

impl FilesCatalog {
    fn replace(&self, name: &str, schema: Arc<dyn SchemaProvider>) {
        let mut schemas = match self.schemas.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        schemas.clear();
        schemas.insert(name.to_string(), schema);
    }
}

impl CatalogProvider for FilesCatalog {
    fn schema_names(&self) -> Vec<String> {
        match self.schemas.read() {
            Ok(s) => s.keys().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().keys().cloned().collect(),
        }
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match self.schemas.read() {
            Ok(s) => s.get(name).cloned(),
            Err(poisoned) => poisoned.into_inner().get(name).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_extensions() {
        assert_eq!(
            FileKind::from_file_name("a.parquet"),
            Some((FileKind::Parquet, ".parquet"))
        );
        assert_eq!(
            FileKind::from_file_name("Orders.CSV"),
            Some((FileKind::Csv, ".CSV"))
        );
        assert_eq!(
            FileKind::from_file_name("x.ndjson"),
            Some((FileKind::Json, ".ndjson"))
        );
        assert_eq!(FileKind::from_file_name(".csv"), None);
        assert_eq!(FileKind::from_file_name("readme.md"), None);
    }
}
