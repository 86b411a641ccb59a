//! The optimizer rule: walks the plan bottom-up and grows subtrees that one
//! SQL source can run as a whole, then replaces each by one remote query.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, JoinType, NullEquality, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::functions_aggregate::expr_fn;
use datafusion::logical_expr::expr::{AggregateFunction, Alias, ScalarFunction};
use datafusion::logical_expr::logical_plan::{
    Aggregate, Distinct, Filter, Join, Projection, Sort, SubqueryAlias, TableScan,
};
use datafusion::logical_expr::{Expr, ExprSchemable, FetchType, LogicalPlan, SkipType, WriteOp};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::backend::SqlBackend;
use crate::subplan::check::{Checker, MAX_ALIAS_LEN, Origin};
use crate::subplan::replace::{Pushable, replace, sorted_root};
use crate::table::SqlTable;
use koios_connector::avg::DecimalAvg;

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
        // A DELETE's or UPDATE's table reads its conditions (and new values)
        // off the filter and projection above its scan: folded into a
        // remote subplan they would be lost, and every row changed.
        if let LogicalPlan::Dml(dml) = &plan
            && matches!(dml.op, WriteOp::Delete | WriteOp::Update)
        {
            return Ok(Transformed::no(plan));
        }
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
    pub(crate) fn visit(
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

    pub(crate) fn scan(&self, scan: &TableScan) -> Option<Pushable<B>> {
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
    pub(crate) fn node(
        &self,
        plan: &LogicalPlan,
        children: &[&Pushable<B>],
    ) -> Option<Pushable<B>> {
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

    pub(crate) fn join(
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
pub(crate) fn split_decimal_avg(aggregate: &Aggregate) -> Result<Option<(LogicalPlan, Vec<Expr>)>> {
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
pub(crate) fn estimate_rows(plan: &LogicalPlan, inputs: &[Option<u64>]) -> Option<u64> {
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
