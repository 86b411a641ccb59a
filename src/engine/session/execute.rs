//! Running statements: a prepared plan with its parameters, a query string,
//! and the cached and generic plans that let a repeated query skip planning.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;

use crate::engine::Engine;
use crate::engine::literals;
use crate::engine::plancache::{self};
use crate::engine::{metered, passthrough};
use koios_connector::QueryParams;
use koios_connector::pgtext::StartDataRows;
use koios_connector::transaction::BlockState;

use super::Session;
use super::prepare::{Prepared, rename_fields};
use super::statement::KoiosStatement;

/// What executing a statement produced.
pub enum Output {
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        tag: String,
        /// The same rows written straight as `DataRow` bodies, when the
        /// plan is one remote query (see [`crate::engine::passthrough`]): the
        /// pgwire front end starts these instead of reading `stream`. Only
        /// the one read runs.
        data_rows: Option<StartDataRows>,
    },
    Done {
        tag: String,
        rows: Option<usize>,
    },
    TransactionStart,
    TransactionEnd(String),
}

/// Row count reported in the command tag of DML (`INSERT 0 n`) and CTAS.
pub(super) fn count_rows(tag: &str, batches: &[RecordBatch]) -> Option<usize> {
    if !matches!(tag, "INSERT" | "UPDATE" | "DELETE" | "SELECT" | "COPY") {
        return None;
    }
    let mut total = 0usize;
    for batch in batches {
        match batch
            .column_by_name("count")
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        {
            Some(counts) => total += counts.iter().flatten().sum::<u64>() as usize,
            None => total += batch.num_rows(),
        }
    }
    Some(total)
}

/// The output of running the cached plan `cached` with `params` bound into
/// its scans; `direct`: whether it may serve rows straight from one remote
/// query ([`Session::direct_rows_allowed`]).
pub(super) fn cached_output(
    cached: plancache::CachedPlan,
    params: Option<QueryParams>,
    task: Arc<TaskContext>,
    engine: &Arc<Engine>,
    direct: bool,
) -> Result<Output> {
    let rows = direct
        .then(|| passthrough::data_rows(&cached.plan, params.as_ref(), engine))
        .flatten();
    let (schema, tag) = (Arc::clone(&cached.schema), cached.tag.clone());
    let plan_schema = cached.plan.schema();
    let engine = Arc::clone(engine);
    rows_output(schema, &tag, rows, plan_schema, move || {
        metered::execute(plancache::bind(&cached.plan, params)?, task, engine)
    })
}

/// The output of running a plan: its Arrow batches, which `batches` starts
/// on the query runtime (`plan_schema` is theirs), and its data rows if it
/// has them ([`passthrough::data_rows`]). With data rows the batches start
/// only if read, so a front end serving those costs no binding or stream
/// building.
pub(super) fn rows_output(
    schema: SchemaRef,
    tag: &str,
    data_rows: Option<StartDataRows>,
    plan_schema: SchemaRef,
    batches: impl FnOnce() -> Result<SendableRecordBatchStream> + Send + 'static,
) -> Result<Output> {
    // On the query runtime: a CPU-bound plan must not hold up the
    // connections' runtime (see `query_runtime`).
    let stream = match data_rows {
        Some(_) => {
            let schema = Arc::clone(&plan_schema);
            passthrough::lazy_batches(plan_schema, move || {
                crate::engine::query_runtime::run(schema, batches)
            })
        }
        None => crate::engine::query_runtime::run(plan_schema, batches)?,
    };
    Ok(Output::Rows {
        schema,
        stream,
        tag: tag.to_string(),
        data_rows,
    })
}

impl Session {
    /// Runs a prepared statement with its parameter values.
    pub async fn execute(&self, prepared: &Prepared, params: Vec<ScalarValue>) -> Result<Output> {
        self.admit(prepared)?;
        match prepared {
            Prepared::Command(command) => self.run_command(command).await,
            Prepared::Plan {
                plan,
                tag,
                counts_rows,
                renames,
                cache_key,
                shape,
                ..
            } => {
                if let Some(key) = cache_key.as_deref() {
                    let output = if params.is_empty() {
                        match (self.run_cached(key), shape) {
                            (None, Some(shape)) => self.run_shape(shape, key).await.map(Ok),
                            (cached, _) => cached,
                        }
                    } else {
                        self.run_generic(key, plan, &params, tag, renames).await
                    };
                    if let Some(output) = output {
                        return output;
                    }
                }
                // Cached by text only when the text is the whole query.
                let cache_key = cache_key.as_deref().filter(|_| params.is_empty());
                let plan = if params.is_empty() {
                    plan.clone()
                } else {
                    let values = params.into_iter().map(Into::into).collect::<Vec<_>>();
                    plan.clone().with_param_values(ParamValues::List(values))?
                };
                // What a statement changes that cached plans depend on. DML
                // changes nothing of theirs: they hold no rows of a table,
                // so they read what it wrote.
                let changes = match &plan {
                    // What names resolve to, for every session.
                    LogicalPlan::Ddl(_) => Some(true),
                    // This session's configuration (`SET datafusion.…`).
                    LogicalPlan::Statement(_) => Some(false),
                    _ => None,
                };
                if changes.is_none() && !counts_rows {
                    // A query: planned on the session's reusable state.
                    // Read before planning: a catalog change meanwhile makes
                    // this plan stale at once.
                    let generation = self.engine.catalog_generation();
                    let schema = rename_fields(plan.schema().as_arrow(), renames);
                    let physical = {
                        let mut planning = self.planning.lock().await;
                        let state = planning.get_or_insert_with(|| self.ctx.state());
                        // now() and friends take this statement's time.
                        state.mark_start_execution();
                        state.create_physical_plan(&plan).await?
                    };
                    let task = {
                        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(key) = cache_key {
                            let reads_tables = plancache::reads_tables(&plan);
                            plans.insert(key, generation, &physical, &schema, tag, reads_tables);
                        }
                        plans.task_context(|| self.ctx.task_ctx())
                    };
                    self.activity.record_plan(&physical);
                    let rows = self
                        .direct_rows_allowed()
                        .then(|| passthrough::data_rows(&physical, None, &self.engine))
                        .flatten();
                    let engine = Arc::clone(&self.engine);
                    return rows_output(schema, tag, rows, physical.schema(), move || {
                        metered::execute(physical, task, engine)
                    });
                }
                let frame = self.ctx.execute_logical_plan(plan).await;
                if let Some(everywhere) = changes {
                    self.forget_plans().await;
                    if everywhere {
                        self.engine.catalog_changed();
                    }
                }
                let frame = frame?;
                if *counts_rows {
                    // Run as queries are, so its remote statements are listed
                    // and counted.
                    let task = Arc::new(frame.task_ctx());
                    let physical = if tag == "UPDATE" {
                        // A table's update hook reads the new values off the
                        // plan's top projection; common subexpressions pulled
                        // out below it would leave names no table has.
                        let (state, plan) = frame.into_parts();
                        let rules = state
                            .optimizers()
                            .iter()
                            .filter(|rule| rule.name() != "common_sub_expression_eliminate")
                            .cloned()
                            .collect();
                        let state = SessionStateBuilder::new_from_existing(state)
                            .with_optimizer_rules(rules)
                            .build();
                        state.create_physical_plan(&plan).await?
                    } else {
                        frame.create_physical_plan().await?
                    };
                    self.activity.record_plan(&physical);
                    let engine = Arc::clone(&self.engine);
                    let stream = metered::execute(physical, task, engine)?;
                    let batches = datafusion::physical_plan::common::collect(stream).await?;
                    Ok(Output::Done {
                        tag: tag.clone(),
                        rows: count_rows(tag, &batches),
                    })
                } else {
                    let schema = rename_fields(frame.schema().as_arrow(), renames);
                    let task = Arc::new(frame.task_ctx());
                    let physical = frame.create_physical_plan().await?;
                    self.activity.record_plan(&physical);
                    let engine = Arc::clone(&self.engine);
                    let stream = crate::engine::query_runtime::run(physical.schema(), move || {
                        metered::execute(physical, task, engine)
                    })?;
                    Ok(Output::Rows {
                        schema,
                        stream,
                        tag: tag.clone(),
                        data_rows: None,
                    })
                }
            }
        }
    }

    /// Parses, plans and runs every statement of `sql` in order, stopping at the
    /// first error (like PostgreSQL's simple query protocol).
    pub async fn run_sql(&self, sql: &str) -> Result<Vec<Output>> {
        if let Some(output) = self.run_cached(sql) {
            return Ok(vec![output?]);
        }
        let statements = self.parse(sql)?;
        let single = statements.len() == 1;
        let mut outputs = Vec::new();
        for statement in statements {
            outputs.push(if single {
                self.run_text(&statement, sql).await?
            } else {
                let prepared = self.prepare(&statement, &[]).await?;
                self.execute(&prepared, Vec::new()).await?
            });
        }
        Ok(outputs)
    }

    /// Runs the plan this session cached for the query `sql` (by its text,
    /// unparsed), if it has one that is still valid.
    pub fn run_cached(&self, sql: &str) -> Option<Result<Output>> {
        if self.transaction_state() == BlockState::Failed {
            return None;
        }
        let generation = self.engine.catalog_generation();
        let (cached, task) = {
            let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
            let cached = plans.get(sql, generation)?;
            (cached, plans.task_context(|| self.ctx.task_ctx()))
        };
        self.activity.record_plan(&cached.plan);
        Some(cached_output(
            cached,
            None,
            task,
            &self.engine,
            self.direct_rows_allowed(),
        ))
    }

    /// Runs the parameterized statement `key` (its text; `plan` its logical
    /// plan with placeholders) on its generic plan, made at its first
    /// execution, with `params` bound into the remote scans — no planning
    /// per execution. `None` when the statement has no generic plan (a
    /// placeholder is compared or computed outside a remote scan) or these
    /// values cannot be bound as they are: the caller plans the statement
    /// with the values in.
    pub(super) async fn run_generic(
        &self,
        key: &str,
        plan: &LogicalPlan,
        params: &[ScalarValue],
        tag: &str,
        renames: &HashMap<String, String>,
    ) -> Option<Result<Output>> {
        let generic = match self.known_generic(key) {
            Some(generic) => generic?,
            None => self.make_generic(key, plan, tag, renames).await?,
        };
        self.bind_generic(&generic, params.to_vec())
    }

    /// What this session knows of the generic plan of `key`: `None` if it
    /// has not tried to make one (or the catalog changed since), `Some(None)`
    /// if there is none.
    pub(super) fn known_generic(&self, key: &str) -> Option<Option<plancache::GenericPlan>> {
        let generation = self.engine.catalog_generation();
        self.plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generic(key, generation)
    }

    /// Plans `plan` with its placeholders left in and keeps the result as
    /// the generic plan of `key` — or notes that it has none.
    pub(super) async fn make_generic(
        &self,
        key: &str,
        plan: &LogicalPlan,
        tag: &str,
        renames: &HashMap<String, String>,
    ) -> Option<plancache::GenericPlan> {
        // Read before planning: a catalog change meanwhile makes this plan
        // stale at once.
        let generation = self.engine.catalog_generation();
        // Physical planning fails on a placeholder anywhere but in a remote
        // scan's pushed filters; then there is none.
        let physical = {
            let mut planning = self.planning.lock().await;
            let state = planning.get_or_insert_with(|| self.ctx.state());
            state.mark_start_execution();
            state.create_physical_plan(plan).await.ok()
        };
        let param_types = plan.get_parameter_types().ok().map(|types| {
            let count = types
                .keys()
                .filter_map(|k| k.strip_prefix('$')?.parse::<usize>().ok())
                .max()
                .unwrap_or(0);
            (1..=count)
                .map(|i| types.get(&format!("${i}")).cloned().flatten())
                .collect::<Vec<_>>()
        });
        let schema = rename_fields(plan.schema().as_arrow(), renames);
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        plans.insert_generic(
            key,
            generation,
            physical.as_ref().zip(param_types),
            &schema,
            tag,
        );
        plans.generic(key, generation).flatten()
    }

    /// Runs `generic` with `params` bound into its scans; `None` if these
    /// values cannot be bound as they are.
    pub(super) fn bind_generic(
        &self,
        generic: &plancache::GenericPlan,
        params: Vec<ScalarValue>,
    ) -> Option<Result<Output>> {
        if !generic.binds(&params) {
            return None;
        }
        let task = self
            .plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .task_context(|| self.ctx.task_ctx());
        self.activity.record_plan(&generic.cached.plan);
        Some(cached_output(
            generic.cached.clone(),
            Some(QueryParams(params)),
            task,
            &self.engine,
            self.direct_rows_allowed(),
        ))
    }

    /// Runs the one statement of the simple-protocol query string `text`:
    /// on the generic plan of its shape when its literals can be lifted and
    /// bound into one (see [`crate::engine::literals`]), else planned as written
    /// (and its plan cached by `text`).
    pub async fn run_text(&self, statement: &KoiosStatement, text: &str) -> Result<Output> {
        if self.transaction_state() != BlockState::Failed
            && let Some(output) = self.run_lifted(statement, text).await
        {
            return Ok(output);
        }
        let prepared = self.prepare_text(statement, text).await?;
        self.execute(&prepared, Vec::new()).await
    }

    /// `statement` on the generic plan of its shape, if it has one and its
    /// literals bind into it; `None` leaves it to be planned as written
    /// (which also reports any error). The plan with the values bound is
    /// cached by `text`, so the same text again is not even lifted.
    pub(super) async fn run_lifted(
        &self,
        statement: &KoiosStatement,
        text: &str,
    ) -> Option<Output> {
        let KoiosStatement::Sql(statement) = statement else {
            return None;
        };
        let shape = literals::lift(statement)?;
        let output = self.run_shape(&shape, text).await?;
        // Later texts that differ only in these values skip parsing.
        if let Some(template) = literals::template(text)
            && template.values == shape.values
        {
            self.plans
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert_template(&template.key, &shape.key);
        }
        Some(output)
    }

    /// Runs the simple-protocol text `text` without parsing it, when its
    /// [`literals::Template`] is that of an earlier text whose shape has a
    /// generic plan its values bind into.
    pub fn run_template(&self, text: &str) -> Option<Output> {
        if self.transaction_state() == BlockState::Failed {
            return None;
        }
        let template = literals::template(text)?;
        let shape_key = self
            .plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .template(&template.key)?;
        let generic = self.known_generic(&shape_key)??;
        self.run_bound(&generic, &template.values, None)
    }

    /// A query of `shape` (whose text is `text`) on the shape's generic
    /// plan, as [`Session::run_lifted`] says.
    pub(super) async fn run_shape(&self, shape: &literals::Shape, text: &str) -> Option<Output> {
        let generic = match self.known_generic(&shape.key) {
            Some(generic) => generic?,
            None => {
                let prepared = self.prepare(&shape.statement, &[]).await.ok();
                match &prepared {
                    Some(Prepared::Plan {
                        plan,
                        tag,
                        renames,
                        cache_key: Some(_),
                        counts_rows: false,
                        ..
                    }) => self.make_generic(&shape.key, plan, tag, renames).await?,
                    _ => {
                        // Not a query that can be cached: note it, so the
                        // shape is not prepared again at every run.
                        self.plans
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert_generic(
                                &shape.key,
                                self.engine.catalog_generation(),
                                None,
                                &Arc::new(Schema::empty()),
                                "",
                            );
                        return None;
                    }
                }
            }
        };
        self.run_bound(&generic, &shape.values, Some(text))
    }

    /// `generic` run with the lifted `values` bound into it, if they bind
    /// (see [`literals::bind_as`]); the bound plan is cached by `text` if
    /// given.
    pub(super) fn run_bound(
        &self,
        generic: &plancache::GenericPlan,
        values: &[ScalarValue],
        text: Option<&str>,
    ) -> Option<Output> {
        let values = literals::bind_as(values, &generic.param_types)?;
        if !generic.binds(&values) {
            return None;
        }
        let cached = &generic.cached;
        let values = QueryParams(values);
        let Some(text) = text else {
            // Nothing to cache by text: the plan is bound only when run
            // (not at all if served as data rows).
            let task = self
                .plans
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .task_context(|| self.ctx.task_ctx());
            self.activity.record_plan(&cached.plan);
            return cached_output(
                cached.clone(),
                Some(values),
                task,
                &self.engine,
                self.direct_rows_allowed(),
            )
            .ok();
        };
        let bound = plancache::bind(&cached.plan, Some(values)).ok()?;
        let task = {
            let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
            plans.insert(
                text,
                cached.generation,
                &bound,
                &cached.schema,
                &cached.tag,
                true,
            );
            plans.task_context(|| self.ctx.task_ctx())
        };
        self.activity.record_plan(&bound);
        let rows = self
            .direct_rows_allowed()
            .then(|| passthrough::data_rows(&bound, None, &self.engine))
            .flatten();
        let plan_schema = bound.schema();
        let engine = Arc::clone(&self.engine);
        rows_output(
            Arc::clone(&cached.schema),
            &cached.tag,
            rows,
            plan_schema,
            move || metered::execute(bound, task, engine),
        )
        .ok()
    }
}
