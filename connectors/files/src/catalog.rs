//! Discovery of a `files` source's tables: every data file directly in its
//! directory is a table named by its stem, every sub-directory whose files
//! share one format a table made of all of them; all in one schema
//! (`public` unless the `schema` option says otherwise), swapped whole on
//! refresh.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use futures::TryStreamExt;
use koios_connector::Source;
use object_store::path::Path as StorePath;

use crate::options::FileOptions;
use crate::types::FileKind;

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
    /// The source over the directory at `url`, not yet listed (see
    /// [`Source::refresh`]).
    pub fn open(
        name: &str,
        url: &str,
        options: FileOptions,
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<Self> {
        let root = directory_url(url)
            .map_err(|e| DataFusionError::Configuration(format!("source '{name}': {e}")))?;
        // Listing a missing local directory yields nothing; say so instead of
        // serving an empty source.
        if root.scheme() == "file" {
            let path = root.get_url().to_file_path().map_err(|()| {
                DataFusionError::Configuration(format!("source '{name}': bad file URL"))
            })?;
            if !path.is_dir() {
                return Err(DataFusionError::Execution(format!(
                    "source '{name}': directory {} does not exist",
                    path.display()
                )));
            }
        }
        Ok(Self {
            name: name.to_string(),
            root,
            options,
            runtime: Arc::clone(runtime),
            catalog: Arc::default(),
        })
    }

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
        state: &SessionState,
    ) -> Result<Arc<ListingTable>> {
        crate::scan::open_table(&self.name, &self.options, url, kind, extension, state).await
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

    /// The directory is still there (one listing of its top level).
    async fn ping(&self) -> Result<()> {
        if self.root.scheme() == "file"
            && let Ok(path) = self.root.get_url().to_file_path()
            && !path.is_dir()
        {
            return Err(DataFusionError::Execution(format!(
                "source '{}': directory {} does not exist",
                self.name,
                path.display()
            )));
        }
        let store = self
            .runtime
            .object_store(&self.root)
            .map_err(|e| self.error(e))?;
        store
            .list_with_delimiter(Some(self.root.prefix()))
            .await
            .map(|_| ())
            .map_err(|e| self.error(e.into()))
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
