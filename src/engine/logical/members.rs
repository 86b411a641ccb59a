//! `ALTER TABLE koios.schema.t ADD MEMBER m`, `DROP MEMBER m` and
//! `MOVE MEMBER a TO b`: the members of a logical table changed while it
//! is read and written.
//!
//! * A **hash-striped** table (without copies) keeps the owner of each of
//!   its [`HASH_BUCKETS`] virtual buckets. Adding a member gives it an
//!   equal share of buckets taken from the members holding the most, so
//!   only the rows of those buckets move (about `1/(n+1)` of the table);
//!   dropping one spreads its buckets over the members holding the
//!   fewest; moving one hands all its buckets to the new member. The
//!   change is recorded as a *rebalance* in the table's definition and
//!   carried out by a job ([`super::rebalance`]); placement stays as it
//!   was until the moved rows are copied and verified, then switches at
//!   once.
//! * A **mirrored** table: `ADD MEMBER` and `DROP MEMBER` are `ADD MIRROR`
//!   and `DROP MIRROR` ([`super::alter`]); `MOVE MEMBER a TO b` adds `b`
//!   and drops `a` once `b` is filled and current, as one job.
//! * A **round-robin** table: `ADD MEMBER` adds a member new rows are
//!   spread over; no row moves.
//! * A hash-striped table **with copies** (members grouped by position):
//!   `MOVE MEMBER a TO b` puts `b` in `a`'s place in its group at once,
//!   filled from a current copy of the group like a new mirror
//!   ([`super::alter`]); adding or dropping single members, which would
//!   break the groups, is refused.
//!
//! Installing a rebalance waits for the writes under way (the table's
//! writers' lock) so that every later write journals the keys it touched
//! for the job; a write planned before it is refused with SQLSTATE 40001
//! and runs again when the client retries.

use std::sync::Arc;

use datafusion::error::Result;
use koios_connector::sql_err;

use super::alter::CopyChange;
use super::definition::{HASH_BUCKETS, Layout, LogicalTableDef, MemberName, Rebalance};
use super::{LogicalTable, TableOrigin};
use crate::engine::Engine;
use crate::engine::catalog::KOIOS_CATALOG;
use crate::engine::error::codes;

/// A change of a table's members, as `ALTER TABLE` asks for it.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange<T> {
    Add(T),
    Drop(T),
    Move(T, T),
}

impl<T> MemberChange<T> {
    /// The job kind: `add member` / `drop member` / `move member`.
    pub fn job_kind(&self) -> &'static str {
        match self {
            MemberChange::Add(_) => ADD_MEMBER_JOB,
            MemberChange::Drop(_) => DROP_MEMBER_JOB,
            MemberChange::Move(..) => MOVE_MEMBER_JOB,
        }
    }

    /// The same change of other names.
    pub fn try_map<U, E>(
        &self,
        mut f: impl FnMut(&T) -> Result<U, E>,
    ) -> Result<MemberChange<U>, E> {
        Ok(match self {
            MemberChange::Add(m) => MemberChange::Add(f(m)?),
            MemberChange::Drop(m) => MemberChange::Drop(f(m)?),
            MemberChange::Move(a, b) => MemberChange::Move(f(a)?, f(b)?),
        })
    }
}

pub const ADD_MEMBER_JOB: &str = "add member";
pub const DROP_MEMBER_JOB: &str = "drop member";
pub const MOVE_MEMBER_JOB: &str = "move member";

impl Engine {
    /// Carries out `ALTER TABLE … ADD|DROP|MOVE MEMBER`; the id of the job
    /// moving rows, if one was started.
    pub async fn alter_members(
        self: &Arc<Self>,
        schema: &str,
        table: &str,
        change: MemberChange<MemberName>,
    ) -> Result<Option<i64>> {
        let Some(logical) = self.logical_table(schema, table) else {
            return sql_err!(
                codes::UNDEFINED_TABLE,
                "logical table \"{KOIOS_CATALOG}.{schema}.{table}\" does not exist"
            );
        };
        let described = logical.definition.described();
        if logical.origin == TableOrigin::File {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "{described} is declared in the configuration file ([[table]]): change its members there"
            );
        }
        match (&logical.definition.layout, change) {
            (Layout::Mirrored { .. }, MemberChange::Add(copy)) => {
                self.alter_mirror(schema, table, copy, CopyChange::Add { replacing: None })
                    .await
            }
            (Layout::Mirrored { .. }, MemberChange::Drop(copy)) => {
                self.alter_mirror(schema, table, copy, CopyChange::Drop)
                    .await
            }
            (Layout::Mirrored { .. }, MemberChange::Move(from, to)) => {
                let replacing = Some(from);
                self.alter_mirror(schema, table, to, CopyChange::Add { replacing })
                    .await
            }
            (Layout::StripedRoundRobin { .. }, MemberChange::Add(member)) => {
                self.add_round_robin_member(&logical, member).await?;
                Ok(None)
            }
            (Layout::StripedRoundRobin { .. }, _) => sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "{described} places rows in round robin, not by key: its rows cannot be moved by key; ADD MEMBER is supported, DROP and MOVE MEMBER are not (stripe it BY HASH to move rows)"
            ),
            (
                Layout::StripedHash {
                    copies: Some(_), ..
                },
                MemberChange::Move(from, to),
            ) => {
                let change = CopyChange::Replace {
                    old: from,
                    undo: false,
                };
                self.alter_mirror(schema, table, to, change).await
            }
            (
                Layout::StripedHash {
                    copies: Some(_), ..
                },
                _,
            ) => sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "{described} keeps copies of its rows in groups of members: MOVE MEMBER replaces one copy of a group; ADD MEMBER and DROP MEMBER are not supported there yet (create a new table and MIGRATE the rows)"
            ),
            (Layout::StripedHash { key, .. }, change) => {
                let key = key.clone();
                self.start_rebalance(&logical, &key, change).await.map(Some)
            }
        }
    }

    async fn add_round_robin_member(
        &self,
        logical: &Arc<LogicalTable>,
        member: MemberName,
    ) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        let mut definition = logical.definition.clone();
        if definition.members.contains(&member) {
            return sql_err!(
                codes::DUPLICATE_OBJECT,
                "{member} is already a member of {}",
                definition.described()
            );
        }
        self.check_or_create_member(&definition, &logical.declared, &member)
            .await?;
        definition.members.push(member);
        self.install_members(logical, definition).await
    }

    /// Records the rebalance `change` asks for and starts its job.
    async fn start_rebalance(
        self: &Arc<Self>,
        logical: &Arc<LogicalTable>,
        key: &str,
        change: MemberChange<MemberName>,
    ) -> Result<i64> {
        let _ddl = self.ddl.lock().await;
        // The table as it is now (not as planned).
        let definition = &logical.definition;
        let described = definition.described();
        if let Some(rebalance) = &definition.rebalance {
            return sql_err!(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the members of {described} are already being changed by job {}: wait for it to finish (koios.system.jobs), or CANCEL JOB {}",
                rebalance.job,
                rebalance.job
            );
        }
        if !definition.leftovers.is_empty() {
            return sql_err!(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "{described} is still deleting the rows its last rebalance moved away: try again in a moment"
            );
        }
        if !definition.primary_key.iter().any(|k| k == key) {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "the rows of {described} cannot be moved while it is written: moving them keeps writes in step by primary key, and its striping key \"{key}\" is not part of one"
            );
        }
        let placement = definition.placement();
        let current = placement.owners();
        let groups = definition.groups();
        let (members, owners, shown) = match &change {
            MemberChange::Add(member) => {
                self.refuse_member(definition, member)?;
                self.check_or_create_member(definition, &logical.declared, member)
                    .await?;
                let mut members = definition.members.clone();
                members.push(member.clone());
                (members, owners_adding(&current, groups), member)
            }
            MemberChange::Drop(member) => {
                let index = self.member_position(definition, member)?;
                if definition.members.len() == 1 {
                    return sql_err!(
                        codes::FEATURE_NOT_SUPPORTED,
                        "{member} is the last member of {described}: DROP TABLE it instead"
                    );
                }
                let mut members = definition.members.clone();
                members.remove(index);
                (members, owners_dropping(&current, groups, index), member)
            }
            MemberChange::Move(from, to) => {
                let index = self.member_position(definition, from)?;
                self.refuse_member(definition, to)?;
                self.check_or_create_member(definition, &logical.declared, to)
                    .await?;
                let mut members = definition.members.clone();
                members[index] = to.clone();
                (members, current.clone(), to)
            }
        };
        let spec = serde_json::json!({ "table": definition.key() }).to_string();
        let job = self
            .jobs()
            .start(
                change.job_kind(),
                &definition.display_name(),
                &shown.to_string(),
                &spec,
            )
            .await?;
        let mut changed = definition.clone();
        changed.rebalance = Some(Rebalance {
            members,
            owners,
            job: job.id(),
        });
        if let Err(e) = self.install_members(logical, changed).await {
            let stopped = datafusion::error::DataFusionError::Execution(e.to_string());
            let _ = job.finish(&Err(stopped)).await;
            return Err(e);
        }
        tracing::info!(table = %definition.display_name(), job = job.id(), change = change.job_kind(),
            "members changing: rows move in the background");
        super::rebalance::spawn(self, job.id(), definition.key());
        Ok(job.id())
    }

    fn refuse_member(&self, definition: &LogicalTableDef, member: &MemberName) -> Result<()> {
        if definition.members.contains(member) {
            return sql_err!(
                codes::DUPLICATE_OBJECT,
                "{member} is already a member of {}",
                definition.described()
            );
        }
        Ok(())
    }

    fn member_position(&self, definition: &LogicalTableDef, member: &MemberName) -> Result<usize> {
        match definition.members.iter().position(|m| m == member) {
            Some(index) => Ok(index),
            None => sql_err!(
                codes::UNDEFINED_OBJECT,
                "{member} is not a member of {}",
                definition.described()
            ),
        }
    }

    /// Makes `definition` the table's, in the store and then in memory,
    /// once the writes under way ended; writes planned against the old
    /// definition are refused from then on (they run again when retried).
    pub(super) async fn install_members(
        &self,
        old: &Arc<LogicalTable>,
        definition: LogicalTableDef,
    ) -> Result<()> {
        let _writers = Arc::clone(&old.mirror.writers).write_owned().await;
        self.replace_definition(old, definition).await
    }

    /// Stores `definition` and serves it in place of `old`'s (the caller
    /// holds what keeps writes out, if it must).
    pub(super) async fn replace_definition(
        &self,
        old: &Arc<LogicalTable>,
        definition: LogicalTableDef,
    ) -> Result<()> {
        let key = definition.key();
        self.store
            .update_definition(&key, &definition.to_json()?)
            .await?;
        let placement_changed = old.definition.members != definition.members
            || old.definition.owners != definition.owners
            || old.definition.rebalance.is_some() != definition.rebalance.is_some();
        let mut changed = LogicalTable::new(
            definition,
            old.position.load(std::sync::atomic::Ordering::Acquire),
            old.origin,
            old.created_at.clone(),
            Arc::clone(&self.store),
        )?;
        changed.mirror = super::alter::carried(old, &changed);
        self.logical
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Arc::new(changed));
        if placement_changed {
            old.replaced
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.catalog_changed();
        Ok(())
    }
}

/// The owners after adding group `groups` (the groups numbered
/// `0..groups` before): the new group takes buckets, from the highest
/// down, from groups holding more than their share of `groups + 1`, until
/// it holds its own share. Every other bucket keeps its owner.
pub fn owners_adding(current: &[u32], groups: usize) -> Vec<u32> {
    let total = current.len();
    let after = groups + 1;
    let share = |g: usize| total / after + usize::from(g < total % after);
    let mut counts = vec![0usize; after];
    for &g in current {
        if let Some(c) = counts.get_mut(g as usize) {
            *c += 1;
        }
    }
    let mut owners = current.to_vec();
    let new = groups;
    for bucket in (0..total).rev() {
        if counts[new] >= share(new) {
            break;
        }
        let owner = owners[bucket] as usize;
        if owner < groups && counts[owner] > share(owner) {
            counts[owner] -= 1;
            counts[new] += 1;
            owners[bucket] = new as u32;
        }
    }
    owners
}

/// The owners after dropping group `dropped`: each of its buckets goes to
/// the group holding the fewest (the lowest-numbered on a tie), and the
/// groups after it are numbered one lower.
pub fn owners_dropping(current: &[u32], groups: usize, dropped: usize) -> Vec<u32> {
    let mut counts = vec![0usize; groups];
    for &g in current {
        if let Some(c) = counts.get_mut(g as usize) {
            *c += 1;
        }
    }
    counts[dropped] = usize::MAX;
    let mut owners = current.to_vec();
    for owner in owners.iter_mut() {
        if *owner as usize == dropped {
            let (fewest, _) = counts
                .iter()
                .enumerate()
                .min_by_key(|(g, c)| (**c, *g))
                .unwrap_or((0, &0));
            counts[fewest] += 1;
            *owner = fewest as u32;
        }
    }
    for owner in owners.iter_mut() {
        if *owner as usize > dropped {
            *owner -= 1;
        }
    }
    owners
}

/// Buckets a hash-striped table has: its layout's count.
pub fn bucket_count(definition: &LogicalTableDef) -> u32 {
    match &definition.layout {
        Layout::StripedHash { buckets, .. } => *buckets,
        _ => HASH_BUCKETS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modulo(groups: u32) -> Vec<u32> {
        (0..4096).map(|b| b % groups).collect()
    }

    fn moved(a: &[u32], b: &[u32]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    #[test]
    fn adding_a_member_moves_only_its_share() {
        let before = modulo(3);
        let after = owners_adding(&before, 3);
        // The new member gets 1024 buckets, and only those move.
        assert_eq!(after.iter().filter(|&&g| g == 3).count(), 1024);
        assert_eq!(moved(&before, &after), 1024);
        for g in 0..4 {
            assert_eq!(after.iter().filter(|&&o| o == g).count(), 1024);
        }
        // Adding again keeps it balanced within one bucket.
        let again = owners_adding(&after, 4);
        for g in 0..5u32 {
            let n = again.iter().filter(|&&o| o == g).count();
            assert!((819..=820).contains(&n), "group {g}: {n}");
        }
        assert_eq!(moved(&after, &again), 819);
    }

    #[test]
    fn dropping_a_member_moves_only_its_buckets() {
        let before = modulo(4);
        let after = owners_dropping(&before, 4, 1);
        assert!(after.iter().all(|&g| g < 3));
        for g in 0..3u32 {
            let n = after.iter().filter(|&&o| o == g).count();
            assert!((1365..=1366).contains(&n), "group {g}: {n}");
        }
        // Members 0, 2, 3 stay (numbered 0, 1, 2 after): only member 1's
        // buckets change hands.
        let member_after = [0u32, 2, 3];
        let moved_rows = (0..4096)
            .filter(|&b| before[b] != member_after[after[b] as usize])
            .count();
        assert_eq!(moved_rows, 1024);
    }
}
