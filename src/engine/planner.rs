//! Planner rules of Koios's own (the connectors bring theirs).
//!
//! [`ScalarMaxAsWindow`] turns `x = (SELECT max(x) FROM <same input>)` into a
//! window over that input, so a remote input is read once.
//!
//! [`CooperativeJoins`] makes cross and nested-loop joins yield between the
//! batches they emit, so a cancelled one stops.
//!
//! [`SourceJoinGrouping`] reorders a tree of inner joins so that tables of
//! one SQL source that join each other are joined first: the whole join then
//! runs inside that server (whole-subplan pushdown, in the SQL connector
//! layer) instead of both tables being pulled. DataFusion keeps the join
//! order of the query text, where `FROM customer, orders, lineitem` would
//! join a MariaDB table between two PostgreSQL ones.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Expr, JoinType, LogicalPlan, LogicalPlanBuilder, Operator, Projection, col,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use koios_connector::{Capabilities, RemoteIdentity};

/// Joins tables of one remote source with each other first.
#[derive(Debug)]
pub struct SourceJoinGrouping {
    /// Which remote engine serves a table, and its key.
    capabilities: Capabilities,
}

impl SourceJoinGrouping {
    pub fn new(capabilities: Capabilities) -> SourceJoinGrouping {
        SourceJoinGrouping { capabilities }
    }
}

impl OptimizerRule for SourceJoinGrouping {
    fn name(&self) -> &str {
        "koios_source_join_grouping"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        rewrite(plan, &self.capabilities)
    }
}

/// The inner joins of one tree: what they join and on which conditions.
#[derive(Default)]
struct Cluster {
    leaves: Vec<LogicalPlan>,
    conditions: Vec<Expr>,
}

fn is_inner_join(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(j) if j.join_type == JoinType::Inner
        && j.null_equality == NullEquality::NullEqualsNothing)
}

/// A projection that only drops columns (DataFusion puts one between joins).
fn is_pruning(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Projection(p)
        if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) && is_inner_join(&p.input))
}

fn flatten(plan: &LogicalPlan, cluster: &mut Cluster) {
    match plan {
        LogicalPlan::Join(join) if is_inner_join(plan) => {
            flatten(&join.left, cluster);
            flatten(&join.right, cluster);
            for (left, right) in &join.on {
                cluster.conditions.push(left.clone().eq(right.clone()));
            }
            cluster.conditions.extend(join.filter.clone());
        }
        LogicalPlan::Projection(projection) if is_pruning(plan) => {
            flatten(&projection.input, cluster)
        }
        other => cluster.leaves.push(other.clone()),
    }
}

fn rewrite(plan: LogicalPlan, capabilities: &Capabilities) -> Result<Transformed<LogicalPlan>> {
    if !is_inner_join(&plan) && !is_pruning(&plan) {
        return plan
            .map_subqueries(|p| rewrite(p, capabilities))?
            .transform_data(|p| p.map_children(|c| rewrite(c, capabilities)));
    }
    let mut cluster = Cluster::default();
    flatten(&plan, &mut cluster);
    let mut changed = false;
    let mut leaves = Vec::with_capacity(cluster.leaves.len());
    for leaf in cluster.leaves {
        let rewritten = rewrite(leaf, capabilities)?;
        changed |= rewritten.transformed;
        leaves.push(rewritten.data);
    }
    let sources: Vec<Option<RemoteIdentity>> =
        leaves.iter().map(|l| source_of(l, capabilities)).collect();
    let units = join_units(&leaves, &sources, &cluster.conditions, capabilities);
    if units.iter().all(|unit| unit.len() == 1) {
        // Nothing to group: the query's own order stands.
        return if changed {
            rebuild(&plan, leaves, units, cluster.conditions).map(Transformed::yes)
        } else {
            Ok(Transformed::no(plan))
        };
    }
    let rebuilt = rebuild(&plan, leaves, units, cluster.conditions)?;
    Ok(if rebuilt == plan {
        Transformed::no(plan)
    } else {
        Transformed::yes(rebuilt)
    })
}

/// The leaves in join order: each SQL source's tables that join each other
/// on a key (one side's primary key fully equated) together, groups in the
/// order of their first table, every next unit joined to what came before
/// when a condition connects them. Joins not on a key stay where the query
/// put them: grouping them could multiply rows inside the server.
fn join_units(
    leaves: &[LogicalPlan],
    sources: &[Option<RemoteIdentity>],
    conditions: &[Expr],
    capabilities: &Capabilities,
) -> Vec<Vec<usize>> {
    let columns: Vec<HashSet<Column>> = conditions
        .iter()
        .map(|c| c.column_refs().into_iter().cloned().collect())
        .collect();
    let has = |leaf: usize, c: &Column| leaves[leaf].schema().has_column(c);
    let connects = |set: &[usize], leaf: usize| {
        columns.iter().any(|refs| {
            let in_leaf = refs.iter().any(|c| has(leaf, c));
            let in_set = refs.iter().any(|c| set.iter().any(|i| has(*i, c)));
            let covered = refs
                .iter()
                .all(|c| has(leaf, c) || set.iter().any(|i| has(*i, c)));
            in_leaf && in_set && covered
        })
    };
    let pairs: Vec<(Column, Column)> = conditions.iter().filter_map(equated_columns).collect();
    let keys: Vec<Vec<Column>> = leaves
        .iter()
        .map(|l| primary_key(l, capabilities))
        .collect();
    let keyed = |set: &[usize], leaf: usize| {
        // Columns equated between the set and the leaf, on either side.
        let mut set_side: HashSet<&Column> = HashSet::new();
        let mut leaf_side: HashSet<&Column> = HashSet::new();
        for (a, b) in &pairs {
            for (x, y) in [(a, b), (b, a)] {
                if has(leaf, x) && set.iter().any(|i| has(*i, y)) {
                    leaf_side.insert(x);
                    set_side.insert(y);
                }
            }
        }
        let covers = |key: &Vec<Column>, side: &HashSet<&Column>| {
            !key.is_empty() && key.iter().all(|c| side.contains(c))
        };
        covers(&keys[leaf], &leaf_side) || set.iter().any(|i| covers(&keys[*i], &set_side))
    };
    let mut placed = vec![false; leaves.len()];
    let mut units: Vec<Vec<usize>> = Vec::new();
    for start in 0..leaves.len() {
        if placed[start] {
            continue;
        }
        placed[start] = true;
        let mut unit = vec![start];
        if let Some(source) = &sources[start] {
            // Grow the group with same-source leaves joined to it on a key.
            while let Some(next) = (0..leaves.len())
                .find(|&i| !placed[i] && sources[i].as_ref() == Some(source) && keyed(&unit, i))
            {
                placed[next] = true;
                unit.push(next);
            }
        }
        units.push(unit);
    }
    // Units in order, each next one connected to the ones before if possible.
    let mut joined: Vec<usize> = Vec::with_capacity(leaves.len());
    let mut ordered: Vec<Vec<usize>> = Vec::with_capacity(units.len());
    let mut remaining: Vec<Vec<usize>> = units;
    while !remaining.is_empty() {
        let pick = if joined.is_empty() {
            0
        } else {
            remaining
                .iter()
                .position(|unit| unit.iter().any(|&leaf| connects(&joined, leaf)))
                .unwrap_or(0)
        };
        let unit = remaining.remove(pick);
        joined.extend(&unit);
        ordered.push(unit);
    }
    ordered
}

/// `a = b` between two columns (either maybe under a cast).
fn equated_columns(condition: &Expr) -> Option<(Column, Column)> {
    let Expr::BinaryExpr(binary) = condition else {
        return None;
    };
    if binary.op != datafusion::logical_expr::Operator::Eq {
        return None;
    }
    let column = |e: &Expr| match e {
        Expr::Column(c) => Some(c.clone()),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Column(c) => Some(c.clone()),
            _ => None,
        },
        _ => None,
    };
    Some((column(&binary.left)?, column(&binary.right)?))
}

/// A leaf's primary key as its output columns (empty if unknown): the leaf
/// must be a remote table seen through aliases, filters and column lists.
fn primary_key(leaf: &LogicalPlan, capabilities: &Capabilities) -> Vec<Column> {
    let mut node = leaf;
    loop {
        node = match node {
            LogicalPlan::SubqueryAlias(alias) => &alias.input,
            LogicalPlan::Filter(filter) => &filter.input,
            LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
                &p.input
            }
            LogicalPlan::TableScan(scan) => {
                let Some(names) = source_as_provider(&scan.source)
                    .ok()
                    .and_then(|p| capabilities.table(p.as_ref()))
                    .map(|t| t.primary_key)
                    .filter(|key| !key.is_empty())
                else {
                    return Vec::new();
                };
                let output = leaf.schema().columns();
                return names
                    .iter()
                    .map(|name| output.iter().find(|c| &c.name == name).cloned())
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default();
            }
            _ => return Vec::new(),
        };
    }
}

/// Joins each unit's leaves into one subtree, then the units left-deep in
/// order; each condition goes to the first join where all its columns are
/// present. A projection on top restores `original`'s output columns.
fn rebuild(
    original: &LogicalPlan,
    leaves: Vec<LogicalPlan>,
    units: Vec<Vec<usize>>,
    conditions: Vec<Expr>,
) -> Result<LogicalPlan> {
    let mut leaves: Vec<Option<LogicalPlan>> = leaves.into_iter().map(Some).collect();
    let mut pending = conditions;
    let join = |joined: Option<LogicalPlan>, next: LogicalPlan, pending: &mut Vec<Expr>| {
        let Some(left) = joined else {
            return Ok::<_, datafusion::error::DataFusionError>(next);
        };
        let both = |c: &Column| left.schema().has_column(c) || next.schema().has_column(c);
        let (now, later): (Vec<Expr>, Vec<Expr>) = std::mem::take(pending)
            .into_iter()
            .partition(|e| e.column_refs().into_iter().all(both));
        *pending = later;
        // Equalities between the two sides become hash-join keys, the rest
        // a join filter.
        let within = |e: &Expr, plan: &LogicalPlan| {
            let refs = e.column_refs();
            !refs.is_empty() && refs.into_iter().all(|c| plan.schema().has_column(c))
        };
        let (mut left_keys, mut right_keys, mut filters) = (Vec::new(), Vec::new(), Vec::new());
        for condition in now {
            match &condition {
                Expr::BinaryExpr(b) if b.op == Operator::Eq => {
                    if within(&b.left, &left) && within(&b.right, &next) {
                        left_keys.push(b.left.as_ref().clone());
                        right_keys.push(b.right.as_ref().clone());
                    } else if within(&b.right, &left) && within(&b.left, &next) {
                        left_keys.push(b.right.as_ref().clone());
                        right_keys.push(b.left.as_ref().clone());
                    } else {
                        filters.push(condition);
                    }
                }
                _ => filters.push(condition),
            }
        }
        LogicalPlanBuilder::from(left)
            .join_with_expr_keys(
                next,
                JoinType::Inner,
                (left_keys, right_keys),
                conjunction(filters),
            )?
            .build()
    };
    let mut joined: Option<LogicalPlan> = None;
    for unit in units {
        let mut subtree: Option<LogicalPlan> = None;
        for index in unit {
            if let Some(leaf) = leaves[index].take() {
                subtree = Some(join(subtree, leaf, &mut pending)?);
            }
        }
        if let Some(subtree) = subtree {
            joined = Some(join(joined, subtree, &mut pending)?);
        }
    }
    let Some(mut plan) = joined else {
        return Ok(original.clone());
    };
    if let Some(rest) = conjunction(pending) {
        plan = LogicalPlanBuilder::from(plan).filter(rest)?.build()?;
    }
    let columns: Vec<Expr> = original.schema().columns().into_iter().map(col).collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}

/// The remote source every table of `plan` belongs to; `None` if it reads
/// anything else or several sources.
fn source_of(plan: &LogicalPlan, capabilities: &Capabilities) -> Option<RemoteIdentity> {
    let mut source: Option<Option<RemoteIdentity>> = None;
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let this = source_as_provider(&scan.source)
                .ok()
                .and_then(|p| capabilities.table(p.as_ref()))
                .and_then(|t| t.remote);
            source = Some(match source.take() {
                None => this,
                Some(seen) if seen == this => this,
                Some(_) => None,
            });
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    source.flatten()
}

/// `x = (SELECT max(x) FROM <the same input>)` as a window over that input.
///
/// TPC-H Q15's `revenue0` CTE is inlined twice by DataFusion: once as the
/// filter's input, once inside the scalar subquery that takes its maximum.
/// Both would run as remote aggregates, one after the other. When the
/// subquery reads exactly the filter's input (through an alias and a
/// projection at most) and takes the maximum of the filtered column, the
/// maximum is a window over the input instead: one remote query.
#[derive(Debug, Default)]
pub struct ScalarMaxAsWindow;

impl OptimizerRule for ScalarMaxAsWindow {
    fn name(&self) -> &str {
        "koios_scalar_max_as_window"
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
            LogicalPlan::Filter(filter) => max_as_window(filter),
            _ => Ok(None),
        })
    }
}

const WINDOW_MAX: &str = "koios_window_max";

fn max_as_window(filter: &datafusion::logical_expr::Filter) -> Result<Option<LogicalPlan>> {
    let Expr::BinaryExpr(binary) = &filter.predicate else {
        return Ok(None);
    };
    if binary.op != Operator::Eq {
        return Ok(None);
    }
    let (column, subquery) = match (binary.left.as_ref(), binary.right.as_ref()) {
        (Expr::Column(c), Expr::ScalarSubquery(s)) | (Expr::ScalarSubquery(s), Expr::Column(c)) => {
            (c, s)
        }
        _ => return Ok(None),
    };
    if !subquery.outer_ref_columns.is_empty() {
        return Ok(None);
    }
    // The subquery: [Projection] → Aggregate(max(arg)) with no GROUP BY.
    let mut inner = subquery.subquery.as_ref();
    if let LogicalPlan::Projection(p) = inner
        && p.expr.len() == 1
    {
        inner = p.input.as_ref();
    }
    let LogicalPlan::Aggregate(aggregate) = inner else {
        return Ok(None);
    };
    let [max_expr] = &aggregate.aggr_expr[..] else {
        return Ok(None);
    };
    let max_expr = match max_expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(function) = max_expr else {
        return Ok(None);
    };
    if !aggregate.group_expr.is_empty()
        || function.func.name() != "max"
        || function.params.filter.is_some()
        || function.params.distinct
    {
        return Ok(None);
    }
    let [Expr::Column(argument)] = &function.params.args[..] else {
        return Ok(None);
    };
    // Its input: the filter's input, maybe under an alias and a projection
    // of plain (renamed) columns; the argument must be the filtered column.
    let mut source = aggregate.input.as_ref();
    let mut argument = argument.clone();
    if let LogicalPlan::SubqueryAlias(alias) = source {
        source = alias.input.as_ref();
        argument = Column::new_unqualified(argument.name.clone());
    }
    if let LogicalPlan::Projection(projection) = source {
        let Some(index) = projection
            .schema
            .index_of_column_by_name(None, &argument.name)
        else {
            return Ok(None);
        };
        let Expr::Column(inner_column) = projection.expr[index].clone().unalias_nested().data
        else {
            return Ok(None);
        };
        source = projection.input.as_ref();
        argument = inner_column;
    }
    let same_column = argument.name == column.name
        && (argument.relation.is_none() || argument.relation == column.relation);
    if !same_column || source != filter.input.as_ref() {
        return Ok(None);
    }
    let window = Expr::from(datafusion::logical_expr::expr::WindowFunction::new(
        datafusion::logical_expr::expr::WindowFunctionDefinition::AggregateUDF(
            datafusion::functions_aggregate::min_max::max_udaf(),
        ),
        vec![Expr::Column(column.clone())],
    ))
    .alias(WINDOW_MAX);
    let columns: Vec<Expr> = filter
        .input
        .schema()
        .columns()
        .into_iter()
        .map(col)
        .collect();
    let rewritten = LogicalPlanBuilder::from(filter.input.as_ref().clone())
        .window(vec![window])?
        .filter(Expr::Column(column.clone()).eq(col(WINDOW_MAX)))?
        .project(columns)?
        .build()?;
    Ok(Some(rewritten))
}

/// Makes joins that emit many batches from input they have buffered yield
/// to the runtime between batches.
///
/// DataFusion's cooperative scheduling spends the task's budget where a
/// stream reads its input; a cross join or nested-loop join produces batch
/// after batch from its buffered side without reading anything. A task
/// aggregating `generate_series(1, 1e8) CROSS JOIN generate_series(1, 1e8)`
/// then never returned to the runtime: it could not be aborted when the
/// query was cancelled, and held its worker until the end of the join.
/// [`CooperativeExec`] above such a join spends budget per batch instead.
///
/// [`CooperativeExec`]: datafusion::physical_plan::coop::CooperativeExec
#[derive(Debug, Default)]
pub struct CooperativeJoins;

impl datafusion::physical_optimizer::PhysicalOptimizerRule for CooperativeJoins {
    fn optimize(
        &self,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        _config: &datafusion::config::ConfigOptions,
    ) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        use datafusion::physical_plan::ExecutionPlan;
        use datafusion::physical_plan::coop::CooperativeExec;
        plan.transform_up(|node| {
            if matches!(node.name(), "CrossJoinExec" | "NestedLoopJoinExec") {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
                Ok(Transformed::yes(wrapped))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "cooperative_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
