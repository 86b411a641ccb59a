//! GROUP BY … count(*) as a MongoDB aggregation pipeline.
//!
//! An aggregate directly over a collection's scan — every filter pushed
//! exactly, grouped by top-level fields of scalar types, counting rows — runs
//! as `$match` → `$group` → `$project` in MongoDB and returns one document
//! per group instead of every document. Only where the answer is exactly
//! DataFusion's: missing and null group together as SQL's NULL
//! (`$ifNull`), values that do not fit their column still fail the query
//! (they reach the decoder as group keys), an aggregate without GROUP BY
//! over nothing still gives its one row. Other aggregates (sum, min, max …)
//! could hide such values or differ on NULLs, and stay in DataFusion.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{TableProvider, TableType, provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{AggregateFunction, Alias};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Projection};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use mongodb::bson::{Bson, Document, doc};

use crate::discovery::MongoDiscovery;
use crate::options::InvalidValues;
use crate::pushdown::filter::translate;
use crate::scan::{MongoScanExec, Pipeline, plain_field_name};
use crate::table::MongoTable;
use crate::types::schema::Shape;

/// Replaces such aggregates by a scan of the pipeline's result.
#[derive(Debug, Default)]
pub struct MongoAggregatePushdown;

impl OptimizerRule for MongoAggregatePushdown {
    fn name(&self) -> &str {
        "koios_mongodb_aggregate_pushdown"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        koios_connector::replace_nodes_up(plan, |node| match node {
            LogicalPlan::Aggregate(aggregate) => pipeline_scan(aggregate),
            _ => Ok(None),
        })
    }
}

/// Group keys MongoDB compares as DataFusion does.
fn groupable(shape: &Shape) -> bool {
    matches!(
        shape,
        Shape::Int32
            | Shape::Int64
            | Shape::String
            | Shape::Bool
            | Shape::DateTime
            | Shape::ObjectId
    )
}

fn pipeline_scan(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::TableScan(scan) = aggregate.input.as_ref() else {
        return Ok(None);
    };
    let Ok(provider) = source_as_provider(&scan.source) else {
        return Ok(None);
    };
    let Some(table) = provider.as_ref().downcast_ref::<MongoTable>() else {
        return Ok(None);
    };
    if scan.fetch.is_some() || table.mongo.options.invalid_values != InvalidValues::Error {
        return Ok(None);
    }
    let mut matches = Vec::new();
    for filter in &scan.filters {
        match translate(filter, &table.columns) {
            Some(t) if t.exact => matches.push(t.filter),
            _ => return Ok(None),
        }
    }
    let mut fields: Vec<(String, Shape)> = Vec::new();
    let mut keys = Document::new();
    for (i, expr) in aggregate.group_expr.iter().enumerate() {
        let Expr::Column(column) = expr else {
            return Ok(None);
        };
        let Some((name, shape)) = table.columns.iter().find(|(n, _)| *n == column.name) else {
            return Ok(None);
        };
        if !groupable(shape) || !plain_field_name(name) {
            return Ok(None);
        }
        let key = format!("k{i}");
        keys.insert(&key, doc! { "$ifNull": [format!("${name}"), Bson::Null] });
        fields.push((key, shape.clone()));
    }
    let mut group = doc! {
        "_id": if keys.is_empty() { Bson::Null } else { Bson::Document(keys.clone()) },
    };
    let mut counts = Document::new();
    for (j, expr) in aggregate.aggr_expr.iter().enumerate() {
        let inner = match expr {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
            return Ok(None);
        };
        // count(*) (DataFusion's count of a non-null constant).
        let counts_rows = func.name() == "count"
            && !params.distinct
            && params.filter.is_none()
            && params.order_by.is_empty()
            && matches!(&params.args[..], [Expr::Literal(v, _)] if !v.is_null());
        if !counts_rows {
            return Ok(None);
        }
        let name = format!("a{j}");
        group.insert(&name, doc! { "$sum": 1 });
        counts.insert(&name, 0i64);
        fields.push((name, Shape::Int64));
    }
    let mut project = doc! { "_id": 0 };
    for key in keys.keys() {
        project.insert(key, format!("$_id.{key}"));
    }
    for name in counts.keys() {
        project.insert(name, 1);
    }
    let mut stages = Vec::new();
    match matches.len() {
        0 => {}
        1 => stages.push(doc! { "$match": matches.remove(0) }),
        _ => stages.push(doc! { "$match": { "$and": matches } }),
    }
    stages.push(doc! { "$group": group });
    stages.push(doc! { "$project": project });
    let pipeline = Pipeline {
        stages,
        empty_row: aggregate.group_expr.is_empty().then_some(counts),
    };
    let result = PipelineTable {
        mongo: Arc::clone(&table.mongo),
        database: table.database.clone(),
        collection: table.collection.clone(),
        schema: Shape::schema(&fields),
        fields,
        pipeline,
    };
    let reference = TableReference::bare("koios_mongodb_aggregate");
    let scan = LogicalPlanBuilder::scan(
        reference.clone(),
        provider_as_source(Arc::new(result)),
        None,
    )?
    .build()?;
    // The aggregate's own output names and qualifiers, for the plan above.
    let columns = aggregate
        .schema
        .iter()
        .zip(scan.schema().fields())
        .map(|((qualifier, field), ours)| {
            Expr::Column(Column::new(Some(reference.clone()), ours.name()))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(scan),
    )?)))
}

/// The result documents of one pipeline, as a table.
#[derive(Debug)]
struct PipelineTable {
    mongo: Arc<MongoDiscovery>,
    database: String,
    collection: String,
    fields: Vec<(String, Shape)>,
    schema: SchemaRef,
    pipeline: Pipeline,
}

#[async_trait]
impl TableProvider for PipelineTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection = match projection {
            Some(p) => p.clone(),
            None => (0..self.fields.len()).collect(),
        };
        Ok(Arc::new(
            MongoScanExec::new(
                Arc::clone(&self.mongo),
                self.database.clone(),
                self.collection.clone(),
                &self.fields,
                projection,
                Vec::new(),
            )
            .with_pipeline(self.pipeline.clone()),
        ))
    }
}
