//! Writes to a logical table (striped or mirrored).
//!
//! `INSERT` routes each incoming batch: hash striping splits it by the
//! members owning its keys, round robin by the table's insertion pointer,
//! and a mirrored table sends all of it to every copy; each member's share
//! goes through that member's own insert path (its bulk path: COPY, LOAD
//! DATA, insert_many), all members written at once. `UPDATE` and `DELETE`
//! run on every member that can hold matching rows, in parallel, each as
//! that member's own DML; the counts add up (a mirrored table reports one
//! copy's count).
//!
//! A member that fails fails the statement with an error naming it and
//! saying what the other members did (rows sent or changed per member):
//! members are separate servers, so nothing undoes what another member
//! already committed, and the client is told rather than left guessing.
//! (A mirrored table's write therefore needs every copy today; a write
//! quorum below that waits for the write journal.)

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::StreamExt;
use koios_connector::sql_err;
use tokio::sync::mpsc;

use super::definition::MemberName;
use super::provider::LogicalTableProvider;
use super::{Layout, LogicalTable, placement};
use crate::engine::error::{codes, restate};

/// The single `count` column DML returns.
fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

fn count_batch(rows: u64) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        count_schema(),
        vec![Arc::new(UInt64Array::from(vec![rows]))],
    )?)
}

fn rows_of(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .map(|b| {
            b.column_by_name("count")
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
                .map(|c| c.iter().flatten().sum::<u64>())
                .unwrap_or(b.num_rows() as u64)
        })
        .sum()
}

fn single_partition(schema: SchemaRef) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(1),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// One member's share of an insert: the member's own insert plan, reading
/// from `feed`.
struct Route {
    member: MemberName,
    feed: Arc<RoutedInput>,
    plan: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
}

/// Plans `INSERT INTO` a logical table: every member's insert, fed by a
/// router.
pub async fn plan_insert(
    table: &LogicalTableProvider,
    state: &dyn Session,
    input: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let name = table.described();
    let mut routes = Vec::with_capacity(table.members.len());
    for member in &table.members {
        let provider = member
            .provider
            .as_ref()
            .map_err(|e| e.to_error(&name, &member.name))?;
        let schema = provider.schema();
        let feed = Arc::new(RoutedInput::new(Arc::clone(&schema)));
        let plan = provider
            .insert_into(
                state,
                Arc::clone(&feed) as Arc<dyn ExecutionPlan>,
                InsertOp::Append,
            )
            .await
            .map_err(|e| restate(&e, |m| format!("{name}: member {}: {m}", member.name)))?;
        routes.push(Route {
            member: member.name.clone(),
            feed,
            plan,
            schema,
        });
    }
    Ok(Arc::new(StripedInsertExec {
        table: Arc::clone(&table.table),
        schema: table.schema(),
        input,
        routes: Arc::new(routes),
        properties: single_partition(count_schema()),
    }))
}

/// The rows of `batch` (of the logical table's schema) for each member:
/// its share of a striped table's rows, or all of them for each copy of a
/// mirrored table.
fn split(
    table: &LogicalTable,
    batch: &RecordBatch,
    members: usize,
) -> Result<Vec<Option<RecordBatch>>> {
    let rows = batch.num_rows();
    let mut shares: Vec<Vec<u32>> = vec![Vec::new(); members];
    match &table.definition.layout {
        Layout::Mirrored { .. } => return Ok(vec![Some(batch.clone()); members]),
        Layout::StripedHash { key, buckets } => {
            let column = batch.column_by_name(key).ok_or_else(|| {
                DataFusionError::Internal(format!("striping key {key} missing from an insert"))
            })?;
            let owners =
                placement::members_of_buckets(&placement::buckets(column, *buckets)?, members);
            for (row, owner) in owners.into_iter().enumerate() {
                shares[owner].push(row as u32);
            }
        }
        Layout::StripedRoundRobin { batch_rows } => {
            let start = table.reserve(rows as i64);
            let batch_rows = (*batch_rows).max(1) as i64;
            for row in 0..rows {
                let owner = ((start + row as i64) / batch_rows) as usize % members;
                shares[owner].push(row as u32);
            }
        }
    }
    shares
        .into_iter()
        .map(|rows| {
            if rows.is_empty() {
                return Ok(None);
            }
            let indices = UInt32Array::from(rows);
            Ok(Some(arrow::compute::take_record_batch(batch, &indices)?))
        })
        .collect()
}

/// `batch` in a member's columns: each declared column cast to the
/// member's type, a column the member has beyond them NULL.
fn for_member(batch: &RecordBatch, member: &SchemaRef) -> Result<RecordBatch> {
    let columns = member
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef> {
            match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
                Some(column) => Ok(arrow::compute::cast(column, field.data_type())?),
                None => Ok(new_null_array(field.data_type(), batch.num_rows())),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(member), columns)?)
}

/// Routes the input's rows to the members' inserts and runs them.
struct StripedInsertExec {
    table: Arc<LogicalTable>,
    /// The striped table's columns (the input's).
    schema: SchemaRef,
    input: Arc<dyn ExecutionPlan>,
    routes: Arc<Vec<Route>>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for StripedInsertExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripedInsertExec")
            .field("table", &self.table.display_name())
            .finish_non_exhaustive()
    }
}

impl DisplayAs for StripedInsertExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let members: Vec<String> = self.routes.iter().map(|r| r.member.to_string()).collect();
        write!(
            f,
            "StripedInsertExec: table={} placement={} members=[{}]",
            self.table.display_name(),
            self.table.definition.layout.placement(),
            members.join(", ")
        )
    }
}

impl ExecutionPlan for StripedInsertExec {
    fn name(&self) -> &str {
        "StripedInsertExec"
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
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("StripedInsertExec takes one input".into()))?;
        Ok(Arc::new(StripedInsertExec {
            table: Arc::clone(&self.table),
            schema: Arc::clone(&self.schema),
            input,
            routes: Arc::clone(&self.routes),
            properties: Arc::clone(&self.properties),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "StripedInsertExec has one partition, not {partition}"
            )));
        }
        let input = if self.input.output_partitioning().partition_count() > 1 {
            Arc::new(CoalescePartitionsExec::new(Arc::clone(&self.input))) as Arc<dyn ExecutionPlan>
        } else {
            Arc::clone(&self.input)
        };
        let mut source = input.execute(0, Arc::clone(&context))?;
        let table = Arc::clone(&self.table);
        let routes = Arc::clone(&self.routes);
        let name = table.definition.described();
        let name_for_router = table.display_name();
        let table_for_router = Arc::clone(&table);
        let work = async move {
            let mut senders = Vec::with_capacity(routes.len());
            let mut runs = Vec::with_capacity(routes.len());
            for route in routes.iter() {
                let (sender, receiver) = mpsc::channel::<Result<RecordBatch>>(2);
                route.feed.provide(receiver);
                senders.push(sender);
                let plan = Arc::clone(&route.plan);
                let context = Arc::clone(&context);
                runs.push(async move {
                    let stream = plan.execute(0, context)?;
                    let batches = datafusion::physical_plan::common::collect(stream).await?;
                    Ok::<u64, DataFusionError>(rows_of(&batches))
                });
            }
            let members = routes.len();
            let routes_for_router = Arc::clone(&routes);
            let routed = async move {
                let mut sent = vec![0u64; members];
                let mut outcome: Result<bool> = Ok(true);
                while let Some(batch) = source.next().await {
                    let shares = batch.and_then(|batch| split(&table_for_router, &batch, members));
                    let shares = match shares {
                        Ok(shares) => shares,
                        Err(e) => {
                            outcome = Err(e);
                            break;
                        }
                    };
                    let mut stopped = false;
                    for (index, share) in shares.into_iter().enumerate() {
                        let Some(share) = share else { continue };
                        let rows = share.num_rows() as u64;
                        let share = match for_member(&share, &routes_for_router[index].schema) {
                            Ok(share) => share,
                            Err(e) => {
                                outcome = Err(e);
                                stopped = true;
                                break;
                            }
                        };
                        if senders[index].send(Ok(share)).await.is_err() {
                            // The member's insert stopped: its error says why.
                            outcome = Ok(false);
                            stopped = true;
                            break;
                        }
                        sent[index] += rows;
                    }
                    if stopped {
                        break;
                    }
                }
                if let Err(e) = &outcome {
                    // The input failed: the members must not commit a part.
                    for sender in &senders {
                        let _ = sender
                            .send(Err(DataFusionError::Execution(format!(
                                "the insert into {name_for_router} stopped: {e}"
                            ))))
                            .await;
                    }
                }
                drop(senders);
                outcome.map(|_| sent)
            };
            let (routed, results) = futures::join!(routed, futures::future::join_all(runs));
            let sent = routed?;
            let failure = results
                .iter()
                .enumerate()
                .find_map(|(i, r)| r.as_ref().err().map(|e| (i, e)));
            if let Some((failed, error)) = failure {
                let report: Vec<String> = routes
                    .iter()
                    .zip(&sent)
                    .map(|(route, rows)| format!("{} {rows}", route.member))
                    .collect();
                return Err(restate(error, |m| {
                    format!(
                        "INSERT into {name} failed on member {}: {m} (rows sent to each member before it stopped: {}; members that finished keep their rows)",
                        routes[failed].member,
                        report.join(", ")
                    )
                }));
            }
            let counts = results.into_iter().map(|r| r.unwrap_or(0));
            // Each copy of a mirrored table took every row.
            let total: u64 = if table.definition.layout.is_mirrored() {
                counts.max().unwrap_or(0)
            } else {
                counts.sum()
            };
            if matches!(table.definition.layout, Layout::StripedRoundRobin { .. }) {
                table.persist_position().await?;
            }
            count_batch(total)
        };
        let stream = futures::stream::once(work);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            stream,
        )))
    }
}

/// The input of one member's insert: the batches the router sends it.
pub struct RoutedInput {
    schema: SchemaRef,
    receiver: Mutex<Option<mpsc::Receiver<Result<RecordBatch>>>>,
    properties: Arc<PlanProperties>,
}

impl RoutedInput {
    fn new(schema: SchemaRef) -> RoutedInput {
        RoutedInput {
            properties: koios_connector::leaf_plan_properties(&schema, 1),
            schema,
            receiver: Mutex::new(None),
        }
    }

    fn provide(&self, receiver: mpsc::Receiver<Result<RecordBatch>>) {
        *self.receiver.lock().unwrap_or_else(|p| p.into_inner()) = Some(receiver);
    }
}

impl fmt::Debug for RoutedInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoutedInput")
    }
}

impl DisplayAs for RoutedInput {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("RoutedInput")
    }
}

impl ExecutionPlan for RoutedInput {
    koios_connector::leaf_execution_plan_methods!("RoutedInput");

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                DataFusionError::Internal("a member's insert ran without its rows".into())
            })?;
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|batch| (batch, receiver))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

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
    let mut chosen: Vec<usize> = (0..table.members.len()).collect();
    if let Layout::StripedHash { key, buckets } = &table.table.definition.layout {
        if let Some(assignments) = &assignments
            && assignments.iter().any(|(column, value)| {
                column == key && !matches!(value, Expr::Column(c) if &c.name == key)
            })
        {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "UPDATE of the striping key \"{key}\" of {name} is not supported: the row would move to another member; DELETE it and INSERT it with the new key"
            );
        }
        let key_type = table.schema().field_with_name(key)?.data_type().clone();
        chosen = placement::prune(&filters, key, &key_type, *buckets, table.members.len())?
            .into_iter()
            .collect();
    }
    let mut plans = Vec::with_capacity(chosen.len());
    for index in chosen {
        let member = &table.members[index];
        let provider = member
            .provider
            .as_ref()
            .map_err(|e| e.to_error(&name, &member.name))?;
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
        .map_err(|e| {
            restate(&e, |m| {
                format!("{verb} of {name}: member {}: {m}", member.name)
            })
        })?;
        plans.push((member.name.clone(), plan));
    }
    Ok(Arc::new(FanOutExec {
        mirrored: table.table.definition.layout.is_mirrored(),
        table: name,
        schema: count_schema(),
        verb,
        plans: Arc::new(plans),
        properties: single_partition(count_schema()),
    }))
}

/// Runs one DML plan per member at once and adds up their counts (a
/// mirrored table's copies each change the same rows: one copy's count).
struct FanOutExec {
    mirrored: bool,
    /// `striped table koios.public.t`.
    table: String,
    schema: SchemaRef,
    verb: &'static str,
    plans: Arc<Vec<(MemberName, Arc<dyn ExecutionPlan>)>>,
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
        let members: Vec<String> = self.plans.iter().map(|(m, _)| m.to_string()).collect();
        write!(
            f,
            "StripedDmlExec: {} {} members=[{}]",
            self.verb,
            self.table,
            members.join(", ")
        )
    }
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
        let mirrored = self.mirrored;
        let work = async move {
            let runs = plans.iter().map(|(_, plan)| {
                let plan = Arc::clone(plan);
                let context = Arc::clone(&context);
                async move {
                    let stream = plan.execute(0, context)?;
                    let batches = datafusion::physical_plan::common::collect(stream).await?;
                    Ok::<u64, DataFusionError>(rows_of(&batches))
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
                    .filter_map(|((member, _), r)| {
                        r.as_ref()
                            .ok()
                            .map(|rows| format!("{member} ({rows} rows)"))
                    })
                    .collect();
                return Err(restate(error, |m| {
                    format!(
                        "{verb} of {table} failed on member {}: {m}; applied and kept on: {}",
                        plans[failed].0,
                        if applied.is_empty() {
                            "none".to_string()
                        } else {
                            applied.join(", ")
                        }
                    )
                }));
            }
            let counts = results.into_iter().map(|r| r.unwrap_or(0));
            count_batch(if mirrored {
                counts.max().unwrap_or(0)
            } else {
                counts.sum()
            })
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(work),
        )))
    }
}
