//! The session commands the session answers itself: transactions (in
//! [`super::transaction`]), `SET`,
//! `SHOW`, `RESET`, `DISCARD`, cursors and the source statements.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::error::Result;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::StreamExt;

use crate::engine::settings::{PG_SETTINGS, Settings, unknown_setting};

use super::execute::Output;
use super::prepare::show_schema;
use super::statement::Command;
use super::{Cursor, Session};
use crate::engine::error::codes;
use crate::engine::jobs::statements::JobCommand;
use koios_connector::transaction::BlockState;
use koios_connector::{sql_err, sql_error};

impl Session {
    /// Drops every cached plan and the planning state (the session's
    /// settings or DataFusion state changed).
    pub(super) async fn forget_plans(&self) {
        self.plans.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.planning.lock().await = None;
    }

    /// `resolve` given the names a statement is read against in this
    /// session: its database, its current schema and the sources.
    fn with_names<T>(
        &self,
        resolve: impl FnOnce(&crate::engine::remote_ddl::Names<'_>) -> Result<T>,
    ) -> Result<T> {
        let current_schema = self.with_settings(|s| {
            s.current_schema()
                .unwrap_or(crate::engine::DEFAULT_SCHEMA)
                .to_string()
        });
        let is_source = |name: &str| self.engine.is_source(name);
        resolve(&crate::engine::remote_ddl::Names {
            database: &self.database,
            current_schema: &current_schema,
            is_source: &is_source,
        })
    }

    /// A logical-table statement with its names resolved in this session.
    fn logical_work(
        &self,
        statement: &crate::engine::logical::statement::LogicalStatement,
    ) -> Result<crate::engine::logical::ddl::LogicalWork> {
        self.with_names(|names| {
            crate::engine::logical::ddl::prepare_logical(statement, names, names.is_source)
        })
    }

    /// `PAUSE JOB n`, `RESUME JOB n`, `CANCEL JOB n` (administrators only,
    /// as for managing sources).
    async fn run_job_command(&self, command: JobCommand) -> Result<()> {
        if !self.engine.is_admin(&self.user) {
            return sql_err!(
                codes::INSUFFICIENT_PRIVILEGE,
                "permission denied: only administrators may pause, resume or cancel jobs \
                 (a [[user]] with admin = true)"
            );
        }
        let jobs = self.engine.jobs();
        match command {
            JobCommand::Show => Ok(()),
            JobCommand::Pause(id) => jobs.pause(id).await,
            JobCommand::Resume(id) => {
                // A failed migration goes on from its checkpoints.
                let job = jobs.get(id)?;
                if self.engine.reopen_migration(&job).await?
                    || self.engine.reopen_rebalance(&job).await?
                {
                    return Ok(());
                }
                jobs.resume(id).await
            }
            JobCommand::Cancel(id) => {
                // A failed rebalance is cancelled by putting the old
                // members back.
                let job = jobs.get(id)?;
                if self.engine.cancel_failed_rebalance(&job).await? {
                    return Ok(());
                }
                jobs.cancel(id).await
            }
        }
    }

    /// A `MIGRATE TABLE`'s job, its names resolved (both must be tables
    /// of sources).
    fn migration_of(
        &self,
        statement: &crate::engine::migrate::statement::MigrateStatement,
    ) -> Result<crate::engine::migrate::spec::Migration> {
        self.with_names(|names| {
            let resolve = |name: &datafusion::sql::sqlparser::ast::ObjectName| {
                let (source, schema, table) =
                    crate::engine::remote_ddl::statement::qualify(names, name)?;
                if !self.engine.is_source(&source) {
                    return sql_err!(
                        codes::FEATURE_NOT_SUPPORTED,
                        "{name}: '{source}' is not a source; MIGRATE TABLE moves tables of sources (source.schema.table)"
                    );
                }
                Ok(crate::engine::migrate::spec::SourceTable {
                    source,
                    schema,
                    table,
                })
            };
            Ok(crate::engine::migrate::spec::Migration::new(
                resolve(&statement.source)?,
                resolve(&statement.destination)?,
                statement.options.clone(),
            ))
        })
    }

    /// Waits until `job` ends, sending its progress as a NOTICE every few
    /// seconds (a client that stops waiting leaves it running); an error
    /// if it did not finish, with `what_next` (its `{}` the job's id).
    async fn wait_for(&self, job: &crate::engine::jobs::Job, what_next: &str) -> Result<()> {
        let mut last = std::time::Instant::now();
        while !job.state().is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if last.elapsed() >= PROGRESS_EVERY && !job.state().is_finished() {
                last = std::time::Instant::now();
                self.notices.notice(progress_line(&job.view()));
            }
        }
        let state = job.state();
        if state == crate::engine::jobs::JobState::Done {
            return Ok(());
        }
        let error = job.view().row.error.unwrap_or_default();
        let next = what_next.replace("{}", &job.id().to_string());
        sql_err!(
            codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "{} job {} {}: {error} ({next})",
            job.kind(),
            job.id(),
            state.as_str()
        )
    }

    /// `MIGRATE TABLE`: the job started (or, with `wait = true`, ended),
    /// as a row: its id, state and rows copied.
    async fn migrate(
        &self,
        statement: &crate::engine::migrate::statement::MigrateStatement,
    ) -> Result<Output> {
        self.admit_ddl("MIGRATE TABLE")?;
        let migration = self.migration_of(statement)?;
        let job = self.engine.start_migration(migration).await?;
        if statement.wait {
            self.wait_for(&job, "RESUME JOB {} goes on from where it stopped")
                .await?;
        }
        let view = job.view();
        let schema = crate::engine::migrate::answer_schema();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(arrow::array::Int64Array::from(vec![job.id()])) as ArrayRef,
                Arc::new(StringArray::from(vec![job.state().as_str()])),
                Arc::new(arrow::array::Int64Array::from(vec![view.row.rows_done])),
            ],
        )?;
        let stream = futures::stream::once(async move { Ok(batch) });
        Ok(Output::Rows {
            schema: Arc::clone(&schema),
            stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
            tag: "MIGRATE".into(),
            data_rows: None,
        })
    }

    /// `VERIFY TABLE` / `REPAIR TABLE`: the copies compared, as rows.
    async fn check_mirrored(
        &self,
        statement: &crate::engine::logical::statement::LogicalStatement,
    ) -> Result<Output> {
        let work = self.logical_work(statement)?;
        let crate::engine::logical::ddl::LogicalWork::Check {
            schema,
            table,
            repair,
        } = work
        else {
            return Err(datafusion::error::DataFusionError::Internal(
                "VERIFY TABLE prepared as another statement".into(),
            ));
        };
        let batch = self.engine.check_mirrored(&schema, &table, repair).await?;
        let schema = batch.schema();
        let stream = futures::stream::once(async move { Ok(batch) });
        Ok(Output::Rows {
            schema: Arc::clone(&schema),
            stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
            tag: if repair { "REPAIR" } else { "VERIFY" }.into(),
            data_rows: None,
        })
    }

    pub(super) async fn run_command(&self, command: &Command) -> Result<Output> {
        let done = |tag: &str| Output::Done {
            tag: tag.to_string(),
            rows: None,
        };
        if matches!(
            command,
            Command::Set { .. } | Command::Reset(_) | Command::DiscardAll
        ) {
            // Settings (search_path, TimeZone …) may change what a query means.
            self.forget_plans().await;
        }
        match command {
            Command::Begin
            | Command::Commit
            | Command::Rollback
            | Command::Savepoint(_)
            | Command::RollbackTo(_)
            | Command::Release(_) => self.run_transaction_command(command).await,
            Command::Ignored(tag) => Ok(done(tag)),
            Command::DiscardAll => {
                if self.transaction_state() != BlockState::Idle {
                    return sql_err!(
                        codes::ACTIVE_SQL_TRANSACTION,
                        "DISCARD ALL cannot run inside a transaction block"
                    );
                }
                *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = Settings::default();
                self.follow_search_path();
                self.cursors.lock().await.clear();
                Ok(done("DISCARD ALL"))
            }
            Command::DeclareCursor { name, query } => {
                let mut cursors = self.cursors.lock().await;
                if cursors.contains_key(name) {
                    return sql_err!(codes::DUPLICATE_CURSOR, "cursor \"{name}\" already exists");
                }
                let statement =
                    DfStatement::Statement(Box::new(SqlStatement::Query(query.clone())));
                let plan = self.ctx.state().statement_to_plan(statement).await?;
                let frame = self.ctx.execute_logical_plan(plan).await?;
                let schema = Arc::new(frame.schema().as_arrow().clone());
                let stream = frame.execute_stream().await?;
                cursors.insert(
                    name.clone(),
                    Cursor {
                        schema,
                        stream,
                        pending: None,
                    },
                );
                Ok(done("DECLARE CURSOR"))
            }
            Command::Fetch { name, count, .. } => {
                let mut cursors = self.cursors.lock().await;
                let cursor = cursors.get_mut(name).ok_or_else(|| {
                    sql_error!(
                        codes::INVALID_CURSOR_NAME,
                        "cursor \"{name}\" does not exist"
                    )
                })?;
                let batches = cursor.fetch(*count).await?;
                let schema = Arc::clone(&cursor.schema);
                let stream = futures::stream::iter(batches.into_iter().map(Ok)).boxed();
                Ok(Output::Rows {
                    schema: Arc::clone(&schema),
                    stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
                    tag: "FETCH".into(),
                    data_rows: None,
                })
            }
            Command::CloseCursor(name) => {
                let mut cursors = self.cursors.lock().await;
                match name {
                    None => cursors.clear(),
                    Some(name) => {
                        if cursors.remove(name).is_none() {
                            return sql_err!(
                                codes::INVALID_CURSOR_NAME,
                                "cursor \"{name}\" does not exist"
                            );
                        }
                    }
                }
                Ok(done(if name.is_some() {
                    "CLOSE CURSOR"
                } else {
                    "CLOSE CURSOR ALL"
                }))
            }
            Command::Source(command) => {
                self.engine.run_source_command(command, &self.user).await?;
                Ok(done(command.tag()))
            }
            Command::Job(command) => {
                self.run_job_command(*command).await?;
                Ok(done(command.tag()))
            }
            Command::Migrate(statement) => {
                if self.transaction_state() != BlockState::Idle {
                    return sql_err!(
                        codes::ACTIVE_SQL_TRANSACTION,
                        "MIGRATE TABLE cannot run inside a transaction block: it runs as a background job (run it outside BEGIN … COMMIT)"
                    );
                }
                self.migrate(statement).await
            }
            Command::SchemaChange(ddl) => {
                self.admit_ddl(ddl.tag())?;
                self.engine.change_schema(ddl).await?;
                Ok(done(ddl.tag()))
            }
            Command::Logical(statement) => {
                self.admit_ddl(statement.tag())?;
                if let crate::engine::logical::statement::LogicalStatement::Check { .. } = statement
                {
                    return self.check_mirrored(statement).await;
                }
                if self.transaction_state() != BlockState::Idle {
                    return sql_err!(
                        codes::ACTIVE_SQL_TRANSACTION,
                        "{} of a striped table cannot run inside a transaction block: it changes several sources (run it outside BEGIN … COMMIT)",
                        statement.tag()
                    );
                }
                let work = self.logical_work(statement)?;
                if let crate::engine::logical::ddl::LogicalWork::AlterMembers {
                    schema,
                    table,
                    change,
                    mirror: false,
                    wait,
                } = work
                {
                    let job = self.engine.alter_members(&schema, &table, change).await?;
                    self.forget_plans().await;
                    if let Some(job) = job {
                        let job = self.engine.jobs().get(job)?;
                        if wait {
                            self.wait_for(
                                &job,
                                "RESUME JOB {} goes on; CANCEL JOB {} puts the old members back",
                            )
                            .await?;
                        } else {
                            self.notices.notice(format!("{} job {} carries the change out in the background; koios.system.jobs shows its progress", job.kind(), job.id()));
                        }
                    }
                    return Ok(done(statement.tag()));
                }
                self.engine.run_logical(work).await?;
                self.forget_plans().await;
                Ok(done(statement.tag()))
            }
            Command::CreateTableAs(create) => {
                if self.transaction_state() != BlockState::Idle {
                    return sql_err!(
                        codes::ACTIVE_SQL_TRANSACTION,
                        "CREATE TABLE AS into a source cannot run inside a transaction block: Koios commits it on its own (run it outside BEGIN … COMMIT)"
                    );
                }
                let rows = create.run(&self.engine, &self.ctx).await?;
                Ok(Output::Done {
                    tag: "SELECT".into(),
                    rows: Some(rows as usize),
                })
            }
            Command::Set { name, value } => {
                self.settings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .set(name, value)?;
                if name == "search_path" {
                    self.follow_search_path();
                }
                Ok(done("SET"))
            }
            Command::Reset(name) => {
                {
                    let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
                    match name {
                        None => *settings = Settings::default(),
                        Some(name) => {
                            let default = PG_SETTINGS
                                .iter()
                                .find(|(k, _)| k == name)
                                .ok_or_else(|| unknown_setting(name))?;
                            settings.values.insert(name.clone(), default.1.to_string());
                        }
                    }
                }
                self.follow_search_path();
                Ok(done("RESET"))
            }
            Command::Show(name) => {
                let settings = self.settings();
                let schema = show_schema(name);
                let columns: Vec<ArrayRef> = if name == "all" {
                    let names: Vec<&str> = settings.values.keys().map(String::as_str).collect();
                    let values: Vec<&str> = settings.values.values().map(String::as_str).collect();
                    vec![
                        Arc::new(StringArray::from(names)),
                        Arc::new(StringArray::from(values)),
                    ]
                } else {
                    let value = settings.get(name).ok_or_else(|| unknown_setting(name))?;
                    vec![Arc::new(StringArray::from(vec![value]))]
                };
                let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
                let stream = futures::stream::iter(vec![Ok(batch)]).boxed();
                Ok(Output::Rows {
                    schema: Arc::clone(&schema),
                    stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
                    tag: "SHOW".into(),
                    data_rows: None,
                })
            }
        }
    }
}

impl Cursor {
    /// The next `count` rows (all remaining ones for `None`).
    pub(super) async fn fetch(&mut self, count: Option<usize>) -> Result<Vec<RecordBatch>> {
        let mut wanted = count.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while wanted > 0 {
            let batch = match self.pending.take() {
                Some(batch) => batch,
                None => match self.stream.next().await {
                    Some(batch) => batch?,
                    None => break,
                },
            };
            if batch.num_rows() > wanted {
                out.push(batch.slice(0, wanted));
                self.pending = Some(batch.slice(wanted, batch.num_rows() - wanted));
                wanted = 0;
            } else {
                wanted -= batch.num_rows();
                out.push(batch);
            }
        }
        Ok(out)
    }
}

/// How often a migration waited for tells its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// `migration job 7 running: 120000 of 300000 rows (40%), 52000 rows/s,
/// about 3 s left`.
fn progress_line(view: &crate::engine::jobs::JobView) -> String {
    let row = &view.row;
    let mut line = format!(
        "{} job {} {}: {} rows",
        row.kind, row.id, row.state, row.rows_done
    );
    if let Some(total) = row.rows_total.filter(|t| *t > 0) {
        line = format!(
            "{} job {} {}: {} of {total} rows ({}%)",
            row.kind,
            row.id,
            row.state,
            row.rows_done,
            row.rows_done * 100 / total
        );
    }
    if let Some(rate) = view.rate {
        line.push_str(&format!(", {rate:.0} rows/s"));
    }
    if let Some(eta) = view.eta_seconds {
        line.push_str(&format!(", about {eta:.0} s left"));
    }
    line
}
