//! Helpers for connectors' plan nodes and optimizer rules: statement
//! parameters bound into scans, node rewriting, leaf properties and
//! methods, and the row counts `EXPLAIN ANALYZE` shows.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};

/// The values of a prepared statement's parameters (`$1` is the first),
/// for one execution of a plan made with the placeholders left in.
///
/// A session keeps one such *generic* plan per parameterized statement
/// whose placeholders were all pushed into remote scans, and binds each
/// execution's values into it through [`ExecutionPlan::with_new_state`]
/// instead of planning the statement again; a scan holding placeholders
/// sends them to its server as parameters of its own query.
///
/// [`ExecutionPlan::with_new_state`]: datafusion::physical_plan::ExecutionPlan::with_new_state
#[derive(Debug, Clone, PartialEq)]
pub struct QueryParams(pub Vec<datafusion::common::ScalarValue>);

impl QueryParams {
    /// The value of placeholder `id` (`"$2"`) as `data_type`.
    pub fn value(
        &self,
        id: &str,
        data_type: &datafusion::arrow::datatypes::DataType,
    ) -> Result<datafusion::common::ScalarValue> {
        let value = id
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.0.get(i))
            .ok_or_else(|| DataFusionError::Execution(format!("no value for parameter {id}")))?;
        if value.data_type() == *data_type {
            Ok(value.clone())
        } else {
            value.cast_to(data_type)
        }
    }
}

/// Rewrites a plan bottom-up, replacing each node `replace` returns a new
/// node for: the body of optimizer rules that rewrite one node shape.
pub fn replace_nodes_up(
    plan: datafusion::logical_expr::LogicalPlan,
    replace: impl Fn(
        &datafusion::logical_expr::LogicalPlan,
    ) -> Result<Option<datafusion::logical_expr::LogicalPlan>>,
) -> Result<datafusion::common::tree_node::Transformed<datafusion::logical_expr::LogicalPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    plan.transform_up(|node| match replace(&node)? {
        Some(replaced) => Ok(Transformed::yes(replaced)),
        None => Ok(Transformed::no(node)),
    })
}

/// Connectors append rows; `INSERT OVERWRITE`/`REPLACE INTO` are refused
/// with a message naming the table.
pub fn append_only(insert_op: datafusion::logical_expr::dml::InsertOp, table: &str) -> Result<()> {
    if insert_op != datafusion::logical_expr::dml::InsertOp::Append {
        return Err(DataFusionError::NotImplemented(format!(
            "{insert_op} into {table} is not supported; only INSERT INTO"
        )));
    }
    Ok(())
}

/// A scan node's plan properties: `partitions` unordered, bounded partitions
/// emitted incrementally.
pub fn leaf_plan_properties(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    partitions: usize,
) -> Arc<datafusion::physical_plan::PlanProperties> {
    use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
    Arc::new(datafusion::physical_plan::PlanProperties::new(
        datafusion::physical_expr::EquivalenceProperties::new(Arc::clone(schema)),
        datafusion::physical_plan::Partitioning::UnknownPartitioning(partitions.max(1)),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// The `ExecutionPlan` methods every connector's scan node (a leaf with
/// `schema` and `properties` fields) writes the same way. With a second
/// argument, the field (a `Vec<Arc<dyn PhysicalExpr>>`) holding the dynamic
/// filters the node applies: they are visited, so the joins producing them
/// see them used and fill them in.
#[macro_export]
macro_rules! leaf_execution_plan_methods {
    ($name:literal) => {
        $crate::leaf_execution_plan_methods!(@methods $name);

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
            ) -> datafusion::error::Result<
                datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }
    };
    ($name:literal, $filters:ident) => {
        $crate::leaf_execution_plan_methods!(@methods $name);

        fn apply_expressions(
            &self,
            f: &mut dyn FnMut(
                &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
            ) -> datafusion::error::Result<
                datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            use datafusion::common::tree_node::TreeNodeRecursion;
            for filter in &self.$filters {
                if f(filter)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        }
    };
    (@methods $name:literal) => {
        fn name(&self) -> &str {
            $name
        }

        fn properties(&self) -> &std::sync::Arc<datafusion::physical_plan::PlanProperties> {
            &self.properties
        }

        fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
            std::sync::Arc::clone(&self.schema)
        }

        fn children(&self) -> Vec<&std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
            Vec::new()
        }

        #[allow(deprecated)]
        fn with_new_children(
            self: std::sync::Arc<Self>,
            _children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        ) -> datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>
        {
            // A leaf: there are no children to replace.
            Ok(self)
        }
    };
}

/// Counts the rows `stream` yields into `metrics` (partition `partition`),
/// so `EXPLAIN ANALYZE` shows how many rows each remote read returned.
pub fn count_output_rows(
    stream: datafusion::execution::SendableRecordBatchStream,
    metrics: &datafusion::physical_plan::metrics::ExecutionPlanMetricsSet,
    partition: usize,
) -> datafusion::execution::SendableRecordBatchStream {
    use futures::StreamExt;
    let baseline = datafusion::physical_plan::metrics::BaselineMetrics::new(metrics, partition);
    let schema = stream.schema();
    let counted = stream.map(move |batch| {
        if let Ok(batch) = &batch {
            baseline.record_output(batch.num_rows());
        }
        batch
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, counted))
}

/// The value of a constant expression (a literal, possibly cast or
/// aliased): what an `UPDATE … SET column = value` may send to a backend
/// as one statement.
pub fn constant_value(
    expr: &datafusion::logical_expr::Expr,
) -> Option<datafusion::common::ScalarValue> {
    use datafusion::logical_expr::Expr;
    match expr {
        Expr::Literal(value, _) => Some(value.clone()),
        Expr::Cast(cast) => constant_value(&cast.expr)?
            .cast_to(cast.field.data_type())
            .ok(),
        Expr::Alias(alias) => constant_value(&alias.expr),
        _ => None,
    }
}

/// The schema of a statement that reports how many rows it changed: one
/// `count` column, as DataFusion's DML plans have.
pub fn count_schema() -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

/// The one-row stream of a remote statement that changes rows: `run` is
/// sent when the stream is first polled and its count becomes the row,
/// counted into `metrics` (so the statement is seen to have run).
pub fn count_row_stream(
    run: impl std::future::Future<Output = Result<u64>> + Send + 'static,
    metrics: &datafusion::physical_plan::metrics::ExecutionPlanMetricsSet,
    partition: usize,
) -> datafusion::execution::SendableRecordBatchStream {
    use datafusion::arrow::array::{RecordBatch, UInt64Array};
    let schema = count_schema();
    let batch_schema = Arc::clone(&schema);
    let row = async move {
        let count = run.await?;
        Ok(RecordBatch::try_new(
            batch_schema,
            vec![Arc::new(UInt64Array::from(vec![count]))],
        )?)
    };
    let stream = Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(row),
        ),
    );
    count_output_rows(stream, metrics, partition)
}
