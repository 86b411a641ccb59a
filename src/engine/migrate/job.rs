//! A migration's job: what it copies and how far it got (its spec, kept in
//! the metadata store as the job's checkpoint), and the worker that runs
//! it.
//!
//! The worker first prepares the destination once (created with the
//! source's columns in the destination's types and the source's primary
//! key; emptied for `replace`; for `append`, each source column checked
//! against it before any row moves), then plans the chunks once (the
//! source's integer primary key split into ranges of about `chunk_rows`
//! rows by its min, max and count; the whole table as one chunk without
//! such a key), each step written to the store before the next. Chunks run
//! `parallel` at a time; a chunk is marked started before it writes and
//! done after it is verified, so a run that stops anywhere — Koios
//! killed, a backend down, `CANCEL` — goes on from there: automatically at
//! the next start, or on `RESUME JOB` of the failed job. A chunk whose
//! check fails is cleared and copied once more; failing again, the job
//! fails naming its key range.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use arrow::array::Array;
use datafusion::catalog::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::logical_expr::{LogicalPlanBuilder, lit};
use futures::StreamExt;
use koios_connector::ddl::{ColumnDefinition, SchemaChange, TableDefinition, TableName};
use koios_connector::{sql_err, sql_error};
use serde::{Deserialize, Serialize};

use super::MIGRATE_JOB;
use super::chunk::{self, Chunk};
use super::statement::{MigrateOptions, Mode};
use crate::engine::Engine;
use crate::engine::error::{codes, restate};
use crate::engine::jobs::{Job, JobState};
use crate::engine::remote_ddl::RemoteDdl;

/// A table of a source: `source.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    pub source: String,
    pub schema: String,
    pub table: String,
}

impl SourceTable {
    /// `source.schema.table` as a reference.
    pub fn reference(&self) -> datafusion::common::TableReference {
        datafusion::common::TableReference::full(
            self.source.as_str(),
            self.schema.as_str(),
            self.table.as_str(),
        )
    }
}

impl std::fmt::Display for SourceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.source, self.schema, self.table)
    }
}

/// A migration and its checkpoints: the job's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    pub source: SourceTable,
    pub destination: SourceTable,
    pub options: MigrateOptions,
    /// The destination is ready (created, emptied or checked).
    #[serde(default)]
    pub prepared: bool,
    /// The integer key the chunks are ranges of (`None`: one chunk).
    #[serde(default)]
    pub key: Option<String>,
    /// The chunks, once planned.
    #[serde(default)]
    pub chunks: Option<Vec<Chunk>>,
    /// Chunks a run began writing.
    #[serde(default)]
    pub started: BTreeSet<usize>,
    /// Chunks copied and verified.
    #[serde(default)]
    pub done: BTreeSet<usize>,
}

impl Migration {
    fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| DataFusionError::Internal(format!("migration spec: {e}")))
    }

    fn from_json(text: &str) -> Result<Migration> {
        serde_json::from_str(text).map_err(|e| {
            DataFusionError::Execution(format!("a migration's spec Koios cannot read: {e}"))
        })
    }
}

/// A source's table, or why it cannot be reached.
async fn table_of(engine: &Engine, name: &SourceTable) -> Result<Option<Arc<dyn TableProvider>>> {
    let source = engine.live_source(&name.source)?;
    match source.catalog().schema(&name.schema) {
        Some(schema) => schema.table(&name.table).await,
        None => Ok(None),
    }
}

impl Engine {
    /// Starts `migration` as a job (after checking that its source exists
    /// and, for `create`, that its destination does not); its worker runs
    /// in the background.
    pub async fn start_migration(self: &Arc<Self>, migration: Migration) -> Result<Arc<Job>> {
        let Some(_) = table_of(self, &migration.source).await? else {
            return sql_err!(
                codes::UNDEFINED_TABLE,
                "relation \"{}\" does not exist",
                migration.source
            );
        };
        if migration.source == migration.destination {
            return sql_err!(
                codes::INVALID_PARAMETER_VALUE,
                "a table cannot be migrated onto itself"
            );
        }
        self.live_source(&migration.destination.source)?;
        let exists = table_of(self, &migration.destination).await?.is_some();
        match migration.options.mode {
            Mode::Create if exists => {
                return sql_err!(
                    codes::DUPLICATE_TABLE,
                    "relation \"{}\" already exists (migrate WITH (mode = 'append') to add to it, or mode = 'replace' to replace its rows)",
                    migration.destination
                );
            }
            Mode::Append if !exists => {
                return sql_err!(
                    codes::UNDEFINED_TABLE,
                    "relation \"{}\" does not exist (mode = 'append' adds to an existing table; mode = 'create' makes it)",
                    migration.destination
                );
            }
            _ => {}
        }
        let job = self
            .jobs()
            .start(
                MIGRATE_JOB,
                &migration.source.to_string(),
                &migration.destination.to_string(),
                &migration.to_json()?,
            )
            .await?;
        spawn(self, Arc::clone(&job));
        Ok(job)
    }

    /// Starts the workers of the migrations a restart found unfinished.
    pub(crate) fn resume_migrations(self: &Arc<Self>) {
        for job in self.jobs().list() {
            if job.kind() == MIGRATE_JOB && !job.state().is_finished() {
                spawn(self, job);
            }
        }
    }

    /// `RESUME JOB` of a failed migration: its worker goes on from its
    /// checkpoints. `false` if the job is not such a migration.
    pub async fn reopen_migration(self: &Arc<Self>, job: &Arc<Job>) -> Result<bool> {
        if job.kind() != MIGRATE_JOB || job.state() != JobState::Failed {
            return Ok(false);
        }
        job.reopen().await?;
        spawn(self, Arc::clone(job));
        Ok(true)
    }
}

/// Runs `job`'s worker in the background; it ends the job.
fn spawn(engine: &Arc<Engine>, job: Arc<Job>) {
    let engine = Arc::clone(engine);
    tokio::spawn(async move {
        let outcome = run(&engine, &job).await;
        if let Err(e) = &outcome {
            tracing::warn!(job = job.id(), error = %e, "a migration stopped");
        }
        if let Err(e) = job.finish(&outcome).await {
            tracing::warn!(job = job.id(), error = %e, "a migration's end could not be recorded");
        }
    });
}

/// The migration's work, from wherever its checkpoints say it is.
async fn run(engine: &Engine, job: &Job) -> Result<()> {
    let mut migration = Migration::from_json(&job.spec())?;
    job.gate().await?;
    let state = engine.internal_context().state();
    let source = table_of(engine, &migration.source).await?.ok_or_else(|| {
        sql_error!(
            codes::UNDEFINED_TABLE,
            "relation \"{}\" does not exist",
            migration.source
        )
    })?;
    if !migration.prepared {
        prepare_destination(engine, &state, &source, &migration).await?;
        migration.prepared = true;
        job.checkpoint(migration.to_json()?).await?;
    }
    let destination = table_of(engine, &migration.destination)
        .await?
        .ok_or_else(|| {
            sql_error!(
                codes::UNDEFINED_TABLE,
                "relation \"{}\" does not exist",
                migration.destination
            )
        })?;
    if migration.chunks.is_none() {
        let named = (&migration.source.reference(), &source);
        let (key, chunks, rows) = plan(engine, &state, named, &migration.options).await?;
        migration.key = key;
        migration.chunks = Some(chunks);
        job.set_total(rows);
        job.checkpoint(migration.to_json()?).await?;
    }
    let chunks = migration.chunks.clone().unwrap_or_else(|| vec![Chunk::ALL]);
    let key_type = match &migration.key {
        Some(key) => source.schema().field_with_name(key)?.data_type().clone(),
        None => arrow::datatypes::DataType::Int64,
    };
    let pending: Vec<usize> = (0..chunks.len())
        .filter(|i| !migration.done.contains(i))
        .collect();
    let parallel = migration.options.parallel.max(1);
    let names = (
        migration.source.reference(),
        migration.destination.reference(),
    );
    let shared = Mutex::new(migration);
    let work = Work {
        state: &state,
        job,
        source: (&names.0, &source),
        destination: (&names.1, &destination),
        key_type: &key_type,
        shared: &shared,
    };
    let mut runs = futures::stream::iter(pending.into_iter().map(|index| {
        let work = &work;
        let chunk = chunks[index];
        async move { work.chunk(index, chunk).await }
    }))
    .buffer_unordered(parallel);
    while let Some(outcome) = runs.next().await {
        outcome?;
    }
    Ok(())
}

/// A table and the name its scans take (its `source.schema.table`: the
/// remote query names it so).
type Named<'a> = (
    &'a datafusion::common::TableReference,
    &'a Arc<dyn TableProvider>,
);

/// What each chunk's run shares.
struct Work<'a> {
    state: &'a SessionState,
    job: &'a Job,
    /// Each table with the name its scans take.
    source: Named<'a>,
    destination: Named<'a>,
    key_type: &'a arrow::datatypes::DataType,
    shared: &'a Mutex<Migration>,
}

impl Work<'_> {
    fn migration(&self) -> Migration {
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
    async fn chunk(&self, index: usize, chunk: Chunk) -> Result<()> {
        self.job.gate().await?;
        let migration = self.migration();
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
}

/// Creates, empties or checks the destination, as the mode says.
async fn prepare_destination(
    engine: &Engine,
    state: &SessionState,
    source: &Arc<dyn TableProvider>,
    migration: &Migration,
) -> Result<()> {
    let existing = table_of(engine, &migration.destination).await?;
    let destination = &migration.destination;
    match (&existing, migration.options.mode) {
        (None, Mode::Append) => sql_err!(
            codes::UNDEFINED_TABLE,
            "relation \"{destination}\" does not exist"
        ),
        (None, _) => create_destination(engine, source, destination).await,
        (Some(table), Mode::Replace) => {
            check_columns(source, table, destination)?;
            chunk::clear(state, table, Vec::new()).await
        }
        (Some(table), _) => check_columns(source, table, destination),
    }
}

/// The destination made with the source's columns (in the destination's
/// types) and primary key.
async fn create_destination(
    engine: &Engine,
    source: &Arc<dyn TableProvider>,
    destination: &SourceTable,
) -> Result<()> {
    let primary_key = engine
        .capabilities()
        .table(source.as_ref())
        .map(|c| c.primary_key)
        .unwrap_or_default();
    let backend = engine.live_source(&destination.source)?;
    let columns = source
        .schema()
        .fields()
        .iter()
        .map(|field| {
            Ok(ColumnDefinition {
                name: field.name().clone(),
                data_type: backend.storable_type(
                    &crate::engine::remote_ddl::create_as::arrow_column_type(
                        field.name(),
                        field.data_type(),
                    )?,
                ),
                nullable: field.is_nullable() && !primary_key.contains(field.name()),
                default: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let ddl = RemoteDdl {
        source: destination.source.clone(),
        changes: vec![SchemaChange::CreateTable(TableDefinition {
            name: TableName {
                schema: destination.schema.clone(),
                table: destination.table.clone(),
            },
            columns,
            primary_key,
            if_not_exists: false,
        })],
    };
    engine.change_schema(&ddl).await.map_err(|e| {
        restate(&e, |m| {
            format!("the destination {destination} could not be created: {m}")
        })
    })
}

/// Refuses a destination lacking a source column or holding it in a type
/// of another kind, naming the column.
fn check_columns(
    source: &Arc<dyn TableProvider>,
    destination: &Arc<dyn TableProvider>,
    name: &SourceTable,
) -> Result<()> {
    let target = destination.schema();
    for field in source.schema().fields() {
        let Ok(found) = target.field_with_name(field.name()) else {
            return sql_err!(
                codes::UNDEFINED_COLUMN,
                "the destination {name} has no column \"{}\"; nothing was copied",
                field.name()
            );
        };
        if !crate::engine::logical::definition::compatible(found.data_type(), field.data_type()) {
            return sql_err!(
                codes::DATATYPE_MISMATCH,
                "column \"{}\" is {} in the source and {} in the destination {name}: incompatible, nothing was copied",
                field.name(),
                field.data_type(),
                found.data_type()
            );
        }
    }
    Ok(())
}

/// The key, chunks and row count of the source: its one-column integer
/// primary key's range split by `chunk_rows`, or one chunk.
async fn plan(
    engine: &Engine,
    state: &SessionState,
    (name, source): Named<'_>,
    options: &MigrateOptions,
) -> Result<(Option<String>, Vec<Chunk>, Option<i64>)> {
    let primary_key = engine
        .capabilities()
        .table(source.as_ref())
        .map(|c| c.primary_key)
        .unwrap_or_default();
    let schema = source.schema();
    // Chunks are ranges of the key's first column when it is an integer:
    // a whole key of one column, or the leading column of a composite key
    // (TPC-H's `lineitem` by `l_orderkey`) when the destination is the
    // job's own (`create`, `replace`) — appending compares and clears by
    // key values, which a leading column does not name alone.
    let key = match primary_key.as_slice() {
        [key] if schema.field_with_name(key)?.data_type().is_integer() => Some(key.clone()),
        [leading, _, ..]
            if options.mode != Mode::Append
                && schema.field_with_name(leading)?.data_type().is_integer() =>
        {
            Some(leading.clone())
        }
        _ => None,
    };
    let scan = LogicalPlanBuilder::scan(
        name.clone(),
        datafusion::datasource::provider_as_source(Arc::clone(source)),
        None,
    )?;
    let Some(key) = key else {
        let counted = scan
            .aggregate(
                Vec::<datafusion::logical_expr::Expr>::new(),
                vec![count(lit(1))],
            )?
            .build()?;
        let rows = first_values(state, counted).await?;
        return Ok((None, vec![Chunk::ALL], rows.first().copied().flatten()));
    };
    let column = datafusion::logical_expr::col(datafusion::common::Column::new_unqualified(&key));
    let bounds = scan
        .aggregate(
            Vec::<datafusion::logical_expr::Expr>::new(),
            vec![
                datafusion::logical_expr::cast(
                    min(column.clone()),
                    arrow::datatypes::DataType::Int64,
                ),
                datafusion::logical_expr::cast(max(column), arrow::datatypes::DataType::Int64),
                count(lit(1)),
            ],
        )?
        .build()?;
    let values = first_values(state, bounds).await?;
    let (Some(Some(low)), Some(Some(high)), Some(Some(rows))) =
        (values.first(), values.get(1), values.get(2))
    else {
        // No rows: one chunk (nothing to copy, and nothing to miss).
        return Ok((Some(key), vec![Chunk::ALL], Some(0)));
    };
    let chunks = chunk::plan_chunks(*low, *high, *rows as u64, options.chunk_rows);
    Ok((Some(key), chunks, Some(*rows)))
}

/// The first row of `plan`'s answer, each column as an i64.
async fn first_values(
    state: &SessionState,
    plan: datafusion::logical_expr::LogicalPlan,
) -> Result<Vec<Option<i64>>> {
    let physical = state.create_physical_plan(&plan).await?;
    let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(Vec::new());
    };
    batch
        .columns()
        .iter()
        .map(|column| {
            let wide = arrow::compute::cast(column, &arrow::datatypes::DataType::Int64)?;
            let values = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(&wide);
            Ok((!values.is_null(0)).then(|| values.value(0)))
        })
        .collect()
}
