//! `ALTER TABLE koios.schema.t ADD MIRROR source.schema.table` and
//! `… DROP MIRROR …`: a copy added to or dropped from a mirrored table.
//!
//! A new copy is created in its backend with the declared columns (or an
//! existing table checked, as at `CREATE TABLE`) and joins the table
//! *stale*, with a journal entry for every row: the catch-up task
//! ([`super::catchup`]) fills it from a current copy in the background as
//! a job ([`super::fill`], shown in `koios.system.jobs` from the start),
//! writes made meanwhile reach it through its journal, and it becomes
//! current (and is read) once its journal is empty and it compared equal
//! with a current copy. `koios.system.members` shows its state
//! (`copy_state`, `journal_length`, `lag_seconds`).
//!
//! A dropped copy stops being written and read at once (a fill still
//! running is cancelled); its table stays
//! in its backend (drop it there, or keep it as a snapshot). A table keeps
//! at least one copy, and at least one current copy; `write_quorum` is
//! lowered to the number of copies left if it was above.
//!
//! `MOVE MEMBER a TO b` is an `ADD MIRROR b` whose job (a `move member`
//! job, filling `b` as above) drops `a` once `b` is current
//! ([`finish_moves`]): until then both are written and `a` is read as
//! before; a cancelled move drops `b` again. The copy to drop is in the
//! job's stored spec, so a restart between the two steps finishes it.
//!
//! On a striped table `WITH (copies = k)` members are grouped by position,
//! so `MOVE MEMBER a TO b` puts `b` in `a`'s place at once: `a` is no
//! longer written or read, and `b` is filled from a current copy of the
//! group (the move needs one) as a `move member` job — the group keeps its
//! other copies meanwhile, one fewer than usual. A cancelled move puts `a`
//! back in its place, refilled the same way since it missed the writes
//! made meanwhile.
//!
//! All of these run in the table's write turn, so no write is half-way
//! when the copies change.

use std::sync::Arc;

use datafusion::error::Result;
use koios_connector::sql_err;

use super::definition::{Layout, MemberName};
use super::journal::MirrorState;
use super::{LogicalTable, TableOrigin};
use crate::engine::Engine;
use crate::engine::catalog::KOIOS_CATALOG;
use crate::engine::error::codes;
use crate::engine::metadata::Missed;

/// A change of a mirrored table's copies.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum CopyChange {
    /// A new copy, filled by a job; `replacing` is dropped once it is
    /// current (`MOVE MEMBER`).
    Add {
        replacing: Option<MemberName>,
    },
    Drop,
    /// The new copy takes `old`'s place in its group of a striped table
    /// `WITH (copies = k)` at once, filled from a current copy of the group
    /// (`MOVE MEMBER` there: members are grouped by position). `undo`: it
    /// puts back the copy a cancelled move replaced, filled again by a
    /// resync rather than a move job.
    Replace {
        old: MemberName,
        undo: bool,
    },
}

impl Engine {
    /// Adds or drops `copy`; the id of the job filling an added copy.
    pub(super) async fn alter_mirror(
        &self,
        schema: &str,
        table: &str,
        copy: MemberName,
        change: CopyChange,
    ) -> Result<Option<i64>> {
        let _ddl = self.ddl.lock().await;
        let Some(logical) = self.logical_table(schema, table) else {
            return sql_err!(
                codes::UNDEFINED_TABLE,
                "mirrored table \"{KOIOS_CATALOG}.{schema}.{table}\" does not exist"
            );
        };
        let described = logical.definition.described();
        let replaces_in_group =
            matches!(change, CopyChange::Replace { .. }) && logical.definition.layout.has_copies();
        if !logical.definition.layout.is_mirrored() && !replaces_in_group {
            return sql_err!(
                codes::WRONG_OBJECT_TYPE,
                "{described} is not mirrored: ADD MIRROR and DROP MIRROR change the copies of a mirrored table"
            );
        }
        if logical.origin == TableOrigin::File {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "{described} is declared in the configuration file ([[table]]): change its members there"
            );
        }
        let _writers = Arc::clone(&logical.mirror.writers).write_owned().await;
        let _turn = Arc::clone(&logical.mirror.turn).lock_owned().await;
        let mut definition = logical.definition.clone();
        let key = definition.key();
        let add = !matches!(change, CopyChange::Drop);
        if let CopyChange::Replace { old, .. } = &change {
            replace_in_group(self, &logical, &mut definition, old, &copy).await?;
        } else if let CopyChange::Add { replacing } = &change {
            if definition.members.contains(&copy) {
                return sql_err!(
                    codes::DUPLICATE_OBJECT,
                    "{copy} is already a copy of {described}"
                );
            }
            if let Some(old) = replacing
                && !definition.members.contains(old)
            {
                return sql_err!(
                    codes::UNDEFINED_OBJECT,
                    "{old} is not a copy of {described}"
                );
            }
            self.check_or_create_member(&definition, &logical.declared, &copy)
                .await?;
            definition.members.push(copy.clone());
        } else {
            let Some(index) = definition.members.iter().position(|m| m == &copy) else {
                return sql_err!(
                    codes::UNDEFINED_OBJECT,
                    "{copy} is not a copy of {described}"
                );
            };
            if definition.members.len() == 1 {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "{copy} is the last copy of {described}: DROP TABLE it instead"
                );
            }
            let current_left = (0..definition.members.len())
                .any(|i| i != index && !logical.mirror.copies[i].is_stale());
            if !current_left {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "{copy} is the only current copy of {described}: the others are still catching up; drop it once they are current"
                );
            }
            definition.members.remove(index);
            if let Layout::Mirrored { write_quorum, .. } = &mut definition.layout {
                *write_quorum = (*write_quorum).min(definition.members.len());
            }
        }
        self.store
            .update_definition(&key, &definition.to_json()?)
            .await?;
        let copy_name = copy.to_string();
        let mut job = None;
        if let CopyChange::Replace { old, undo } = &change {
            self.store.forget_copy(&key, &old.to_string()).await?;
            // Every row to copy: the catch-up fills it (a resync job when
            // undoing a move).
            self.store
                .end_writes(
                    &key,
                    &[],
                    &[Missed {
                        copy: copy_name.clone(),
                        keys: None,
                    }],
                )
                .await?;
            if !undo {
                job = Some(
                    super::fill::start(self, &logical, &copy_name, Some(old))
                        .await?
                        .id(),
                );
            }
        } else if let CopyChange::Add { replacing } = &change {
            // Every row to copy: the catch-up fills it.
            self.store
                .end_writes(
                    &key,
                    &[],
                    &[Missed {
                        copy: copy_name.clone(),
                        keys: None,
                    }],
                )
                .await?;
            // Shown in koios.system.jobs at once; the catch-up runs it.
            job = Some(
                super::fill::start(self, &logical, &copy_name, replacing.as_ref())
                    .await?
                    .id(),
            );
        } else {
            self.store.forget_copy(&key, &copy_name).await?;
            let filling = super::fill::unfinished(self, &logical, &copy_name);
            if let Some(job) = filling {
                if job.kind() == super::fill::FILL_JOB
                    || job.kind() == super::members::MOVE_MEMBER_JOB
                {
                    self.jobs.cancel(job.id()).await?;
                }
                job.finish(&sql_err!(
                    codes::QUERY_CANCELED,
                    "the copy was dropped from its table before it was filled"
                ))
                .await?;
            }
        }
        let mut changed = LogicalTable::new(
            definition,
            logical.position.load(std::sync::atomic::Ordering::Acquire),
            logical.origin,
            logical.created_at.clone(),
            Arc::clone(&self.store),
        )?;
        changed.mirror = carried(&logical, &changed);
        if add && let Some(index) = changed.member_index(&copy_name) {
            changed.mirror.copies[index].mark_stale(1, &crate::engine::metadata::now_text());
        }
        self.logical
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Arc::new(changed));
        // Writes planned with the old copies run again when retried.
        logical
            .replaced
            .store(true, std::sync::atomic::Ordering::Release);
        self.catalog_changed();
        tracing::info!(table = %logical.display_name(), copy = %copy_name,
            "{}", if add { "copy added: it is filled in the background" } else { "copy dropped" });
        Ok(job)
    }
}

/// Ends the `move member` jobs of `table` whose new copy is current: the
/// copy it replaces is dropped, then the job is done. A move cancelled
/// after its fill drops the new copy instead; one whose new copy is gone
/// (dropped meanwhile) fails saying so.
pub(super) async fn finish_moves(engine: &Engine, table: &LogicalTable) -> Result<()> {
    let name = table.display_name();
    let moves = engine.jobs().list().into_iter().filter(|job| {
        job.kind() == super::members::MOVE_MEMBER_JOB
            && !job.state().is_finished()
            && job.view().row.source == name
    });
    for job in moves.collect::<Vec<_>>() {
        let spec: MoveSpec = serde_json::from_str(&job.spec()).map_err(|e| {
            datafusion::error::DataFusionError::Internal(format!(
                "move job {} has an unreadable spec: {e}",
                job.id()
            ))
        })?;
        let definition = &table.definition;
        let Some(index) = table.member_index(&spec.copy) else {
            job.finish(&sql_err!(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the new copy {} is no longer a copy of {}",
                spec.copy,
                definition.described()
            ))
            .await?;
            continue;
        };
        if table.mirror.copies[index].is_stale() {
            // Still filling or catching up.
            continue;
        }
        let (drop, outcome) = if job.is_cancelled() {
            (
                Some(spec.copy.as_str()),
                sql_err!(
                    codes::QUERY_CANCELED,
                    "the move was cancelled: the new copy was dropped again"
                ),
            )
        } else {
            (spec.replaces.as_deref(), Ok(()))
        };
        if job.is_cancelled() && !definition.layout.is_mirrored() {
            undo_move(engine, table, &spec).await?;
        } else if let Some(drop) = drop
            && let Some(member) = definition.members.iter().find(|m| m.to_string() == drop)
        {
            engine
                .alter_mirror(
                    &definition.schema,
                    &definition.table,
                    member.clone(),
                    CopyChange::Drop,
                )
                .await?;
        }
        job.finish(&outcome).await?;
        tracing::info!(table = %name, copy = %spec.copy, job = job.id(),
            "move of a copy ended: {}", if outcome.is_ok() { "the old copy was dropped" } else { "cancelled" });
    }
    Ok(())
}

/// Checks a `MOVE MEMBER old TO new` of a striped table with copies and
/// puts `new` in `old`'s place in `definition`: `old` must be a member
/// whose group keeps another current copy (to fill `new` from), `new` no
/// member yet (created, or checked, in its backend).
async fn replace_in_group(
    engine: &Engine,
    logical: &LogicalTable,
    definition: &mut super::definition::LogicalTableDef,
    old: &MemberName,
    new: &MemberName,
) -> Result<()> {
    let described = definition.described();
    if definition.members.contains(new) {
        return sql_err!(
            codes::DUPLICATE_OBJECT,
            "{new} is already a member of {described}"
        );
    }
    let Some(index) = definition.members.iter().position(|m| m == old) else {
        return sql_err!(
            codes::UNDEFINED_OBJECT,
            "{old} is not a member of {described}"
        );
    };
    let peers_current = definition
        .group_members(definition.group_of(index))
        .any(|i| i != index && !logical.mirror.copies[i].is_stale());
    if !peers_current {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "{old} holds the only current copy of its rows in {described}: the other copies of its group are still catching up; move it once they are current"
        );
    }
    engine
        .check_or_create_member(definition, &logical.declared, new)
        .await?;
    definition.members[index] = new.clone();
    Ok(())
}

/// A cancelled move of a striped table's copy: the copy it replaced takes
/// its place again, filled from its group by a resync (it missed the
/// writes made meanwhile).
async fn undo_move(engine: &Engine, table: &LogicalTable, spec: &MoveSpec) -> Result<()> {
    let definition = &table.definition;
    let find = |name: &str| definition.members.iter().find(|m| m.to_string() == name);
    let (Some(new), Some(old)) = (find(&spec.copy), spec.replaced.clone()) else {
        return Ok(());
    };
    engine
        .alter_mirror(
            &definition.schema,
            &definition.table,
            old,
            CopyChange::Replace {
                old: new.clone(),
                undo: true,
            },
        )
        .await
        .map(drop)
}

/// Ends a fill that was cancelled: an added copy is dropped again; on a
/// striped table with copies (a move, in place), the replaced copy is put
/// back.
pub(super) async fn cancelled_fill(
    engine: &Engine,
    table: &LogicalTable,
    copy: &MemberName,
    job: &crate::engine::jobs::Job,
) -> Result<()> {
    let definition = &table.definition;
    if !definition.members.contains(copy) {
        return Ok(());
    }
    if !definition.layout.is_mirrored() {
        let spec: MoveSpec = serde_json::from_str(&job.spec()).map_err(|e| {
            datafusion::error::DataFusionError::Internal(format!(
                "move job {} has an unreadable spec: {e}",
                job.id()
            ))
        })?;
        return undo_move(engine, table, &spec).await;
    }
    engine
        .alter_mirror(
            &definition.schema,
            &definition.table,
            copy.clone(),
            CopyChange::Drop,
        )
        .await
        .map(drop)
}

/// What a fill job stores: its table, the copy it fills and, for a move,
/// the copy to drop after.
#[derive(Debug, serde::Deserialize)]
struct MoveSpec {
    copy: String,
    #[serde(default)]
    replaces: Option<String>,
    /// The same, as a member (kept by moves since striped tables with
    /// copies could move members: what a cancelled one puts back).
    #[serde(default)]
    replaced: Option<MemberName>,
}

/// The copies' states of `old` carried over to `new` (by copy name), with
/// the same write turn.
pub(super) fn carried(old: &LogicalTable, new: &LogicalTable) -> MirrorState {
    MirrorState {
        turn: Arc::clone(&old.mirror.turn),
        writers: Arc::clone(&old.mirror.writers),
        copies: new
            .definition
            .members
            .iter()
            .map(
                |member| match old.definition.members.iter().position(|m| m == member) {
                    Some(index) => Arc::clone(&old.mirror.copies[index]),
                    None => Arc::default(),
                },
            )
            .collect(),
    }
}
