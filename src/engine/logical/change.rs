//! `UPDATE` and `DELETE` of a logical table: each member that can hold
//! matching rows runs the statement as its own DML, all at once; the
//! counts add up (a mirrored table reports one copy's count).
//!
//! A striped member that fails fails the statement with an error naming
//! it and saying what the other members did: members are separate
//! servers, so nothing undoes what another member already committed.
//!
//! A change of a table with copies (mirrored, or striped with copies)
//! follows the write rules of mirrored tables ([`super::journal`]): before
//! it runs, the rows it will change are read from one copy of each group (their keys go to the journal of any copy that misses
//! the change; the rows themselves put the change back if too few copies
//! apply it).

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use koios_connector::sql_err;

use super::definition::MemberName;
use super::keys::keys_of;
use super::provider::{LogicalTableProvider, ResolvedMember};
use super::write::{count_batch, count_schema, rows_of, single_partition};
use super::{Layout, LogicalTable, placement, resync};
use crate::engine::error::{codes, restate};

/// `expr` with its columns unqualified (a member knows them by name).
fn unqualified(expr: Expr) -> Result<Expr> {
    Ok(expr
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
                Column::new_unqualified(c.name),
            ))),
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

/// The session state a mirrored write keeps to read and undo on copies.
pub(super) fn owned_state(state: &dyn Session) -> Result<SessionState> {
    state
        .as_any()
        .downcast_ref::<SessionState>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("a write planned outside a session".into()))
}

/// `plan` (a member's own DML, planned apart from the statement's plan)
/// through the session's physical optimizer, as DataFusion does for any
/// plan it runs: a change reading a split scan gets its partitions
/// merged, as its sink requires.
pub(crate) fn optimized(
    state: &SessionState,
    mut plan: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    for rule in state.physical_optimizers() {
        plan = rule.optimize(plan, state.config_options())?;
    }
    Ok(plan)
}

/// What a mirrored change needs when it runs.
struct MirrorChange {
    table: Arc<LogicalTable>,
    members: Vec<ResolvedMember>,
    state: SessionState,
    /// The statement's filter, over the copies' columns.
    filter: Option<Expr>,
    /// The groups of copies that can hold matching rows.
    groups: Vec<usize>,
}

/// Plans `UPDATE` (with `assignments`) or `DELETE` of a logical table: on
/// every member that can hold matching rows (every copy of a mirrored one).
pub async fn plan_change(
    table: &LogicalTableProvider,
    state: &dyn Session,
    filters: Vec<Expr>,
    assignments: Option<Vec<(String, Expr)>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let name = table.described();
    let verb = if assignments.is_some() {
        "UPDATE"
    } else {
        "DELETE"
    };
    let filters = filters
        .into_iter()
        .map(unqualified)
        .collect::<Result<Vec<_>>>()?;
    let assignments = assignments
        .map(|a| {
            a.into_iter()
                .map(|(column, value)| Ok((column, unqualified(value)?)))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let changes_column = |column: &str| {
        assignments.as_ref().is_some_and(|a| {
            a.iter().any(|(c, value)| {
                c == column && !matches!(value, Expr::Column(v) if v.name == column)
            })
        })
    };
    let definition = &table.table.definition;
    let mirrored = table.table.journalled();
    if mirrored && let Some(key) = definition.primary_key.iter().find(|k| changes_column(k)) {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "UPDATE of the primary key \"{key}\" of {name} is not supported: copies are kept in step by key; DELETE the row and INSERT it with the new key"
        );
    }
    let mut groups: Vec<usize> = (0..definition.groups()).collect();
    if let Layout::StripedHash { key, .. } = &definition.layout {
        if changes_column(key) {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "UPDATE of the striping key \"{key}\" of {name} is not supported: the row would move to another member; DELETE it and INSERT it with the new key"
            );
        }
        let key_type = table.schema().field_with_name(key)?.data_type().clone();
        groups = placement::prune(&filters, key, &key_type, &definition.placement())?
            .into_iter()
            .collect();
    }
    let chosen: Vec<usize> = groups
        .iter()
        .flat_map(|&g| definition.group_members(g))
        .collect();
    let session = owned_state(state)?;
    let mut plans = Vec::with_capacity(chosen.len());
    for index in chosen {
        let member = &table.members[index];
        let provider = match &member.provider {
            Ok(provider) => provider,
            // A copy that cannot be reached misses the change (journalled).
            Err(_) if mirrored => {
                plans.push((index, member.name.clone(), None));
                continue;
            }
            Err(e) => return Err(e.to_error(&name, &member.name)),
        };
        let plan = match &assignments {
            None => provider.delete_from(state, filters.clone()).await,
            Some(assignments) => {
                // A member's UPDATE reads the columns it keeps as they are.
                let assignments = assignments
                    .iter()
                    .filter(
                        |(column, value)| !matches!(value, Expr::Column(c) if &c.name == column),
                    )
                    .cloned()
                    .collect();
                provider.update(state, assignments, filters.clone()).await
            }
        }
        .and_then(|plan| optimized(&session, plan))
        .map_err(|e| {
            restate(&e, |m| {
                format!("{verb} of {name}: member {}: {m}", member.name)
            })
        })?;
        plans.push((index, member.name.clone(), Some(plan)));
    }
    let mirror = if mirrored {
        Some(Arc::new(MirrorChange {
            table: Arc::clone(&table.table),
            members: table.members.clone(),
            state: session,
            filter: conjunction(filters),
            groups,
        }))
    } else {
        None
    };
    Ok(Arc::new(FanOutExec {
        logical: Arc::clone(&table.table),
        mirror,
        table: name,
        schema: count_schema(),
        verb,
        plans: Arc::new(plans),
        properties: single_partition(count_schema()),
    }))
}

/// A chosen member's index, name and DML plan (`None`: not run on that
/// copy).
type MemberPlan = (usize, MemberName, Option<Arc<dyn ExecutionPlan>>);

/// Each chosen member's plan.
type MemberPlans = Arc<Vec<MemberPlan>>;

/// Runs one DML plan per member at once and adds up their counts (a
/// mirrored table's copies each change the same rows: one copy's count).
struct FanOutExec {
    logical: Arc<LogicalTable>,
    mirror: Option<Arc<MirrorChange>>,
    /// `striped table koios.public.t`.
    table: String,
    schema: SchemaRef,
    verb: &'static str,
    /// By member (every member of a mirrored table, `None` where its
    /// source could not be reached when planned).
    plans: MemberPlans,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for FanOutExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOutExec")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for FanOutExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let members: Vec<String> = self.plans.iter().map(|(_, m, _)| m.to_string()).collect();
        write!(
            f,
            "StripedDmlExec: {} {} members=[{}]",
            self.verb,
            self.table,
            members.join(", ")
        )
    }
}

/// Runs a member's DML plan (every partition of it); its count.
async fn run_count(plan: Arc<dyn ExecutionPlan>, context: Arc<TaskContext>) -> Result<u64> {
    let batches = datafusion::physical_plan::collect(plan, context).await?;
    Ok(rows_of(&batches))
}

impl ExecutionPlan for FanOutExec {
    koios_connector::leaf_execution_plan_methods!("StripedDmlExec");

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let plans = Arc::clone(&self.plans);
        let table = self.table.clone();
        let verb = self.verb;
        let mirror = self.mirror.clone();
        let logical = Arc::clone(&self.logical);
        let work = async move {
            let _admitted = logical.admit_write().await?;
            if let Some(mirror) = mirror {
                super::journal::refuse_in_block(&context, &mirror.table.definition.described())?;
                return count_batch(run_mirrored(&mirror, verb, &plans, context).await?);
            }
            let runs = plans.iter().map(|(_, _, plan)| {
                let plan = plan.clone();
                let context = Arc::clone(&context);
                async move {
                    match plan {
                        Some(plan) => run_count(plan, context).await,
                        None => Err(DataFusionError::Internal("a member without a plan".into())),
                    }
                }
            });
            let results = futures::future::join_all(runs).await;
            let failure = results
                .iter()
                .enumerate()
                .find_map(|(i, r)| r.as_ref().err().map(|e| (i, e)));
            if let Some((failed, error)) = failure {
                let applied: Vec<String> = plans
                    .iter()
                    .zip(&results)
                    .filter_map(|((_, member, _), r)| {
                        r.as_ref()
                            .ok()
                            .map(|rows| format!("{member} ({rows} rows)"))
                    })
                    .collect();
                return Err(restate(error, |m| {
                    format!(
                        "{verb} of {table} failed on member {}: {m}; applied and kept on: {}",
                        plans[failed].1,
                        if applied.is_empty() {
                            "none".to_string()
                        } else {
                            applied.join(", ")
                        }
                    )
                }));
            }
            count_batch(results.into_iter().map(|r| r.unwrap_or(0)).sum())
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(work),
        )))
    }
}

/// A change of a table with copies: in the table's turn, the rows it
/// changes read from a copy of each group it may touch, then run on every
/// copy that takes writes, then journalled (or undone below quorum).
async fn run_mirrored(
    mirror: &MirrorChange,
    verb: &'static str,
    plans: &[MemberPlan],
    context: Arc<TaskContext>,
) -> Result<u64> {
    let table = &mirror.table;
    let definition = &table.definition;
    let write = table
        .begin_mirror_write(&mirror.members, &mirror.groups)
        .await?;
    let key = &definition.primary_key;
    // The rows before the change, per group, from the first copy that
    // answers.
    let mut before: Vec<Option<Vec<RecordBatch>>> = vec![None; definition.groups()];
    for &group in &mirror.groups {
        let mut read_errors = Vec::new();
        for index in definition.group_members(group) {
            if !write.writes_to(index) {
                continue;
            }
            let Ok(provider) = &mirror.members[index].provider else {
                continue;
            };
            match resync::read(&mirror.state, provider, mirror.filter.clone()).await {
                Ok(rows) => {
                    before[group] = Some(rows);
                    break;
                }
                Err(e) => read_errors.push(format!("{}: {e}", mirror.members[index].name)),
            }
        }
        if before[group].is_none() {
            write.abandon().await?;
            return sql_err!(
                codes::CONNECTION_FAILURE,
                "{verb} of {}: no copy could be read for the rows it changes ({}); nothing was written",
                definition.described(),
                read_errors.join("; ")
            );
        }
    }
    let keys = before
        .iter()
        .map(|rows| {
            rows.as_ref()
                .map(|rows| {
                    rows.iter()
                        .map(|b| keys_of(b, key))
                        .collect::<Result<Vec<_>>>()
                })
                .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    for (group, keys) in keys.iter().enumerate() {
        for batch in keys.iter().flatten() {
            write.sending(group, batch.clone());
        }
    }
    let mut runs = Vec::with_capacity(mirror.members.len());
    for index in 0..mirror.members.len() {
        let plan = plans
            .iter()
            .find(|(i, _, _)| *i == index)
            .and_then(|(_, _, plan)| plan.clone())
            .filter(|_| write.writes_to(index));
        let context = Arc::clone(&context);
        runs.push(async move {
            match plan {
                Some(plan) => Some(run_count(plan, context).await),
                None => None,
            }
        });
    }
    let outcomes = futures::future::join_all(runs).await;
    let state = &mirror.state;
    let members = &mirror.members;
    let (undo_keys, undo_rows) = (&keys, &before);
    write
        .finish(verb, outcomes, Some(keys.clone()), |applied| async move {
            let undo = applied.into_iter().map(|index| async move {
                let provider = members[index]
                    .provider
                    .as_ref()
                    .map_err(|e| DataFusionError::Execution(e.message.clone()))?;
                let group = definition.group_of(index);
                let (Some(keys), Some(rows)) = (&undo_keys[group], &undo_rows[group]) else {
                    return Ok(());
                };
                resync::rewrite_keys(state, provider, keys, rows).await
            });
            futures::future::join_all(undo).await
        })
        .await
}
