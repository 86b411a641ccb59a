//! Replacing a pushable subtree: the remote query unparsed in the source's
//! dialect (tables renamed, output cast back to DataFusion's types) and
//! the [`RemoteSubplanNode`](crate::subplan::node::RemoteSubplanNode) that
//! stands for it.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, TableReference};
use datafusion::error::Result;
use datafusion::logical_expr::logical_plan::{
    Extension, Projection, Sort, SubqueryAlias, TableScan,
};
use datafusion::logical_expr::{Cast, Expr, LogicalPlan};

use crate::backend::SqlBackend;
use crate::subplan::check::Origin;
use crate::subplan::node::{RemoteSubplanNode, Runner};

/// A subtree the source can run as a whole.
pub(crate) struct Pushable<B: SqlBackend> {
    pub(crate) backend: Arc<B>,
    pub(crate) origins: Vec<Origin<B::Codec>>,
    /// Whether running it remotely saves work (a join, filter, aggregate,
    /// DISTINCT or sort), rather than re-stating a plain table scan.
    pub(crate) worth: bool,
    /// Koios table reference → remote `schema.table`, per scan.
    pub(crate) tables: Vec<(TableReference, TableReference)>,
    /// A rough row count (the tables' estimates through the operators), so
    /// joins above put the smaller input on the build side.
    pub(crate) rows: Option<u64>,
}

/// Whether `plan`'s output order comes from a sort at its top (a sort under
/// limits): such a subtree is pushed with the sort re-applied locally, which
/// needs the sort keys in its output.
pub(crate) fn sorted_root(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Sort(_) => true,
        LogicalPlan::Limit(limit) => sorted_root(&limit.input),
        _ => false,
    }
}

/// The sort at the top of `plan` (under limits), to re-apply locally.
pub(crate) fn root_sort(plan: &LogicalPlan) -> Option<&Sort> {
    match plan {
        LogicalPlan::Sort(sort) => Some(sort),
        LogicalPlan::Limit(limit) => root_sort(&limit.input),
        _ => None,
    }
}

/// Builds the remote query for a pushable subtree and the node replacing it;
/// `None` when the source cannot read an output column back or the unparser
/// cannot write the plan (then the subtree stays local).
pub(crate) fn replace<B: SqlBackend>(
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
pub(crate) fn with_output_casts(
    plan: LogicalPlan,
    casts: &[Option<DataType>],
) -> Result<LogicalPlan> {
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
pub(crate) fn rename_tables(
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
