//! A remote source's schemas and tables as a DataFusion catalog, for every
//! connector that discovers its tables from a server.
//!
//! Schema and table *names* are read when the source attaches (and again on
//! refresh), because DataFusion asks for them synchronously; a table itself
//! (its columns, inferred schema, …) is opened the first time a query names
//! it, then cached until the next refresh. A table created remotely appears
//! after `REFRESH SOURCE`; a query naming it finds it even before (the lookup
//! asks the server). A table created or changed through Koios
//! ([`Source::change_schema`]) is re-read at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::ddl::{SchemaChange, TableDefinition};
use crate::transaction::RemoteTransaction;
use crate::{PoolStatus, Source};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result;

/// Which of a server's databases a source exposes as schemas: those `listed`
/// in its options, else the one its URL names, else all but the server's
/// own `system` databases.
pub fn exposed_databases(
    all: Vec<String>,
    listed: Option<&[String]>,
    url_database: Option<&str>,
    system: &[&str],
) -> Vec<String> {
    all.into_iter()
        .filter(|name| match (listed, url_database) {
            (Some(list), _) => list.contains(name),
            (None, Some(db)) => db == name,
            (None, None) => !system.contains(&name.as_str()),
        })
        .collect()
}

/// What a connector tells the catalog about its server.
#[async_trait]
pub trait Discovery: Send + Sync + 'static {
    /// The Koios source name, used in every message.
    fn source_name(&self) -> &str;

    /// Forgets cached connections and facts before a refresh.
    fn reset(&self) {}

    async fn schema_names(&self) -> Result<Vec<String>>;

    async fn table_names(&self, schema: &str) -> Result<Vec<String>>;

    /// See [`Source::ping`]: by default, listing the schemas (one query
    /// that needs a working connection and nothing else).
    async fn ping(&self) -> Result<()> {
        self.schema_names().await.map(|_| ())
    }

    /// The table, or `None` when the server has no such table.
    async fn open_table(&self, schema: &str, table: &str)
    -> Result<Option<Arc<dyn TableProvider>>>;

    /// See [`Source::close`].
    async fn close(&self) {}

    /// See [`Source::pool_status`].
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Makes `change` in the backend (see [`Source::change_schema`]); the
    /// catalog then re-reads what changed.
    async fn change_schema(&self, change: &SchemaChange) -> Result<()> {
        Err(crate::contract::read_only(change))
    }

    /// See [`Source::storable_type`].
    fn storable_type(&self, ty: &crate::ddl::ColumnType) -> crate::ddl::ColumnType {
        ty.clone()
    }

    /// See [`Source::begin_ddl`].
    async fn begin_ddl(&self) -> Result<Option<Arc<dyn RemoteTransaction>>> {
        Ok(None)
    }

    /// See [`Source::create_table_in`].
    async fn create_table_in(
        &self,
        definition: &TableDefinition,
        _transaction: &Arc<dyn RemoteTransaction>,
    ) -> Result<Arc<dyn TableProvider>> {
        Err(crate::contract::read_only(&SchemaChange::CreateTable(
            definition.clone(),
        )))
    }
}

/// An attached source whose tables a [`Discovery`] finds.
pub struct LazySource<D: Discovery> {
    discovery: Arc<D>,
    catalog: Arc<LazyCatalog<D>>,
}

impl<D: Discovery> std::fmt::Debug for LazySource<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazySource({})", self.discovery.source_name())
    }
}

impl<D: Discovery> LazySource<D> {
    /// Attaches: reads the schema and table names once.
    pub async fn attach(discovery: Arc<D>) -> Result<Arc<Self>> {
        let catalog = Arc::new(LazyCatalog {
            discovery: Arc::clone(&discovery),
            schemas: RwLock::new(BTreeMap::new()),
        });
        catalog.load_names().await?;
        Ok(Arc::new(Self { discovery, catalog }))
    }
}

#[async_trait]
impl<D: Discovery> Source for LazySource<D> {
    fn catalog(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    async fn refresh(&self) -> Result<()> {
        self.discovery.reset();
        self.catalog.load_names().await
    }

    async fn ping(&self) -> Result<()> {
        self.discovery.ping().await
    }

    async fn close(&self) {
        self.discovery.close().await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        self.discovery.pool_status()
    }

    async fn change_schema(&self, change: &SchemaChange) -> Result<()> {
        self.discovery.change_schema(change).await?;
        match change.schema() {
            Some(schema) => self.catalog.reload_schema(schema).await,
            None => self.catalog.load_names().await,
        }
    }

    fn storable_type(&self, ty: &crate::ddl::ColumnType) -> crate::ddl::ColumnType {
        self.discovery.storable_type(ty)
    }

    async fn begin_ddl(&self) -> Result<Option<Arc<dyn RemoteTransaction>>> {
        self.discovery.begin_ddl().await
    }

    async fn create_table_in(
        &self,
        definition: &TableDefinition,
        transaction: &Arc<dyn RemoteTransaction>,
    ) -> Result<Arc<dyn TableProvider>> {
        self.discovery
            .create_table_in(definition, transaction)
            .await
    }

    async fn reload_schema(&self, schema: &str) -> Result<()> {
        self.catalog.reload_schema(schema).await
    }
}

/// The catalog of one source.
pub struct LazyCatalog<D: Discovery> {
    discovery: Arc<D>,
    schemas: RwLock<BTreeMap<String, Arc<LazySchema<D>>>>,
}

impl<D: Discovery> std::fmt::Debug for LazyCatalog<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazyCatalog({})", self.discovery.source_name())
    }
}

impl<D: Discovery> LazyCatalog<D> {
    async fn load_names(&self) -> Result<()> {
        let mut fresh = BTreeMap::new();
        for schema in self.discovery.schema_names().await? {
            let tables = self.discovery.table_names(&schema).await?;
            fresh.insert(
                schema.clone(),
                Arc::new(LazySchema {
                    discovery: Arc::clone(&self.discovery),
                    schema,
                    names: tables,
                    tables: RwLock::new(HashMap::new()),
                }),
            );
        }
        *self.schemas.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Re-reads one schema's table names and forgets its opened tables
    /// (one of them was created, changed or dropped).
    async fn reload_schema(&self, schema: &str) -> Result<()> {
        let tables = self.discovery.table_names(schema).await?;
        self.schemas
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                schema.to_string(),
                Arc::new(LazySchema {
                    discovery: Arc::clone(&self.discovery),
                    schema: schema.to_string(),
                    names: tables,
                    tables: RwLock::new(HashMap::new()),
                }),
            );
        Ok(())
    }
}

impl<D: Discovery> CatalogProvider for LazyCatalog<D> {
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
pub struct LazySchema<D: Discovery> {
    discovery: Arc<D>,
    schema: String,
    names: Vec<String>,
    tables: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

impl<D: Discovery> std::fmt::Debug for LazySchema<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LazySchema({}.{})",
            self.discovery.source_name(),
            self.schema
        )
    }
}

#[async_trait]
impl<D: Discovery> SchemaProvider for LazySchema<D> {
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
        let Some(table) = self.discovery.open_table(&self.schema, name).await? else {
            return Ok(None);
        };
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
