//! SQL backends plugged into the shared lazy catalog
//! ([`koios_connector::catalog`]): a table is described by the backend and
//! served by [`SqlTable`].

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use koios_connector::PoolStatus;
use koios_connector::catalog::{Discovery, LazySource};
use koios_connector::ddl::{SchemaChange, TableDefinition};
use koios_connector::transaction::RemoteTransaction;

use crate::backend::SqlBackend;
use crate::remote::RemoteTableName;
use crate::table::SqlTable;

/// An attached SQL source.
pub type SqlSource<B> = LazySource<SqlDiscovery<B>>;

/// Attaches a SQL backend: reads its schema and table names once.
pub async fn attach<B: SqlBackend>(backend: Arc<B>) -> Result<Arc<SqlSource<B>>> {
    LazySource::attach(Arc::new(SqlDiscovery(backend))).await
}

/// A [`SqlBackend`] as the catalog's [`Discovery`].
pub struct SqlDiscovery<B: SqlBackend>(Arc<B>);

#[async_trait]
impl<B: SqlBackend> Discovery for SqlDiscovery<B> {
    fn source_name(&self) -> &str {
        self.0.source_name()
    }

    fn reset(&self) {
        self.0.reset()
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        self.0.pool_status()
    }

    async fn schema_names(&self) -> Result<Vec<String>> {
        self.0.schema_names().await
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        self.0.table_names(schema).await
    }

    fn storable_type(
        &self,
        ty: &koios_connector::ddl::ColumnType,
    ) -> koios_connector::ddl::ColumnType {
        self.0.storable_type(ty)
    }

    async fn change_schema(&self, change: &SchemaChange) -> Result<()> {
        let backend = &self.0;
        let sql = backend
            .dialect()
            .schema_change_sql(change, &|column| backend.column_type_sql(column))?;
        backend.execute_ddl(change, sql).await
    }

    async fn begin_ddl(&self) -> Result<Option<Arc<dyn RemoteTransaction>>> {
        if !self.0.transactional_ddl() {
            return Ok(None);
        }
        self.0.begin().await.map(Some)
    }

    async fn create_table_in(
        &self,
        definition: &TableDefinition,
        transaction: &Arc<dyn RemoteTransaction>,
    ) -> Result<Arc<dyn TableProvider>> {
        let backend = &self.0;
        let change = SchemaChange::CreateTable(definition.clone());
        let sql = backend
            .dialect()
            .schema_change_sql(&change, &|column| backend.column_type_sql(column))?;
        let pinned = Some(Arc::clone(transaction));
        backend.execute_ddl_in(&change, sql, pinned.clone()).await?;
        let name = RemoteTableName {
            schema: definition.name.schema.clone(),
            table: definition.name.table.clone(),
        };
        let described = backend.describe_in(&name, pinned).await?.ok_or_else(|| {
            koios_connector::sql_error!(
                koios_connector::sqlstate::codes::INTERNAL_ERROR,
                "source '{}': table {name} was created but cannot be found",
                backend.source_name()
            )
        })?;
        Ok(Arc::new(SqlTable::new(Arc::clone(backend), described)))
    }

    async fn open_table(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let remote = RemoteTableName {
            schema: schema.to_string(),
            table: table.to_string(),
        };
        Ok(self.0.describe(&remote).await?.map(|described| {
            Arc::new(SqlTable::new(Arc::clone(&self.0), described)) as Arc<dyn TableProvider>
        }))
    }
}
