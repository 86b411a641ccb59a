//! Reads of a mirrored table: one copy answers, another if it fails.
//!
//! A scan of a mirrored table expands ([`super::expand`]) to a
//! [`MirrorRead`]: one *alternative* per copy that is available, each an
//! ordinary plan over that copy's table. The rule [`MirrorPushdown`]
//! moves the operators above it (filters, projections, aggregates, sorts,
//! limits) into every alternative — each alternative yields the same rows,
//! so each may compute the same thing — and the connectors' rules then
//! push each alternative into its copy's source as one remote query.
//!
//! The physical [`FailoverExec`] chooses the copy when it runs, not when
//! planned (a plan may be kept and run again): the copies whose sources
//! are up, the one with the fastest last health check first (or the
//! first listed, with `read = 'first'`). If the chosen copy fails with a
//! connection-class error before its first rows arrive, the next copy
//! runs the query, unnoticed by the client; after the first rows an error
//! is the query's error.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::definition::{MemberName, ReadChoice};
use super::journal::CopyState;
use crate::engine::error::{codes, restate, sqlstate};
use crate::engine::sources::health::SourceHealth;

/// One copy a mirrored read may use: its name and its source's health
/// (read when the query runs; `None` if the source is not known).
#[derive(Debug, Clone)]
pub struct Copy {
    pub member: MemberName,
    pub health: Option<Arc<SourceHealth>>,
    /// Current or stale (a stale copy is never read).
    pub state: Arc<CopyState>,
}

/// The copies of one read, compared by name (health is live state).
#[derive(Debug, Clone)]
pub struct Copies {
    /// The `mirrored table koios.public.t` messages name.
    pub table: String,
    pub read: ReadChoice,
    pub copies: Vec<Copy>,
}

impl Copies {
    fn names(&self) -> Vec<&MemberName> {
        self.copies.iter().map(|c| &c.member).collect()
    }

    /// The order the current copies are tried in, now.
    fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.copies.len())
            .filter(|&i| !self.copies[i].state.is_stale())
            .collect();
        let state = |i: usize| {
            let health = self.copies[i].health.as_ref();
            let up = health.is_none_or(|h| h.is_up());
            let latency = match self.read {
                ReadChoice::Fastest => health.and_then(|h| h.detail().latency),
                ReadChoice::First => None,
            };
            // Down last; then the fastest (unknown latency after known).
            (!up, latency.is_none(), latency, i)
        };
        order.sort_by_key(|&i| state(i));
        order
    }
}

impl PartialEq for Copies {
    fn eq(&self, other: &Self) -> bool {
        self.table == other.table && self.read == other.read && self.names() == other.names()
    }
}

impl Eq for Copies {}

impl Hash for Copies {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.table.hash(state);
        self.names().hash(state);
    }
}

impl PartialOrd for Copies {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (&self.table, self.names()).partial_cmp(&(&other.table, other.names()))
    }
}

/// The logical node: the same rows from any of `alternatives` (one per
/// copy, in the order of `copies`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MirrorRead {
    pub copies: Copies,
    pub alternatives: Vec<LogicalPlan>,
    schema: DFSchemaRef,
}

impl MirrorRead {
    /// The node over `alternatives` (at least one; all of one shape).
    pub fn plan(copies: Copies, alternatives: Vec<LogicalPlan>) -> Result<LogicalPlan> {
        let schema = merged_schema(&alternatives)?;
        Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(MirrorRead {
                copies,
                alternatives,
                schema,
            }),
        }))
    }
}

/// The first alternative's schema, a column nullable where any
/// alternative's is (copies of different engines say it differently).
fn merged_schema(alternatives: &[LogicalPlan]) -> Result<DFSchemaRef> {
    let first = alternatives
        .first()
        .ok_or_else(|| DataFusionError::Internal("a mirrored read without copies".into()))?;
    let fields = first
        .schema()
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let nullable = alternatives
                .iter()
                .any(|a| a.schema().fields().get(i).is_none_or(|f| f.is_nullable()));
            (
                qualifier.cloned(),
                Arc::new(field.as_ref().clone().with_nullable(nullable)),
            )
        })
        .collect::<Vec<_>>();
    Ok(Arc::new(DFSchema::new_with_metadata(
        fields,
        first.schema().metadata().clone(),
    )?))
}

impl PartialOrd for MirrorRead {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.copies.partial_cmp(&other.copies) {
            Some(std::cmp::Ordering::Equal) => self.alternatives.partial_cmp(&other.alternatives),
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for MirrorRead {
    fn name(&self) -> &str {
        "MirrorRead"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        self.alternatives.iter().collect()
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let copies: Vec<String> = self.copies.names().iter().map(|m| m.to_string()).collect();
        write!(
            f,
            "MirrorRead: {} read={} copies=[{}]",
            self.copies.table,
            self.copies.read.as_str(),
            copies.join(", ")
        )
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(MirrorRead {
            copies: self.copies.clone(),
            schema: merged_schema(&inputs)?,
            alternatives: inputs,
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        // Each alternative is the whole of the rows: a limit holds in each.
        true
    }
}

/// Moves single-input operators above a [`MirrorRead`] into each of its
/// alternatives, so that each copy is asked for the finished result.
#[derive(Debug, Default)]
pub struct MirrorPushdown;

impl OptimizerRule for MirrorPushdown {
    fn name(&self) -> &str {
        "koios_mirror_pushdown"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|node| {
            let movable = matches!(
                node,
                LogicalPlan::Projection(_)
                    | LogicalPlan::Filter(_)
                    | LogicalPlan::Aggregate(_)
                    | LogicalPlan::Sort(_)
                    | LogicalPlan::Limit(_)
                    | LogicalPlan::Distinct(_)
                    | LogicalPlan::SubqueryAlias(_)
            );
            let inputs = node.inputs();
            let [LogicalPlan::Extension(extension)] = inputs.as_slice() else {
                return Ok(Transformed::no(node));
            };
            let Some(read) = extension.node.as_any().downcast_ref::<MirrorRead>() else {
                return Ok(Transformed::no(node));
            };
            if !movable {
                return Ok(Transformed::no(node));
            }
            let read = read.clone();
            let expressions = node.expressions();
            let alternatives = read
                .alternatives
                .into_iter()
                .map(|alternative| node.with_new_exprs(expressions.clone(), vec![alternative]))
                .collect::<Result<Vec<_>>>()?;
            Ok(Transformed::yes(MirrorRead::plan(
                read.copies,
                alternatives,
            )?))
        })
    }
}

/// Plans [`MirrorRead`] as [`FailoverExec`].
#[derive(Debug, Default)]
pub struct MirrorReadPlanner;

#[async_trait]
impl ExtensionPlanner for MirrorReadPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(read) = node.as_any().downcast_ref::<MirrorRead>() else {
            return Ok(None);
        };
        Ok(Some(Arc::new(FailoverExec::new(
            read.copies.clone(),
            physical_inputs.to_vec(),
        ))))
    }
}

/// Runs one alternative — the first copy in [`Copies::order`] that
/// answers.
#[derive(Debug)]
pub struct FailoverExec {
    copies: Copies,
    alternatives: Vec<Arc<dyn ExecutionPlan>>,
    properties: Arc<PlanProperties>,
}

impl FailoverExec {
    fn new(copies: Copies, alternatives: Vec<Arc<dyn ExecutionPlan>>) -> Self {
        // One partition: the chosen alternative's partitions are merged.
        let alternatives: Vec<Arc<dyn ExecutionPlan>> = alternatives
            .into_iter()
            .map(|plan| {
                if plan.output_partitioning().partition_count() > 1 {
                    Arc::new(CoalescePartitionsExec::new(plan)) as Arc<dyn ExecutionPlan>
                } else {
                    plan
                }
            })
            .collect();
        // Nullable where any alternative's column is, so every
        // alternative's batches fit it.
        let schema = match alternatives.first() {
            Some(first) => {
                let fields = first
                    .schema()
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, field)| {
                        let nullable = alternatives
                            .iter()
                            .any(|a| a.schema().fields().get(i).is_none_or(|f| f.is_nullable()));
                        field.as_ref().clone().with_nullable(nullable)
                    })
                    .collect::<Vec<_>>();
                Arc::new(arrow::datatypes::Schema::new_with_metadata(
                    fields,
                    first.schema().metadata().clone(),
                ))
            }
            None => Arc::new(arrow::datatypes::Schema::empty()),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        FailoverExec {
            copies,
            alternatives,
            properties,
        }
    }
}

impl FailoverExec {
    /// The alternatives in the order they are tried now, each with its
    /// copy.
    pub fn ordered_alternatives(&self) -> Vec<(MemberName, &Arc<dyn ExecutionPlan>)> {
        self.copies
            .order()
            .into_iter()
            .map(|i| (self.copies.copies[i].member.clone(), &self.alternatives[i]))
            .collect()
    }

    /// `mirrored table koios.public.t`.
    pub fn table(&self) -> &str {
        &self.copies.table
    }
}

impl DisplayAs for FailoverExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let copies: Vec<String> = self.copies.names().iter().map(|m| m.to_string()).collect();
        write!(
            f,
            "FailoverExec: {} read={} copies=[{}]",
            self.copies.table,
            self.copies.read.as_str(),
            copies.join(", ")
        )
    }
}

/// Whether `error` says the copy could not be reached (another may be).
fn copy_unreachable(error: &DataFusionError) -> bool {
    let code = sqlstate(error).code;
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

/// Starts one copy's answer: its stream of items (record batches, or data
/// rows written for the client).
pub type Attempt<T> = Box<dyn FnOnce() -> Result<BoxStream<'static, Result<T>>> + Send>;

/// The items of the first of `attempts` (each a copy and how to start its
/// answer) that answers: a copy failing with a connection-class error
/// before its first item is skipped for the next; once an item was
/// produced, an error is the query's, naming the copy. `table` is how
/// messages name the mirrored table.
pub fn first_answering<T: Send + 'static>(
    table: String,
    attempts: Vec<(MemberName, Attempt<T>)>,
) -> BoxStream<'static, Result<T>> {
    let chosen = async move {
        let mut failures = Vec::new();
        for (copy, start) in attempts {
            let attempt = async {
                let mut stream = start()?;
                let first = stream.next().await.transpose()?;
                Ok::<_, DataFusionError>((first, stream))
            };
            match attempt.await {
                Ok((first, rest)) => {
                    let table = table.clone();
                    let rest = rest.map(move |item| {
                        item.map_err(|e| {
                            restate(&e, |m| {
                                format!("{table}: copy {copy} failed after the first rows were sent: {m}")
                            })
                        })
                    });
                    return Ok(futures::stream::iter(first.map(Ok)).chain(rest).boxed());
                }
                Err(error) if copy_unreachable(&error) => {
                    tracing::warn!(
                        table = %table,
                        copy = %copy,
                        "a copy failed before answering; trying the next: {error}"
                    );
                    failures.push(format!("copy {copy}: {}", sqlstate(&error).message));
                }
                Err(error) => return Err(error),
            }
        }
        if failures.is_empty() {
            return Err(koios_connector::sql_error!(
                codes::CONNECTION_FAILURE,
                "{table}: no current copy is available (a stale copy is not read until it has caught up with the writes it missed)"
            ));
        }
        Err(koios_connector::sql_error!(
            codes::CONNECTION_FAILURE,
            "{table}: no copy could answer ({})",
            failures.join("; ")
        ))
    };
    futures::stream::once(chosen)
        .map(|chosen| match chosen {
            Ok(stream) => stream,
            Err(error) => futures::stream::once(async { Err(error) }).boxed(),
        })
        .flatten()
        .boxed()
}

impl ExecutionPlan for FailoverExec {
    fn name(&self) -> &str {
        "FailoverExec"
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.alternatives.iter().collect()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.alternatives.len()]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(FailoverExec::new(self.copies.clone(), children)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "FailoverExec has one partition, not {partition}"
            )));
        }
        let schema = self.schema();
        let attempts = self
            .copies
            .order()
            .into_iter()
            .map(|index| {
                let alternative = Arc::clone(&self.alternatives[index]);
                let context = Arc::clone(&context);
                let schema = Arc::clone(&schema);
                let start = move || -> Result<BoxStream<'static, Result<RecordBatch>>> {
                    let stream = alternative.execute(0, context)?;
                    // Every alternative's batches in the node's schema.
                    Ok(stream
                        .map(move |batch| Ok(batch?.with_schema(Arc::clone(&schema))?))
                        .boxed())
                };
                (
                    self.copies.copies[index].member.clone(),
                    Box::new(start) as Attempt<RecordBatch>,
                )
            })
            .collect();
        let stream = first_answering(self.copies.table.clone(), attempts);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(name: &str) -> MemberName {
        MemberName {
            source: name.into(),
            schema: "public".into(),
            table: "t".into(),
        }
    }

    fn answers(items: Vec<Result<u32>>) -> Attempt<u32> {
        Box::new(move || Ok(futures::stream::iter(items).boxed()))
    }

    fn unreachable() -> DataFusionError {
        koios_connector::sql_error!(codes::CONNECTION_FAILURE, "connection refused")
    }

    async fn collect(stream: BoxStream<'static, Result<u32>>) -> Vec<Result<u32>> {
        stream.collect().await
    }

    #[tokio::test]
    async fn a_copy_failing_before_its_first_item_is_skipped() {
        let attempts = vec![
            (copy("a"), answers(vec![Err(unreachable())])),
            (copy("b"), Box::new(|| Err(unreachable())) as Attempt<u32>),
            (copy("c"), answers(vec![Ok(1), Ok(2)])),
        ];
        let got = collect(first_answering("mirrored table t".into(), attempts)).await;
        assert_eq!(
            got.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[tokio::test]
    async fn other_errors_and_errors_after_the_first_item_are_the_querys() {
        let division = || DataFusionError::Execution("division by zero".into());
        let attempts = vec![
            (copy("a"), answers(vec![Err(division())])),
            (copy("b"), answers(vec![Ok(1)])),
        ];
        let got = collect(first_answering("mirrored table t".into(), attempts)).await;
        assert!(matches!(got.as_slice(), [Err(_)]), "not retried: {got:?}");
        let attempts = vec![
            (copy("a"), answers(vec![Ok(1), Err(unreachable())])),
            (copy("b"), answers(vec![Ok(9)])),
        ];
        let got = collect(first_answering("mirrored table t".into(), attempts)).await;
        assert_eq!(got.len(), 2);
        let error = got[1].as_ref().expect_err("the copy's failure");
        assert!(
            sqlstate(error)
                .message
                .contains("copy a.public.t failed after the first rows were sent"),
            "{error}"
        );
        // Every copy unreachable: one error naming each.
        let attempts = vec![
            (copy("a"), answers(vec![Err(unreachable())])),
            (copy("b"), answers(vec![Err(unreachable())])),
        ];
        let got = collect(first_answering("mirrored table t".into(), attempts)).await;
        let error = got[0].as_ref().expect_err("no copy answered");
        let message = sqlstate(error).message;
        assert!(
            message.contains("no copy could answer")
                && message.contains("copy a.public.t")
                && message.contains("copy b.public.t"),
            "{message}"
        );
        assert_eq!(sqlstate(error).code, codes::CONNECTION_FAILURE);
    }
}
