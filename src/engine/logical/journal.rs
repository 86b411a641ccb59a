//! The write journal of a mirrored table: which copies are current, which
//! are stale and what each stale copy missed.
//!
//! A write to a mirrored table ([`MirrorWrite`]) runs in the table's turn
//! (one write at a time per table on this server, so every copy applies
//! the writes in the same order) and is recorded in the metadata store
//! while it runs. It goes to every current copy whose source is up; when
//! at least `write_quorum` applied it, every copy that did not (stale,
//! down, or failed) gets a journal entry naming the keys the write
//! touched and is marked stale — in one store transaction, before the
//! client hears of success. Replaying an entry ([`super::catchup`]) gives
//! the copy the rows of those keys as a current copy holds them now, so
//! replaying twice changes nothing. With fewer than `write_quorum` copies
//! applying it, the write is undone on those that did (their rows of the
//! touched keys put back as they were), and a copy the undo could not
//! reach is journalled instead (a compensation), so no copy keeps a write
//! the client was told failed.
//!
//! A striped table `WITH (copies = k)` follows the same rules per group
//! of copies ([`super::definition::LogicalTableDef::groups`]): the quorum
//! is counted in each group the write touched, a missed copy is journalled
//! with its own group's keys, and a group below quorum undoes the write on
//! every copy of every group that applied it.
//!
//! A write Koios stopped in (killed mid-statement) leaves its record in
//! the store: at the next start the table's copies are in doubt, and all
//! current copies but one (the first listed that is up) are made stale
//! with an entry for every row, so they are brought back to that one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use koios_connector::sql_error;

use super::LogicalTable;
use super::keys::encode_keys;
use super::provider::ResolvedMember;
use crate::engine::error::{codes, restate};
use crate::engine::metadata::{Missed, StaleCopy};

/// The journal (a "copy" name of the store's journal) of the keys written
/// while a table's members change ([`super::rebalance`]).
pub const REBALANCE_JOURNAL: &str = "(rebalance)";

/// Keys in one `IN` list sent to a copy while replaying or undoing.
pub const KEYS_PER_STATEMENT: usize = 500;

/// What this server knows of one copy's state.
#[derive(Debug, Default)]
pub struct CopyState {
    stale: AtomicBool,
    /// Journal entries not replayed yet.
    entries: AtomicI64,
    /// When it became stale (RFC 3339), while it is.
    since: std::sync::Mutex<Option<String>>,
}

impl CopyState {
    /// Whether the copy missed writes not replayed yet (never read then).
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    pub fn entries(&self) -> i64 {
        self.entries.load(Ordering::Acquire)
    }

    pub fn since(&self) -> Option<String> {
        self.since.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn mark_stale(&self, added: i64, since: &str) {
        let mut at = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if !self.stale.swap(true, Ordering::AcqRel) || at.is_none() {
            *at = Some(since.to_string());
        }
        self.entries.fetch_add(added, Ordering::AcqRel);
    }

    pub(crate) fn replayed(&self, entries: i64) {
        self.entries.fetch_sub(entries, Ordering::AcqRel);
    }

    pub(crate) fn mark_current(&self) {
        *self.since.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.entries.store(0, Ordering::Release);
        self.stale.store(false, Ordering::Release);
    }
}

/// The copies' states of a mirrored table and its turn for writes.
#[derive(Debug)]
pub struct MirrorState {
    /// Held by each write for its whole run, and by the catch-up while it
    /// declares a copy current.
    pub(crate) turn: Arc<tokio::sync::Mutex<()>>,
    /// Held shared by every write of the table (of any layout) while it
    /// runs, and exclusively while its members change
    /// ([`super::members`]): no write is half-way when they do.
    pub(crate) writers: Arc<tokio::sync::RwLock<()>>,
    /// By member index.
    pub copies: Vec<Arc<CopyState>>,
}

impl MirrorState {
    pub fn new(copies: usize) -> MirrorState {
        MirrorState {
            turn: Arc::new(tokio::sync::Mutex::new(())),
            writers: Arc::new(tokio::sync::RwLock::new(())),
            copies: (0..copies).map(|_| Arc::default()).collect(),
        }
    }
}

impl LogicalTable {
    /// Takes the stale copies the store lists for this table.
    pub(crate) fn load_stale(&self, stored: &[StaleCopy]) {
        let key = self.definition.key();
        for stale in stored.iter().filter(|s| s.table == key) {
            if let Some(index) = self.member_index(&stale.copy) {
                self.mirror.copies[index].mark_stale(stale.entries, &stale.since);
            }
        }
    }

    /// The index of the member named `source.schema.table`.
    pub(crate) fn member_index(&self, name: &str) -> Option<usize> {
        self.definition
            .members
            .iter()
            .position(|m| m.to_string() == name)
    }

    /// Makes the copies consistent after a write Koios stopped in (found in
    /// the store at start): every current copy but `authority` becomes
    /// stale with an entry for every row.
    pub(crate) async fn recover_unfinished(&self, up: &[bool]) -> Result<()> {
        let key = self.definition.key();
        let unfinished = self.store.unfinished_writes(&key).await?;
        if unfinished.is_empty() {
            return Ok(());
        }
        // Per group of copies, its first current copy that is up (else its
        // first current one) is the authority the others are brought to.
        let definition = &self.definition;
        let mut authorities = Vec::new();
        let mut missed = Vec::new();
        for group in 0..definition.groups() {
            let current: Vec<usize> = definition
                .group_members(group)
                .filter(|&i| !self.mirror.copies[i].is_stale())
                .collect();
            let authority = current
                .iter()
                .copied()
                .find(|&i| up.get(i).copied().unwrap_or(false))
                .or_else(|| current.first().copied());
            if let Some(authority) = authority {
                authorities.push(definition.members[authority].to_string());
            }
            missed.extend(
                current
                    .iter()
                    .filter(|&&i| Some(i) != authority)
                    .map(|&i| Missed {
                        copy: definition.members[i].to_string(),
                        keys: None,
                    }),
            );
        }
        tracing::warn!(
            table = %self.display_name(),
            writes = unfinished.len(),
            authorities = ?authorities,
            "a write to a table with copies was in flight when Koios stopped: its other copies \
             are brought back to the first that is up"
        );
        self.store.end_writes(&key, &unfinished, &missed).await?;
        let now = crate::engine::metadata::now_text();
        for entry in &missed {
            if let Some(index) = self.member_index(&entry.copy) {
                self.mirror.copies[index].mark_stale(1, &now);
            }
        }
        Ok(())
    }

    /// Starts a write: waits for the table's turn, chooses the copies it
    /// goes to, and records it in the store. Fails, writing nothing, when
    /// fewer than `write_quorum` copies of one of `groups` can take it
    /// (the groups it is known to write; an insert checks each group as
    /// its rows arrive, with [`MirrorWrite::shortfall`]).
    pub async fn begin_mirror_write(
        self: &Arc<Self>,
        members: &[ResolvedMember],
        groups: &[usize],
    ) -> Result<MirrorWrite> {
        let turn = Arc::clone(&self.mirror.turn).lock_owned().await;
        let quorum = self
            .definition
            .layout
            .write_quorum()
            .unwrap_or(self.definition.copies());
        let skipped: Vec<Option<String>> = members
            .iter()
            .map(|member| {
                if self.mirror.copies[member.index].is_stale() {
                    return Some("stale: catching up on writes it missed".to_string());
                }
                if let Some(health) = &member.health
                    && !health.is_up()
                {
                    let why = health.detail().last_error.unwrap_or_default();
                    return Some(format!("its source is down: {why}"));
                }
                member.provider.as_ref().err().map(|e| e.message.clone())
            })
            .collect();
        for &group in groups {
            if let Some(error) = shortfall(&self.definition, &skipped, quorum, group) {
                return Err(error);
            }
        }
        let id = self.store.begin_write(&self.definition.key()).await?;
        Ok(MirrorWrite {
            table: Arc::clone(self),
            turn: Some(turn),
            id,
            quorum,
            skipped,
            touched: std::sync::Mutex::new(vec![None; self.definition.groups()]),
            ended: false,
        })
    }
}

/// Why group `group` of `definition` cannot take a write — fewer than
/// `quorum` of its copies can (`skipped`: why each member cannot, by
/// index) — or `None` if it can.
fn shortfall(
    definition: &super::LogicalTableDef,
    skipped: &[Option<String>],
    quorum: usize,
    group: usize,
) -> Option<DataFusionError> {
    let copies = definition.group_members(group);
    let available = copies
        .clone()
        .filter(|&i| skipped.get(i).is_some_and(Option::is_none))
        .count();
    if available >= quorum {
        return None;
    }
    let why: Vec<String> = copies
        .clone()
        .filter_map(|i| {
            let reason = skipped.get(i)?.as_ref()?;
            Some(format!("{} ({reason})", definition.members[i]))
        })
        .collect();
    let of = if definition.groups() == 1 {
        format!("{} copies", copies.len())
    } else {
        let names: Vec<String> = copies.map(|i| definition.members[i].to_string()).collect();
        format!(
            "the {} copies of the rows on {}",
            names.len(),
            names.join(", ")
        )
    };
    Some(sql_error!(
        codes::CONNECTION_FAILURE,
        "{}: only {available} of {of} can take writes, and write_quorum is {quorum}: {}; nothing was written",
        definition.described(),
        why.join(", ")
    ))
}

/// The keys a write touched in each group of copies, by group: `None` for
/// a group it did not write.
pub type GroupKeys = Vec<Option<Vec<RecordBatch>>>;

/// One write to a table with copies, from its start to its journal
/// entries.
pub struct MirrorWrite {
    pub(super) table: Arc<LogicalTable>,
    /// The table's write turn, held until the write is ended (and, for a
    /// write stopped mid-way, until its copies are put in doubt).
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    pub(super) id: i64,
    quorum: usize,
    /// By member index: why the write does not go to that copy.
    skipped: Vec<Option<String>>,
    /// The keys each group may have been sent so far ([`Self::sending`]):
    /// what a write stopped mid-way may have changed.
    touched: std::sync::Mutex<GroupKeys>,
    /// Ended in the store (journalled, undone or abandoned).
    ended: bool,
}

impl Drop for MirrorWrite {
    /// A write dropped before it ended — its statement cancelled, timed
    /// out or its client gone mid-way — may have been applied on some
    /// copies and not others: its copies are put in doubt
    /// ([`super::stopped`]), still in the table's turn.
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let touched = std::mem::take(&mut *self.touched.lock().unwrap_or_else(|p| p.into_inner()));
        let stopped = super::stopped::StoppedWrite {
            table: Arc::clone(&self.table),
            id: self.id,
            targets: self.targets(),
            touched,
            turn: self.turn.take(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(stopped.put_in_doubt());
            }
            // No runtime (shutting down): the next start finds the write
            // unfinished and recovers it.
            Err(_) => drop(stopped),
        }
    }
}

/// What a write did on one copy.
pub type CopyOutcome = Option<Result<u64>>;

impl MirrorWrite {
    /// Whether the write goes to the copy at `index`.
    pub fn writes_to(&self, index: usize) -> bool {
        self.skipped.get(index).is_some_and(Option::is_none)
    }

    /// The copies the write goes to, by index.
    pub fn targets(&self) -> Vec<usize> {
        (0..self.skipped.len())
            .filter(|&i| self.writes_to(i))
            .collect()
    }

    /// Notes that rows of `keys` are about to be sent to the copies of
    /// `group` (before they are sent: a write stopped later may have
    /// changed them).
    pub fn sending(&self, group: usize, keys: RecordBatch) {
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = touched.get_mut(group) {
            slot.get_or_insert_with(Vec::new).push(keys);
        }
    }

    /// Why group `group` cannot take the write (fewer than `write_quorum`
    /// of its copies can), or `None`.
    pub fn shortfall(&self, group: usize) -> Option<DataFusionError> {
        shortfall(&self.table.definition, &self.skipped, self.quorum, group)
    }

    /// Ends the write after the copies ran (`outcomes` by member index,
    /// `None` where it was not sent), `keys` being the keys it touched in
    /// each group (`None`: unknown, every row of every group). When every
    /// group it touched has `write_quorum` copies that applied it:
    /// journals the copies that missed it and returns its count (one
    /// copy's per group, added up). Otherwise: `undo` is asked to undo it
    /// on the copies that applied it (their indices; one result each), a
    /// copy it could not undo is journalled, and the statement fails.
    pub async fn finish<U, F>(
        mut self,
        verb: &str,
        outcomes: Vec<CopyOutcome>,
        keys: Option<GroupKeys>,
        undo: U,
    ) -> Result<u64>
    where
        U: FnOnce(Vec<usize>) -> F,
        F: std::future::Future<Output = Vec<Result<()>>>,
    {
        let table = Arc::clone(&self.table);
        let definition = &table.definition;
        let name = definition.described();
        let groups = definition.groups();
        let applied: Vec<usize> = (0..outcomes.len())
            .filter(|&i| matches!(outcomes[i], Some(Ok(_))))
            .collect();
        let touched: Vec<usize> = match &keys {
            None => (0..groups).collect(),
            Some(keys) => (0..groups)
                .filter(|&g| keys.get(g).is_some_and(Option::is_some))
                .collect(),
        };
        let applied_in = |group: usize| {
            definition
                .group_members(group)
                .filter(|i| applied.contains(i))
                .count()
        };
        let short = touched
            .iter()
            .copied()
            .find(|&g| applied_in(g) < self.quorum);
        // Journal texts of each group's keys.
        let entries: Vec<Vec<Option<String>>> = match &keys {
            None => vec![vec![None]; groups],
            Some(keys) => (0..groups)
                .map(|g| match keys.get(g) {
                    Some(Some(batches)) => encode_keys(Some(batches)),
                    _ => Ok(Vec::new()),
                })
                .collect::<Result<_>>()?,
        };
        let journal_for = |copies: &[usize]| -> Vec<Missed> {
            copies
                .iter()
                .flat_map(|&i| {
                    let copy = definition.members[i].to_string();
                    entries[definition.group_of(i)]
                        .iter()
                        .map(move |keys| Missed {
                            copy: copy.clone(),
                            keys: keys.clone(),
                        })
                })
                .collect()
        };
        // A table whose members are changing: the keys of every group the
        // write touched, for the rebalance to copy again.
        let mut moving: Vec<Missed> = Vec::new();
        if definition.rebalance.is_some() {
            for &group in &touched {
                for keys in &entries[group] {
                    if keys.is_none() && moving.iter().any(|m| m.keys.is_none()) {
                        continue;
                    }
                    moving.push(Missed {
                        copy: REBALANCE_JOURNAL.to_string(),
                        keys: keys.clone(),
                    });
                }
            }
        }
        let Some(short) = short else {
            let missed_copies: Vec<usize> = touched
                .iter()
                .flat_map(|&g| definition.group_members(g))
                .filter(|i| !applied.contains(i))
                .collect();
            for &i in &missed_copies {
                if let Some(Some(Err(e))) = outcomes.get(i) {
                    tracing::warn!(table = %name, copy = %definition.members[i], error = %e,
                        "a copy failed a write the others applied: it is stale until it catches up");
                }
            }
            let mut missed = journal_for(&missed_copies);
            missed.extend(moving);
            self.record(&missed).await.map_err(|e| {
                restate(&e, |m| {
                    format!("{verb} of {name} was applied on {} of {} copies but could not be journalled for the others ({m}); Koios brings the copies back together when it restarts", applied.len(), outcomes.len())
                })
            })?;
            let count = touched
                .iter()
                .map(|&g| {
                    definition
                        .group_members(g)
                        .filter_map(|i| match outcomes.get(i) {
                            Some(Some(Ok(rows))) => Some(*rows),
                            _ => None,
                        })
                        .max()
                        .unwrap_or(0)
                })
                .sum();
            return Ok(count);
        };
        // Below quorum: the first copy's error, or why the group's copies
        // could not take it.
        let first_error = outcomes.iter().enumerate().find_map(|(i, o)| match o {
            Some(Err(e)) => Some((i, e)),
            _ => None,
        });
        let error = match first_error {
            Some((failed, error)) => restate(error, |m| {
                format!(
                    "{verb} of {name} failed on copy {}: {m}",
                    definition.members[failed]
                )
            }),
            None => self.shortfall(short).unwrap_or_else(|| {
                DataFusionError::Internal(format!(
                    "{verb} of {name}: below quorum with no copy failing"
                ))
            }),
        };
        if applied.is_empty() {
            // Applied nowhere: each copy's statement is its own transaction.
            self.record(&[]).await?;
            return Err(error);
        }
        let undone = undo(applied.clone()).await;
        let mut kept = Vec::new();
        let mut restored = Vec::new();
        for (&i, result) in applied.iter().zip(undone) {
            match result {
                Ok(()) => restored.push(definition.members[i].to_string()),
                Err(e) => {
                    tracing::warn!(table = %name, copy = %definition.members[i], error = %e,
                        "could not undo a write below quorum: the copy is journalled to be put back");
                    kept.push(i);
                }
            }
        }
        let mut compensation = journal_for(&kept);
        compensation.extend(moving);
        self.record(&compensation).await?;
        let journalled: Vec<String> = kept
            .iter()
            .map(|&i| definition.members[i].to_string())
            .collect();
        let (applied_short, copies_short) = if groups == 1 {
            (applied.len(), outcomes.len())
        } else {
            (applied_in(short), definition.group_members(short).len())
        };
        Err(restate(&error, |m| {
            let mut text = if groups == 1 {
                format!(
                    "{m}; it applied on {applied_short} of {copies_short} copies, below write_quorum {}",
                    self.quorum
                )
            } else {
                let names: Vec<String> = definition
                    .group_members(short)
                    .map(|i| definition.members[i].to_string())
                    .collect();
                format!(
                    "{m}; its rows on {} applied on {applied_short} of those {copies_short} copies, below write_quorum {}",
                    names.join(", "),
                    self.quorum
                )
            };
            if !restored.is_empty() {
                text.push_str(&format!(", and was undone on {}", restored.join(", ")));
            }
            if !journalled.is_empty() {
                text.push_str(&format!(
                    "; {} could not be undone now and will be put back from a copy that did not apply it",
                    journalled.join(", ")
                ));
            }
            text
        }))
    }

    /// Ends a write that was sent to no copy.
    pub async fn abandon(mut self) -> Result<()> {
        self.record(&[]).await
    }

    /// Journals `missed`, marks those copies stale and ends the write.
    async fn record(&mut self, missed: &[Missed]) -> Result<()> {
        self.ended = true;
        end_write(&self.table, self.id, missed).await
    }
}

/// Ends write `id` of `table` in the store, journalling `missed` and
/// marking those copies stale.
pub(super) async fn end_write(table: &LogicalTable, id: i64, missed: &[Missed]) -> Result<()> {
    let result = table
        .store
        .end_writes(&table.definition.key(), &[id], missed)
        .await;
    // Stale in memory even when the store failed: never read it again
    // before it is brought back.
    let now = crate::engine::metadata::now_text();
    for entry in missed {
        if let Some(index) = table.member_index(&entry.copy) {
            table.mirror.copies[index].mark_stale(1, &now);
        }
    }
    result
}

/// Refuses a write to a table with copies inside `BEGIN … COMMIT`: each
/// copy's write commits on its own, so the block could not undo it.
pub fn refuse_in_block(context: &datafusion::execution::TaskContext, table: &str) -> Result<()> {
    let open = koios_connector::transaction::block_of(context)
        .is_some_and(|block| block.state_now() != koios_connector::transaction::BlockState::Idle);
    if open {
        return Err(sql_error!(
            codes::FEATURE_NOT_SUPPORTED,
            "{table} cannot be written inside a transaction block: each copy commits its write on its own (run the write outside BEGIN … COMMIT)"
        ));
    }
    Ok(())
}
