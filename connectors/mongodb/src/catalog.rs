//! A MongoDB deployment as Koios's lazily discovered catalog: databases are
//! schemas, collections are tables, opened with their declared (in the
//! configuration, or through Koios: [`crate::ddl`]) or sampled columns.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use futures::TryStreamExt;
use koios_connector::catalog::Discovery;
use mongodb::bson::{Document, doc};

use crate::discovery::{MongoDiscovery, SYSTEM_DATABASES};
use crate::table::MongoTable;

#[async_trait]
impl Discovery for MongoDiscovery {
    fn source_name(&self) -> &str {
        &self.source
    }

    async fn close(&self) {
        // The driver's pool workers must stop while the runtime runs.
        self.client.clone().shutdown().await;
    }

    async fn schema_names(&self) -> Result<Vec<String>> {
        let all = self
            .client
            .list_database_names()
            .await
            .map_err(|e| self.error("listing databases", &e))?;
        let mut names = koios_connector::catalog::exposed_databases(
            all,
            self.options.databases.as_deref(),
            self.default_database.as_deref(),
            SYSTEM_DATABASES,
        );
        names.sort();
        Ok(names)
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .client
            .database(schema)
            .list_collection_names()
            .await
            .map_err(|e| self.error(&format!("listing collections of {schema}"), &e))?
            .into_iter()
            .filter(|name| !name.starts_with("system."))
            .collect();
        names.sort();
        Ok(names)
    }

    fn storable_type(
        &self,
        ty: &koios_connector::ddl::ColumnType,
    ) -> koios_connector::ddl::ColumnType {
        crate::ddl::storable_type(ty)
    }

    async fn change_schema(&self, change: &koios_connector::ddl::SchemaChange) -> Result<()> {
        self.run_ddl(change).await
    }

    async fn open_table(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(specification) = self
            .client
            .database(schema)
            .list_collections()
            .filter(doc! { "name": table })
            .await
            .map_err(|e| self.error(&format!("listing collections of {schema}"), &e))?
            .try_next()
            .await
            .map_err(|e| self.error(&format!("listing collections of {schema}"), &e))?
        else {
            return Ok(None);
        };
        // Declared in the configuration, else through Koios (the
        // collection's validator), else sampled.
        let declared = self
            .options
            .schemas
            .get(&format!("{schema}.{table}"))
            .or_else(|| self.options.schemas.get(table))
            .cloned()
            .or_else(|| crate::ddl::declared_columns(specification.options.validator.as_ref()));
        let columns = match declared {
            Some(declared) => declared,
            None => {
                let sample: Vec<Document> = self
                    .collection::<Document>(schema, table)
                    .aggregate([doc! { "$sample": { "size": self.options.sample_size as i64 } }])
                    .await
                    .map_err(|e| self.error(&format!("sampling {schema}.{table}"), &e))?
                    .try_collect()
                    .await
                    .map_err(|e| self.error(&format!("sampling {schema}.{table}"), &e))?;
                crate::types::schema::infer(&sample, self.options.max_depth)
            }
        };
        // Only a hint for the planner: an error here must not hide the table.
        let row_estimate = self
            .collection::<Document>(schema, table)
            .estimated_document_count()
            .await
            .ok();
        let mut opened = MongoTable::new(Arc::new(self.clone()), schema, table, columns);
        opened.row_estimate = row_estimate;
        Ok(Some(Arc::new(opened)))
    }
}
