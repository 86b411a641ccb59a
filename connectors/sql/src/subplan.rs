//! Whole-subplan pushdown: a part of the logical plan that reads only tables
//! of one SQL source — joins, filters, aggregates, DISTINCT, ORDER BY + LIMIT —
//! is unparsed into one query in that source's dialect and replaced by a
//! single remote scan.
//!
//! [`SubplanPushdown`] is an optimizer rule that runs after DataFusion's own
//! (so filters, projections and limits are already pushed into the scans).
//! It walks the plan bottom-up and accepts a node only when the server would
//! compute exactly what DataFusion computes: every expression is checked
//! against the backend's [`Semantics`] for the values involved (collations,
//! float rules, NULL ordering), the aggregate functions whose results match
//! (count, sum, min, max; avg over floats), and exact casts. Whatever is not
//! accepted stays in DataFusion, so pushdown never changes an answer; if the
//! unparser cannot write a part, that part stays local too.
//!
//! The replaced part becomes a [`RemoteSubplanNode`] (shown by `EXPLAIN` with
//! its SQL), planned by [`SubplanQueryPlanner`] into a [`RemoteSubqueryExec`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DFSchemaRef, JoinType, NullEquality, TableReference};
use datafusion::config::ConfigOptions;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::functions_aggregate::expr_fn;
use datafusion::logical_expr::expr::{AggregateFunction, Alias, ScalarFunction};
use datafusion::logical_expr::logical_plan::{
    Aggregate, Distinct, Extension, Filter, Join, Projection, Sort, SubqueryAlias, TableScan,
};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Between, BinaryExpr, Case, Cast, Expr, ExprSchemable, FetchType, Like, LogicalPlan, Operator,
    SkipType, SortExpr, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalExpr, create_physical_sort_exprs,
};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::TryStreamExt;

use crate::avg::DecimalAvg;
use crate::backend::SqlBackend;
use crate::dynamic;
use crate::remote::Semantics;
use crate::table::SqlTable;

/// Longest alias written for a computed column.
const MAX_ALIAS_LEN: usize = 60;

/// The optimizer rule for sources of backend type `B`.
pub struct SubplanPushdown<B: SqlBackend> {
    _backend: std::marker::PhantomData<fn() -> B>,
}

impl<B: SqlBackend> SubplanPushdown<B> {
    pub fn new() -> Self {
        Self {
            _backend: std::marker::PhantomData,
        }
    }
}

impl<B: SqlBackend> Default for SubplanPushdown<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: SqlBackend> fmt::Debug for SubplanPushdown<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubplanPushdown<{}>", std::any::type_name::<B>())
    }
}

/// What is known about one output column of a pushable subtree.
#[derive(Debug, Clone)]
struct Origin<C> {
    semantics: Semantics,
    /// How to read the column as the server returns it; `None` when the
    /// remote query must cast it first (computed values, columns the scan
    /// reads through a cast).
    codec: Option<C>,
}

/// A subtree the source can run as a whole.
struct Pushable<B: SqlBackend> {
    backend: Arc<B>,
    origins: Vec<Origin<B::Codec>>,
    /// Whether running it remotely saves work (a join, filter, aggregate,
    /// DISTINCT or sort), rather than re-stating a plain table scan.
    worth: bool,
    /// Koios table reference → remote `schema.table`, per scan.
    tables: Vec<(TableReference, TableReference)>,
    /// A rough row count (the tables' estimates through the operators), so
    /// joins above put the smaller input on the build side.
    rows: Option<u64>,
}

impl<B: SqlBackend> OptimizerRule for SubplanPushdown<B> {
    fn name(&self) -> &str {
        "koios_subplan_pushdown"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let mut changed = false;
        let (plan, pushable) = self.visit(plan, &mut changed)?;
        let plan = match pushable {
            Some(p) if p.worth => match replace(&plan, &p)? {
                Some(replaced) => {
                    changed = true;
                    replaced
                }
                None => plan,
            },
            _ => plan,
        };
        Ok(if changed {
            Transformed::yes(plan)
        } else {
            Transformed::no(plan)
        })
    }
}

impl<B: SqlBackend> SubplanPushdown<B> {
    /// Rewrites the children of `plan` and says whether `plan` itself can be
    /// pushed. Children that can be pushed but whose parent cannot are
    /// replaced here.
    fn visit(
        &self,
        plan: LogicalPlan,
        changed: &mut bool,
    ) -> Result<(LogicalPlan, Option<Pushable<B>>)> {
        if let LogicalPlan::TableScan(scan) = &plan {
            let pushable = self.scan(scan);
            return Ok((plan, pushable));
        }
        // Subqueries left in expressions (uncorrelated scalar subqueries)
        // are plans of their own: their parts run remotely too.
        let plan = plan
            .map_subqueries(|subquery| {
                let (rewritten, pushable) = self.visit(subquery, changed)?;
                let rewritten = match pushable {
                    Some(p) if p.worth => match replace(&rewritten, &p)? {
                        Some(replaced) => {
                            *changed = true;
                            replaced
                        }
                        None => rewritten,
                    },
                    _ => rewritten,
                };
                Ok(Transformed::yes(rewritten))
            })?
            .data;
        let inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
        if inputs.is_empty() {
            return Ok((plan, None));
        }
        let mut visited = Vec::with_capacity(inputs.len());
        for input in inputs {
            visited.push(self.visit(input, changed)?);
        }
        let children: Option<Vec<&Pushable<B>>> = visited.iter().map(|(_, p)| p.as_ref()).collect();
        let same_source = children.as_ref().is_some_and(|c| {
            c.windows(2)
                .all(|w| Arc::ptr_eq(&w[0].backend, &w[1].backend))
        });
        let pushable = match (&children, same_source) {
            (Some(children), true) => {
                let rebuilt = plan.with_new_exprs(
                    plan.expressions(),
                    visited.iter().map(|(p, _)| p.clone()).collect(),
                )?;
                let rows: Vec<Option<u64>> = children.iter().map(|c| c.rows).collect();
                match self.node(&rebuilt, children) {
                    Some(mut p) => {
                        p.rows = estimate_rows(&rebuilt, &rows);
                        Some((rebuilt, p))
                    }
                    None => {
                        // An aggregate held back only by avg of decimals:
                        // sums and counts run remotely, the division here.
                        if let LogicalPlan::Aggregate(aggregate) = &rebuilt
                            && let Some((remote_part, finish)) = split_decimal_avg(aggregate)?
                            && let Some(mut p) = self.node(&remote_part, children)
                        {
                            p.rows = estimate_rows(&remote_part, &rows);
                            if let Some(remote) = replace(&remote_part, &p)? {
                                *changed = true;
                                let finished = Projection::try_new(finish, Arc::new(remote))?;
                                return Ok((LogicalPlan::Projection(finished), None));
                            }
                        }
                        None
                    }
                }
            }
            _ => None,
        };
        if let Some((rebuilt, pushable)) = pushable {
            return Ok((rebuilt, Some(pushable)));
        }
        // This node stays local: its pushable children run remotely.
        let mut new_inputs = Vec::with_capacity(visited.len());
        for (input, pushable) in visited {
            match pushable {
                Some(p) if p.worth => match replace(&input, &p)? {
                    Some(replaced) => {
                        *changed = true;
                        new_inputs.push(replaced)
                    }
                    None => new_inputs.push(input),
                },
                _ => new_inputs.push(input),
            }
        }
        let plan = plan.with_new_exprs(plan.expressions(), new_inputs)?;
        Ok((plan, None))
    }

    fn scan(&self, scan: &TableScan) -> Option<Pushable<B>> {
        // A scan comparing with a statement's parameters takes their values
        // when it runs; a pushed subplan is SQL fixed at planning.
        if scan.filters.iter().any(crate::query::has_placeholder) {
            return None;
        }
        let provider = source_as_provider(&scan.source).ok()?;
        let table = provider.as_ref().downcast_ref::<SqlTable<B>>()?;
        let backend = table.backend();
        let remote = table.remote_table();
        let origins = scan
            .projected_schema
            .fields()
            .iter()
            .map(|field| {
                let column = remote.column(field.name())?;
                let plain = matches!(backend.select_expr(column), Expr::Column(_));
                Some(Origin {
                    semantics: backend.column_semantics(column),
                    codec: plain.then(|| column.codec.clone()),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Pushable {
            backend: Arc::clone(backend),
            origins,
            worth: false,
            rows: remote.row_estimate,
            tables: vec![(
                scan.table_name.clone(),
                TableReference::partial(remote.name.schema.as_str(), remote.name.table.as_str()),
            )],
        })
    }

    /// Whether `plan`, whose children are all pushable to one source, is too.
    fn node(&self, plan: &LogicalPlan, children: &[&Pushable<B>]) -> Option<Pushable<B>> {
        let first = children.first()?;
        let backend = Arc::clone(&first.backend);
        let tables: Vec<_> = children.iter().flat_map(|c| c.tables.clone()).collect();
        let inherit = |worth: bool| Pushable {
            backend: Arc::clone(&backend),
            origins: first.origins.clone(),
            worth: first.worth || worth,
            tables: tables.clone(),
            rows: None,
        };
        match plan {
            LogicalPlan::Filter(Filter {
                predicate, input, ..
            }) => {
                let checker = Checker::new(backend.as_ref(), input.schema(), &first.origins);
                checker.boolean(predicate).then(|| inherit(true))
            }
            LogicalPlan::Projection(Projection {
                expr,
                input,
                schema,
                ..
            }) => {
                // A projection over a pushed sort would lose the order the
                // local re-sort above the remote query needs; keep it local.
                if sorted_root(input) {
                    return None;
                }
                // Computed columns are written with their names as aliases,
                // which servers cut (PostgreSQL at 63 bytes, MySQL refuses
                // derived-table columns over 64).
                let long_name = expr
                    .iter()
                    .zip(schema.fields())
                    .any(|(e, f)| !matches!(e, Expr::Column(_)) && f.name().len() > MAX_ALIAS_LEN);
                if long_name {
                    return None;
                }
                let checker = Checker::new(backend.as_ref(), input.schema(), &first.origins);
                let origins = expr
                    .iter()
                    .map(|e| checker.output(e))
                    .collect::<Option<Vec<_>>>()?;
                Some(Pushable {
                    origins,
                    ..inherit(false)
                })
            }
            // An aggregate's columns are named by their expressions, which
            // SQL cannot reference from outside its SELECT: it needs the
            // projection DataFusion usually keeps above it.
            LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. }) => (!sorted_root(input)
                && !matches!(input.as_ref(), LogicalPlan::Aggregate(_)))
            .then(|| inherit(false)),
            LogicalPlan::Limit(limit) => {
                let literal = matches!(limit.get_skip_type().ok()?, SkipType::Literal(_))
                    && matches!(limit.get_fetch_type().ok()?, FetchType::Literal(_));
                literal.then(|| inherit(false))
            }
            LogicalPlan::Sort(Sort { expr, input, .. }) => {
                let checker = Checker::new(backend.as_ref(), input.schema(), &first.origins);
                let native_nulls = backend
                    .dialect()
                    .unparser_dialect()
                    .supports_nulls_first_in_sort();
                expr.iter()
                    .all(|s| {
                        checker.semantics(&s.expr).is_some_and(|m| m.ordering)
                            && (native_nulls
                                // MySQL puts NULLs first ascending, last descending.
                                || s.asc == s.nulls_first
                                || !s.expr.nullable(input.schema()).unwrap_or(true))
                    })
                    .then(|| inherit(true))
            }
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let groupable = first.origins.iter().all(|o| o.semantics.equality);
                (groupable && !sorted_root(input)).then(|| inherit(true))
            }
            LogicalPlan::Aggregate(Aggregate {
                input,
                group_expr,
                aggr_expr,
                ..
            }) => {
                if sorted_root(input) {
                    return None;
                }
                let checker = Checker::new(backend.as_ref(), input.schema(), &first.origins);
                let mut origins = Vec::with_capacity(group_expr.len() + aggr_expr.len());
                for e in group_expr {
                    if !checker.semantics(e)?.equality {
                        return None;
                    }
                    origins.push(checker.output(e)?);
                }
                for e in aggr_expr {
                    origins.push(checker.aggregate(e)?);
                }
                Some(Pushable {
                    origins,
                    ..inherit(true)
                })
            }
            LogicalPlan::Join(join) => self.join(join, children, &backend, tables),
            _ => None,
        }
    }

    fn join(
        &self,
        join: &Join,
        children: &[&Pushable<B>],
        backend: &Arc<B>,
        tables: Vec<(TableReference, TableReference)>,
    ) -> Option<Pushable<B>> {
        let [left, right] = children else {
            return None;
        };
        let aggregate = |p: &LogicalPlan| matches!(p, LogicalPlan::Aggregate(_));
        if aggregate(&join.left) || aggregate(&join.right) {
            return None;
        }
        if !backend.supports_join(join.join_type)
            || join.null_equality != NullEquality::NullEqualsNothing
            || sorted_root(&join.left)
            || sorted_root(&join.right)
        {
            return None;
        }
        let left_check = Checker::new(backend.as_ref(), join.left.schema(), &left.origins);
        let right_check = Checker::new(backend.as_ref(), join.right.schema(), &right.origins);
        for (l, r) in &join.on {
            let same_type =
                l.get_type(join.left.schema()).ok()? == r.get_type(join.right.schema()).ok()?;
            if !same_type
                || !left_check.semantics(l)?.equality
                || !right_check.semantics(r)?.equality
            {
                return None;
            }
        }
        let origins: Vec<_> = left
            .origins
            .iter()
            .chain(right.origins.iter())
            .cloned()
            .collect();
        if let Some(filter) = &join.filter {
            let checker = Checker::new(backend.as_ref(), &join.schema, &origins);
            if !checker.boolean(filter) {
                return None;
            }
        }
        let origins = match join.join_type {
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => origins,
            _ => return None,
        };
        Some(Pushable {
            backend: Arc::clone(backend),
            origins,
            worth: true,
            tables,
            rows: None,
        })
    }
}

/// `aggregate` with every `avg` of a decimal replaced by a `sum` and a
/// `count`, and the expressions finishing those averages over its output
/// (in `aggregate`'s output order and names); `None` if it has none.
fn split_decimal_avg(aggregate: &Aggregate) -> Result<Option<(LogicalPlan, Vec<Expr>)>> {
    let schema = &aggregate.schema;
    let groups = aggregate.group_expr.len();
    let mut finish: Vec<Expr> = schema
        .iter()
        .take(groups)
        .map(|(qualifier, field)| Expr::Column(Column::new(qualifier.cloned(), field.name())))
        .collect();
    let mut aggregates = Vec::with_capacity(aggregate.aggr_expr.len() + 2);
    let mut split = false;
    for (i, (expr, (qualifier, field))) in aggregate
        .aggr_expr
        .iter()
        .zip(schema.iter().skip(groups))
        .enumerate()
    {
        let inner = match expr {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            other => other,
        };
        let decimal_avg = match inner {
            Expr::AggregateFunction(AggregateFunction { func, params })
                if func.name() == "avg"
                    && !params.distinct
                    && params.filter.is_none()
                    && params.order_by.is_empty()
                    && params.args.len() == 1 =>
            {
                match (
                    params.args[0].get_type(aggregate.input.schema()).ok(),
                    field.data_type(),
                ) {
                    (Some(DataType::Decimal128(..)), DataType::Decimal128(p, s)) => {
                        Some((params.args[0].clone(), *p, *s))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match decimal_avg {
            Some((arg, precision, scale)) => {
                split = true;
                let (sum_name, count_name) =
                    (format!("koios_avg_sum_{i}"), format!("koios_avg_count_{i}"));
                aggregates.push(expr_fn::sum(arg.clone()).alias(&sum_name));
                aggregates.push(expr_fn::count(arg).alias(&count_name));
                finish.push(
                    Expr::ScalarFunction(ScalarFunction::new_udf(
                        DecimalAvg::udf(precision, scale),
                        vec![
                            Expr::Column(Column::from_name(sum_name)),
                            Expr::Column(Column::from_name(count_name)),
                        ],
                    ))
                    .alias_qualified(qualifier.cloned(), field.name()),
                );
            }
            None => {
                aggregates.push(expr.clone());
                finish.push(Expr::Column(Column::new(qualifier.cloned(), field.name())));
            }
        }
    }
    if !split {
        return Ok(None);
    }
    let remote = Aggregate::try_new(
        Arc::clone(&aggregate.input),
        aggregate.group_expr.clone(),
        aggregates,
    )?;
    Ok(Some((LogicalPlan::Aggregate(remote), finish)))
}

/// A rough row count of `plan` from its inputs' (DataFusion's default
/// selectivities: a filter keeps a fifth, grouping a tenth).
fn estimate_rows(plan: &LogicalPlan, inputs: &[Option<u64>]) -> Option<u64> {
    let first = (*inputs.first()?)?;
    let capped = |fetch: Option<usize>| Some(fetch.map_or(first, |f| first.min(f as u64)));
    match plan {
        LogicalPlan::Filter(_) => Some(first / 5),
        LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => Some(1),
        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) => Some((first / 10).max(1)),
        LogicalPlan::Join(_) => inputs
            .iter()
            .copied()
            .collect::<Option<Vec<u64>>>()?
            .into_iter()
            .max(),
        LogicalPlan::Limit(limit) => match limit.get_fetch_type().ok()? {
            FetchType::Literal(fetch) => capped(fetch),
            _ => Some(first),
        },
        LogicalPlan::Sort(sort) => capped(sort.fetch),
        _ => Some(first),
    }
}

/// Whether `plan`'s output order comes from a sort at its top (a sort under
/// limits): such a subtree is pushed with the sort re-applied locally, which
/// needs the sort keys in its output.
fn sorted_root(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Sort(_) => true,
        LogicalPlan::Limit(limit) => sorted_root(&limit.input),
        _ => false,
    }
}

/// The sort at the top of `plan` (under limits), to re-apply locally.
fn root_sort(plan: &LogicalPlan) -> Option<&Sort> {
    match plan {
        LogicalPlan::Sort(sort) => Some(sort),
        LogicalPlan::Limit(limit) => root_sort(&limit.input),
        _ => None,
    }
}

/// Checks expressions over one input of a node.
struct Checker<'a, B: SqlBackend> {
    backend: &'a B,
    schema: &'a DFSchema,
    origins: &'a [Origin<B::Codec>],
}

impl<'a, B: SqlBackend> Checker<'a, B> {
    fn new(backend: &'a B, schema: &'a DFSchemaRef, origins: &'a [Origin<B::Codec>]) -> Self {
        Self {
            backend,
            schema: schema.as_ref(),
            origins,
        }
    }

    fn origin(&self, column: &Column) -> Option<&Origin<B::Codec>> {
        let index = self.schema.index_of_column(column).ok()?;
        self.origins.get(index)
    }

    fn data_type(&self, expr: &Expr) -> Option<DataType> {
        expr.get_type(self.schema).ok()
    }

    /// How the server compares the values of `expr`; `None` if `expr`
    /// cannot be evaluated remotely at all.
    fn semantics(&self, expr: &Expr) -> Option<Semantics> {
        if !self.pushable(expr) {
            return None;
        }
        match expr {
            Expr::Column(c) => Some(self.origin(c)?.semantics),
            Expr::Alias(Alias { expr, .. }) => self.semantics(expr),
            other => Some(self.backend.computed_semantics(&self.data_type(other)?)),
        }
    }

    /// An output column of a projection or a GROUP BY key.
    fn output(&self, expr: &Expr) -> Option<Origin<B::Codec>> {
        let semantics = self.semantics(expr)?;
        match expr {
            Expr::Column(c) => self.origin(c).cloned(),
            Expr::Alias(Alias { expr, .. }) if matches!(expr.as_ref(), Expr::Column(_)) => {
                self.output(expr)
            }
            _ => Some(Origin {
                semantics,
                codec: None,
            }),
        }
    }

    fn boolean(&self, expr: &Expr) -> bool {
        self.pushable(expr) && self.data_type(expr) == Some(DataType::Boolean)
    }

    fn numeric(&self, expr: &Expr) -> bool {
        self.data_type(expr).is_some_and(|t| {
            t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..))
        })
    }

    /// Whether the server evaluates `expr` as DataFusion does.
    fn pushable(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Column(c) => self.origin(c).is_some(),
            Expr::Literal(value, _) => self.backend.literal_pushable(value),
            Expr::Alias(Alias { expr, .. }) => self.pushable(expr),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let compared = |need: fn(Semantics) -> bool| {
                    self.data_type(left) == self.data_type(right)
                        && self.semantics(left).is_some_and(need)
                        && self.semantics(right).is_some_and(need)
                };
                match op {
                    Operator::And | Operator::Or => self.boolean(left) && self.boolean(right),
                    Operator::Eq | Operator::NotEq => compared(|s| s.equality),
                    Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                        compared(|s| s.ordering)
                    }
                    Operator::Plus | Operator::Minus | Operator::Multiply => {
                        self.numeric(left)
                            && self.numeric(right)
                            && self.pushable(left)
                            && self.pushable(right)
                    }
                    // Decimal division rounds to different scales remotely.
                    Operator::Divide | Operator::Modulo => {
                        let simple = |e: &Expr| {
                            self.data_type(e)
                                .is_some_and(|t| t.is_integer() || t.is_floating())
                        };
                        simple(left) && simple(right) && self.pushable(left) && self.pushable(right)
                    }
                    _ => false,
                }
            }
            Expr::Not(inner) => self.boolean(inner),
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => self.pushable(inner),
            Expr::Negative(inner) => self.numeric(inner) && self.pushable(inner),
            Expr::Between(Between {
                expr, low, high, ..
            }) => [expr, low, high]
                .iter()
                .all(|e| self.semantics(e).is_some_and(|s| s.ordering)),
            Expr::InList(list) => {
                let kind = self.data_type(&list.expr);
                self.semantics(&list.expr).is_some_and(|s| s.equality)
                    && list.list.iter().all(|item| {
                        self.data_type(item) == kind
                            && self.semantics(item).is_some_and(|s| s.equality)
                    })
            }
            Expr::Like(Like {
                expr,
                pattern,
                escape_char: None,
                case_insensitive: false,
                ..
            }) => {
                matches!(pattern.as_ref(), Expr::Literal(value, _)
                    if value.try_as_str().flatten().is_some_and(|p| self.backend.like_pattern_pushable(p)))
                    && self.semantics(expr).is_some_and(|s| s.equality)
                    && self.pushable(pattern)
            }
            Expr::Case(Case {
                expr: None,
                when_then_expr,
                else_expr,
            }) => {
                when_then_expr
                    .iter()
                    .all(|(when, then)| self.boolean(when) && self.pushable(then))
                    && else_expr.as_ref().is_none_or(|e| self.pushable(e))
            }
            Expr::Cast(Cast { expr, field }) => {
                self.pushable(expr)
                    && self
                        .data_type(expr)
                        .is_some_and(|from| exact_cast(&from, field.data_type()))
            }
            Expr::ScalarFunction(ScalarFunction { func, args }) => match (func.name(), &args[..]) {
                // extract(year|month|day from a date)
                ("date_part", [Expr::Literal(part, _), value]) => {
                    let part = part.to_string().to_ascii_lowercase();
                    matches!(part.as_str(), "year" | "month" | "day")
                        && self.data_type(value) == Some(DataType::Date32)
                        && self.pushable(value)
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// An aggregate the server computes with DataFusion's result.
    fn aggregate(&self, expr: &Expr) -> Option<Origin<B::Codec>> {
        let expr = match expr {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
            return None;
        };
        if params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some()
        {
            return None;
        }
        let [arg] = &params.args[..] else {
            return None;
        };
        let semantics = self.semantics(arg)?;
        let arg_type = self.data_type(arg)?;
        let ok = match func.name() {
            "count" => !params.distinct || semantics.equality,
            _ if params.distinct => false,
            "sum" => self.numeric(arg),
            "min" | "max" => semantics.ordering,
            // avg of integers and decimals rounds differently remotely.
            "avg" => arg_type.is_floating(),
            _ => false,
        };
        // min/max compare like their argument; counts and sums are numbers.
        let semantics = match func.name() {
            "min" | "max" => semantics,
            _ => self
                .backend
                .computed_semantics(&expr.get_type(self.schema).ok()?),
        };
        ok.then_some(Origin {
            semantics,
            codec: None,
        })
    }
}

/// Casts that change no value.
fn exact_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let int_digits = |t: &DataType| match t {
        Int8 | UInt8 => Some(3u8),
        Int16 | UInt16 => Some(5),
        Int32 | UInt32 => Some(10),
        Int64 => Some(19),
        UInt64 => Some(20),
        _ => None,
    };
    let is_string = |t: &DataType| matches!(t, Utf8 | Utf8View | LargeUtf8);
    match (from, to) {
        _ if from == to => true,
        _ if is_string(from) && is_string(to) => true,
        (Float32, Float64) => true,
        (f, t) if f.is_signed_integer() && t.is_signed_integer() => int_digits(f) <= int_digits(t),
        (f, Float64) if f.is_integer() => int_digits(f).is_some_and(|d| d <= 15),
        (f, Decimal128(p, s)) if f.is_integer() => {
            int_digits(f).is_some_and(|d| (*p as i16 - *s as i16) >= d as i16)
        }
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16)
        }
        _ => false,
    }
}

/// Builds the remote query for a pushable subtree and the node replacing it;
/// `None` when the source cannot read an output column back or the unparser
/// cannot write the plan (then the subtree stays local).
fn replace<B: SqlBackend>(
    plan: &LogicalPlan,
    pushable: &Pushable<B>,
) -> Result<Option<LogicalPlan>> {
    let backend = &pushable.backend;
    let schema = Arc::clone(plan.schema());
    // Each output column either reads as it is or is cast to its type.
    let mut codecs = Vec::with_capacity(schema.fields().len());
    let mut casts = Vec::with_capacity(schema.fields().len());
    for (origin, field) in pushable.origins.iter().zip(schema.fields()) {
        match &origin.codec {
            Some(codec) => {
                codecs.push(codec.clone());
                casts.push(None);
            }
            None => match backend.result_codec(field.data_type()) {
                Some(codec) => {
                    codecs.push(codec);
                    casts.push(Some(field.data_type().clone()));
                }
                None => return Ok(None),
            },
        }
    }
    let Some(remote) = rename_tables(plan.clone(), &pushable.tables)? else {
        return Ok(None);
    };
    let remote = with_output_casts(remote, &casts)?;
    let sql = match backend.dialect().plan_to_sql(&remote) {
        Ok(sql) => sql,
        Err(e) => {
            tracing::debug!(source = backend.source_name(), error = %e, "subplan stays local: cannot unparse");
            return Ok(None);
        }
    };
    let node = RemoteSubplanNode {
        source: backend.source_name().to_string(),
        sql: sql.clone(),
        schema: Arc::clone(&schema),
        ordering: root_sort(plan)
            .map(|sort| sort.expr.clone())
            .unwrap_or_default(),
        runner: Arc::new(Runner {
            backend: Arc::clone(backend),
            sql,
            codecs,
            semantics: pushable.origins.iter().map(|o| o.semantics).collect(),
            rows: pushable.rows,
        }),
    };
    let remote_scan = LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    });
    // The pushed sort stays in the logical plan, so the optimizer knows the
    // order; the physical node declares that order (`ordering`), so no
    // local sort repeats it.
    Ok(Some(match root_sort(plan) {
        Some(sort) => LogicalPlan::Sort(Sort {
            expr: sort.expr.clone(),
            input: Arc::new(remote_scan),
            fetch: None,
        }),
        None => remote_scan,
    }))
}

/// `plan` selecting exactly its output columns, in order, each cast to its
/// Arrow type where `casts` says so (so the server returns values the codec
/// reads). The select list goes under a top ORDER BY / LIMIT, keeping the
/// qualified names those refer to.
fn with_output_casts(plan: LogicalPlan, casts: &[Option<DataType>]) -> Result<LogicalPlan> {
    if matches!(plan, LogicalPlan::Sort(_) | LogicalPlan::Limit(_)) {
        let input = plan.inputs()[0].clone();
        let input = with_output_casts(input, casts)?;
        return plan.with_new_exprs(plan.expressions(), vec![input]);
    }
    if casts.iter().all(Option::is_none) && matches!(plan, LogicalPlan::Projection(_)) {
        return Ok(plan);
    }
    let cast =
        |expr: Expr, data_type: &DataType, qualifier: Option<&TableReference>, name: &str| {
            Expr::Cast(Cast::new(Box::new(expr), data_type.clone()))
                .alias_qualified(qualifier.cloned(), name)
        };
    // Cast inside the existing select list: a second one on top would make
    // the unparser nest a derived table.
    if let LogicalPlan::Projection(projection) = &plan {
        let schema = Arc::clone(&projection.schema);
        let select = projection
            .expr
            .iter()
            .zip(schema.iter())
            .zip(casts)
            .map(|((expr, (qualifier, field)), data_type)| match data_type {
                Some(t) => cast(expr.clone().unalias(), t, qualifier, field.name()),
                None => expr.clone(),
            })
            .collect();
        return Ok(LogicalPlan::Projection(Projection::try_new(
            select,
            Arc::clone(&projection.input),
        )?));
    }
    let select = plan
        .schema()
        .iter()
        .zip(casts)
        .map(|((qualifier, field), data_type)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            match data_type {
                Some(t) => cast(column, t, qualifier, field.name()),
                None => column,
            }
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        select,
        Arc::new(plan),
    )?))
}

/// The subtree with every scan named by its remote `schema.table`. Columns
/// keep their qualifiers: the unparser writes them as `table.column`, so two
/// different tables of one name cannot be told apart (`None` then).
fn rename_tables(
    plan: LogicalPlan,
    tables: &[(TableReference, TableReference)],
) -> Result<Option<LogicalPlan>> {
    let mut renames: HashMap<TableReference, TableReference> = HashMap::new();
    for (koios, remote) in tables {
        if renames
            .iter()
            .any(|(k, r)| k != koios && (r == remote || k.table() == koios.table()))
        {
            return Ok(None);
        }
        renames.insert(koios.clone(), remote.clone());
    }
    let renamed = plan.transform_up(|node| match node {
        // Nested aliases (a view's name under the query's alias) would be
        // written with the inner name while columns use the outer one.
        LogicalPlan::SubqueryAlias(outer) => match outer.input.as_ref() {
            LogicalPlan::SubqueryAlias(inner) => Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
                SubqueryAlias::try_new(Arc::clone(&inner.input), outer.alias.clone())?,
            ))),
            _ => Ok(Transformed::no(LogicalPlan::SubqueryAlias(outer))),
        },
        // A computed column keeps its name in SQL too: a derived table's
        // column is referenced by that name from the query around it.
        LogicalPlan::Projection(projection) => {
            let expr = projection
                .expr
                .iter()
                .zip(projection.schema.fields())
                .map(|(expr, field)| match expr {
                    Expr::Column(_) | Expr::Alias(_) => expr.clone(),
                    _ => expr.clone().alias(field.name()),
                })
                .collect();
            Ok(Transformed::yes(LogicalPlan::Projection(
                Projection::try_new_with_schema(expr, projection.input, projection.schema)?,
            )))
        }
        LogicalPlan::TableScan(scan) => {
            let table_name = renames
                .get(&scan.table_name)
                .cloned()
                .unwrap_or_else(|| scan.table_name.clone());
            Ok(Transformed::yes(LogicalPlan::TableScan(TableScan {
                table_name,
                ..scan
            })))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(Some(renamed.data))
}

/// Runs one pushed-down query (type-erased, so the plan node needs no `B`).
trait SubplanRunner: Send + Sync {
    fn plan(
        &self,
        schema: SchemaRef,
        ordering: Option<LexOrdering>,
    ) -> Result<Arc<dyn ExecutionPlan>>;
}

struct Runner<B: SqlBackend> {
    backend: Arc<B>,
    sql: String,
    codecs: Vec<B::Codec>,
    semantics: Vec<Semantics>,
    rows: Option<u64>,
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
    source: String,
    sql: String,
    schema: DFSchemaRef,
    /// The ORDER BY the query ends with, over `schema`'s columns (empty if
    /// none): the order its rows arrive in, so no local sort repeats it.
    ordering: Vec<SortExpr>,
    runner: Arc<dyn SubplanRunner>,
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

/// Plans [`RemoteSubplanNode`]s; everything else is DataFusion's.
#[derive(Debug, Default)]
pub struct SubplanQueryPlanner;

struct SubplanExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for SubplanExtensionPlanner {
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

#[async_trait]
impl QueryPlanner for SubplanQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(
            SubplanExtensionPlanner,
        )]);
        let state = session
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Internal("not a SessionState".into())
            })?;
        planner.create_physical_plan(logical_plan, state).await
    }
}

/// Reads the result of one pushed-down query.
///
/// Dynamic filters of joins above are applied around the query when it
/// starts (`SELECT * FROM (…) AS koios_dynamic WHERE …`, which the server's
/// planner pushes inside); `EXPLAIN ANALYZE` shows the SQL sent.
pub struct RemoteSubqueryExec<B: SqlBackend> {
    backend: Arc<B>,
    sql: String,
    codecs: Vec<B::Codec>,
    /// How the server compares each output column.
    semantics: Vec<Semantics>,
    rows: Option<u64>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    dynamic_filters: Vec<Arc<dyn PhysicalExpr>>,
    sent: Arc<Mutex<Option<String>>>,
    metrics: ExecutionPlanMetricsSet,
}

/// A copy sharing the record of the SQL sent and the metrics (the stream
/// started by `execute` reports into the node `EXPLAIN ANALYZE` prints).
impl<B: SqlBackend> Clone for RemoteSubqueryExec<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            sql: self.sql.clone(),
            codecs: self.codecs.clone(),
            semantics: self.semantics.clone(),
            rows: self.rows,
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
            dynamic_filters: self.dynamic_filters.clone(),
            sent: Arc::clone(&self.sent),
            metrics: self.metrics.clone(),
        }
    }
}

impl<B: SqlBackend> RemoteSubqueryExec<B> {
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// This query's rows written straight as `DataRow` bodies
    /// ([`SqlBackend::execute_data_rows`]), for a plan that is this query alone
    /// (no dynamic filters to add), writing its output `columns` in order;
    /// `None` when it cannot be served so.
    pub fn data_rows(&self, columns: Vec<usize>) -> Option<koios_connector::pgtext::StartDataRows> {
        if !self.dynamic_filters.is_empty() {
            return None;
        }
        tracing::debug!(source = self.backend.source_name(), sql = %self.sql, "remote subquery as data rows");
        self.backend.execute_data_rows(
            self.sql.clone(),
            Vec::new(),
            self.codecs.clone(),
            &self.schema,
            columns,
            "running a pushed-down query".into(),
        )
    }

    /// The output column `column` as the wrapping query refers to it, if
    /// its name is unambiguous and short enough to survive the server.
    fn filter_column(&self, column: &PhysicalColumn) -> Option<dynamic::FilterColumn> {
        let field = self.schema.fields().get(column.index())?;
        let name = field.name();
        let unique = self
            .schema
            .fields()
            .iter()
            .filter(|f| f.name() == name)
            .count()
            == 1;
        (unique && name.len() <= MAX_ALIAS_LEN && name == column.name()).then(|| {
            dynamic::FilterColumn {
                expr: Expr::Column(Column::new(Some(DYNAMIC_ALIAS), name)),
                semantics: self
                    .semantics
                    .get(column.index())
                    .copied()
                    .unwrap_or_default(),
                data_type: field.data_type().clone(),
            }
        })
    }
}

/// The name of the derived table dynamic filters wrap a pushed query in.
const DYNAMIC_ALIAS: &str = "koios_dynamic";

impl<B: SqlBackend> fmt::Debug for RemoteSubqueryExec<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = self.sent.lock().ok().and_then(|s| s.clone());
        write!(
            f,
            "RemoteSubqueryExec: source={}, sql={}",
            self.backend.source_name(),
            sent.as_deref().unwrap_or(&self.sql)
        )?;
        for filter in &self.dynamic_filters {
            write!(f, ", dynamic_filter={filter}")?;
        }
        Ok(())
    }
}

impl<B: SqlBackend> DisplayAs for RemoteSubqueryExec<B> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl<B: SqlBackend> ExecutionPlan for RemoteSubqueryExec<B> {
    koios_connector::leaf_execution_plan_methods!("RemoteSubqueryExec", dynamic_filters);

    /// A copy to run again (a plan a session cached): metrics and the SQL
    /// sent start afresh instead of growing with every run.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        let mut copy = (*self).clone();
        copy.sent = Arc::new(Mutex::new(None));
        copy.metrics = ExecutionPlanMetricsSet::new();
        Ok(Arc::new(copy))
    }

    /// A rough estimate from the tables' row counts, for the join order.
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut statistics = Statistics::new_unknown(&self.schema);
        if let Some(rows) = self.rows {
            statistics.num_rows = Precision::Inexact(rows as usize);
        }
        Ok(Arc::new(statistics))
    }

    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let (unclaimed, filters) = dynamic::take(child_pushdown_result);
        if phase != FilterPushdownPhase::Post || filters.is_empty() {
            return Ok(FilterPushdownPropagation::with_parent_pushdown_result(
                unclaimed,
            ));
        }
        let updated = RemoteSubqueryExec {
            dynamic_filters: self
                .dynamic_filters
                .iter()
                .cloned()
                .chain(filters)
                .collect(),
            sent: Arc::new(Mutex::new(None)),
            metrics: ExecutionPlanMetricsSet::new(),
            ..self.clone()
        };
        Ok(
            FilterPushdownPropagation::with_parent_pushdown_result(unclaimed)
                .with_updated_node(Arc::new(updated)),
        )
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batch_size = context.session_config().batch_size();
        // The wrapped query becomes a derived table, whose column names
        // MySQL limits to 64 characters.
        let wrappable = self
            .schema
            .fields()
            .iter()
            .all(|f| f.name().len() <= MAX_ALIAS_LEN);
        if self.dynamic_filters.is_empty() || !wrappable {
            tracing::debug!(source = self.backend.source_name(), sql = %self.sql, "remote subquery");
            return Ok(koios_connector::count_output_rows(
                self.backend.execute_sql(
                    self.sql.clone(),
                    self.codecs.clone(),
                    Arc::clone(&self.schema),
                    batch_size,
                )?,
                &self.metrics,
                0,
            ));
        }
        // Deferred to the first poll, when the join's build side is complete.
        let this = self.clone();
        let start = async move {
            let predicates = dynamic::predicates(
                &this.dynamic_filters,
                |column| this.filter_column(column),
                |value| this.backend.literal_pushable(value),
            )?;
            let sql = match conjunction(predicates) {
                Some(predicate) => {
                    let condition = this.backend.dialect().expr_to_sql(&predicate)?;
                    format!(
                        "SELECT * FROM ({}) AS {DYNAMIC_ALIAS} WHERE {condition}",
                        this.sql
                    )
                }
                None => this.sql.clone(),
            };
            tracing::debug!(source = this.backend.source_name(), sql = %sql, "remote subquery");
            if let Ok(mut sent) = this.sent.lock() {
                *sent = Some(sql.clone());
            }
            this.backend.execute_sql(
                sql,
                this.codecs.clone(),
                Arc::clone(&this.schema),
                batch_size,
            )
        };
        Ok(koios_connector::count_output_rows(
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::once(start).try_flatten(),
            )),
            &self.metrics,
            0,
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
