//! One chunk of a migration run: copied, checked and checkpointed — by
//! key range ([`super::chunk`]), or by range of the source's physical
//! order, settled on resuming and checked as a whole
//! ([`super::row_order`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use koios_connector::{RowOrder, sql_err};

use super::chunk::{self, Chunk};
use super::row_order::{ChunkSum, count_rows, describe, total};
use super::spec::Migration;
use super::statement::Mode;
use crate::engine::error::{codes, restate};
use crate::engine::jobs::Job;

/// The most chunks a stopped run may have begun for Koios to work out
/// which of them were written whole (the most `parallel` allows).
const MAX_BEGUN: usize = 16;

/// A table and the name its scans take (its `source.schema.table`: the
/// remote query names it so).
pub(super) type Named<'a> = (
    &'a datafusion::common::TableReference,
    &'a Arc<dyn TableProvider>,
);

/// What each chunk's run shares.
pub(super) struct Work<'a> {
    pub(super) state: &'a SessionState,
    pub(super) job: &'a Job,
    /// Each table with the name its scans take.
    pub(super) source: Named<'a>,
    pub(super) destination: Named<'a>,
    pub(super) key_type: &'a arrow::datatypes::DataType,
    /// The source by position, when the chunks are of its row order.
    pub(super) order: Option<&'a Arc<dyn RowOrder>>,
    pub(super) shared: &'a Mutex<Migration>,
}

impl Work<'_> {
    pub(super) fn migration(&self) -> Migration {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a change of the checkpoints.
    async fn checkpoint(&self, change: impl FnOnce(&mut Migration)) -> Result<()> {
        let spec = {
            let mut migration = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            change(&mut migration);
            migration.to_json()?
        };
        self.job.checkpoint(spec).await
    }

    /// Copies and checks chunk `index`.
    pub(super) async fn chunk(&self, index: usize, chunk: Chunk) -> Result<()> {
        self.job.gate().await?;
        let migration = self.migration();
        if let Some(order) = self.order {
            return self.row_order_chunk(&migration, order, index, chunk).await;
        }
        let key = migration.key.as_deref();
        let filters = chunk.filter(key, self.key_type)?;
        let range = chunk.describe(key);
        if migration.started.contains(&index) {
            self.clear(&migration, &filters).await?;
        }
        self.checkpoint(|m| {
            m.started.insert(index);
        })
        .await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Into a table with rows of its own, only the keys copied are
            // compared.
            let by_keys = migration.options.mode == Mode::Append;
            let (rows, ours) = if migration.options.verify {
                // The source side summed as it is copied.
                let (rows, sums) = chunk::copy_summed(
                    self.state,
                    self.source,
                    self.destination.1,
                    &filters,
                    key.filter(|_| by_keys),
                )
                .await
                .map_err(|e| restate(&e, |m| format!("copying {range}: {m}")))?;
                (rows, Some(sums))
            } else {
                let rows = chunk::copy(self.state, self.source, self.destination.1, &filters)
                    .await
                    .map_err(|e| restate(&e, |m| format!("copying {range}: {m}")))?;
                (rows, None)
            };
            let mut bytes = 0;
            if let Some(ours) = ours {
                let schema = self.source.1.schema();
                let theirs = if by_keys {
                    match key {
                        Some(_) => {
                            chunk::summarize_keys(
                                self.state,
                                self.destination.1,
                                &schema,
                                &ours.keys,
                            )
                            .await?
                        }
                        // Nothing tells the rows copied apart: not compared.
                        None => chunk::Sums {
                            rows: ours.rows,
                            checksum: ours.checksum,
                            ..Default::default()
                        },
                    }
                } else {
                    chunk::summarize(self.state, self.destination, &schema, &filters, None).await?
                };
                bytes = ours.bytes;
                if !ours.agrees(&theirs) {
                    if attempt == 1 {
                        tracing::warn!(job = self.job.id(), chunk = %range,
                            "a chunk differs after copying: copying it again");
                        self.clear(&migration, &filters).await?;
                        continue;
                    }
                    return sql_err!(
                        codes::DATA_CORRUPTED,
                        "the copy of {range} differs from the source after two attempts: the source has {} rows, the destination {} (checksums {:016x} and {:016x}): the destination cannot hold some value exactly (MongoDB keeps times to the millisecond, say), or rows changed on either side while it was copied",
                        ours.rows,
                        theirs.rows,
                        ours.checksum,
                        theirs.checksum
                    );
                }
            }
            self.job.advance(rows as i64, bytes).await?;
            break;
        }
        self.checkpoint(|m| {
            m.done.insert(index);
        })
        .await
    }

    /// Removes what an earlier run may have left of a chunk.
    async fn clear(
        &self,
        migration: &Migration,
        filters: &[datafusion::logical_expr::Expr],
    ) -> Result<()> {
        match (migration.options.mode, migration.key.as_deref()) {
            (Mode::Append, Some(key)) => {
                chunk::clear_source_keys(
                    self.state,
                    self.source.1,
                    self.destination.1,
                    key,
                    filters,
                )
                .await
            }
            (Mode::Append, None) => sql_err!(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "a migration appending to {} was stopped while it copied, and the source has no integer primary key to tell its rows apart: delete what it added and migrate again",
                migration.destination
            ),
            _ => chunk::clear(self.state, self.destination.1, filters.to_vec()).await,
        }
    }

    /// Copies chunk `index` of the source's row order, its source rows
    /// summed for the check of the whole table at the end.
    async fn row_order_chunk(
        &self,
        migration: &Migration,
        order: &Arc<dyn RowOrder>,
        index: usize,
        chunk: Chunk,
    ) -> Result<()> {
        let range = describe(&chunk);
        let part = order.range(chunk.from, chunk.to)?;
        self.checkpoint(|m| {
            m.started.insert(index);
        })
        .await?;
        let source = (self.source.0, &part);
        let (rows, sum) = if migration.options.verify {
            chunk::copy_summed(self.state, source, self.destination.1, &[], None).await
        } else {
            chunk::copy(self.state, source, self.destination.1, &[])
                .await
                .map(|rows| (rows, chunk::Sums::default()))
        }
        .map_err(|e| restate(&e, |m| format!("copying {range}: {m}")))?;
        self.job.advance(rows as i64, sum.bytes).await?;
        self.checkpoint(|m| {
            m.done.insert(index);
            m.sums.insert(
                index,
                ChunkSum {
                    rows: rows as i64,
                    checksum: sum.checksum,
                },
            );
        })
        .await
    }

    /// Before chunks of the row order run again: settles the chunks a
    /// stopped run began (see [`super::row_order`]). The destination holds
    /// the finished chunks' rows plus those of any begun chunk whose write
    /// committed before its checkpoint was written: the begun chunks are
    /// summed on the source, and the one set of them that accounts for the
    /// destination's count (and, if several do, its checksum) is marked
    /// done. When none does — a write kept part of a chunk — the
    /// destination is emptied and the copy starts over.
    pub(super) async fn settle_row_order(&self, order: &Arc<dyn RowOrder>) -> Result<()> {
        let migration = self.migration();
        let begun: Vec<usize> = migration
            .started
            .difference(&migration.done)
            .copied()
            .collect();
        if begun.is_empty() {
            return Ok(());
        }
        let held = count_rows(self.state, self.destination).await?;
        let finished = total(&migration.sums);
        let extra = held - finished.rows;
        let settled = if extra == 0 {
            Some(BTreeMap::new())
        } else if extra > 0 && begun.len() <= MAX_BEGUN {
            self.committed_chunks(&migration, order, &begun, extra, finished)
                .await?
        } else {
            None
        };
        match settled {
            Some(committed) => {
                let rows: i64 = committed.values().map(|sum: &ChunkSum| sum.rows).sum();
                self.job.advance(rows, 0).await?;
                self.checkpoint(|m| {
                    m.done.extend(committed.keys().copied());
                    m.sums.extend(committed);
                    m.started = m.done.clone();
                })
                .await
            }
            None => {
                tracing::warn!(
                    job = self.job.id(),
                    held,
                    finished = finished.rows,
                    "a stopped copy by physical order left part of a chunk: copying the table again"
                );
                self.start_over().await
            }
        }
    }

    /// Which of the `begun` chunks were written whole: the one set whose
    /// rows add up to the `extra` rows the destination holds beyond the
    /// `finished` chunks (several sets: the one whose checksum, with the
    /// finished chunks', is the destination's); `None` if no one set does.
    async fn committed_chunks(
        &self,
        migration: &Migration,
        order: &Arc<dyn RowOrder>,
        begun: &[usize],
        extra: i64,
        finished: ChunkSum,
    ) -> Result<Option<BTreeMap<usize, ChunkSum>>> {
        let chunks = migration.chunks.clone().unwrap_or_default();
        let schema = self.source.1.schema();
        let mut sums = Vec::new();
        for index in begun {
            let Some(chunk) = chunks.get(*index) else {
                return Ok(None);
            };
            let part = order.range(chunk.from, chunk.to)?;
            let summed =
                chunk::summarize(self.state, (self.source.0, &part), &schema, &[], None).await?;
            sums.push(ChunkSum {
                rows: summed.rows,
                checksum: summed.checksum,
            });
        }
        let pick = |set: u32| -> ChunkSum {
            (0..begun.len())
                .filter(|i| set & (1 << i) != 0)
                .fold(ChunkSum::default(), |all, i| ChunkSum {
                    rows: all.rows + sums[i].rows,
                    checksum: all.checksum.wrapping_add(sums[i].checksum),
                })
        };
        let mut fitting: Vec<u32> = (1..(1u32 << begun.len()))
            .filter(|set| pick(*set).rows == extra)
            .collect();
        if fitting.len() > 1 {
            let held = chunk::summarize(self.state, self.destination, &schema, &[], None).await?;
            fitting
                .retain(|set| finished.checksum.wrapping_add(pick(*set).checksum) == held.checksum);
        }
        let [set] = fitting.as_slice() else {
            return Ok(None);
        };
        Ok(Some(
            (0..begun.len())
                .filter(|i| set & (1 << i) != 0)
                .map(|i| (begun[i], sums[i]))
                .collect(),
        ))
    }

    /// Empties the destination and forgets every chunk.
    async fn start_over(&self) -> Result<()> {
        chunk::clear(self.state, self.destination.1, Vec::new()).await?;
        self.job.restart_count();
        self.checkpoint(|m| {
            m.started.clear();
            m.done.clear();
            m.sums.clear();
        })
        .await
    }

    /// Whether the destination holds what the chunks of the row order
    /// copied; after a first difference it is emptied (the caller copies
    /// again), after a second the job fails.
    pub(super) async fn row_order_agrees(&self, attempt: u32) -> Result<bool> {
        let ours = total(&self.migration().sums);
        let schema = self.source.1.schema();
        let theirs = chunk::summarize(self.state, self.destination, &schema, &[], None).await?;
        if (ours.rows, ours.checksum) == (theirs.rows, theirs.checksum) {
            return Ok(true);
        }
        if attempt == 1 {
            tracing::warn!(
                job = self.job.id(),
                "the copy differs from the source after copying: copying it again"
            );
            self.start_over().await?;
            return Ok(false);
        }
        sql_err!(
            codes::DATA_CORRUPTED,
            "the copy of the table differs from the source after two attempts: the source has {} rows, the destination {} (checksums {:016x} and {:016x}): the destination cannot hold some value exactly (MongoDB keeps times to the millisecond, say), or rows changed on either side while it was copied",
            ours.rows,
            theirs.rows,
            ours.checksum,
            theirs.checksum
        )
    }
}
