//! Remote schemas and tables as a DataFusion catalog.
//!
//! Schema and table *names* are read when the source attaches (and again on
//! refresh), because DataFusion asks for them synchronously; a table's
//! columns are read the first time a query names it, then cached until the
//! next refresh. A table created remotely appears after `REFRESH SOURCE`; a
//! query naming it finds it even before (the lookup asks the server).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result;
use koios_connector::Source;

use crate::backend::{RemoteTableName, SqlBackend};
use crate::table::SqlTable;

/// An attached SQL source.
pub struct SqlSource<B: SqlBackend> {
    backend: Arc<B>,
    catalog: Arc<SqlCatalog<B>>,
}

impl<B: SqlBackend> std::fmt::Debug for SqlSource<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqlSource({})", self.backend.source_name())
    }
}

impl<B: SqlBackend> SqlSource<B> {
    /// Attaches: reads the schema and table names once.
    pub async fn attach(backend: Arc<B>) -> Result<Arc<Self>> {
        let catalog = Arc::new(SqlCatalog {
            backend: Arc::clone(&backend),
            schemas: RwLock::new(BTreeMap::new()),
        });
        catalog.load_names().await?;
        Ok(Arc::new(Self { backend, catalog }))
    }
}

#[async_trait]
impl<B: SqlBackend> Source for SqlSource<B> {
    fn catalog(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    async fn refresh(&self) -> Result<()> {
        self.backend.reset();
        self.catalog.load_names().await
    }
}

/// The catalog of one SQL source.
pub struct SqlCatalog<B: SqlBackend> {
    backend: Arc<B>,
    schemas: RwLock<BTreeMap<String, Arc<SqlSchema<B>>>>,
}

impl<B: SqlBackend> std::fmt::Debug for SqlCatalog<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqlCatalog({})", self.backend.source_name())
    }
}

impl<B: SqlBackend> SqlCatalog<B> {
    async fn load_names(&self) -> Result<()> {
        let mut fresh = BTreeMap::new();
        for schema in self.backend.schema_names().await? {
            let tables = self.backend.table_names(&schema).await?;
            fresh.insert(
                schema.clone(),
                Arc::new(SqlSchema {
                    backend: Arc::clone(&self.backend),
                    schema,
                    names: tables,
                    tables: RwLock::new(HashMap::new()),
                }),
            );
        }
        *self.schemas.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

impl<B: SqlBackend> CatalogProvider for SqlCatalog<B> {
    fn schema_names(&self) -> Vec<String> {
        self.schemas
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.schemas
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|s| Arc::clone(s) as Arc<dyn SchemaProvider>)
    }
}

/// One remote schema.
pub struct SqlSchema<B: SqlBackend> {
    backend: Arc<B>,
    schema: String,
    names: Vec<String>,
    tables: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

impl<B: SqlBackend> std::fmt::Debug for SqlSchema<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SqlSchema({}.{})",
            self.backend.source_name(),
            self.schema
        )
    }
}

#[async_trait]
impl<B: SqlBackend> SchemaProvider for SqlSchema<B> {
    fn table_names(&self) -> Vec<String> {
        self.names.clone()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(Some(Arc::clone(table)));
        }
        let remote = RemoteTableName {
            schema: self.schema.clone(),
            table: name.to_string(),
        };
        let Some(described) = self.backend.describe(&remote).await? else {
            return Ok(None);
        };
        let table: Arc<dyn TableProvider> =
            Arc::new(SqlTable::new(Arc::clone(&self.backend), described));
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::clone(&table));
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}
