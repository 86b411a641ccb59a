//! The execution node that reads a collection with one or more `find`
//! commands, decoding the cursor's raw documents into Arrow batches.
//!
//! Usually there is one `find`. A pushed-down `ORDER BY … LIMIT` whose NULL
//! placement MongoDB cannot sort (it always puts null and missing first
//! ascending) runs as two: the non-null rows sorted, then the null rows
//! (see [`crate::pushdown::topn`]). `EXPLAIN` prints every command's filter,
//! projection, sort and limit.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::{ScalarValue, Statistics};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use mongodb::bson::{Document, RawDocumentBuf, doc};

use crate::discovery::MongoDiscovery;
use crate::types::decode::RowDecoder;
use crate::types::schema::Shape;

/// One `find` command.
#[derive(Debug, Clone, PartialEq)]
pub struct Find {
    pub filter: Document,
    pub sort: Option<Document>,
    pub limit: Option<i64>,
}

/// An `aggregate` command whose result documents the scan decodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub stages: Vec<Document>,
    /// SQL's one row for an aggregate without GROUP BY over no documents
    /// (MongoDB returns none): the fields given here, the rest NULL.
    pub empty_row: Option<Document>,
}

/// One output column: a top-level field the scan decodes, or a path inside
/// one (`address.city`), once a projection of nested fields was pushed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Index into the decoded fields.
    pub field: usize,
    /// Path below that field; empty for the field itself.
    pub subpath: Vec<String>,
    pub name: String,
    pub shape: Shape,
}

/// Reads one collection.
#[derive(Clone)]
pub struct MongoScanExec {
    mongo: Arc<MongoDiscovery>,
    database: String,
    collection: String,
    /// Top-level fields decoded, their shapes pruned to the paths read.
    fields: Vec<(String, Shape)>,
    /// Per field, the paths below it that are read (`[[]]`: all of it).
    read_paths: Vec<Vec<Vec<String>>>,
    outputs: Vec<Output>,
    finds: Vec<Find>,
    /// `estimatedDocumentCount` when the collection was opened.
    row_estimate: Option<u64>,
    /// Every column of the table is read whole: no projection is sent (a
    /// projection costs the server work and saves nothing then).
    whole_documents: bool,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// An aggregation pipeline run instead of the finds.
    pipeline: Option<Pipeline>,
}

impl MongoScanExec {
    /// A scan of the top-level `columns` picked by `projection`.
    pub fn new(
        mongo: Arc<MongoDiscovery>,
        database: String,
        collection: String,
        columns: &[(String, Shape)],
        projection: Vec<usize>,
        finds: Vec<Find>,
    ) -> Self {
        let fields: Vec<(String, Shape)> = projection.iter().map(|&i| columns[i].clone()).collect();
        let outputs = fields
            .iter()
            .enumerate()
            .map(|(field, (name, shape))| Output {
                field,
                subpath: Vec::new(),
                name: name.clone(),
                shape: shape.clone(),
            })
            .collect();
        let read_paths = vec![vec![Vec::new()]; fields.len()];
        let mut scan = Self::assemble(
            mongo, database, collection, fields, read_paths, outputs, finds,
        );
        scan.whole_documents = (0..columns.len()).all(|i| projection.contains(&i));
        scan
    }

    /// The same scan, with the collection's estimated size for the planner.
    pub fn with_row_estimate(mut self, row_estimate: Option<u64>) -> Self {
        self.row_estimate = row_estimate;
        self
    }

    fn assemble(
        mongo: Arc<MongoDiscovery>,
        database: String,
        collection: String,
        fields: Vec<(String, Shape)>,
        read_paths: Vec<Vec<Vec<String>>>,
        outputs: Vec<Output>,
        finds: Vec<Find>,
    ) -> Self {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            outputs
                .iter()
                .map(|o| {
                    datafusion::arrow::datatypes::Field::new(&o.name, o.shape.data_type(), true)
                })
                .collect::<Vec<_>>(),
        ));
        let properties = koios_connector::leaf_plan_properties(&schema, 1);
        Self {
            mongo,
            database,
            collection,
            fields,
            read_paths,
            outputs,
            finds,
            row_estimate: None,
            whole_documents: false,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
            pipeline: None,
        }
    }

    /// The same scan reading the result of an aggregation pipeline.
    pub fn with_pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    /// Each output's dotted path and shape, in output order.
    pub fn output_paths(&self) -> Vec<(String, Shape)> {
        self.outputs
            .iter()
            .map(|o| {
                let mut path = vec![self.fields[o.field].0.clone()];
                path.extend(o.subpath.iter().cloned());
                (path.join("."), o.shape.clone())
            })
            .collect()
    }

    pub fn finds(&self) -> &[Find] {
        &self.finds
    }

    /// The Koios source this scan reads from.
    pub fn source_name(&self) -> &str {
        &self.mongo.source
    }

    /// The same scan running other `find` commands.
    pub fn with_finds(&self, finds: Vec<Find>) -> Self {
        let mut scan = Self::assemble(
            Arc::clone(&self.mongo),
            self.database.clone(),
            self.collection.clone(),
            self.fields.clone(),
            self.read_paths.clone(),
            self.outputs.clone(),
            finds,
        )
        .with_row_estimate(self.row_estimate);
        scan.whole_documents = self.whole_documents;
        scan
    }

    /// The same scan producing `requests` — (output index it derives from,
    /// field names below it, output name) — instead; `None` if a name is
    /// not a field of a document.
    pub fn with_nested_outputs(&self, requests: &[(usize, Vec<String>, String)]) -> Option<Self> {
        // Paths from the top-level field, and the leaf shapes.
        let mut wanted: Vec<(String, Vec<String>, String, Shape)> = Vec::new();
        for (base, names, alias) in requests {
            let base = self.outputs.get(*base)?;
            let mut shape = base.shape.clone();
            for name in names {
                if !plain_field_name(name) {
                    return None;
                }
                let Shape::Document(fields) = shape else {
                    return None;
                };
                shape = fields.into_iter().find(|(n, _)| n == name)?.1;
            }
            let mut subpath = base.subpath.clone();
            subpath.extend(names.iter().cloned());
            wanted.push((
                self.fields[base.field].0.clone(),
                subpath,
                alias.clone(),
                shape,
            ));
        }
        let mut fields: Vec<(String, Shape)> = Vec::new();
        let mut read_paths: Vec<Vec<Vec<String>>> = Vec::new();
        let mut outputs = Vec::new();
        for (top, subpath, name, shape) in wanted {
            let field = match fields.iter().position(|(n, _)| *n == top) {
                Some(i) => i,
                None => {
                    let original = self.fields.iter().find(|(n, _)| *n == top)?.1.clone();
                    fields.push((top.clone(), original));
                    read_paths.push(Vec::new());
                    fields.len() - 1
                }
            };
            read_paths[field].push(subpath.clone());
            outputs.push(Output {
                field,
                subpath,
                name,
                shape,
            });
        }
        for ((_, shape), paths) in fields.iter_mut().zip(&read_paths) {
            *shape = prune(shape, paths);
        }
        Some(
            Self::assemble(
                Arc::clone(&self.mongo),
                self.database.clone(),
                self.collection.clone(),
                fields,
                read_paths,
                outputs,
                self.finds.clone(),
            )
            .with_row_estimate(self.row_estimate),
        )
    }

    /// The `find` projection: the fields and paths read, `_id` only if asked
    /// for. Fields whose names MongoDB would read as paths or operators
    /// (`a.b`, `$x`) cannot be projected by name: then every field comes.
    pub fn projection_document(&self) -> Document {
        let mut projection = Document::new();
        if self.whole_documents {
            return projection;
        }
        for ((name, _), paths) in self.fields.iter().zip(&self.read_paths) {
            if !plain_field_name(name) {
                return Document::new();
            }
            if paths.iter().any(Vec::is_empty) {
                projection.insert(name.clone(), 1);
                continue;
            }
            for path in paths {
                let dotted = format!("{name}.{}", path.join("."));
                // A path below one already projected adds nothing (and
                // MongoDB refuses overlapping paths).
                let covered = projection
                    .keys()
                    .any(|k| dotted.starts_with(&format!("{k}.")) || *k == dotted);
                if !covered {
                    let deeper: Vec<String> = projection
                        .keys()
                        .filter(|k| k.starts_with(&format!("{dotted}.")))
                        .cloned()
                        .collect();
                    for key in deeper {
                        projection.remove(&key);
                    }
                    projection.insert(dotted, 1);
                }
            }
        }
        if !projection.contains_key("_id") {
            projection.insert("_id", 0);
        }
        projection
    }
}

/// A name MongoDB reads as one field (not a path, not an operator).
pub fn plain_field_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('.') && !name.starts_with('$')
}

/// `shape` cut down to the `paths` below it (an empty path: all of it).
fn prune(shape: &Shape, paths: &[Vec<String>]) -> Shape {
    if paths.iter().any(Vec::is_empty) {
        return shape.clone();
    }
    let Shape::Document(fields) = shape else {
        return shape.clone();
    };
    Shape::Document(
        fields
            .iter()
            .filter_map(|(name, child)| {
                let below: Vec<Vec<String>> = paths
                    .iter()
                    .filter(|p| p.first() == Some(name))
                    .map(|p| p[1..].to_vec())
                    .collect();
                (!below.is_empty()).then(|| (name.clone(), prune(child, &below)))
            })
            .collect(),
    )
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
        if let Some(pipeline) = &self.pipeline {
            let stages: Vec<String> = pipeline.stages.iter().map(|s| s.to_string()).collect();
            return write!(
                f,
                "MongoScanExec: source={}, collection={}.{}, pipeline=[{}]",
                self.mongo.source,
                self.database,
                self.collection,
                stages.join(", ")
            );
        }
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
    koios_connector::leaf_execution_plan_methods!("MongoScanExec");

    /// A copy to run again (a plan a session cached): metrics start afresh
    /// instead of growing with every run.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        let mut copy = (*self).clone();
        copy.metrics = ExecutionPlanMetricsSet::new();
        Ok(Arc::new(copy))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    /// The collection's estimated size (at most the limit), for join order.
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut statistics = Statistics::new_unknown(&self.schema);
        if let Some(total) = self.row_estimate {
            let limit = self.finds.iter().map(|f| f.limit).max().flatten();
            let rows = limit.map_or(total, |l| total.min(l.max(0) as u64));
            statistics.num_rows = Precision::Inexact(rows as usize);
        }
        Ok(Arc::new(statistics))
    }

    /// Takes in a projection of columns and nested fields (`address['city']`),
    /// so MongoDB sends only those paths.
    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExec,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let mut requests = Vec::new();
        for expr in projection.expr() {
            let Some((base, names)) = field_access(&expr.expr) else {
                return Ok(None);
            };
            requests.push((base, names, expr.alias.clone()));
        }
        // Plain column lists gain nothing over the scan's own projection.
        if requests.iter().all(|(_, names, _)| names.is_empty()) {
            return Ok(None);
        }
        Ok(self
            .with_nested_outputs(&requests)
            .map(|scan| Arc::new(scan) as Arc<dyn ExecutionPlan>))
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
        let fields = self.fields.clone();
        let outputs = self.outputs.clone();
        let projection = self.projection_document();
        let finds = self.finds.clone();
        let pipeline = self.pipeline.clone();
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
            let mut decoder = RowDecoder::new(&fields, mongo.options.invalid_values);
            let fail = |m: String| {
                DataFusionError::Execution(format!(
                    "source '{}': {name}: {m} (set invalid_values = \"null\" to read such values as NULL, or declare the column's type in [source.schema])",
                    mongo.source
                ))
            };
            if let Some(pipeline) = pipeline {
                let mut cursor = handle
                    .aggregate(pipeline.stages)
                    .with_type::<RawDocumentBuf>()
                    .await
                    .map_err(|e| mongo.error(&format!("aggregating {name}"), &e))?;
                let mut rows = 0usize;
                while cursor
                    .advance()
                    .await
                    .map_err(|e| mongo.error(&format!("aggregating {name}"), &e))?
                {
                    decoder
                        .append(cursor.current())
                        .map_err(|m| fail(m.message()))?;
                    rows += 1;
                    if decoder.rows() >= batch_size {
                        let batch = output_batch(&schema, &outputs, &mut decoder)?;
                        if tx.send(Ok(batch)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if rows == 0
                    && let Some(empty) = pipeline.empty_row
                {
                    let raw = RawDocumentBuf::from_document(&empty)
                        .map_err(|e| DataFusionError::Execution(e.to_string()))?;
                    decoder.append(&raw).map_err(|m| fail(m.message()))?;
                }
                if decoder.rows() > 0 {
                    let batch = output_batch(&schema, &outputs, &mut decoder)?;
                    let _ = tx.send(Ok(batch)).await;
                }
                return Ok(());
            }
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
                        let batch = output_batch(&schema, &outputs, &mut decoder)?;
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
                let batch = output_batch(&schema, &outputs, &mut decoder)?;
                let _ = tx.send(Ok(batch)).await;
            }
            Ok(())
        });
        Ok(koios_connector::count_output_rows(
            builder.build(),
            &self.metrics,
            partition,
        ))
    }
}

/// A column, or a chain of `get_field` on one: (column index, field names).
fn field_access(expr: &Arc<dyn PhysicalExpr>) -> Option<(usize, Vec<String>)> {
    if let Some(column) = expr.as_ref().downcast_ref::<Column>() {
        return Some((column.index(), Vec::new()));
    }
    let call = expr.as_ref().downcast_ref::<ScalarFunctionExpr>()?;
    if call.name() != "get_field" {
        return None;
    }
    let (base, names) = call.args().split_first()?;
    let (index, mut path) = field_access(base)?;
    for name in names {
        let literal = name.as_ref().downcast_ref::<Literal>()?;
        match literal.value() {
            ScalarValue::Utf8(Some(n)) | ScalarValue::Utf8View(Some(n)) => path.push(n.clone()),
            _ => return None,
        }
    }
    Some((index, path))
}

/// The decoded rows as the scan's output columns (nested paths taken out
/// of their structs: a field of a NULL document is NULL, as the decoder
/// appends NULL to every child of a missing or null document).
fn output_batch(
    schema: &SchemaRef,
    outputs: &[Output],
    decoder: &mut RowDecoder,
) -> Result<RecordBatch> {
    let rows = decoder.rows();
    let decoded = decoder.finish();
    let mut columns = Vec::with_capacity(outputs.len());
    for output in outputs {
        let mut array = Arc::clone(&decoded[output.field]);
        for name in &output.subpath {
            array = array
                .as_struct_opt()
                .and_then(|s| s.column_by_name(name))
                .cloned()
                .ok_or_else(|| {
                    DataFusionError::Internal(format!("decoded document has no field {name}"))
                })?;
        }
        columns.push(array);
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
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
