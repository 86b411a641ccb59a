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
//! A striped member that fails fails the statement with an error naming
//! it and saying what the other members did (rows sent per member):
//! members are separate servers, so nothing undoes what another member
//! already committed, and the client is told rather than left guessing.
//! A mirrored table's insert follows its write rules instead
//! ([`super::journal`]): the keys it inserts are collected as they pass,
//! for the journal of a copy that misses them (or to delete them again if
//! too few copies took them). An insert with `ON CONFLICT` runs each
//! member's upsert instead ([`super::upsert`]). `UPDATE` and `DELETE` are
//! in [`super::change`].

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
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
use tokio::sync::mpsc;

use koios_connector::sql_err;
use koios_connector::upsert::OnConflict;

use super::definition::MemberName;
use super::provider::{LogicalTableProvider, ResolvedMember};
use super::upsert::MemberUpsert;
use super::{Layout, LogicalTable, placement};
use crate::engine::error::{codes, restate};

/// The single `count` column DML returns.
pub(super) fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

pub(super) fn count_batch(rows: u64) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        count_schema(),
        vec![Arc::new(UInt64Array::from(vec![rows]))],
    )?)
}

pub(crate) fn rows_of(batches: &[RecordBatch]) -> u64 {
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

pub(super) fn single_partition(schema: SchemaRef) -> Arc<PlanProperties> {
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

/// What a mirrored insert needs when it runs.
struct MirrorInsert {
    members: Vec<ResolvedMember>,
    state: SessionState,
    /// An upsert: the rows it may change are read first, to undo it.
    upsert: bool,
}

/// Plans `INSERT INTO` a logical table (with `upsert`, its `ON CONFLICT`
/// clause — see [`super::upsert`]): every member's insert, fed by a router.
pub async fn plan_insert(
    table: &LogicalTableProvider,
    state: &dyn Session,
    input: Arc<dyn ExecutionPlan>,
    upsert: Option<MemberUpsert<'_>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let name = table.described();
    let mirrored = table.table.journalled();
    if let Some(upsert) = &upsert {
        super::upsert::check(&table.table, upsert.on_conflict)?;
    }
    let mut routes = Vec::with_capacity(table.members.len());
    for member in &table.members {
        let provider = match &member.provider {
            Ok(provider) => provider,
            // A copy that cannot be reached misses the insert (journalled).
            Err(_) if mirrored => {
                routes.push(None);
                continue;
            }
            Err(e) => return Err(e.to_error(&name, &member.name)),
        };
        let schema = provider.schema();
        let feed = Arc::new(RoutedInput::new(Arc::clone(&schema)));
        let rows = Arc::clone(&feed) as Arc<dyn ExecutionPlan>;
        let plan = match &upsert {
            Some(upsert) => upsert
                .capabilities
                .plan_upsert(provider.as_ref(), rows, upsert.on_conflict)
                .unwrap_or_else(|| {
                    sql_err!(
                        codes::FEATURE_NOT_SUPPORTED,
                        "its source does not take INSERT … ON CONFLICT"
                    )
                }),
            None => provider.insert_into(state, rows, InsertOp::Append).await,
        }
        .map_err(|e| restate(&e, |m| format!("{name}: member {}: {m}", member.name)))?;
        routes.push(Some(Route {
            member: member.name.clone(),
            feed,
            plan,
            schema,
        }));
    }
    let mirror = if mirrored {
        Some(Arc::new(MirrorInsert {
            members: table.members.clone(),
            state: super::change::owned_state(state)?,
            upsert: upsert.is_some(),
        }))
    } else {
        None
    };
    Ok(Arc::new(StripedInsertExec {
        on_conflict: super::upsert::owned(upsert.as_ref()),
        table: Arc::clone(&table.table),
        schema: table.schema(),
        input,
        routes: Arc::new(routes),
        mirror,
        properties: single_partition(count_schema()),
    }))
}

/// The rows of `batch` (of the logical table's schema) for each member:
/// its share of a striped table's rows (the share of its group, when rows
/// have copies), or all of them for each copy of a mirrored table.
fn split(
    table: &LogicalTable,
    batch: &RecordBatch,
    members: usize,
) -> Result<Vec<Option<RecordBatch>>> {
    let rows = batch.num_rows();
    let definition = &table.definition;
    let mut shares: Vec<Vec<u32>> = vec![Vec::new(); members];
    match &definition.layout {
        Layout::Mirrored { .. } => return Ok(vec![Some(batch.clone()); members]),
        Layout::StripedHash { key, buckets, .. } => {
            let column = batch.column_by_name(key).ok_or_else(|| {
                DataFusionError::Internal(format!("striping key {key} missing from an insert"))
            })?;
            let owners = definition
                .placement()
                .groups_of(&placement::buckets(column, *buckets)?);
            for (row, group) in owners.into_iter().enumerate() {
                for member in definition.group_members(group) {
                    shares[member].push(row as u32);
                }
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
pub(crate) fn for_member(batch: &RecordBatch, member: &SchemaRef) -> Result<RecordBatch> {
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
    /// By member; `None` for a copy that could not be reached.
    routes: Arc<Vec<Option<Route>>>,
    mirror: Option<Arc<MirrorInsert>>,
    /// An upsert's clause, shown by `EXPLAIN`.
    on_conflict: Option<Arc<OnConflict>>,
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
        let members: Vec<String> = self
            .routes
            .iter()
            .flatten()
            .map(|r| r.member.to_string())
            .collect();
        write!(
            f,
            "StripedInsertExec: table={} placement={} members=[{}]",
            self.table.display_name(),
            self.table.definition.layout.placement(),
            members.join(", ")
        )?;
        match &self.on_conflict {
            Some(clause) => write!(f, " {}", clause.describe()),
            None => Ok(()),
        }
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
            mirror: self.mirror.clone(),
            on_conflict: self.on_conflict.clone(),
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
        let mirror = self.mirror.clone();
        let name = table.definition.described();
        let schema = Arc::clone(&self.schema);
        let work = async move {
            let _admitted = table.admit_write().await?;
            let write = match &mirror {
                Some(mirror) => {
                    super::journal::refuse_in_block(&context, &name)?;
                    // A mirrored table's one group is checked now; a
                    // striped table's groups as rows reach them.
                    let groups: &[usize] = if table.definition.layout.is_mirrored() {
                        &[0]
                    } else {
                        &[]
                    };
                    Some(table.begin_mirror_write(&mirror.members, groups).await?)
                }
                None => None,
            };
            // A mirrored upsert: the rows it may change (per group of
            // copies), to undo it.
            let mut before: Option<Vec<Vec<RecordBatch>>> = None;
            if let (Some(mirror), Some(targets)) = (&mirror, write.as_ref().map(|w| w.targets()))
                && mirror.upsert
            {
                let read = super::upsert::read_before(
                    &mut source,
                    &table,
                    &targets,
                    &mirror.members,
                    &mirror.state,
                )
                .await;
                match read {
                    Ok((input, rows)) => {
                        source = super::upsert::replay(schema, input);
                        before = Some(rows);
                    }
                    Err(e) => {
                        if let Some(write) = write {
                            write.abandon().await?;
                        }
                        return Err(e);
                    }
                }
            }
            let members = routes.len();
            let mut senders = Vec::with_capacity(members);
            let mut runs = Vec::with_capacity(members);
            for (index, route) in routes.iter().enumerate() {
                let route = route
                    .as_ref()
                    .filter(|_| write.as_ref().is_none_or(|w| w.writes_to(index)));
                let Some(route) = route else {
                    senders.push(None);
                    runs.push(None);
                    continue;
                };
                let (sender, receiver) = mpsc::channel::<Result<RecordBatch>>(2);
                route.feed.provide(receiver);
                senders.push(Some(sender));
                let plan = Arc::clone(&route.plan);
                let context = Arc::clone(&context);
                runs.push(Some(async move {
                    let batches = datafusion::physical_plan::collect(plan, context).await?;
                    Ok::<u64, DataFusionError>(rows_of(&batches))
                }));
            }
            let routed = route_rows(&table, &mut source, &routes, senders, write.as_ref());
            let runs = runs.into_iter().map(|run| async move {
                match run {
                    Some(run) => Some(run.await),
                    None => None,
                }
            });
            let (routed, outcomes) = futures::join!(routed, futures::future::join_all(runs));
            if let (Some(write), Some(mirror)) = (write, &mirror) {
                let keys = routed.as_ref().ok().map(|(_, keys)| keys.clone());
                let state = &mirror.state;
                let copies = &mirror.members;
                // Every key the insert sent (deleting a key a copy does not
                // hold changes nothing).
                let inserted: Vec<RecordBatch> =
                    keys.iter().flatten().flatten().flatten().cloned().collect();
                let inserted = &inserted;
                let before = &before;
                let definition = &table.definition;
                let count = write
                    .finish("INSERT", outcomes, keys, |applied| async move {
                        let undo = applied.into_iter().map(|index| async move {
                            if let Some(before) = before {
                                let group = definition.group_of(index);
                                return super::upsert::undo(
                                    state,
                                    &copies[index],
                                    inserted,
                                    before.get(group).map(Vec::as_slice).unwrap_or_default(),
                                )
                                .await;
                            }
                            let provider = copies[index]
                                .provider
                                .as_ref()
                                .map_err(|e| DataFusionError::Execution(e.message.clone()))?;
                            super::resync::delete_keys(state, provider, inserted).await
                        });
                        futures::future::join_all(undo).await
                    })
                    .await;
                routed?;
                return count_batch(count?);
            }
            let (sent, _) = routed?;
            let failure = outcomes
                .iter()
                .enumerate()
                .find_map(|(i, r)| r.as_ref().and_then(|r| r.as_ref().err()).map(|e| (i, e)));
            if let Some((failed, error)) = failure {
                let report: Vec<String> = routes
                    .iter()
                    .flatten()
                    .zip(&sent)
                    .map(|(route, rows)| format!("{} {rows}", route.member))
                    .collect();
                let member = routes[failed]
                    .as_ref()
                    .map(|r| r.member.to_string())
                    .unwrap_or_default();
                return Err(restate(error, |m| {
                    format!(
                        "INSERT into {name} failed on member {member}: {m} (rows sent to each member before it stopped: {}; members that finished keep their rows)",
                        report.join(", ")
                    )
                }));
            }
            let total: u64 = outcomes.into_iter().flatten().map(|r| r.unwrap_or(0)).sum();
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

/// Sends each input batch's shares to the members' inserts; the rows
/// sent to each member and, for a table with copies (`write`), the keys
/// of the rows each group of copies got. A striped member whose insert
/// stopped stops the routing (its error says why); a copy that stopped is
/// left behind and the others go on; rows for a group with too few copies
/// to take them stop the insert.
async fn route_rows(
    table: &Arc<LogicalTable>,
    source: &mut SendableRecordBatchStream,
    routes: &[Option<Route>],
    mut senders: Vec<Option<mpsc::Sender<Result<RecordBatch>>>>,
    write: Option<&super::journal::MirrorWrite>,
) -> Result<(Vec<u64>, super::journal::GroupKeys)> {
    let members = routes.len();
    let definition = &table.definition;
    let mirrored = write.is_some();
    let mut sent = vec![0u64; members];
    let mut keys: super::journal::GroupKeys = vec![None; definition.groups()];
    let mut outcome: Result<()> = Ok(());
    'input: while let Some(batch) = source.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        let shares = match split(table, &batch, members) {
            Ok(shares) => shares,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        if let Some(write) = write {
            // A group's rows are the share of its first member.
            for (group, group_keys) in keys.iter_mut().enumerate() {
                let first = definition.group_members(group).start;
                let Some(Some(share)) = shares.get(first) else {
                    continue;
                };
                if let Some(short) = write.shortfall(group) {
                    outcome = Err(short);
                    break 'input;
                }
                match super::keys::keys_of(share, &definition.primary_key) {
                    Ok(batch_keys) => {
                        write.sending(group, batch_keys.clone());
                        group_keys.get_or_insert_with(Vec::new).push(batch_keys);
                    }
                    Err(e) => {
                        outcome = Err(e);
                        break 'input;
                    }
                }
            }
        }
        for (index, share) in shares.into_iter().enumerate() {
            let (Some(share), Some(sender), Some(route)) =
                (share, senders[index].as_ref(), routes[index].as_ref())
            else {
                continue;
            };
            let rows = share.num_rows() as u64;
            let share = match for_member(&share, &route.schema) {
                Ok(share) => share,
                Err(e) => {
                    outcome = Err(e);
                    break 'input;
                }
            };
            if sender.send(Ok(share)).await.is_err() {
                // The member's insert stopped: its error says why.
                if mirrored {
                    senders[index] = None;
                    continue;
                }
                break 'input;
            }
            sent[index] += rows;
        }
    }
    if mirrored && definition.layout.is_mirrored() {
        // A mirrored table's one group is written even by no rows.
        keys[0].get_or_insert_with(Vec::new);
    }
    if let Err(e) = &outcome {
        // The input failed: the members must not commit a part.
        let name = table.display_name();
        for sender in senders.iter().flatten() {
            let _ = sender
                .send(Err(DataFusionError::Execution(format!(
                    "the insert into {name} stopped: {e}"
                ))))
                .await;
        }
    }
    drop(senders);
    outcome.map(|()| (sent, keys))
}

/// The input of one member's insert: the batches the router sends it.
pub struct RoutedInput {
    schema: SchemaRef,
    receiver: Mutex<Option<mpsc::Receiver<Result<RecordBatch>>>>,
    properties: Arc<PlanProperties>,
}

impl RoutedInput {
    pub(crate) fn new(schema: SchemaRef) -> RoutedInput {
        RoutedInput {
            properties: koios_connector::leaf_plan_properties(&schema, 1),
            schema,
            receiver: Mutex::new(None),
        }
    }

    pub(crate) fn provide(&self, receiver: mpsc::Receiver<Result<RecordBatch>>) {
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
