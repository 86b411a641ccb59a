//! What one session sees of the catalogs: the engine's catalogs, each with
//! the front end's system schemas (PostgreSQL's `pg_catalog` and
//! `information_schema`), and the several-schema `search_path`.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider};
use datafusion::common::plan_err;
use datafusion::error::Result;

use crate::engine::extension::SystemSchemas;
use crate::engine::search_path::{SEARCH_PATH_PREFIX, SEARCH_PATH_SEPARATOR, SearchPathSchema};

/// A session's catalog list over the engine's shared one.
#[derive(Debug)]
pub struct SessionCatalogList {
    catalogs: Arc<dyn CatalogProviderList>,
    system: Arc<dyn SystemSchemas>,
}

impl SessionCatalogList {
    pub fn new(catalogs: Arc<dyn CatalogProviderList>, system: Arc<dyn SystemSchemas>) -> Self {
        Self { catalogs, system }
    }
}

impl CatalogProviderList for SessionCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.catalogs.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.catalogs.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let inner = self.catalogs.catalog(name)?;
        Some(Arc::new(SessionCatalog {
            database: name.to_string(),
            inner,
            system: Arc::clone(&self.system),
        }))
    }
}

/// One catalog as a session sees it.
#[derive(Debug)]
struct SessionCatalog {
    database: String,
    inner: Arc<dyn CatalogProvider>,
    system: Arc<dyn SystemSchemas>,
}

impl SessionCatalog {
    fn is_system(&self, name: &str) -> bool {
        self.system.names().contains(&name)
    }
}

impl CatalogProvider for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.inner.schema_names();
        names.retain(|n| !self.is_system(n));
        names.extend(self.system.names().iter().map(|n| n.to_string()));
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(path) = name.strip_prefix(SEARCH_PATH_PREFIX) {
            let schemas = path
                .split(SEARCH_PATH_SEPARATOR)
                .filter_map(|schema| self.schema(schema))
                .collect();
            return Some(Arc::new(SearchPathSchema { schemas }));
        }
        if self.is_system(name) {
            return self.system.schema(&self.database, name);
        }
        self.inner.schema(name)
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        if self.is_system(name) {
            return plan_err!("schema \"{name}\" is a system schema");
        }
        self.inner.register_schema(name, schema)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.deregister_schema(name, cascade)
    }
}
