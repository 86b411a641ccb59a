//! The optimizer rule reading a striped table through its members.
//!
//! A scan of a striped table — with the projection, filters and limit
//! DataFusion's rules pushed into it — becomes
//!
//! ```text
//! SubqueryAlias(t)
//!   Union
//!     [Limit] [Filter] SubqueryAlias(t) Projection(member columns as t's) TableScan(member 1)
//!     …
//! ```
//!
//! over the members that can hold matching rows (hash striping prunes on
//! `key = v` / `key IN (…)`). Each branch is an ordinary plan over one
//! source's table, so the connectors' rules push into it what they push
//! into any table (the filter, the projection, the limit — the whole
//! branch as one remote query), and the planner's union rules
//! ([`crate::engine::union_pushdown`]) put partial aggregates and top-N
//! into each branch. The branches are partitions of the union: the members
//! are read in parallel.
//!
//! Pruning when planned reads only constants: a comparison of the key with
//! a placeholder (`id = $1`, a prepared lookup whose plan is kept for
//! other values) keeps every member's branch, each under a
//! [`super::gate`] that reads its member only if the values bound at
//! execution hash to it.

use std::sync::{Arc, Mutex};

use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::logical_expr::logical_plan::{EmptyRelation, TableScan, Union};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, WriteOp, cast};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;

use super::Layout;
use super::gate::{Gate, MemberGate};
use super::mirror::{Copies, Copy, MirrorRead};
use super::provider::LogicalTableProvider;
use crate::engine::error::codes;
use crate::engine::notices::Notices;
use crate::engine::settings::Settings;
use koios_connector::sql_err;

/// The session setting that lets a query of a striped table answer from
/// the members that are up.
pub const ALLOW_PARTIAL_RESULTS: &str = "koios.allow_partial_results";

/// Expands scans of striped tables (one rule per session: it reads the
/// session's settings and tells it of members left out).
#[derive(Debug)]
pub struct ExpandLogicalTables {
    settings: Arc<Mutex<Settings>>,
    notices: Arc<Notices>,
}

impl ExpandLogicalTables {
    pub fn new(settings: Arc<Mutex<Settings>>, notices: Arc<Notices>) -> Self {
        Self { settings, notices }
    }

    fn partial_allowed(&self) -> bool {
        let settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        matches!(
            settings.get(ALLOW_PARTIAL_RESULTS),
            Some("on" | "true" | "1" | "yes")
        )
    }
}

impl OptimizerRule for ExpandLogicalTables {
    fn name(&self) -> &str {
        "koios_expand_logical_tables"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        // An UPDATE's or DELETE's table takes its conditions from the scan
        // below it (the table fans the change out itself).
        if let LogicalPlan::Dml(dml) = &plan
            && matches!(dml.op, WriteOp::Delete | WriteOp::Update)
        {
            return Ok(Transformed::no(plan));
        }
        // The setting is read at the first striped table met: most plans
        // have none.
        let mut partial: Option<bool> = None;
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = &node else {
                return Ok(Transformed::no(node));
            };
            let Ok(provider) = source_as_provider(&scan.source) else {
                return Ok(Transformed::no(node));
            };
            let Some(striped) = provider.as_ref().downcast_ref::<LogicalTableProvider>() else {
                return Ok(Transformed::no(node));
            };
            let partial = *partial.get_or_insert_with(|| self.partial_allowed());
            let expanded = expand(scan, striped, partial.then_some(&*self.notices))?;
            Ok(Transformed::yes(expanded))
        })
    }
}

/// The groups `filters` may match, in order (a group being one member, or
/// the members holding the same rows — see
/// [`super::definition::LogicalTableDef::groups`]), and the gate each
/// group's branch gets when the key is compared with placeholders
/// (`None`: no gates).
fn chosen_groups(
    striped: &LogicalTableProvider,
    filters: &[Expr],
) -> Result<(Vec<usize>, Option<Gate>)> {
    let groups = striped.table.definition.groups();
    match &striped.table.definition.layout {
        Layout::StripedHash { key, .. } => {
            let key_type = striped.schema().field_with_name(key)?.data_type().clone();
            let placement = striped.table.definition.placement();
            let chosen = super::placement::prune(filters, key, &key_type, &placement)?
                .into_iter()
                .collect::<Vec<_>>();
            let comparisons = super::placement::placeholder_comparisons(filters, key);
            let gate = (chosen.len() > 1 && !comparisons.is_empty()).then(|| Gate {
                member: 0,
                placement,
                key_type,
                comparisons,
            });
            Ok((chosen, gate))
        }
        Layout::StripedRoundRobin { .. } | Layout::Mirrored { .. } => {
            Ok(((0..groups).collect(), None))
        }
    }
}

/// The plan reading `scan` through the members of `striped`. `partial`:
/// where to warn of a member left out because it is down (`None`: such a
/// member fails the query). A group of copies (a mirrored table's one, a
/// striped table's `WITH (copies = k)`) is read through a [`MirrorRead`]
/// of its members: one current copy answers.
pub fn expand(
    scan: &TableScan,
    striped: &LogicalTableProvider,
    partial: Option<&Notices>,
) -> Result<LogicalPlan> {
    let schema = striped.schema();
    let projected: Vec<usize> = scan
        .projection
        .clone()
        .unwrap_or_else(|| (0..schema.fields().len()).collect());
    // Columns the filters need besides the projected ones.
    let mut read = projected.clone();
    for filter in &scan.filters {
        for column in filter.column_refs() {
            if let Ok(index) = schema.index_of(&column.name)
                && !read.contains(&index)
            {
                read.push(index);
            }
        }
    }
    let table_name = striped.described();
    let definition = &striped.table.definition;
    // Members holding rows they do not own (a rebalance under way or just
    // done): read through a filter keeping their own, which needs the key.
    let foreign = definition.holding_foreign_rows();
    let owned_filter = |index: usize| -> Option<Expr> {
        let key = definition.layout.key()?;
        foreign.contains(&index).then(|| {
            super::owned::OwnedBy::filter(
                definition.placement(),
                index,
                Expr::Column(Column::new(Some(scan.table_name.clone()), key)),
            )
        })
    };
    if !foreign.is_empty()
        && let Some(index) = definition
            .layout
            .key()
            .and_then(|k| schema.index_of(k).ok())
        && !read.contains(&index)
    {
        read.push(index);
    }
    let read_choice = definition.layout.read_choice();
    let mut branches = Vec::new();
    let (chosen, gate) = chosen_groups(striped, &scan.filters)?;
    for group in chosen {
        // The group's copies that can be read, and why the others cannot.
        let mut alternatives = Vec::new();
        let mut copies = Vec::new();
        let mut missing = Vec::new();
        for index in definition.group_members(group) {
            let Some(member) = striped.members.get(index) else {
                continue;
            };
            let provider = match &member.provider {
                Ok(provider) => provider,
                // Any other copy of the group will do.
                Err(error) if read_choice.is_some() => {
                    missing.push(format!("member {}: {}", member.name, error.message));
                    continue;
                }
                Err(error) => match partial {
                    Some(notices) => {
                        notices.warn(format!(
                            "{table_name}: member {} is unavailable and was left out of this result: {}",
                            member.name, error.message
                        ));
                        continue;
                    }
                    None => return Err(error.to_error(&table_name, &member.name)),
                },
            };
            copies.push(Copy {
                member: member.name.clone(),
                health: member.health.clone(),
                state: Arc::clone(&striped.table.mirror.copies[member.index]),
            });
            alternatives.push(member_branch(
                scan,
                (&schema, &read, &projected),
                member,
                provider,
                owned_filter(index),
            )?);
        }
        let branch = match read_choice {
            Some(_) if alternatives.is_empty() => {
                let message = format!("no copy is available ({})", missing.join("; "));
                match partial {
                    Some(notices) if !definition.layout.is_mirrored() => {
                        notices.warn(format!(
                            "{table_name}: the rows of group {group} were left out of this result: {message}"
                        ));
                        continue;
                    }
                    _ => {
                        return sql_err!(codes::CONNECTION_FAILURE, "{table_name}: {message}");
                    }
                }
            }
            Some(read) => MirrorRead::plan(
                Copies {
                    table: table_name.clone(),
                    read,
                    copies,
                },
                alternatives,
            )?,
            None => match alternatives.pop() {
                Some(branch) => branch,
                None => continue,
            },
        };
        if definition.layout.is_mirrored() {
            // One group: the read is the plan.
            return Ok(branch);
        }
        branches.push(Arc::new(match &gate {
            Some(gate) => MemberGate::plan(
                Gate {
                    member: group,
                    ..gate.clone()
                },
                branch,
            ),
            None => branch,
        }));
    }
    let combined = match branches.len() {
        0 => LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::clone(&scan.projected_schema),
        }),
        1 => Arc::unwrap_or_clone(branches.remove(0)),
        _ => LogicalPlan::Union(Union::try_new_with_loose_types(branches)?),
    };
    if matches!(combined, LogicalPlan::EmptyRelation(_)) {
        return Ok(combined);
    }
    LogicalPlanBuilder::from(combined)
        .alias(scan.table_name.clone())?
        .build()
}

/// The plan reading `scan`'s rows of one member: its columns as the
/// table's (cast where the member's type differs), the scan's filters and
/// limit.
fn member_branch(
    scan: &TableScan,
    (schema, read, projected): (&arrow::datatypes::SchemaRef, &[usize], &[usize]),
    member: &super::provider::ResolvedMember,
    provider: &Arc<dyn TableProvider>,
    owned: Option<Expr>,
) -> Result<LogicalPlan> {
    let member_schema = provider.schema();
    let reference = TableReference::full(
        member.name.source.as_str(),
        member.name.schema.as_str(),
        member.name.table.as_str(),
    );
    let columns = read
        .iter()
        .map(|&i| {
            let field = schema.field(i);
            let found = member_schema.field_with_name(field.name())?;
            let column = Expr::Column(Column::new(Some(reference.clone()), field.name()));
            let value = if found.data_type() == field.data_type() {
                column
            } else {
                cast(column, field.data_type().clone())
            };
            Ok(value.alias(field.name()))
        })
        .collect::<Result<Vec<_>>>()?;
    let source = provider_as_source(Arc::clone(provider));
    let mut branch = if columns.is_empty() {
        // Only rows are counted: a scan of no columns, as DataFusion
        // plans `count(*)` of any table (a projection of nothing would
        // be SQL selecting nothing).
        LogicalPlanBuilder::scan(reference.clone(), source, Some(Vec::new()))?
    } else {
        LogicalPlanBuilder::scan(reference.clone(), source, None)?.project(columns)?
    }
    .alias(scan.table_name.clone())?;
    if let Some(predicate) = conjunction(scan.filters.iter().cloned().chain(owned)) {
        branch = branch.filter(predicate)?;
    }
    // (No projection down to nothing: a scan read only for its row
    // count keeps its filter columns, or its SQL would select nothing.)
    if read.len() != projected.len() && !projected.is_empty() {
        branch = branch.project(projected.iter().map(|&i| {
            Expr::Column(Column::new(
                Some(scan.table_name.clone()),
                schema.field(i).name(),
            ))
        }))?;
    }
    if let Some(fetch) = scan.fetch {
        branch = branch.limit(0, Some(fetch))?;
    }
    branch.build()
}

/// A physical plan of a scan of `striped` made without the optimizer rule
/// (DataFusion's `TableProvider::scan`): the same expansion, planned.
pub async fn scan_plan(
    striped: &LogicalTableProvider,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let name = TableReference::bare("striped");
    let source = provider_as_source(Arc::new(StripedScanStandIn(striped.schema())));
    let stand_in = LogicalPlanBuilder::scan_with_filters_fetch(
        name,
        source,
        projection.cloned(),
        filters.to_vec(),
        limit,
    )?
    .build()?;
    let LogicalPlan::TableScan(scan) = stand_in else {
        return Err(datafusion::error::DataFusionError::Internal(
            "a scan builder built no scan".into(),
        ));
    };
    let plan = expand(&scan, striped, None)?;
    state.create_physical_plan(&plan).await
}

/// A schema-only table: the shape of the scan [`scan_plan`] expands.
#[derive(Debug)]
struct StripedScanStandIn(arrow::datatypes::SchemaRef);

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for StripedScanStandIn {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        Arc::clone(&self.0)
    }
    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Base
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(datafusion::error::DataFusionError::Internal(
            "the stand-in of a striped table's scan is never read".into(),
        ))
    }
}
