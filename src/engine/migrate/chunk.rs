//! One chunk of a migration: the rows of a range of the source's integer
//! primary key (or of the whole table), copied and checked.
//!
//! The copy is one plan: the source scanned with the range as a filter
//! (pushed into the source's query), its columns cast to the destination's
//! types, into the destination's own insert (its bulk path: COPY, `LOAD
//! DATA`, `insert_many`) — streamed, so memory is bounded by batches, not
//! by the chunk. A chunk an earlier run started (Koios stopped or failed
//! in it) is cleared first, so copying it again never duplicates rows: its
//! key range is deleted on a destination the migration made or emptied;
//! on one it appends to, only the keys the source holds in the range.
//!
//! The check reads the range on both sides and compares the row count and
//! an order-independent checksum: the wrapping sum of a hash of each row
//! encoded in the source's Arrow types (the destination's values cast to
//! them), so a PostgreSQL `numeric` and a MariaDB `decimal` of the same
//! value agree — computed in Koios, because each engine prints values its
//! own way.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, col, lit};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::engine::logical::write::for_member;

/// A range of the key: `from <= key < to` (an open end where `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Chunk {
    /// The whole table.
    pub const ALL: Chunk = Chunk {
        from: None,
        to: None,
    };

    /// `key >= from AND key < to`, over `key` of type `key_type` (none for
    /// the whole table).
    pub fn filter(
        &self,
        key: Option<&str>,
        key_type: &arrow::datatypes::DataType,
    ) -> Result<Vec<Expr>> {
        let Some(key) = key else {
            return Ok(Vec::new());
        };
        let column = || Expr::Column(Column::new_unqualified(key));
        let bound =
            |v: i64| -> Result<Expr> { Ok(lit(ScalarValue::Int64(Some(v)).cast_to(key_type)?)) };
        let mut filters = Vec::new();
        if let Some(from) = self.from {
            filters.push(column().gt_eq(bound(from)?));
        }
        if let Some(to) = self.to {
            filters.push(column().lt(bound(to)?));
        }
        Ok(filters)
    }

    /// `[from, to)` for messages.
    pub fn describe(&self, key: Option<&str>) -> String {
        match key {
            None => "the whole table".to_string(),
            Some(key) => {
                let from = self
                    .from
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-∞".into());
                let to = self
                    .to
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "+∞".into());
                format!("{key} in [{from}, {to})")
            }
        }
    }
}

/// The chunks splitting keys `min..=max` into ranges of about
/// `chunk_rows` of the `rows` rows (keys assumed evenly spread); the first
/// and last open-ended, so a row outside the range is not missed.
pub fn plan_chunks(min: i64, max: i64, rows: u64, chunk_rows: u64) -> Vec<Chunk> {
    let span = (max as i128 - min as i128 + 1).max(1) as u128;
    let count = rows.div_ceil(chunk_rows.max(1)).max(1) as u128;
    let width = span.div_ceil(count).max(1);
    let mut chunks = Vec::new();
    let mut from = min as i128;
    while from <= max as i128 {
        let to = from + width as i128;
        chunks.push(Chunk {
            from: Some(from as i64),
            to: (to <= max as i128).then_some(to as i64),
        });
        from = to;
    }
    if let Some(first) = chunks.first_mut() {
        first.from = None;
    }
    if chunks.is_empty() {
        chunks.push(Chunk::ALL);
    }
    chunks
}

/// Runs `plan` (a source's or destination's own) to its end.
async fn run(
    state: &SessionState,
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> Result<Vec<arrow::array::RecordBatch>> {
    let plan = crate::engine::logical::change::optimized(state, plan)?;
    datafusion::physical_plan::collect(plan, state.task_ctx()).await
}

/// Copies the rows of `filters` from `source` (named `name`: a scan is
/// known by its table's name in the remote query) to `destination`; the
/// rows inserted.
pub async fn copy(
    state: &SessionState,
    (name, source): (&TableReference, &Arc<dyn TableProvider>),
    destination: &Arc<dyn TableProvider>,
    filters: &[Expr],
) -> Result<u64> {
    let source_schema = source.schema();
    let target = destination.schema();
    let mut plan =
        LogicalPlanBuilder::scan(name.clone(), provider_as_source(Arc::clone(source)), None)?;
    if let Some(predicate) = datafusion::logical_expr::utils::conjunction(filters.to_vec()) {
        plan = plan.filter(predicate)?;
    }
    let columns = target
        .fields()
        .iter()
        .map(|field| {
            let value = match source_schema.field_with_name(field.name()) {
                Ok(found) if found.data_type() == field.data_type() => {
                    col(Column::new_unqualified(field.name()))
                }
                Ok(_) => cast(
                    col(Column::new_unqualified(field.name())),
                    field.data_type().clone(),
                ),
                Err(_) => cast(lit(ScalarValue::Null), field.data_type().clone()),
            };
            value.alias(field.name())
        })
        .collect::<Vec<_>>();
    let plan = plan.project(columns)?.build()?;
    let input = state.create_physical_plan(&plan).await?;
    let insert = destination
        .insert_into(state, input, InsertOp::Append)
        .await?;
    let batches = run(state, insert).await?;
    Ok(crate::engine::logical::write::rows_of(&batches))
}

/// Copies the rows of `filters` from `source` to `destination` as
/// [`copy`] does, summing them as they are read (in the source's types;
/// with `key`, its values kept): the source side of a chunk's check
/// without reading the source twice. The rows inserted, and their sums.
pub async fn copy_summed(
    state: &SessionState,
    (name, source): (&TableReference, &Arc<dyn TableProvider>),
    destination: &Arc<dyn TableProvider>,
    filters: &[Expr],
    key: Option<&str>,
) -> Result<(u64, Sums)> {
    let schema = source.schema();
    let target = destination.schema();
    let mut plan =
        LogicalPlanBuilder::scan(name.clone(), provider_as_source(Arc::clone(source)), None)?;
    if let Some(predicate) = datafusion::logical_expr::utils::conjunction(filters.to_vec()) {
        plan = plan.filter(predicate)?;
    }
    let physical = state.create_physical_plan(&plan.build()?).await?;
    let mut rows = datafusion::physical_plan::execute_stream(physical, state.task_ctx())?;
    let feed = Arc::new(crate::engine::logical::write::RoutedInput::new(Arc::clone(
        &target,
    )));
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    feed.provide(receiver);
    let insert = destination
        .insert_into(state, feed, InsertOp::Append)
        .await?;
    let writing = run(state, insert);
    let reading = async move {
        let converter = converter(&schema)?;
        let mut sums = Sums::default();
        while let Some(batch) = rows.next().await {
            let cast = batch.and_then(|batch| {
                sums.add(&converter, &batch, &schema, key)?;
                for_member(&batch, &target)
            });
            let failed = cast.is_err();
            // A failed read reaches the insert too, so it commits nothing.
            let sent = sender.send(cast.map_err(|e| {
                datafusion::error::DataFusionError::Execution(format!(
                    "reading the chunk failed: {e}"
                ))
            }));
            if sent.await.is_err() || failed {
                break;
            }
        }
        Ok::<Sums, datafusion::error::DataFusionError>(sums)
    };
    let (written, sums) = futures::join!(writing, reading);
    let written = written?;
    Ok((crate::engine::logical::write::rows_of(&written), sums?))
}

/// Deletes the rows of `filters` (every row without any) from `table`.
pub async fn clear(
    state: &SessionState,
    table: &Arc<dyn TableProvider>,
    filters: Vec<Expr>,
) -> Result<()> {
    let plan = table.delete_from(state, filters).await?;
    run(state, plan).await?;
    Ok(())
}

/// Deletes from `destination` the keys `source` holds in `filters`.
pub async fn clear_source_keys(
    state: &SessionState,
    source: &Arc<dyn TableProvider>,
    destination: &Arc<dyn TableProvider>,
    key: &str,
    filters: &[Expr],
) -> Result<()> {
    let key_schema = Arc::new(arrow::datatypes::Schema::new(vec![
        source.schema().field_with_name(key)?.clone(),
    ]));
    let filter = datafusion::logical_expr::utils::conjunction(filters.to_vec());
    let rows = crate::engine::logical::resync::read(state, source, filter).await?;
    let keys = rows
        .iter()
        .map(|b| for_member(b, &key_schema))
        .collect::<Result<Vec<_>>>()?;
    crate::engine::logical::resync::delete_keys(state, destination, &keys).await
}

/// A side's rows of a chunk, summed: row count, checksum and Arrow bytes,
/// and (when asked) the key column's values.
#[derive(Debug, Default)]
pub struct Sums {
    pub rows: i64,
    pub checksum: u64,
    pub bytes: i64,
    pub keys: Vec<arrow::array::RecordBatch>,
}

impl Sums {
    fn add(
        &mut self,
        converter: &RowConverter,
        batch: &arrow::array::RecordBatch,
        schema: &SchemaRef,
        key: Option<&str>,
    ) -> Result<()> {
        let batch = for_member(batch, schema)?;
        self.bytes += batch.get_array_memory_size() as i64;
        for row in converter.convert_columns(batch.columns())?.iter() {
            self.rows += 1;
            self.checksum = self
                .checksum
                .wrapping_add(crate::engine::logical::placement::fnv(9, row.as_ref()));
        }
        if let Some(key) = key {
            let index = schema.index_of(key)?;
            self.keys.push(batch.project(&[index])?);
        }
        Ok(())
    }

    /// Whether both sides hold the same rows.
    pub fn agrees(&self, other: &Sums) -> bool {
        (self.rows, self.checksum) == (other.rows, other.checksum)
    }
}

/// Rows summed as they arrive, their values in the types of one schema.
pub struct RowSums {
    converter: RowConverter,
    schema: SchemaRef,
    pub sums: Sums,
}

impl RowSums {
    pub fn over(schema: &SchemaRef) -> Result<RowSums> {
        Ok(RowSums {
            converter: converter(schema)?,
            schema: Arc::clone(schema),
            sums: Sums::default(),
        })
    }

    pub fn add(&mut self, batch: &arrow::array::RecordBatch) -> Result<()> {
        self.sums.add(&self.converter, batch, &self.schema, None)
    }

    /// Whether both hold the same rows.
    pub fn agrees_with(&self, other: &RowSums) -> bool {
        self.sums.agrees(&other.sums)
    }
}

fn converter(schema: &SchemaRef) -> Result<RowConverter> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect::<Vec<_>>();
    Ok(RowConverter::new(fields)?)
}

/// The rows of `filters` in `table` (named `name`) summed, its values in
/// the types of `schema` (the source's); with `key`, its values kept.
pub async fn summarize(
    state: &SessionState,
    (name, table): (&TableReference, &Arc<dyn TableProvider>),
    schema: &SchemaRef,
    filters: &[Expr],
    key: Option<&str>,
) -> Result<Sums> {
    let converter = converter(schema)?;
    let mut plan =
        LogicalPlanBuilder::scan(name.clone(), provider_as_source(Arc::clone(table)), None)?;
    if let Some(predicate) = datafusion::logical_expr::utils::conjunction(filters.to_vec()) {
        plan = plan.filter(predicate)?;
    }
    let physical = state.create_physical_plan(&plan.build()?).await?;
    let mut stream = datafusion::physical_plan::execute_stream(physical, state.task_ctx())?;
    let mut sums = Sums::default();
    while let Some(batch) = stream.next().await {
        sums.add(&converter, &batch?, schema, key)?;
    }
    Ok(sums)
}

/// The rows of `table` with the keys `keys` summed (a destination that
/// also holds rows of its own: only the keys copied are compared).
pub async fn summarize_keys(
    state: &SessionState,
    table: &Arc<dyn TableProvider>,
    schema: &SchemaRef,
    keys: &[arrow::array::RecordBatch],
) -> Result<Sums> {
    let converter = converter(schema)?;
    let mut sums = Sums::default();
    for batch in crate::engine::logical::resync::read_keys(state, table, keys).await? {
        sums.add(&converter, &batch, schema, None)?;
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_key_once() {
        let chunks = plan_chunks(1, 1000, 1000, 300);
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[0].from, None);
        assert_eq!(chunks[3].to, None);
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].to, pair[1].from);
        }
        assert_eq!(
            plan_chunks(5, 5, 1, 100),
            vec![Chunk {
                from: None,
                to: None
            }]
        );
        // Extreme keys do not overflow.
        let wide = plan_chunks(i64::MIN, i64::MAX, 10, 5);
        assert_eq!(wide.len(), 2);
    }
}
