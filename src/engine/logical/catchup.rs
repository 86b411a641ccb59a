//! Stale copies of mirrored tables brought back: at start, the state the
//! store keeps (and the copies of a write Koios stopped in put in doubt,
//! see [`super::journal`]); then one background task that replays each
//! stale copy's journal as soon as its source is up.
//!
//! Replaying an entry gives the stale copy the rows of the entry's keys as
//! a current copy holds them now ([`super::resync::copy_keys`]; an entry
//! without keys: every row), then removes the entry; a replay cut short
//! (the copy failed again, Koios stopped) is simply done again. Entries
//! are replayed a round at a time, their keys merged, so a copy catches up
//! faster than writes add to its journal; the last round (what is left
//! when it fits in one) runs in the table's write turn, so no write slips
//! between the last entry and declaring the copy current.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use datafusion::error::Result;

use super::journal::{decode_keys, key_schema};
use super::provider::LogicalTableProvider;
use super::{LogicalTable, resync};
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
            if !table.definition.layout.is_mirrored() {
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
                if !table.definition.layout.is_mirrored() || !stale {
                    continue;
                }
                let name = table.display_name();
                match catch_up(&engine, &table).await {
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
/// from a current copy that is up.
async fn catch_up(engine: &Engine, table: &Arc<LogicalTable>) -> Result<()> {
    let resolved = LogicalTableProvider::resolve(engine, Arc::clone(table)).await?;
    let up = |index: usize| {
        let member = &resolved.members[index];
        member.provider.is_ok() && member.health.as_ref().is_none_or(|h| h.is_up())
    };
    let Some(current) = (0..resolved.members.len())
        .find(|&i| !table.mirror.copies[i].is_stale() && up(i))
        .and_then(|i| resolved.members[i].provider.as_ref().ok())
    else {
        // No current copy to catch up from: wait for one.
        return Ok(());
    };
    let state = engine.internal_context().state();
    let keys = key_schema(&table.declared, &table.definition.primary_key)?;
    let name = table.definition.key();
    for (index, member) in resolved.members.iter().enumerate() {
        let copy = &table.mirror.copies[index];
        if !copy.is_stale() || !up(index) {
            continue;
        }
        let Ok(target) = &member.provider else {
            continue;
        };
        let copy_name = member.name.to_string();
        loop {
            let entries = table
                .store
                .journal(&name, &copy_name, ENTRIES_PER_ROUND)
                .await?;
            let last_round = (entries.len() as i64) < ENTRIES_PER_ROUND;
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
                if table.store.mark_current(&name, &copy_name).await? {
                    copy.mark_current();
                    tracing::info!(table = %table.display_name(), copy = %copy_name,
                        "a stale copy caught up and is current again");
                }
                break;
            }
        }
    }
    Ok(())
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
