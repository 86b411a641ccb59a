//! The logical node standing for a pushed-down query (shown by `EXPLAIN`
//! with its SQL) and the query planner that turns it into a
//! [`RemoteSubqueryExec`](crate::subplan::exec::RemoteSubqueryExec).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::DFSchemaRef;
use datafusion::error::Result;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, LogicalPlan, SortExpr, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, create_physical_sort_exprs};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};

use crate::backend::SqlBackend;
use crate::remote::Semantics;
use crate::subplan::exec::RemoteSubqueryExec;

/// Runs one pushed-down query (type-erased, so the plan node needs no `B`).
pub(crate) trait SubplanRunner: Send + Sync {
    fn plan(
        &self,
        schema: SchemaRef,
        ordering: Option<LexOrdering>,
    ) -> Result<Arc<dyn ExecutionPlan>>;
}

pub(crate) struct Runner<B: SqlBackend> {
    pub(crate) backend: Arc<B>,
    pub(crate) sql: String,
    pub(crate) codecs: Vec<B::Codec>,
    pub(crate) semantics: Vec<Semantics>,
    pub(crate) rows: Option<u64>,
}

impl<B: SqlBackend> SubplanRunner for Runner<B> {
    fn plan(
        &self,
        schema: SchemaRef,
        ordering: Option<LexOrdering>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let properties = match ordering {
            None => koios_connector::leaf_plan_properties(&schema, 1),
            Some(ordering) => {
                let equivalences =
                    EquivalenceProperties::new_with_orderings(Arc::clone(&schema), [ordering]);
                let leaf = koios_connector::leaf_plan_properties(&schema, 1);
                Arc::new(leaf.as_ref().clone().with_eq_properties(equivalences))
            }
        };
        Ok(Arc::new(RemoteSubqueryExec {
            backend: Arc::clone(&self.backend),
            sql: self.sql.clone(),
            codecs: self.codecs.clone(),
            semantics: self.semantics.clone(),
            rows: self.rows,
            properties,
            schema,
            dynamic_filters: Vec::new(),
            sent: Arc::new(Mutex::new(None)),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }
}

/// A part of the plan replaced by one remote query.
#[derive(Clone)]
pub struct RemoteSubplanNode {
    pub(crate) source: String,
    pub(crate) sql: String,
    pub(crate) schema: DFSchemaRef,
    /// The ORDER BY the query ends with, over `schema`'s columns (empty if
    /// none): the order its rows arrive in, so no local sort repeats it.
    pub(crate) ordering: Vec<SortExpr>,
    pub(crate) runner: Arc<dyn SubplanRunner>,
}

impl RemoteSubplanNode {
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

impl fmt::Debug for RemoteSubplanNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteSubplan: source={}, sql={}", self.source, self.sql)
    }
}

impl PartialEq for RemoteSubplanNode {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.sql == other.sql && self.schema == other.schema
    }
}

impl Eq for RemoteSubplanNode {}

impl Hash for RemoteSubplanNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.source.hash(state);
        self.sql.hash(state);
    }
}

impl PartialOrd for RemoteSubplanNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (&self.source, &self.sql).partial_cmp(&(&other.source, &other.sql))
    }
}

impl UserDefinedLogicalNodeCore for RemoteSubplanNode {
    fn name(&self) -> &str {
        "RemoteSubplan"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        Vec::new()
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(self.clone())
    }
}

/// Plans [`RemoteSubplanNode`]s into remote subqueries; the SQL connectors
/// hand it to the engine (`Connector::extension_planners`).
#[derive(Debug, Default)]
pub struct SubplanPlanner;

#[async_trait]
impl ExtensionPlanner for SubplanPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<RemoteSubplanNode>() else {
            return Ok(None);
        };
        let schema: SchemaRef = Arc::new(node.schema.as_arrow().clone());
        // A sort expression that is not one of the output columns leaves
        // the order unknown (the local sort then stays).
        let ordering = create_physical_sort_exprs(
            &node.ordering,
            &node.schema,
            session.execution_props(),
            planning_ctx,
        )
        .ok()
        .and_then(LexOrdering::new);
        node.runner.plan(schema, ordering).map(Some)
    }
}
