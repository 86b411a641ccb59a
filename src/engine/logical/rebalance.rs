//! The job moving a hash-striped table's rows when its members change
//! (`ADD`/`DROP`/`MOVE MEMBER`, see [`super::members`]).
//!
//! The table's definition holds the rebalance (the members and bucket
//! owners it moves to) from the statement on; until the switch, queries
//! read and writes go by the old placement, and every write also journals
//! the keys it touched ([`super::journal::REBALANCE_JOURNAL`], in the same store
//! transaction that ends the write, before the client hears of success).
//!
//! 1. **Copy**: each member giving buckets away is read once, as a stream;
//!    the rows of moving buckets go to their new member a chunk at a time
//!    as *delete these keys, insert these rows* (so copying a chunk twice
//!    changes nothing, and a job restarted after a crash simply copies
//!    again). `PAUSE JOB` / `CANCEL JOB` are honoured between chunks.
//! 2. **Catch up**: the journalled keys are copied again, as their old
//!    member holds them now, a round at a time while writes go on.
//! 3. **Switch**, with writes held back (the table's writers' lock): the
//!    last entries are replayed, each new owner's moved rows are compared
//!    with the old owners' (row count and an order-independent checksum of
//!    values normalised through Arrow, as `MIGRATE` compares) — a receiver
//!    that differs gets its rows copied once more and is compared again —
//!    and only then the new members and owners are stored and served, in
//!    one step. Writes planned before it are refused with 40001 and run
//!    again on retry.
//! 4. **Clean up**: after a grace period for queries that started before
//!    the switch, the rows members gave away are deleted from them; until
//!    then queries filter them out ([`super::owned`]).
//!
//! `CANCEL JOB` before the switch puts the old placement back (rows copied
//! to members that stay are deleted again; a new member's table keeps what
//! it got, in its backend). A job that failed keeps the rebalance pending
//! (writes keep journalling) until `RESUME JOB` or `CANCEL JOB`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{RecordBatch, UInt32Array};
use datafusion::catalog::TableProvider;
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlanBuilder;
use futures::StreamExt;
use koios_connector::{sql_err, sql_error};

use super::definition::{LogicalTableDef, MemberName};
use super::journal::REBALANCE_JOURNAL;
use super::keys::{decode_keys, key_schema, keys_of};
use super::placement::{Placement, buckets};
use super::{LogicalTable, resync};
use crate::engine::Engine;
use crate::engine::error::codes;
use crate::engine::jobs::{Job, JobState};
use crate::engine::migrate::chunk::RowSums;

/// Rows sent to a new member per delete-and-insert.
const CHUNK_ROWS: usize = 20_000;

/// Journal entries replayed together.
const ENTRIES_PER_ROUND: i64 = 256;

/// How long queries planned before a switch may go on reading moved rows
/// where they were, before those rows are deleted.
const READS_GRACE: Duration = Duration::from_secs(2);

/// Where each bucket's rows go: `(member before, member after)` by index,
/// for the buckets whose member changes.
struct Moves {
    before: Placement,
    after: Placement,
    after_members: Vec<MemberName>,
    by_bucket: Vec<Option<(usize, usize)>>,
}

impl Moves {
    fn of(definition: &LogicalTableDef) -> Result<Moves> {
        let Some((after, after_members)) = definition.placement_after() else {
            return sql_err!(codes::INTERNAL_ERROR, "no rebalance under way");
        };
        let before = definition.placement();
        let by_bucket = (0..before.buckets)
            .map(|b| {
                let (from, to) = (before.group(b), after.group(b));
                (definition.members.get(from) != after_members.get(to)).then_some((from, to))
            })
            .collect();
        Ok(Moves {
            after_members: after_members.to_vec(),
            before,
            after,
            by_bucket,
        })
    }

    fn sources(&self) -> Vec<usize> {
        let mut sources: Vec<usize> = self.by_bucket.iter().flatten().map(|m| m.0).collect();
        sources.sort_unstable();
        sources.dedup();
        sources
    }

    fn receivers(&self) -> Vec<usize> {
        let mut receivers: Vec<usize> = self.by_bucket.iter().flatten().map(|m| m.1).collect();
        receivers.sort_unstable();
        receivers.dedup();
        receivers
    }
}

/// Runs the rebalance job `job` of table `table` (`schema.table`) in the
/// background; it ends the job.
pub(super) fn spawn(engine: &Arc<Engine>, job: i64, table: String) {
    let engine = Arc::clone(engine);
    tokio::spawn(async move {
        let Ok(job) = engine.jobs().get(job) else {
            return;
        };
        let mut outcome = run(&engine, &job, &table).await;
        if let Err(e) = &outcome {
            if job.is_cancelled() {
                if let Err(undo) = revert(&engine, &table).await {
                    outcome = Err(sql_error!(
                        codes::INTERNAL_ERROR,
                        "{e}; and the old placement could not be put back: {undo}"
                    ));
                }
            } else {
                tracing::warn!(job = job.id(), table = %table, error = %e,
                    "moving a table's rows stopped: RESUME JOB goes on, CANCEL JOB puts the old members back");
            }
        }
        if let Err(e) = job.finish(&outcome).await {
            tracing::warn!(job = job.id(), error = %e, "a rebalance's end could not be recorded");
        }
    });
}

impl Engine {
    /// At start: the workers of rebalances a restart found unfinished.
    pub(crate) fn resume_rebalances(self: &Arc<Self>) {
        for (key, table) in self.logical_tables() {
            let job = match &table.definition.rebalance {
                Some(rebalance) => self.jobs().get(rebalance.job).ok(),
                // Switched, rows left to delete: the job that switched.
                None if !table.definition.leftovers.is_empty() => self
                    .jobs()
                    .list()
                    .into_iter()
                    .filter(|j| j.view().row.source == table.display_name())
                    .find(|j| !j.state().is_finished()),
                None => None,
            };
            match job {
                Some(job) if !job.state().is_finished() => spawn(self, job.id(), key),
                _ => {}
            }
        }
    }

    /// `RESUME JOB` of a failed rebalance: its worker goes on. `false` if
    /// the job is not one.
    pub async fn reopen_rebalance(self: &Arc<Self>, job: &Arc<Job>) -> Result<bool> {
        let Some(key) = self.failed_rebalance(job) else {
            return Ok(false);
        };
        job.reopen().await?;
        spawn(self, job.id(), key);
        Ok(true)
    }
}

impl Engine {
    /// The table (`schema.table`) whose rebalance `job` is, if it failed.
    fn failed_rebalance(&self, job: &Job) -> Option<String> {
        if job.state() != JobState::Failed {
            return None;
        }
        self.logical_tables()
            .into_iter()
            .find(|(_, t)| {
                t.definition
                    .rebalance
                    .as_ref()
                    .is_some_and(|r| r.job == job.id())
            })
            .map(|(key, _)| key)
    }

    /// `CANCEL JOB` of a failed rebalance: the old placement put back and
    /// the job cancelled. `false` if the job is not one.
    pub async fn cancel_failed_rebalance(&self, job: &Arc<Job>) -> Result<bool> {
        let Some(key) = self.failed_rebalance(job) else {
            return Ok(false);
        };
        job.reopen().await?;
        self.jobs().cancel(job.id()).await?;
        let outcome = match revert(self, &key).await {
            Ok(()) => sql_err!(codes::QUERY_CANCELED, "job {} was cancelled", job.id()),
            Err(e) => Err(e),
        };
        job.finish(&outcome).await?;
        Ok(true)
    }
}

fn table_of(engine: &Engine, key: &str) -> Result<Arc<LogicalTable>> {
    match engine.logical_tables().get(key) {
        Some(table) => Ok(Arc::clone(table)),
        None => sql_err!(
            codes::UNDEFINED_TABLE,
            "logical table \"koios.{key}\" was dropped while its rows were moving"
        ),
    }
}

/// The job's work, from wherever the table's definition says it is.
async fn run(engine: &Engine, job: &Job, key: &str) -> Result<()> {
    job.gate().await?;
    let table = table_of(engine, key)?;
    if table.definition.rebalance.is_some() {
        move_rows(engine, &table, job).await?;
    }
    let table = table_of(engine, key)?;
    if !table.definition.leftovers.is_empty() {
        tokio::time::sleep(READS_GRACE).await;
        clean(engine, &table).await?;
    }
    Ok(())
}

/// The members' tables: before by index, after by index.
struct Ends {
    before: Vec<Option<Arc<dyn TableProvider>>>,
    after: Vec<Option<Arc<dyn TableProvider>>>,
}

async fn ends(engine: &Engine, table: &LogicalTable, moves: &Moves) -> Result<Ends> {
    let described = table.definition.described();
    let look = async |member: &MemberName| {
        super::provider::resolve_member(engine, member)
            .await
            .map_err(|e| e.to_error(&described, member))
    };
    let mut before = vec![None; table.definition.members.len()];
    for index in moves.sources() {
        before[index] = Some(look(&table.definition.members[index]).await?);
    }
    let mut after = vec![None; moves.after_members.len()];
    for index in moves.receivers() {
        after[index] = Some(look(&moves.after_members[index]).await?);
    }
    Ok(Ends { before, after })
}

fn provider(slot: &Option<Arc<dyn TableProvider>>) -> Result<&Arc<dyn TableProvider>> {
    slot.as_ref().ok_or_else(|| {
        sql_error!(
            codes::INTERNAL_ERROR,
            "a member of a rebalance was not resolved"
        )
    })
}

/// Copies, catches up, verifies and switches.
async fn move_rows(engine: &Engine, table: &Arc<LogicalTable>, job: &Job) -> Result<()> {
    let definition = &table.definition;
    let name = definition.key();
    let moves = Moves::of(definition)?;
    let ends = ends(engine, table, &moves).await?;
    let state = engine.internal_context().state();
    let Some(striping) = definition.layout.key() else {
        return sql_err!(
            codes::INTERNAL_ERROR,
            "a rebalance of a table not striped by hash"
        );
    };
    let work = Work {
        state: &state,
        table,
        moves: &moves,
        ends: &ends,
        key: striping,
    };
    job.restart_count();
    let mut total = 0;
    for &source in &moves.sources() {
        total += super::fill::count_rows(&state, provider(&ends.before[source])?).await?;
    }
    job.set_total(Some(total));
    for source in moves.sources() {
        work.copy(source, None, Some(job)).await?;
    }
    // Catch up while writes go on.
    loop {
        let entries = table
            .store
            .journal(&name, REBALANCE_JOURNAL, ENTRIES_PER_ROUND)
            .await?;
        if (entries.len() as i64) < ENTRIES_PER_ROUND {
            break;
        }
        work.replay(&entries).await?;
        job.gate().await?;
    }
    // The switch: no write runs meanwhile.
    let _ddl = engine.ddl.lock().await;
    let _writers = Arc::clone(&table.mirror.writers).write_owned().await;
    let table = table_of(engine, &name)?;
    if table.definition.rebalance != definition.rebalance {
        return sql_err!(
            codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the rebalance of {} changed while it ran",
            definition.display_name()
        );
    }
    loop {
        let entries = table
            .store
            .journal(&name, REBALANCE_JOURNAL, ENTRIES_PER_ROUND)
            .await?;
        if entries.is_empty() {
            break;
        }
        work.replay(&entries).await?;
    }
    for receiver in moves.receivers() {
        if work.agrees(receiver).await? {
            continue;
        }
        tracing::warn!(table = %definition.display_name(), member = %moves.after_members[receiver],
            "moved rows differ from where they came from: copying them again");
        for source in moves.sources() {
            work.copy(source, Some(receiver), None).await?;
        }
        if !work.agrees(receiver).await? {
            return sql_err!(
                codes::DATA_CORRUPTED,
                "the rows moved to {} differ from the rows of {} they came from, after copying them again: nothing was switched (RESUME JOB tries again)",
                moves.after_members[receiver],
                definition.display_name()
            );
        }
    }
    let mut switched = definition.clone();
    let rebalance = switched
        .rebalance
        .take()
        .ok_or_else(|| sql_error!(codes::INTERNAL_ERROR, "no rebalance under way"))?;
    // Members that gave rows away and stay hold them until cleaned.
    switched.leftovers = moves
        .sources()
        .into_iter()
        .map(|i| definition.members[i].clone())
        .filter(|m| rebalance.members.contains(m))
        .collect();
    switched.members = rebalance.members;
    switched.owners = Some(rebalance.owners);
    engine.replace_definition(&table, switched).await?;
    table.store.forget_copy(&name, REBALANCE_JOURNAL).await?;
    tracing::info!(table = %definition.display_name(), "members changed: moved rows verified and switched");
    Ok(())
}

/// Deletes from each leftover member the rows of buckets it no longer
/// owns, then forgets the leftovers.
async fn clean(engine: &Engine, table: &Arc<LogicalTable>) -> Result<()> {
    let definition = &table.definition;
    let state = engine.internal_context().state();
    let Some(striping) = definition.layout.key() else {
        return Ok(());
    };
    let placement = definition.placement();
    for member in &definition.leftovers {
        let Some(group) = definition.members.iter().position(|m| m == member) else {
            continue;
        };
        let provider = super::provider::resolve_member(engine, member)
            .await
            .map_err(|e| e.to_error(&definition.described(), member))?;
        let mut rows = scan(&state, &provider).await?;
        let mut foreign = Vec::new();
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            let owners = placement.groups_of(&buckets(
                striping_column(&batch, striping)?,
                placement.buckets,
            )?);
            let gone: Vec<u32> = (0..batch.num_rows() as u32)
                .filter(|&r| owners[r as usize] != group)
                .collect();
            if !gone.is_empty() {
                let rows = arrow::compute::take_record_batch(&batch, &UInt32Array::from(gone))?;
                foreign.push(keys_of(&rows, &definition.primary_key)?);
            }
        }
        resync::delete_keys(&state, &provider, &foreign).await?;
    }
    let _ddl = engine.ddl.lock().await;
    let table = table_of(engine, &definition.key())?;
    let mut cleaned = table.definition.clone();
    cleaned.leftovers.clear();
    engine.replace_definition(&table, cleaned).await
}

/// `CANCEL JOB` before the switch: the old placement back, and the rows
/// copied to members that stay deleted from them again.
async fn revert(engine: &Engine, key: &str) -> Result<()> {
    let table = table_of(engine, key)?;
    let _ddl = engine.ddl.lock().await;
    let _writers = Arc::clone(&table.mirror.writers).write_owned().await;
    let table = table_of(engine, key)?;
    let Some(rebalance) = table.definition.rebalance.clone() else {
        // Already switched: nothing to put back.
        return Ok(());
    };
    let mut reverted = table.definition.clone();
    reverted.rebalance = None;
    reverted.leftovers = rebalance
        .members
        .iter()
        .filter(|m| table.definition.members.contains(m))
        .cloned()
        .collect();
    engine.replace_definition(&table, reverted).await?;
    table.store.forget_copy(key, REBALANCE_JOURNAL).await?;
    drop(_writers);
    drop(_ddl);
    let table = table_of(engine, key)?;
    clean(engine, &table).await
}

/// Everything the copy needs.
struct Work<'a> {
    state: &'a SessionState,
    table: &'a LogicalTable,
    moves: &'a Moves,
    ends: &'a Ends,
    /// The striping key.
    key: &'a str,
}

impl Work<'_> {
    /// The rows of `batch` whose bucket moves, by receiver (only to
    /// `only`, if given), for member `source`.
    fn split(
        &self,
        batch: &RecordBatch,
        source: Option<usize>,
        only: Option<usize>,
    ) -> Result<BTreeMap<usize, RecordBatch>> {
        let column = striping_column(batch, self.key)?;
        let mut rows: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for (row, bucket) in buckets(column, self.moves.before.buckets)?
            .into_iter()
            .enumerate()
        {
            let Some((from, to)) = self.moves.by_bucket[bucket.unwrap_or(0) as usize] else {
                continue;
            };
            if source.is_some_and(|s| s != from) || only.is_some_and(|o| o != to) {
                continue;
            }
            rows.entry(to).or_default().push(row as u32);
        }
        rows.into_iter()
            .map(|(to, rows)| {
                let taken = arrow::compute::take_record_batch(batch, &UInt32Array::from(rows))?;
                Ok((to, taken))
            })
            .collect()
    }

    /// Gives receivers (or `only`) the rows of their buckets `source`
    /// holds, a chunk at a time; counted on `job`.
    async fn copy(&self, source: usize, only: Option<usize>, job: Option<&Job>) -> Result<()> {
        let mut rows = scan(self.state, provider(&self.ends.before[source])?).await?;
        let mut pending: BTreeMap<usize, (Vec<RecordBatch>, usize)> = BTreeMap::new();
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            if let Some(job) = job {
                job.advance(
                    batch.num_rows() as i64,
                    batch.get_array_memory_size() as i64,
                )
                .await?;
            }
            for (to, moved) in self.split(&batch, Some(source), only)? {
                let (held, count) = pending.entry(to).or_default();
                *count += moved.num_rows();
                held.push(moved);
                if *count >= CHUNK_ROWS {
                    let chunk = std::mem::take(held);
                    *count = 0;
                    self.write(to, &chunk).await?;
                    if let Some(job) = job {
                        job.gate().await?;
                    }
                }
            }
        }
        for (to, (held, _)) in pending {
            self.write(to, &held).await?;
        }
        Ok(())
    }

    /// Gives receiver `to` exactly `rows` for their keys.
    async fn write(&self, to: usize, rows: &[RecordBatch]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let keys = rows
            .iter()
            .map(|b| keys_of(b, &self.table.definition.primary_key))
            .collect::<Result<Vec<_>>>()?;
        resync::rewrite_keys(self.state, provider(&self.ends.after[to])?, &keys, rows).await
    }

    /// Copies again the keys of `entries` that are in moving buckets, as
    /// their old member holds them now; the entries are then removed.
    async fn replay(&self, entries: &[crate::engine::metadata::JournalEntry]) -> Result<()> {
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let definition = &self.table.definition;
        if entries.iter().any(|e| e.keys.is_none()) {
            // Every row: copy everything again.
            for source in self.moves.sources() {
                self.copy(source, None, None).await?;
            }
        } else {
            let schema = key_schema(&self.table.declared, &definition.primary_key)?;
            let mut keys = Vec::new();
            for text in entries.iter().filter_map(|e| e.keys.as_deref()) {
                keys.extend(decode_keys(text, &schema)?);
            }
            // Keys by (old member, new member).
            let mut by_move: BTreeMap<(usize, usize), Vec<RecordBatch>> = BTreeMap::new();
            for batch in &keys {
                let column = striping_column(batch, self.key)?;
                let mut rows: BTreeMap<(usize, usize), Vec<u32>> = BTreeMap::new();
                for (row, bucket) in buckets(column, self.moves.before.buckets)?
                    .into_iter()
                    .enumerate()
                {
                    if let Some(pair) = self.moves.by_bucket[bucket.unwrap_or(0) as usize] {
                        rows.entry(pair).or_default().push(row as u32);
                    }
                }
                for (pair, rows) in rows {
                    by_move
                        .entry(pair)
                        .or_default()
                        .push(arrow::compute::take_record_batch(
                            batch,
                            &UInt32Array::from(rows),
                        )?);
                }
            }
            for ((from, to), keys) in by_move {
                resync::copy_keys(
                    self.state,
                    provider(&self.ends.before[from])?,
                    provider(&self.ends.after[to])?,
                    &keys,
                )
                .await?;
            }
        }
        self.table
            .store
            .journal_done(&definition.key(), REBALANCE_JOURNAL, last.seq)
            .await?;
        Ok(())
    }

    /// Whether receiver `to` holds exactly the rows of its moved buckets
    /// that their old members hold, and no row another member owns.
    async fn agrees(&self, to: usize) -> Result<bool> {
        let declared = &self.table.declared;
        let mut moved = RowSums::over(declared)?;
        for source in self.moves.sources() {
            let mut rows = scan(self.state, provider(&self.ends.before[source])?).await?;
            while let Some(batch) = rows.next().await {
                if let Some(share) = self.split(&batch?, Some(source), Some(to))?.remove(&to) {
                    moved.add(&share)?;
                }
            }
        }
        let mut held = RowSums::over(declared)?;
        let mut foreign = 0usize;
        let mut rows = scan(self.state, provider(&self.ends.after[to])?).await?;
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            if let Some(share) = self.split(&batch, None, Some(to))?.remove(&to) {
                held.add(&share)?;
            }
            let column = striping_column(&batch, self.key)?;
            let groups = self
                .moves
                .after
                .groups_of(&buckets(column, self.moves.after.buckets)?);
            foreign += groups.iter().filter(|&&g| g != to).count();
        }
        if foreign > 0 {
            return sql_err!(
                codes::DATA_CORRUPTED,
                "{} holds {foreign} rows that belong on other members of {}: empty it, or add another table as the member",
                self.moves.after_members[to],
                self.table.definition.display_name()
            );
        }
        Ok(moved.agrees_with(&held))
    }
}

/// The striping key's column of `batch`.
fn striping_column<'b>(batch: &'b RecordBatch, key: &str) -> Result<&'b arrow::array::ArrayRef> {
    batch
        .column_by_name(key)
        .ok_or_else(|| sql_error!(codes::UNDEFINED_COLUMN, "striping key \"{key}\" missing"))
}

/// Every row of `table`, as a stream.
async fn scan(
    state: &SessionState,
    table: &Arc<dyn TableProvider>,
) -> Result<datafusion::execution::SendableRecordBatchStream> {
    let plan =
        LogicalPlanBuilder::scan("member", provider_as_source(Arc::clone(table)), None)?.build()?;
    let physical = state.create_physical_plan(&plan).await?;
    datafusion::physical_plan::execute_stream(physical, state.task_ctx())
}
