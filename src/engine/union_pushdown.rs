//! Aggregates and top-N pushed into the branches of a `UNION ALL`.
//!
//! A striped table is read as a union of its members (see
//! [`crate::engine::logical::expand`]); for its members to do the work,
//! what sits on the union must go into each branch:
//!
//! * **Partial aggregates.** `Aggregate(g; count(x), sum(x), min(x),
//!   max(x), avg(x))` over the union becomes the same grouping over each
//!   branch with partial aggregates (count, sum, min, max; avg as a sum and
//!   a count), and a final aggregate over the union combining them (counts
//!   and sums summed, min of mins, max of maxes, the average finished from
//!   its sum and count — decimals with DataFusion's own averager). When
//!   every aggregate is `DISTINCT` over one argument, each branch keeps the
//!   distinct values per group and the final aggregate counts over them.
//!   The results are cast back to the original types and names, so the
//!   plan above does not change.
//! * **Top-N.** `Sort(…, fetch n)` over the union puts the same sort with
//!   the same `n` into every branch; the outer sort merges at most `n` rows
//!   per branch.
//!
//! Each branch is then an ordinary plan over one table, which the
//! connectors push into their servers (partial aggregates and `ORDER BY …
//! LIMIT` in the member's own SQL). Both rewrites hold for any `UNION ALL`
//! (DataFusion's `Union` keeps duplicates), so they apply to users'
//! unions too. The union they rewrite is marked by an alias
//! (`__koios_partial`, `__koios_topn`), so a later optimizer pass does not
//! split it again.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchemaRef, TableReference};
use datafusion::error::Result;
use datafusion::functions_aggregate::expr_fn;
use datafusion::logical_expr::expr::{AggregateFunction, Alias, ScalarFunction};
use datafusion::logical_expr::logical_plan::{Aggregate, Sort, SubqueryAlias, Union};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Projection, cast};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use koios_connector::avg::DecimalAvg;

/// The alias over a union whose branches hold partial aggregates.
const PARTIAL: &str = "__koios_partial";
/// The alias over a union whose branches hold the top-N.
const TOP_N: &str = "__koios_topn";

/// The optimizer rule (see the module's doc).
#[derive(Debug, Default)]
pub struct UnionPushdown;

impl OptimizerRule for UnionPushdown {
    fn name(&self) -> &str {
        "koios_union_pushdown"
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
            let rewritten = match &node {
                LogicalPlan::Aggregate(aggregate) => split_aggregate(aggregate)?,
                LogicalPlan::Sort(sort) if sort.fetch.is_some() => push_top_n(sort)?,
                _ => None,
            };
            Ok(match rewritten {
                Some(plan) => Transformed::yes(plan),
                None => Transformed::no(node),
            })
        })
    }
}

/// `plan` as `SubqueryAlias(alias) → Union`, with the alias and branches.
fn aliased_union(plan: &LogicalPlan) -> Option<(&TableReference, &Union)> {
    let LogicalPlan::SubqueryAlias(SubqueryAlias { input, alias, .. }) = plan else {
        return None;
    };
    let LogicalPlan::Union(union) = input.as_ref() else {
        return None;
    };
    if alias.table() == PARTIAL || alias.table() == TOP_N || union.inputs.len() < 2 {
        return None;
    }
    Some((alias, union))
}

/// Each branch of `union` as the aliased input above it sees it: columns
/// named as the union names them, qualified by `alias`.
fn branches_as(alias: &TableReference, union: &Union) -> Result<Vec<LogicalPlan>> {
    let names: Vec<&String> = union.schema.fields().iter().map(|f| f.name()).collect();
    union
        .inputs
        .iter()
        .map(|branch| {
            let same_names = branch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name())
                .eq(names.iter().copied());
            let input = if same_names {
                Arc::clone(branch)
            } else {
                let renamed = branch
                    .schema()
                    .iter()
                    .zip(&names)
                    .map(|((qualifier, field), name)| {
                        Expr::Column(Column::new(qualifier.cloned(), field.name())).alias(*name)
                    })
                    .collect();
                Arc::new(LogicalPlan::Projection(Projection::try_new(
                    renamed,
                    Arc::clone(branch),
                )?))
            };
            Ok(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                input,
                alias.clone(),
            )?))
        })
        .collect()
}

/// The union of `branches` under the marker alias `marker`.
fn marked_union(branches: Vec<LogicalPlan>, marker: &str) -> Result<LogicalPlan> {
    let union = Union::try_new_with_loose_types(branches.into_iter().map(Arc::new).collect())?;
    Ok(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
        Arc::new(LogicalPlan::Union(union)),
        marker,
    )?))
}

/// How one aggregate is computed from per-branch parts.
enum Parts {
    /// `count`: the counts summed.
    Count,
    /// `sum`, `min`, `max`: the same function over the parts.
    Same,
    /// `avg`: a sum and a count, finished as `result`'s type.
    Avg,
}

fn parts_of(expr: &Expr) -> Option<(&AggregateFunction, Parts)> {
    let Expr::AggregateFunction(function) = expr else {
        return None;
    };
    let params = &function.params;
    if params.filter.is_some()
        || !params.order_by.is_empty()
        || params.null_treatment.is_some()
        || params.args.len() != 1
    {
        return None;
    }
    let parts = match function.func.name() {
        "count" => Parts::Count,
        "sum" | "min" | "max" => Parts::Same,
        "avg" => Parts::Avg,
        _ => return None,
    };
    Some((function, parts))
}

/// The partial aggregates of the branches, each once, named `__koios_a{n}`.
#[derive(Default)]
struct Partials {
    exprs: Vec<Expr>,
}

impl Partials {
    /// The name of the partial `expr` (added if new).
    fn add(&mut self, expr: Expr) -> String {
        if let Some(i) = self.exprs.iter().position(|e| unaliased(e) == &expr) {
            return format!("__koios_a{i}");
        }
        let name = format!("__koios_a{}", self.exprs.len());
        self.exprs.push(expr.alias(&name));
        name
    }
}

/// The aggregate, its `Alias` (if any) taken off.
fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(Alias { expr, .. }) => expr,
        other => other,
    }
}

fn partial_column(name: &str) -> Expr {
    Expr::Column(Column::new(Some(TableReference::bare(PARTIAL)), name))
}

/// `aggregate` over a union, split into partial aggregates per branch and
/// a final one; `None` when it cannot be.
fn split_aggregate(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    let Some((alias, union)) = aliased_union(&aggregate.input) else {
        return Ok(None);
    };
    if aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Ok(None);
    }
    let aggregates: Vec<&Expr> = aggregate.aggr_expr.iter().map(unaliased).collect();
    let all_distinct = !aggregates.is_empty()
        && aggregates
            .iter()
            .all(|e| matches!(e, Expr::AggregateFunction(f) if f.params.distinct));
    if all_distinct {
        return split_distinct(aggregate, alias, union, &aggregates);
    }
    let mut decomposed = Vec::with_capacity(aggregates.len());
    for expr in &aggregates {
        match parts_of(expr) {
            Some((function, parts)) if !function.params.distinct => {
                decomposed.push((function, parts))
            }
            _ => return Ok(None),
        }
    }
    let groups: Vec<Expr> = aggregate
        .group_expr
        .iter()
        .enumerate()
        .map(|(i, e)| unaliased(e).clone().alias(format!("__koios_g{i}")))
        .collect();
    let mut partials = Partials::default();
    let mut finals = Vec::new();
    let input_schema = aggregate.input.schema();
    for (j, (function, parts)) in decomposed.iter().enumerate() {
        let arg = function.params.args[0].clone();
        match parts {
            Parts::Count => {
                let part = partials.add(expr_fn::count(arg));
                finals.push(expr_fn::sum(partial_column(&part)).alias(format!("__koios_f{j}")));
            }
            Parts::Same => {
                let part = partials.add(Expr::AggregateFunction(AggregateFunction::new_udf(
                    Arc::clone(&function.func),
                    vec![arg],
                    false,
                    None,
                    vec![],
                    None,
                )));
                finals.push(
                    Expr::AggregateFunction(AggregateFunction::new_udf(
                        Arc::clone(&function.func),
                        vec![partial_column(&part)],
                        false,
                        None,
                        vec![],
                        None,
                    ))
                    .alias(format!("__koios_f{j}")),
                );
            }
            Parts::Avg => {
                // avg of integers is planned over a cast to float; the
                // members sum the integers exactly instead.
                let summed = match &arg {
                    Expr::Cast(c)
                        if c.field.data_type() == &DataType::Float64
                            && c.expr.get_type(input_schema)?.is_integer() =>
                    {
                        // (sum takes 64-bit integers: the analyzer that
                        // would widen narrower ones has already run.)
                        cast(c.expr.as_ref().clone(), DataType::Int64)
                    }
                    other => other.clone(),
                };
                let sum = partials.add(expr_fn::sum(summed.clone()));
                // A cast keeps NULLs NULL: the count is the same uncast.
                let count = partials.add(expr_fn::count(summed));
                finals.push(expr_fn::sum(partial_column(&sum)).alias(format!("__koios_fs{j}")));
                finals.push(expr_fn::sum(partial_column(&count)).alias(format!("__koios_fc{j}")));
            }
        }
    }
    let partials = partials.exprs;
    let mut branches = Vec::with_capacity(union.inputs.len());
    for branch in branches_as(alias, union)? {
        branches.push(LogicalPlan::Aggregate(Aggregate::try_new(
            Arc::new(branch),
            groups.clone(),
            partials.clone(),
        )?));
    }
    let final_groups: Vec<Expr> = (0..groups.len())
        .map(|i| partial_column(&format!("__koios_g{i}")))
        .collect();
    let combined = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::new(marked_union(branches, PARTIAL)?),
        final_groups,
        finals,
    )?);
    // The original columns: groups as they were, aggregates finished and
    // cast back to the original types.
    let schema: &DFSchemaRef = &aggregate.schema;
    let group_count = aggregate.group_expr.len();
    let mut output = Vec::with_capacity(schema.fields().len());
    for (i, (qualifier, field)) in schema.iter().enumerate() {
        let value = if i < group_count {
            Expr::Column(Column::new(
                Some(TableReference::bare(PARTIAL)),
                format!("__koios_g{i}"),
            ))
        } else {
            let j = i - group_count;
            match &decomposed[j].1 {
                Parts::Avg => finish_avg(j, field.data_type())?,
                _ => cast(
                    Expr::Column(Column::from_name(format!("__koios_f{j}"))),
                    field.data_type().clone(),
                ),
            }
        };
        output.push(value.alias_qualified(qualifier.cloned(), field.name()));
    }
    let projection = Projection::try_new(output, Arc::new(combined))?;
    Ok(Some(LogicalPlan::Projection(projection)))
}

/// The average `j` from its summed parts, of the original `data_type`.
fn finish_avg(j: usize, data_type: &DataType) -> Result<Expr> {
    let sum = Expr::Column(Column::from_name(format!("__koios_fs{j}")));
    let count = Expr::Column(Column::from_name(format!("__koios_fc{j}")));
    Ok(match data_type {
        DataType::Decimal128(precision, scale) => Expr::ScalarFunction(ScalarFunction::new_udf(
            DecimalAvg::udf(*precision, *scale),
            vec![sum, count],
        )),
        other => cast(
            cast(sum, DataType::Float64) / cast(count, DataType::Float64),
            other.clone(),
        ),
    })
}

/// Aggregates that are all `DISTINCT` over one argument: each branch keeps
/// the distinct (group, argument) pairs, the final aggregate runs over
/// them.
fn split_distinct(
    aggregate: &Aggregate,
    alias: &TableReference,
    union: &Union,
    aggregates: &[&Expr],
) -> Result<Option<LogicalPlan>> {
    let mut argument: Option<&Expr> = None;
    let mut functions = Vec::with_capacity(aggregates.len());
    for expr in aggregates {
        let Some((function, _)) = parts_of(expr) else {
            return Ok(None);
        };
        functions.push(function);
        let arg = &function.params.args[0];
        match argument {
            Some(first) if first != arg => return Ok(None),
            _ => argument = Some(arg),
        }
    }
    let Some(argument) = argument else {
        return Ok(None);
    };
    let mut groups: Vec<Expr> = aggregate
        .group_expr
        .iter()
        .enumerate()
        .map(|(i, e)| unaliased(e).clone().alias(format!("__koios_g{i}")))
        .collect();
    groups.push(argument.clone().alias("__koios_d"));
    let mut branches = Vec::with_capacity(union.inputs.len());
    for branch in branches_as(alias, union)? {
        branches.push(LogicalPlan::Aggregate(Aggregate::try_new(
            Arc::new(branch),
            groups.clone(),
            vec![],
        )?));
    }
    let final_groups: Vec<Expr> = (0..aggregate.group_expr.len())
        .map(|i| partial_column(&format!("__koios_g{i}")))
        .collect();
    let finals = functions
        .iter()
        .enumerate()
        .map(|(j, function)| {
            Expr::AggregateFunction(AggregateFunction::new_udf(
                Arc::clone(&function.func),
                vec![partial_column("__koios_d")],
                true,
                None,
                vec![],
                None,
            ))
            .alias(format!("__koios_f{j}"))
        })
        .collect();
    let combined = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::new(marked_union(branches, PARTIAL)?),
        final_groups,
        finals,
    )?);
    let group_count = aggregate.group_expr.len();
    let output = aggregate
        .schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let value = if i < group_count {
                partial_column(&format!("__koios_g{i}"))
            } else {
                cast(
                    Expr::Column(Column::from_name(format!("__koios_f{}", i - group_count))),
                    field.data_type().clone(),
                )
            };
            value.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        output,
        Arc::new(combined),
    )?)))
}

/// `Sort(…, fetch n)` over a union with the same sort in every branch.
fn push_top_n(sort: &Sort) -> Result<Option<LogicalPlan>> {
    let Some((alias, union)) = aliased_union(&sort.input) else {
        return Ok(None);
    };
    // Sort keys must be computable in each branch (columns of the union
    // or expressions over them; DataFusion puts them in a projection
    // below otherwise).
    let schema = sort.input.schema();
    if sort.expr.iter().any(|s| s.expr.get_type(schema).is_err()) {
        return Ok(None);
    }
    let branches = branches_as(alias, union)?
        .into_iter()
        .map(|branch| {
            LogicalPlan::Sort(Sort {
                expr: sort.expr.clone(),
                input: Arc::new(branch),
                fetch: sort.fetch,
            })
        })
        .collect();
    let inner = marked_union(branches, TOP_N)?;
    let realiased =
        LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(inner), alias.clone())?);
    Ok(Some(LogicalPlan::Sort(Sort {
        expr: sort.expr.clone(),
        input: Arc::new(realiased),
        fetch: sort.fetch,
    })))
}
