//! A migration's job: what it copies and how far it got (its spec, kept in
//! the metadata store as the job's checkpoint), and the worker that runs
//! it.
//!
//! The worker first prepares the destination once ([`super::destination`]),
//! then plans the chunks once (the source's integer primary key split into
//! ranges of about `chunk_rows` rows by its min, max and count; without
//! such a key, ranges of the source's physical row order where its backend
//! has one — [`super::row_order`]; else the whole table as one chunk),
//! each step written to the store before the next. Chunks run `parallel`
//! at a time; a chunk is marked started before it writes and done after it
//! is verified, so a run that stops anywhere — Koios killed, a backend
//! down, `CANCEL` — goes on from there: automatically at the next start,
//! or on `RESUME JOB` of the failed job. A chunk whose check fails is
//! cleared and copied once more; failing again, the job fails naming its
//! key range.

use std::sync::{Arc, Mutex};

use arrow::array::Array;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::logical_expr::{LogicalPlanBuilder, lit};
use futures::StreamExt;
use koios_connector::{sql_err, sql_error};

use super::MIGRATE_JOB;
use super::chunk::{self, Chunk};
use super::row_order;
use super::spec::{Migration, table_of};
use super::statement::{MigrateOptions, Mode};
use super::work::{Named, Work};
use crate::engine::Engine;
use crate::engine::error::codes;
use crate::engine::jobs::{Job, JobState};

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
        super::destination::prepare(engine, &state, &source, &migration).await?;
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
        let planned = plan(engine, &state, named, &migration.options).await?;
        migration.key = planned.key;
        migration.row_order = planned.row_order;
        migration.chunks = Some(planned.chunks);
        job.set_total(planned.rows);
        job.checkpoint(migration.to_json()?).await?;
    }
    let chunks = migration.chunks.clone().unwrap_or_else(|| vec![Chunk::ALL]);
    let key_type = match &migration.key {
        Some(key) => source.schema().field_with_name(key)?.data_type().clone(),
        None => arrow::datatypes::DataType::Int64,
    };
    let order = if migration.row_order {
        Some(
            engine
                .capabilities()
                .row_order(source.as_ref())
                .ok_or_else(|| {
                    sql_error!(
                        codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                        "{} no longer reads by physical position: CANCEL JOB {} and migrate it again",
                        migration.source,
                        job.id()
                    )
                })?,
        )
    } else {
        None
    };
    let parallel = migration.options.parallel.max(1);
    let names = (
        migration.source.reference(),
        migration.destination.reference(),
    );
    let verify = migration.options.verify;
    let row_order = migration.row_order;
    let shared = Mutex::new(migration);
    let work = Work {
        state: &state,
        job,
        source: (&names.0, &source),
        destination: (&names.1, &destination),
        key_type: &key_type,
        order: order.as_ref(),
        shared: &shared,
    };
    if let Some(order) = &order {
        work.settle_row_order(order).await?;
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let pending: Vec<usize> = {
            let migration = work.migration();
            (0..chunks.len())
                .filter(|i| !migration.done.contains(i))
                .collect()
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
        drop(runs);
        if !(row_order && verify) || work.row_order_agrees(attempt).await? {
            return Ok(());
        }
    }
}

/// How a migration's source is cut into chunks.
struct Planned {
    /// The integer key the chunks are ranges of.
    key: Option<String>,
    /// Or: the chunks are ranges of the source's physical row order.
    row_order: bool,
    chunks: Vec<Chunk>,
    /// The source's rows.
    rows: Option<i64>,
}

/// The chunks of the source: its one-column integer primary key's range
/// split by `chunk_rows`; without one, ranges of its physical row order
/// where its backend has one (into a destination of the job's own); else
/// one chunk.
async fn plan(
    engine: &Engine,
    state: &SessionState,
    (name, source): Named<'_>,
    options: &MigrateOptions,
) -> Result<Planned> {
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
        let rows = first_values(state, counted)
            .await?
            .first()
            .copied()
            .flatten();
        // Appending, the rows copied could not be told from the
        // destination's own: one chunk.
        let order = match options.mode {
            Mode::Append => None,
            _ => engine.capabilities().row_order(source.as_ref()),
        };
        let chunks = match (order, rows) {
            (Some(order), Some(rows)) => {
                row_order::plan(order.positions().await?, rows as u64, options.chunk_rows)
            }
            _ => None,
        };
        return Ok(Planned {
            key: None,
            row_order: chunks.is_some(),
            chunks: chunks.unwrap_or_else(|| vec![Chunk::ALL]),
            rows,
        });
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
        return Ok(Planned {
            key: Some(key),
            row_order: false,
            chunks: vec![Chunk::ALL],
            rows: Some(0),
        });
    };
    Ok(Planned {
        key: Some(key),
        row_order: false,
        chunks: chunk::plan_chunks(*low, *high, *rows as u64, options.chunk_rows),
        rows: Some(*rows),
    })
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
