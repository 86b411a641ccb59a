//! `VERIFY TABLE` and `REPAIR TABLE` of a table with copies: a mirrored
//! table, or a striped one `WITH (copies = k)` (each group of copies
//! compared within itself).
//!
//! Each copy is read once, its rows in the declared column types, and
//! summed per *key range* — the [`RANGES`] ranges of the hash of a row's
//! primary key — as a row count and an order-independent checksum (the
//! wrapping sum of a hash of each row's declared-type encoding). The
//! summing is done in Koios, not in the backends: each engine renders
//! numbers, times and text differently, so a checksum computed in SQL by
//! each would differ for equal rows. Ranges in which the copies disagree
//! are reported; in each, the copies holding what most current copies
//! hold are right (on a tie, the first listed current copy).
//!
//! `REPAIR TABLE` then gives every copy that disagrees the rows of those
//! ranges as a right copy holds them (the keys of the range found on
//! either side rewritten, as a journal replay does), and verifies again.
//! Both hold the table's write turn while they read, so that writes do
//! not show as differences; writes wait meanwhile.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::catalog::TableProvider;
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlanBuilder;
use futures::StreamExt;
use koios_connector::sql_err;

use super::provider::LogicalTableProvider;
use super::write::for_member;
use super::{LogicalTable, resync};
use crate::engine::Engine;
use crate::engine::catalog::KOIOS_CATALOG;
use crate::engine::error::codes;

/// Key ranges a table is compared in.
pub const RANGES: usize = 16;

/// The columns `VERIFY TABLE` and `REPAIR TABLE` answer with.
pub fn check_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        // `all`, or `k/16`: the k-th range of the key's hash.
        Field::new("range", DataType::Utf8, false),
        Field::new("copy", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, true),
        Field::new("checksum", DataType::Utf8, true),
        // ok | differs | repaired | stale | unavailable: why
        Field::new("status", DataType::Utf8, false),
    ]))
}

/// One copy's counts and checksums per range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sums {
    rows: [i64; RANGES],
    sums: [u64; RANGES],
}

impl Sums {
    fn range(&self, range: usize) -> (i64, u64) {
        (self.rows[range], self.sums[range])
    }

    fn total(&self) -> (i64, u64) {
        (
            self.rows.iter().sum(),
            self.sums.iter().fold(0u64, |a, b| a.wrapping_add(*b)),
        )
    }
}

/// A copy as the check found it.
struct Checked {
    name: String,
    stale: bool,
    sums: std::result::Result<Sums, String>,
}

/// The range of each row's key, by the rows of `keys`.
fn ranges_of(keys: &RowConverter, columns: &[ArrayRef]) -> Result<Vec<usize>> {
    let rows = keys.convert_columns(columns)?;
    Ok(rows
        .iter()
        .map(|row| (super::placement::fnv(7, row.as_ref()) % RANGES as u64) as usize)
        .collect())
}

fn converter(schema: &Schema, columns: &[String]) -> Result<RowConverter> {
    let fields = columns
        .iter()
        .map(|c| {
            Ok(SortField::new(
                schema.field_with_name(c)?.data_type().clone(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RowConverter::new(fields)?)
}

/// Reads every row of a copy and sums it per range.
async fn summarize(
    state: &SessionState,
    copy: &Arc<dyn TableProvider>,
    table: &LogicalTable,
) -> Result<Sums> {
    let declared = &table.declared;
    let names: Vec<String> = declared.fields().iter().map(|f| f.name().clone()).collect();
    let key = &table.definition.primary_key;
    let row_converter = converter(declared, &names)?;
    let key_converter = converter(declared, key)?;
    let plan =
        LogicalPlanBuilder::scan("copy", provider_as_source(Arc::clone(copy)), None)?.build()?;
    let physical = state.create_physical_plan(&plan).await?;
    let mut stream = datafusion::physical_plan::execute_stream(physical, state.task_ctx())?;
    let mut sums = Sums {
        rows: [0; RANGES],
        sums: [0; RANGES],
    };
    while let Some(batch) = stream.next().await {
        let batch = for_member(&batch?, declared)?;
        let key_columns = key
            .iter()
            .map(|k| Ok(Arc::clone(batch.column(declared.index_of(k)?))))
            .collect::<Result<Vec<_>>>()?;
        let ranges = ranges_of(&key_converter, &key_columns)?;
        let rows = row_converter.convert_columns(batch.columns())?;
        for (row, range) in rows.iter().zip(ranges) {
            sums.rows[range] += 1;
            sums.sums[range] =
                sums.sums[range].wrapping_add(super::placement::fnv(8, row.as_ref()));
        }
    }
    Ok(sums)
}

/// The keys of `copy` whose range is in `ranges`.
async fn keys_in(
    state: &SessionState,
    copy: &Arc<dyn TableProvider>,
    table: &LogicalTable,
    ranges: &[usize],
) -> Result<Vec<RecordBatch>> {
    let key = &table.definition.primary_key;
    let key_schema = super::keys::key_schema(&table.declared, key)?;
    let key_converter = converter(&table.declared, key)?;
    let mut found = Vec::new();
    for batch in resync::read(state, copy, None).await? {
        let batch = for_member(&batch, &key_schema)?;
        let in_range = ranges_of(&key_converter, batch.columns())?
            .into_iter()
            .map(|r| ranges.contains(&r))
            .collect::<arrow::array::BooleanArray>();
        found.push(arrow::compute::filter_record_batch(&batch, &in_range)?);
    }
    Ok(found)
}

/// The ranges in which two copies of `table` differ.
pub(super) async fn differing_ranges(
    state: &SessionState,
    table: &LogicalTable,
    a: &Arc<dyn TableProvider>,
    b: &Arc<dyn TableProvider>,
) -> Result<Vec<usize>> {
    let (x, y) = futures::try_join!(summarize(state, a, table), summarize(state, b, table))?;
    Ok((0..RANGES).filter(|&r| x.range(r) != y.range(r)).collect())
}

/// Gives `to` exactly the rows `from` holds in `ranges`.
pub(super) async fn copy_ranges(
    state: &SessionState,
    table: &LogicalTable,
    from: &Arc<dyn TableProvider>,
    to: &Arc<dyn TableProvider>,
    ranges: &[usize],
) -> Result<()> {
    let mut keys = keys_in(state, from, table, ranges).await?;
    keys.extend(keys_in(state, to, table, ranges).await?);
    resync::copy_keys(state, from, to, &keys).await
}

impl Engine {
    /// `VERIFY TABLE` (or, with `repair`, `REPAIR TABLE`) of the mirrored
    /// table `koios.schema.table`.
    pub async fn check_mirrored(
        &self,
        schema: &str,
        table: &str,
        repair: bool,
    ) -> Result<RecordBatch> {
        let Some(logical) = self.logical_table(schema, table) else {
            return sql_err!(
                codes::UNDEFINED_TABLE,
                "mirrored table \"{KOIOS_CATALOG}.{schema}.{table}\" does not exist"
            );
        };
        if !logical.definition.layout.has_copies() {
            return sql_err!(
                codes::WRONG_OBJECT_TYPE,
                "{} keeps no copies: VERIFY TABLE and REPAIR TABLE compare the copies of a mirrored table, or of a striped table WITH (copies = k)",
                logical.definition.described()
            );
        }
        let definition = &logical.definition;
        let resolved = LogicalTableProvider::resolve(self, Arc::clone(&logical)).await?;
        let state = self.internal_context().state();
        let _turn = logical.mirror.turn.lock().await;
        let checked = check(&state, &logical, &resolved).await;
        if !repair {
            return report(definition, &checked, &[]);
        }
        let right = majority(definition, &checked);
        let mut repaired = Vec::new();
        for (group, right) in right.iter().enumerate() {
            for (range, authority) in right.iter().enumerate() {
                let Some(authority) = *authority else {
                    continue;
                };
                let wanted = checked[authority]
                    .sums
                    .as_ref()
                    .map(|s| s.range(range))
                    .ok();
                for index in definition.group_members(group) {
                    let Ok(sums) = &checked[index].sums else {
                        continue;
                    };
                    if Some(sums.range(range)) != wanted {
                        repaired.push((range, index, authority));
                    }
                }
            }
        }
        for (index, member) in resolved.members.iter().enumerate() {
            let ranges: Vec<usize> = repaired
                .iter()
                .filter(|(_, copy, _)| *copy == index)
                .map(|(range, _, _)| *range)
                .collect();
            let Some(&(_, _, authority)) = repaired.iter().find(|(_, copy, _)| *copy == index)
            else {
                continue;
            };
            let (Ok(target), Ok(source)) =
                (&member.provider, &resolved.members[authority].provider)
            else {
                continue;
            };
            let mut keys = keys_in(&state, source, &logical, &ranges).await?;
            keys.extend(keys_in(&state, target, &logical, &ranges).await?);
            resync::copy_keys(&state, source, target, &keys).await?;
            tracing::info!(table = %logical.display_name(), copy = %member.name,
                ranges = ?ranges, "REPAIR TABLE rewrote the ranges where the copy differed");
        }
        let after = check(&state, &logical, &resolved).await;
        let fixed: Vec<(usize, usize)> = repaired.iter().map(|(r, c, _)| (*r, *c)).collect();
        report(definition, &after, &fixed)
    }
}

/// Every copy's sums (or why it could not be read).
async fn check(
    state: &SessionState,
    table: &LogicalTable,
    resolved: &LogicalTableProvider,
) -> Vec<Checked> {
    let reads = resolved.members.iter().map(|member| async move {
        let sums = match &member.provider {
            Ok(copy) => summarize(state, copy, table)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.message.clone()),
        };
        Checked {
            name: member.name.to_string(),
            stale: table.mirror.copies[member.index].is_stale(),
            sums,
        }
    });
    futures::future::join_all(reads).await
}

/// Per group of copies, per range, the copy holding what most current
/// copies of the group hold (ties: the first listed); `None` if no current
/// copy could be read.
fn majority(definition: &super::LogicalTableDef, checked: &[Checked]) -> Vec<Vec<Option<usize>>> {
    (0..definition.groups())
        .map(|group| majority_of(checked, definition.group_members(group)))
        .collect()
}

/// [`majority`] among the copies `copies`.
fn majority_of(checked: &[Checked], copies: std::ops::Range<usize>) -> Vec<Option<usize>> {
    (0..RANGES)
        .map(|range| {
            let candidates: Vec<(usize, (i64, u64))> = checked
                .iter()
                .enumerate()
                .filter(|(i, _)| copies.contains(i))
                .filter(|(_, c)| !c.stale)
                .filter_map(|(i, c)| c.sums.as_ref().ok().map(|s| (i, s.range(range))))
                .collect();
            let votes = |value: (i64, u64)| candidates.iter().filter(|(_, v)| *v == value).count();
            let best = candidates.iter().map(|(_, v)| votes(*v)).max()?;
            candidates
                .iter()
                .find(|(_, v)| votes(*v) == best)
                .map(|(i, _)| *i)
        })
        .collect()
}

/// The answer: each copy's whole-table row count and checksum, then each
/// range where a copy disagrees with the right one.
fn report(
    definition: &super::LogicalTableDef,
    checked: &[Checked],
    repaired: &[(usize, usize)],
) -> Result<RecordBatch> {
    let right = majority(definition, checked);
    let mut range_col = StringBuilder::new();
    let mut copy_col = StringBuilder::new();
    let mut rows_col = Int64Builder::new();
    let mut checksum_col = StringBuilder::new();
    let mut status_col = StringBuilder::new();
    let differs = |index: usize, range: usize| -> bool {
        let authority = right.get(definition.group_of(index)).and_then(|r| r[range]);
        let (Some(authority), Ok(sums)) = (authority, &checked[index].sums) else {
            return false;
        };
        checked[authority]
            .sums
            .as_ref()
            .ok()
            .map(|s| s.range(range))
            != Some(sums.range(range))
    };
    for (index, copy) in checked.iter().enumerate() {
        range_col.append_value("all");
        copy_col.append_value(&copy.name);
        match &copy.sums {
            Ok(sums) => {
                let (rows, sum) = sums.total();
                rows_col.append_value(rows);
                checksum_col.append_value(format!("{sum:016x}"));
                let any = (0..RANGES).any(|r| differs(index, r));
                let was_repaired = repaired.iter().any(|(_, c)| *c == index);
                status_col.append_value(match (any, copy.stale, was_repaired) {
                    (true, true, _) => "stale",
                    (true, false, _) => "differs",
                    (false, _, true) => "repaired",
                    (false, _, false) => "ok",
                });
            }
            Err(why) => {
                rows_col.append_null();
                checksum_col.append_null();
                status_col.append_value(format!("unavailable: {why}"));
            }
        }
    }
    for range in 0..RANGES {
        for (index, copy) in checked.iter().enumerate() {
            let Ok(sums) = &copy.sums else { continue };
            let was_repaired = repaired.contains(&(range, index));
            if !differs(index, range) && !was_repaired {
                continue;
            }
            let (rows, sum) = sums.range(range);
            range_col.append_value(format!("{range}/{RANGES}"));
            copy_col.append_value(&copy.name);
            rows_col.append_value(rows);
            checksum_col.append_value(format!("{sum:016x}"));
            status_col.append_value(if differs(index, range) {
                if copy.stale { "stale" } else { "differs" }
            } else {
                "repaired"
            });
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(range_col.finish()),
        Arc::new(copy_col.finish()),
        Arc::new(rows_col.finish()),
        Arc::new(checksum_col.finish()),
        Arc::new(status_col.finish()),
    ];
    Ok(RecordBatch::try_new(check_schema(), columns)?)
}
