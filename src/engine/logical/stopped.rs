//! A write to a table with copies stopped mid-way — its statement
//! cancelled, timed out, or its client gone — before it was journalled
//! or undone ([`super::journal::MirrorWrite`] dropped unended).
//!
//! Some copies may have applied part or all of it and others not, and the
//! client was never told it succeeded. Still in the table's write turn,
//! in each group of copies the write reached, the first copy it was sent
//! to becomes the authority and every other copy of the group gets a
//! journal entry for the keys the write may have touched (the keys noted
//! before any row was sent) and becomes stale: the catch-up gives them
//! what the authority holds, so the write ends up applied on every copy
//! or on none, never half. A write stopped before it sent anything ends
//! with no entry. If this cannot be recorded, the write stays unfinished
//! in the store and the next start recovers it
//! ([`super::LogicalTable::recover_unfinished`]).

use std::sync::Arc;

use super::LogicalTable;
use super::journal::{GroupKeys, end_write};
use super::keys::encode_keys;
use crate::engine::metadata::Missed;

/// What is left of a write stopped mid-way.
pub(super) struct StoppedWrite {
    pub table: Arc<LogicalTable>,
    pub id: i64,
    /// The copies it was sent to, by index.
    pub targets: Vec<usize>,
    /// The keys each group may have been sent.
    pub touched: GroupKeys,
    /// The table's write turn, held until the copies are put in doubt.
    pub turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl StoppedWrite {
    /// Journals the copies other than each group's authority for the
    /// touched keys, and ends the write.
    pub async fn put_in_doubt(self) {
        let _turn = self.turn;
        let table = &self.table;
        let definition = &table.definition;
        let mut missed = Vec::new();
        let mut authorities = Vec::new();
        for (group, keys) in self.touched.iter().enumerate() {
            let Some(keys) = keys else { continue };
            let copies = definition.group_members(group);
            let Some(authority) = copies.clone().find(|i| self.targets.contains(i)) else {
                continue;
            };
            authorities.push(definition.members[authority].to_string());
            let entries = match encode_keys(Some(keys)) {
                Ok(entries) => entries,
                // Keys that cannot be written down: every row instead.
                Err(_) => vec![None],
            };
            if definition.rebalance.is_some() {
                // The rows it may have changed are copied again by the
                // rebalance under way.
                missed.extend(entries.iter().map(|keys| Missed {
                    copy: super::journal::REBALANCE_JOURNAL.to_string(),
                    keys: keys.clone(),
                }));
            }
            for copy in copies.filter(|&i| i != authority) {
                let name = definition.members[copy].to_string();
                missed.extend(entries.iter().map(|keys| Missed {
                    copy: name.clone(),
                    keys: keys.clone(),
                }));
            }
        }
        if !authorities.is_empty() {
            tracing::warn!(
                table = %table.display_name(),
                authorities = ?authorities,
                "a write was stopped mid-way (cancelled, timed out or its client gone): the other \
                 copies of the rows it touched are brought back to the first copy it reached"
            );
        }
        if let Err(e) = end_write(table, self.id, &missed).await {
            tracing::warn!(table = %table.display_name(), error = %e,
                "a stopped write could not be recorded: Koios recovers it at its next start");
        }
    }
}
