//! `DELETE` and `UPDATE` on a collection as `deleteMany` and `updateMany`,
//! when MongoDB selects exactly the rows Koios would: every `WHERE`
//! conjunct translates exactly (see [`crate::pushdown::filter`]) and every
//! new value is a constant, stored as an insert would store it
//! (`$set`). Anything else is refused with 0A000 and changes nothing.
//! `EXPLAIN` shows the command.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use koios_connector::sql_err;
use koios_connector::sqlstate::codes;
use koios_connector::transaction::write_outside_blocks;
use mongodb::bson::{Bson, Document, doc};

use crate::discovery::MongoDiscovery;
use crate::pushdown::filter::{pushdown, translate};
use crate::types::schema::Shape;
use crate::write::to_bson;

/// The collection a statement changes, and its columns.
pub(crate) struct Target<'a> {
    pub mongo: &'a Arc<MongoDiscovery>,
    pub database: &'a str,
    pub collection: &'a str,
    pub columns: &'a [(String, Shape)],
}

/// What the command does.
#[derive(Debug, Clone)]
enum Change {
    Delete,
    Update(Document),
}

/// The plan of `DELETE FROM collection WHERE filters`.
pub(crate) fn plan_delete(
    table: &Target<'_>,
    filters: Vec<Expr>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let filter = remote_filter(table, &filters)?;
    Ok(Arc::new(MongoDmlExec::new(table, filter, Change::Delete)))
}

/// The plan of `UPDATE collection SET assignments WHERE filters`.
pub(crate) fn plan_update(
    table: &Target<'_>,
    assignments: Vec<(String, Expr)>,
    filters: Vec<Expr>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let filter = remote_filter(table, &filters)?;
    let mut set = Document::new();
    for (column, value) in assignments {
        let Some(shape) = table
            .columns
            .iter()
            .find(|(n, _)| n == &column)
            .map(|(_, s)| s)
        else {
            return sql_err!(
                codes::UNDEFINED_COLUMN,
                "column \"{column}\" does not exist"
            );
        };
        let Some(constant) = koios_connector::constant_value(&value) else {
            return not_remote(
                table,
                &format!("the new value of \"{column}\" ({value}) is not a constant"),
            );
        };
        let stored = to_bson(&constant.to_array()?, 0, shape).map_err(|why| {
            koios_connector::sql_error!(codes::DATATYPE_MISMATCH, "column \"{column}\": {why}")
        })?;
        set.insert(column, stored.unwrap_or(Bson::Null));
    }
    Ok(Arc::new(MongoDmlExec::new(
        table,
        filter,
        Change::Update(doc! { "$set": set }),
    )))
}

fn remote_filter(table: &Target<'_>, filters: &[Expr]) -> Result<Document> {
    let mut parts = Vec::with_capacity(filters.len());
    for filter in filters {
        let translated = translate(filter, table.columns);
        let exactness = pushdown(filter, table.columns, table.mongo.options.invalid_values);
        match (translated, exactness) {
            (Some(t), TableProviderFilterPushDown::Exact) => parts.push(t.filter),
            _ => {
                return not_remote(
                    table,
                    &format!("its condition {filter} cannot run there exactly as in Koios"),
                );
            }
        }
    }
    Ok(match parts.len() {
        0 => Document::new(),
        1 => parts.pop().unwrap_or_default(),
        _ => doc! { "$and": parts },
    })
}

fn not_remote<T>(table: &Target<'_>, why: &str) -> Result<T> {
    sql_err!(
        codes::FEATURE_NOT_SUPPORTED,
        "this statement cannot run in source '{}' as one command on {}.{}: {why}",
        table.mongo.source,
        table.database,
        table.collection
    )
}

/// One `deleteMany` or `updateMany`, run when executed; its one output row
/// is the count of documents it matched.
pub struct MongoDmlExec {
    mongo: Arc<MongoDiscovery>,
    database: String,
    collection: String,
    filter: Document,
    change: Change,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl MongoDmlExec {
    fn new(table: &Target<'_>, filter: Document, change: Change) -> Self {
        let schema = koios_connector::count_schema();
        Self {
            mongo: Arc::clone(table.mongo),
            database: table.database.to_string(),
            collection: table.collection.to_string(),
            filter,
            change,
            properties: koios_connector::leaf_plan_properties(&schema, 1),
            schema,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The source it changes.
    pub fn source_name(&self) -> &str {
        &self.mongo.source
    }

    /// The command, as `EXPLAIN` and `koios.system.queries` show it.
    pub fn command(&self) -> String {
        match &self.change {
            Change::Delete => format!(
                "deleteMany {}.{} filter={}",
                self.database, self.collection, self.filter
            ),
            Change::Update(update) => format!(
                "updateMany {}.{} filter={} update={}",
                self.database, self.collection, self.filter, update
            ),
        }
    }
}

impl fmt::Debug for MongoDmlExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MongoDmlExec({}: {})", self.mongo.source, self.command())
    }
}

impl DisplayAs for MongoDmlExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MongoDmlExec: source={}, {}",
            self.mongo.source,
            self.command()
        )
    }
}

impl ExecutionPlan for MongoDmlExec {
    koios_connector::leaf_execution_plan_methods!("MongoDmlExec");

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mongo = Arc::clone(&self.mongo);
        let (database, collection) = (self.database.clone(), self.collection.clone());
        let (filter, change) = (self.filter.clone(), self.change.clone());
        let run = async move {
            write_outside_blocks(&context, &mongo.source, "MongoDB").await?;
            let target = mongo.collection::<Document>(&database, &collection);
            let context = format!("changing {database}.{collection}");
            Ok(match change {
                Change::Delete => {
                    target
                        .delete_many(filter)
                        .await
                        .map_err(|e| mongo.error(&context, &e))?
                        .deleted_count
                }
                Change::Update(update) => {
                    target
                        .update_many(filter, update)
                        .await
                        .map_err(|e| mongo.error(&context, &e))?
                        .matched_count
                }
            })
        };
        Ok(koios_connector::count_row_stream(
            run,
            &self.metrics,
            partition,
        ))
    }
}
