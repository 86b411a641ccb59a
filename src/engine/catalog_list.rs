//! The list of catalogs every session sees: `koios` and one per source.
//! DataFusion's in-memory list cannot remove a catalog; `DROP SOURCE` must.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::catalog::{CatalogProvider, CatalogProviderList};

/// Catalogs by name; written only when a source is attached, replaced or
/// dropped.
#[derive(Debug, Default)]
pub struct CatalogMap {
    catalogs: RwLock<BTreeMap<String, Arc<dyn CatalogProvider>>>,
}

impl CatalogMap {
    /// Removes a catalog; returns it.
    pub fn deregister_catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        self.catalogs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
    }
}

impl CatalogProviderList for CatalogMap {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.catalogs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.catalogs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        self.catalogs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}
