//! `INSERT … ON CONFLICT` into a logical table.
//!
//! Conflicts are found by the primary key, and every member finds its own:
//! a hash-striped table's key includes its striping key, so a row and any
//! row it conflicts with live on the same member (on each member of the
//! same group, with copies); a mirrored table's copies each hold every
//! row. Each member (or copy) runs the upsert
//! through its own connector's upsert, with the rows routed to it as for
//! an insert ([`super::write`]). A round-robin table is refused: a row
//! already there may be on any member.
//!
//! An upsert into a table with copies (mirrored, or striped with copies)
//! reads its input to the end first and, under the table's write turn,
//! the rows its keys have now on one current copy of each group (the
//! *pre-image*): if too few copies apply it, the copies that did get those
//! rows back — an insert's undo (deleting the keys) would lose the rows an
//! upsert updated. Its input is held in memory for that.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionState;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use koios_connector::upsert::{ConflictAction, OnConflict, UpsertValue};
use koios_connector::{Capabilities, sql_err};

use super::provider::ResolvedMember;
use super::{Layout, LogicalTable, resync};
use crate::engine::error::codes;

/// An insert's `ON CONFLICT` clause, and the connectors that plan it on
/// each member.
pub struct MemberUpsert<'a> {
    pub on_conflict: &'a OnConflict,
    pub capabilities: &'a Capabilities,
}

/// Refuses a clause the members could not carry out as one table would.
pub fn check(table: &LogicalTable, on_conflict: &OnConflict) -> Result<()> {
    let definition = &table.definition;
    let name = definition.described();
    if matches!(definition.layout, Layout::StripedRoundRobin { .. }) {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "INSERT … ON CONFLICT into {name} is not supported: a round-robin table's rows may be on any member, so no member can find a conflict (stripe by hash on a key column instead)"
        );
    }
    let key = &definition.primary_key;
    let mut target = on_conflict.target.clone();
    let mut sorted_key = key.clone();
    target.sort();
    sorted_key.sort();
    if key.is_empty() || target != sorted_key {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "ON CONFLICT ({}) on {name} is not supported: its members find conflicts by the primary key{}",
            on_conflict.target.join(", "),
            if key.is_empty() {
                ", and it has none".to_string()
            } else {
                format!(": write ON CONFLICT ({})", key.join(", "))
            }
        );
    }
    if let ConflictAction::Update(assignments) = &on_conflict.action {
        for (column, value) in assignments {
            let unchanged = matches!(value, UpsertValue::Proposed(from) if from == column);
            if key.contains(column) && !unchanged {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "ON CONFLICT … DO UPDATE SET {column} on {name} is not supported: it would change the primary key, by which members place and copies match rows"
                );
            }
        }
    }
    Ok(())
}

/// An upsert's input (into a table with copies) read to its end, and the
/// rows its keys have now in each group of copies, read from the first of
/// the group's copies it goes to (`targets`); a group with no such copy
/// has none (its rows are refused as they are routed).
pub async fn read_before(
    source: &mut SendableRecordBatchStream,
    table: &LogicalTable,
    targets: &[usize],
    members: &[ResolvedMember],
    state: &SessionState,
) -> Result<(Vec<RecordBatch>, Vec<Vec<RecordBatch>>)> {
    let mut input = Vec::new();
    while let Some(batch) = source.next().await {
        input.push(batch?);
    }
    let definition = &table.definition;
    let key = &definition.primary_key;
    let keys = input
        .iter()
        .map(|batch| super::keys::keys_of(batch, key))
        .collect::<Result<Vec<_>>>()?;
    let mut before = Vec::with_capacity(definition.groups());
    for group in 0..definition.groups() {
        let copy = definition
            .group_members(group)
            .find(|i| targets.contains(i))
            .and_then(|i| members.get(i));
        let Some(copy) = copy else {
            before.push(Vec::new());
            continue;
        };
        let provider = copy
            .provider
            .as_ref()
            .map_err(|e| DataFusionError::Execution(e.message.clone()))?;
        let rows = resync::read_keys(state, provider, &keys).await.map_err(|e| {
            crate::engine::error::restate(&e, |m| {
                format!(
                    "{}: reading the rows the upsert may change from copy {} failed, so nothing was written: {m}",
                    definition.described(),
                    copy.name
                )
            })
        })?;
        before.push(rows);
    }
    Ok((input, before))
}

/// `batches` as a stream again.
pub fn replay(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    let stream = futures::stream::iter(batches.into_iter().map(Ok));
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// The undo of a mirrored upsert on one copy: its keys get back the rows
/// they had (`before`), and keys that had none are deleted.
pub async fn undo(
    state: &SessionState,
    member: &ResolvedMember,
    keys: &[RecordBatch],
    before: &[RecordBatch],
) -> Result<()> {
    let provider = member
        .provider
        .as_ref()
        .map_err(|e| DataFusionError::Execution(e.message.clone()))?;
    resync::rewrite_keys(state, provider, keys, before).await
}

/// The shared reference a planned exec keeps of a clause.
pub fn owned(upsert: Option<&MemberUpsert<'_>>) -> Option<Arc<OnConflict>> {
    upsert.map(|u| Arc::new(u.on_conflict.clone()))
}
