//! Stale copies of tables with copies (mirrored, or striped with copies)
//! brought back, each from a current copy of its group: at start, the state the
//! store keeps (and the copies of a write Koios stopped in put in doubt,
//! see [`super::journal`]); then one background task that replays each
//! stale copy's journal as soon as its source is up.
//!
//! Replaying an entry gives the stale copy the rows of the entry's keys as
//! a current copy holds them now ([`super::resync::copy_keys`]), then
//! removes the entry; an entry without keys at the head of the journal (a
//! copy added by `ADD MIRROR`) is a fill, run as a job ([`super::fill`]); a replay cut short
//! (the copy failed again, Koios stopped) is simply done again. Entries
//! are replayed a round at a time, their keys merged, so a copy catches up
//! faster than writes add to its journal; the last round (what is left
//! when it fits in one) runs in the table's write turn, so no write slips
//! between the last entry and declaring the copy current.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use datafusion::error::Result;

use super::keys::{decode_keys, key_schema};
use super::provider::LogicalTableProvider;
use super::{LogicalTable, fill, resync};
use crate::engine::Engine;

/// Journal entries replayed together (their keys merged into one read and
/// one rewrite per few hundred keys).
const ENTRIES_PER_ROUND: i64 = 256;

impl Engine {
    /// Takes the mirrored tables' copy states from the store, and makes
    /// the copies of a write Koios stopped in consistent again.
    pub(crate) async fn restore_mirrors(&self) -> crate::engine::error::Result<()> {
        let stale = self.store.stale_copies().await?;
        for table in self.logical_tables().into_values() {
            if !table.definition.layout.has_copies() {
                continue;
            }
            table.load_stale(&stale);
            let up: Vec<bool> = table
                .definition
                .members
                .iter()
                .map(|m| self.source_health(&m.source).is_some_and(|h| h.is_up()))
                .collect();
            table.recover_unfinished(&up).await?;
        }
        Ok(())
    }
}

/// Starts the catch-up task; it ends when the engine is dropped.
pub(crate) fn spawn(engine: &Arc<Engine>, interval: Duration) {
    let weak: Weak<Engine> = Arc::downgrade(engine);
    // A stale copy is looked at within a second of its source coming back
    // (a look at a table with no stale copy reads only memory).
    let tick = (interval / 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
    tokio::spawn(async move {
        // The last failure per table, logged once until it changes.
        let mut failures: HashMap<String, String> = HashMap::new();
        loop {
            tokio::time::sleep(tick).await;
            let Some(engine) = weak.upgrade() else {
                break;
            };
            for table in engine.logical_tables().into_values() {
                let stale = table.mirror.copies.iter().any(|c| c.is_stale());
                if !table.definition.layout.has_copies() {
                    continue;
                }
                let name = table.display_name();
                let caught_up = if stale {
                    catch_up(&engine, &table).await
                } else {
                    Ok(())
                };
                let outcome = match caught_up {
                    Ok(()) => super::alter::finish_moves(&engine, &table).await,
                    failed => failed,
                };
                match outcome {
                    Ok(()) => {
                        failures.remove(&name);
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if failures.get(&name) != Some(&message) {
                            tracing::warn!(table = %name, error = %message,
                                "a stale copy could not catch up yet; retrying");
                            failures.insert(name, message);
                        }
                    }
                }
            }
        }
    });
}

/// Replays the journal of each stale copy of `table` whose source is up,
/// from a current copy of its group that is up.
async fn catch_up(engine: &Engine, table: &Arc<LogicalTable>) -> Result<()> {
    let resolved = LogicalTableProvider::resolve(engine, Arc::clone(table)).await?;
    let up = |index: usize| {
        let member = &resolved.members[index];
        member.provider.is_ok() && member.health.as_ref().is_none_or(|h| h.is_up())
    };
    let definition = &table.definition;
    let state = engine.internal_context().state();
    let keys = key_schema(&table.declared, &definition.primary_key)?;
    let name = definition.key();
    for (index, member) in resolved.members.iter().enumerate() {
        let copy = &table.mirror.copies[index];
        if !copy.is_stale() || !up(index) {
            continue;
        }
        let Ok(target) = &member.provider else {
            continue;
        };
        let Some(current) = definition
            .group_members(definition.group_of(index))
            .find(|&i| !table.mirror.copies[i].is_stale() && up(i))
            .and_then(|i| resolved.members[i].provider.as_ref().ok())
        else {
            // No current copy to catch up from: wait for one.
            continue;
        };
        let copy_name = member.name.to_string();
        loop {
            let mut entries = table
                .store
                .journal(&name, &copy_name, ENTRIES_PER_ROUND)
                .await?;
            // A copy to fill from nothing (ADD MIRROR): a job of its own,
            // outside the write turn.
            if let Some(first) = entries.first()
                && first.keys.is_none()
            {
                let job = fill::job_for(engine, table, &copy_name).await?;
                let filled = fill::fill(&state, current, target, &job).await;
                if let Err(e) = filled {
                    return stopped_fill(engine, table, member, &job, e).await;
                }
                table
                    .store
                    .journal_done(&name, &copy_name, first.seq)
                    .await?;
                copy.replayed(1);
                continue;
            }
            let mut last_round = (entries.len() as i64) < ENTRIES_PER_ROUND;
            // An every-row entry further on waits for its own round.
            if let Some(cut) = entries.iter().position(|e| e.keys.is_none()) {
                entries.truncate(cut);
                last_round = false;
            }
            // The last round holds the turn: no write adds to the journal
            // until the copy is current (or the round failed).
            let _turn = if last_round {
                Some(table.mirror.turn.lock().await)
            } else {
                None
            };
            let entries = if last_round {
                // Read again in the turn: a write may have ended meanwhile.
                table.store.journal(&name, &copy_name, i64::MAX).await?
            } else {
                entries
            };
            if let Some(last) = entries.last() {
                replay(&state, current, target, &keys, &entries).await?;
                table
                    .store
                    .journal_done(&name, &copy_name, last.seq)
                    .await?;
                copy.replayed(entries.len() as i64);
            }
            if last_round {
                // A filled copy is compared with a current one first.
                let job = fill::unfinished(engine, table, &copy_name);
                if let Some(job) = &job
                    && let Err(e) = fill::verify(&state, table, current, target).await
                {
                    job.note_error(&e.to_string()).await?;
                    return Err(e);
                }
                if table.store.mark_current(&name, &copy_name).await? {
                    copy.mark_current();
                    // A move ends once the copy it replaces is dropped
                    // (outside the turn: see alter::finish_moves).
                    if let Some(job) = &job
                        && job.kind() != super::members::MOVE_MEMBER_JOB
                    {
                        job.finish(&Ok(())).await?;
                    }
                    tracing::info!(table = %table.display_name(), copy = %copy_name,
                        "a stale copy caught up and is current again");
                }
                break;
            }
        }
    }
    Ok(())
}

/// A fill that stopped: cancelled (`CANCEL JOB`), the job ends and the
/// copy is dropped from its table again; otherwise the error is noted on
/// the job and the catch-up tries again later.
async fn stopped_fill(
    engine: &Engine,
    table: &LogicalTable,
    member: &super::provider::ResolvedMember,
    job: &crate::engine::jobs::Job,
    error: datafusion::error::DataFusionError,
) -> Result<()> {
    if !job.is_cancelled() {
        job.note_error(&error.to_string()).await?;
        return Err(error);
    }
    if !job.state().is_finished() {
        job.finish(&Err(error)).await?;
    }
    super::alter::cancelled_fill(engine, table, &member.name, job).await
}

/// Gives `target` what `current` holds for the keys of `entries` (every
/// row if one of them says so: that copy covers all the entries before it
/// too, their writes having been applied on `current` already).
async fn replay(
    state: &datafusion::execution::context::SessionState,
    current: &Arc<dyn datafusion::catalog::TableProvider>,
    target: &Arc<dyn datafusion::catalog::TableProvider>,
    key_schema: &arrow::datatypes::SchemaRef,
    entries: &[crate::engine::metadata::JournalEntry],
) -> Result<()> {
    if entries.iter().any(|e| e.keys.is_none()) {
        return resync::copy_all(state, current, target).await;
    }
    let mut keys = Vec::new();
    for entry in entries {
        if let Some(text) = &entry.keys {
            keys.extend(decode_keys(text, key_schema)?);
        }
    }
    resync::copy_keys(state, current, target, &keys).await
}
