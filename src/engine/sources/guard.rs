//! What clients see of a source that is not answering: its catalog stands
//! in front of the connector's, and a table lookup fails at once with
//! SQLSTATE 08006 naming the source while it is down, instead of a query
//! waiting for a TCP timeout. The check is one atomic load per lookup.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result;
use koios_connector::sql_err;

use super::health::SourceHealth;
use crate::engine::error::codes;

/// A connector's catalog, refused while its source is down.
#[derive(Debug)]
pub(crate) struct GuardedCatalog {
    pub source: String,
    pub inner: Arc<dyn CatalogProvider>,
    pub health: Arc<SourceHealth>,
}

impl CatalogProvider for GuardedCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let inner = self.inner.schema(name)?;
        Some(Arc::new(GuardedSchema {
            source: self.source.clone(),
            inner,
            health: Arc::clone(&self.health),
        }))
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }
}

#[derive(Debug)]
struct GuardedSchema {
    source: String,
    inner: Arc<dyn SchemaProvider>,
    health: Arc<SourceHealth>,
}

#[async_trait]
impl SchemaProvider for GuardedSchema {
    fn owner_name(&self) -> Option<&str> {
        self.inner.owner_name()
    }

    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if !self.health.is_up() {
            return down_error(&self.source, &self.health);
        }
        self.inner.table(name).await
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// Stands in for a source that could not be attached: every table lookup
/// fails with the reason, so the client learns why instead of "not found".
#[derive(Debug)]
pub(crate) struct UnattachedCatalog {
    pub source: String,
    pub health: Arc<SourceHealth>,
}

impl CatalogProvider for UnattachedCatalog {
    fn schema_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn schema(&self, _name: &str) -> Option<Arc<dyn SchemaProvider>> {
        Some(Arc::new(UnattachedSchema {
            source: self.source.clone(),
            health: Arc::clone(&self.health),
        }))
    }
}

#[derive(Debug)]
struct UnattachedSchema {
    source: String,
    health: Arc<SourceHealth>,
}

#[async_trait]
impl SchemaProvider for UnattachedSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, _name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        down_error(&self.source, &self.health)
    }

    fn table_exist(&self, _name: &str) -> bool {
        false
    }
}

pub(super) fn down_error<T>(source: &str, health: &SourceHealth) -> Result<T> {
    let detail = health.detail();
    sql_err!(
        codes::CONNECTION_FAILURE,
        "source '{source}' is unavailable: {} (Koios retries it by itself; \
         REFRESH SOURCE {source} retries now)",
        detail.last_error.as_deref().unwrap_or("not connected yet")
    )
}
