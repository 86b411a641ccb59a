//! The execution node that reads a collection with one or more `find`
//! commands, decoding the cursor's raw documents into Arrow batches.
//!
//! Usually there is one `find`. A pushed-down `ORDER BY … LIMIT` whose NULL
//! placement MongoDB cannot sort (it always puts null and missing first
//! ascending) runs as two: the non-null rows sorted, then the null rows
//! (see [`crate::topn`]). `EXPLAIN` prints every command's filter,
//! projection, sort and limit.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use mongodb::bson::{Document, RawDocumentBuf, doc};

use crate::decode::RowDecoder;
use crate::discovery::MongoDiscovery;
use crate::schema::Shape;

/// One `find` command.
#[derive(Debug, Clone, PartialEq)]
pub struct Find {
    pub filter: Document,
    pub sort: Option<Document>,
    pub limit: Option<i64>,
}

/// Reads one collection.
pub struct MongoScanExec {
    mongo: Arc<MongoDiscovery>,
    database: String,
    collection: String,
    columns: Arc<Vec<(String, Shape)>>,
    projection: Vec<usize>,
    finds: Vec<Find>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl MongoScanExec {
    pub fn new(
        mongo: Arc<MongoDiscovery>,
        database: String,
        collection: String,
        columns: Arc<Vec<(String, Shape)>>,
        projection: Vec<usize>,
        finds: Vec<Find>,
    ) -> Self {
        let projected: Vec<(String, Shape)> =
            projection.iter().map(|&i| columns[i].clone()).collect();
        let schema = Shape::schema(&projected);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            mongo,
            database,
            collection,
            columns,
            projection,
            finds,
            schema,
            properties,
        }
    }

    /// The projected columns, in output order.
    pub fn projected_columns(&self) -> Vec<(String, Shape)> {
        self.projection
            .iter()
            .map(|&i| self.columns[i].clone())
            .collect()
    }

    pub fn finds(&self) -> &[Find] {
        &self.finds
    }

    /// The same scan running other `find` commands.
    pub fn with_finds(&self, finds: Vec<Find>) -> Self {
        Self::new(
            Arc::clone(&self.mongo),
            self.database.clone(),
            self.collection.clone(),
            Arc::clone(&self.columns),
            self.projection.clone(),
            finds,
        )
    }

    /// The `find` projection: the projected top-level fields, `_id` only if asked for.
    pub fn projection_document(&self) -> Document {
        let mut projection = Document::new();
        for (name, _) in self.projected_columns() {
            projection.insert(name, 1);
        }
        if !projection.contains_key("_id") {
            projection.insert("_id", 0);
        }
        projection
    }
}

impl fmt::Debug for MongoScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoScanExec")
            .field("source", &self.mongo.source)
            .field("collection", &self.collection)
            .field("finds", &self.finds)
            .finish()
    }
}

impl DisplayAs for MongoScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MongoScanExec: source={}, collection={}.{}, projection={}",
            self.mongo.source,
            self.database,
            self.collection,
            self.projection_document()
        )?;
        let many = self.finds.len() > 1;
        for (i, find) in self.finds.iter().enumerate() {
            let tag = if many {
                format!("[{i}]")
            } else {
                String::new()
            };
            write!(f, ", filter{tag}={}", find.filter)?;
            if let Some(sort) = &find.sort {
                write!(f, ", sort{tag}={sort}")?;
            }
            if let Some(limit) = find.limit {
                write!(f, ", limit{tag}={limit}")?;
            }
        }
        Ok(())
    }
}

impl ExecutionPlan for MongoScanExec {
    fn name(&self) -> &str {
        "MongoScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "no partition {partition} in a MongoDB scan"
            )));
        }
        let batch_size = context.session_config().batch_size().max(1);
        let mongo = Arc::clone(&self.mongo);
        let (database, collection) = (self.database.clone(), self.collection.clone());
        let columns = self.projected_columns();
        let projection = self.projection_document();
        let finds = self.finds.clone();
        let schema = Arc::clone(&self.schema);
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&schema), 2);
        let tx = builder.tx();
        builder.spawn(async move {
            let name = format!("{database}.{collection}");
            // A collection dropped since discovery reads as empty in MongoDB;
            // say so instead of returning no rows.
            if !mongo.collection_exists(&database, &collection).await? {
                return Err(DataFusionError::Plan(format!(
                    "source '{}': collection {name} no longer exists (REFRESH SOURCE {} to update the catalog)",
                    mongo.source, mongo.source
                )));
            }
            let handle = mongo.collection::<RawDocumentBuf>(&database, &collection);
            let mut decoder = RowDecoder::new(&columns, mongo.options.invalid_values);
            let mut produced: i64 = 0;
            let cursor_batch = batch_size.min(u32::MAX as usize) as u32;
            for find in finds {
                let limit = match find.limit {
                    Some(limit) if limit <= produced => break,
                    Some(limit) => Some(limit - produced),
                    None => None,
                };
                let mut action = handle
                    .find(find.filter.clone())
                    .projection(projection.clone())
                    .batch_size(cursor_batch);
                if let Some(sort) = find.sort.clone() {
                    action = action.sort(sort);
                }
                if let Some(limit) = limit {
                    action = action.limit(limit);
                }
                let mut cursor = action
                    .await
                    .map_err(|e| mongo.error(&format!("reading {name}"), &e))?;
                let mut taken: i64 = 0;
                while cursor
                    .advance()
                    .await
                    .map_err(|e| mongo.error(&format!("reading {name}"), &e))?
                {
                    decoder.append(cursor.current()).map_err(|m| {
                        DataFusionError::Execution(format!(
                            "source '{}': {name}: {} (set invalid_values = \"null\" to read such values as NULL, or declare the column's type in [source.schema])",
                            mongo.source,
                            m.message()
                        ))
                    })?;
                    taken += 1;
                    if decoder.rows() >= batch_size {
                        let batch = RecordBatch::try_new(Arc::clone(&schema), decoder.finish())?;
                        if tx.send(Ok(batch)).await.is_err() {
                            return Ok(()); // the consumer has gone (LIMIT, cancel)
                        }
                    }
                    if limit.is_some_and(|l| taken >= l) {
                        break;
                    }
                }
                produced += taken;
            }
            if decoder.rows() > 0 {
                let rows = decoder.rows();
                let batch = RecordBatch::try_new_with_options(
                    Arc::clone(&schema),
                    decoder.finish(),
                    &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
                )?;
                let _ = tx.send(Ok(batch)).await;
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

/// `{k: {$ne: null}}` / `{k: {$eq: null}}` added to a filter.
pub fn and_null_test(filter: &Document, path: &str, is_null: bool) -> Document {
    let op = if is_null { "$eq" } else { "$ne" };
    let test = doc! { path: { op: mongodb::bson::Bson::Null } };
    if filter.is_empty() {
        test
    } else {
        doc! { "$and": [filter.clone(), test] }
    }
}
