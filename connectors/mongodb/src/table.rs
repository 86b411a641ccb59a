//! A MongoDB collection as a DataFusion table: filters and projection become
//! the `find` command's filter and projection; inserts, updates and deletes
//! go to [`crate::write`] and [`crate::dml`].

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use mongodb::bson::{Document, doc};

use crate::discovery::MongoDiscovery;
use crate::pushdown::filter::{pushdown, translate};
use crate::scan::{Find, MongoScanExec};
use crate::types::schema::Shape;
use crate::write::MongoSink;

/// One collection, with its columns as configured or inferred.
#[derive(Debug)]
pub struct MongoTable {
    pub(crate) mongo: Arc<MongoDiscovery>,
    pub(crate) database: String,
    pub(crate) collection: String,
    pub(crate) columns: Arc<Vec<(String, Shape)>>,
    /// `estimatedDocumentCount` when the collection was opened.
    pub(crate) row_estimate: Option<u64>,
    schema: SchemaRef,
}

impl MongoTable {
    /// The plan of an insert with `on_conflict` (see [`crate::upsert`]).
    pub(crate) fn plan_upsert(
        &self,
        input: Arc<dyn ExecutionPlan>,
        on_conflict: &koios_connector::upsert::OnConflict,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let sink = crate::upsert::MongoUpsertSink::new(
            Arc::clone(&self.mongo),
            self.database.clone(),
            self.collection.clone(),
            Arc::clone(&self.columns),
            Arc::clone(&self.schema),
            on_conflict.clone(),
        )?;
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    pub fn new(
        mongo: Arc<MongoDiscovery>,
        database: &str,
        collection: &str,
        columns: Vec<(String, Shape)>,
    ) -> Self {
        let schema = Shape::schema(&columns);
        Self {
            mongo,
            database: database.to_string(),
            collection: collection.to_string(),
            columns: Arc::new(columns),
            row_estimate: None,
            schema,
        }
    }

    fn pushdown(&self, filter: &Expr) -> TableProviderFilterPushDown {
        pushdown(filter, &self.columns, self.mongo.options.invalid_values)
    }

    /// The collection, for an `UPDATE` or `DELETE` ([`crate::dml`]).
    fn target(&self) -> crate::dml::Target<'_> {
        crate::dml::Target {
            mongo: &self.mongo,
            database: &self.database,
            collection: &self.collection,
            columns: &self.columns,
        }
    }
}

#[async_trait]
impl TableProvider for MongoTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters.iter().map(|f| self.pushdown(f)).collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let parts: Vec<Document> = filters
            .iter()
            .filter_map(|f| translate(f, &self.columns))
            .map(|t| t.filter)
            .collect();
        let filter = match parts.len() {
            0 => Document::new(),
            1 => parts.into_iter().next().unwrap_or_default(),
            _ => doc! { "$and": parts },
        };
        let find = Find {
            filter,
            sort: None,
            limit: limit.map(|l| l as i64),
        };
        Ok(Arc::new(
            MongoScanExec::new(
                Arc::clone(&self.mongo),
                self.database.clone(),
                self.collection.clone(),
                &self.columns,
                projection,
                vec![find],
            )
            .with_row_estimate(self.row_estimate),
        ))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        koios_connector::append_only(
            insert_op,
            &format!(
                "{}.{}.{}",
                self.mongo.source, self.database, self.collection
            ),
        )?;
        let sink = MongoSink::new(
            Arc::clone(&self.mongo),
            self.database.clone(),
            self.collection.clone(),
            Arc::clone(&self.columns),
            Arc::clone(&self.schema),
        );
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    async fn delete_from(
        &self,
        _state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        crate::dml::plan_delete(&self.target(), filters)
    }

    async fn update(
        &self,
        _state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        crate::dml::plan_update(&self.target(), assignments, filters)
    }
}
