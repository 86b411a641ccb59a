//! A SQL session over the engine, independent of any wire protocol.
//!
//! The pgwire server keeps one [`Session`] per connection and `koios query`
//! uses one for its single statement. A session parses PostgreSQL-dialect SQL
//! (plus Koios's own commands such as `REFRESH SOURCE name`), answers the
//! session commands PostgreSQL clients send (`BEGIN`, `SET`, `SHOW` …) and
//! hands everything else to DataFusion.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParserBuilder, ResetStatement, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    self, Expr as SqlExpr, ObjectName, Statement as SqlStatement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::Token;
use futures::StreamExt;

use crate::engine::Engine;
use crate::literals;
use crate::passthrough;
use crate::plancache::{self, PlanCache};
use koios_connector::pgtext::StartDataRows;
use koios_connector::{Capabilities, QueryParams};

/// One statement of a query string.
#[derive(Debug, Clone)]
pub enum KoiosStatement {
    /// Anything DataFusion's parser understands.
    Sql(Box<DfStatement>),
    /// `REFRESH SOURCE name`: re-discover a source's tables.
    RefreshSource(String),
}

/// Splits a query string into statements. Empty statements (`;;`) vanish.
pub fn parse_sql(sql: &str) -> Result<Vec<KoiosStatement>> {
    if let Some(statements) = parse_catalog_query(sql) {
        return Ok(statements);
    }
    let dialect = PostgreSqlDialect {};
    let mut parser = DFParserBuilder::new(sql).with_dialect(&dialect).build()?;
    let mut statements = Vec::new();
    let mut expecting_delimiter = false;
    loop {
        while parser.parser.consume_token(&Token::SemiColon) {
            expecting_delimiter = false;
        }
        let next = parser.parser.peek_token();
        if next.token == Token::EOF {
            break;
        }
        if expecting_delimiter {
            return Err(DataFusionError::SQL(
                Box::new(
                    datafusion::sql::sqlparser::parser::ParserError::ParserError(format!(
                        "Expected: end of statement, found: {}",
                        next.token
                    )),
                ),
                None,
            ));
        }
        if word_is(&next.token, "refresh")
            && word_is(&parser.parser.peek_nth_token(1).token, "source")
        {
            parser.parser.next_token();
            parser.parser.next_token();
            let name = parser
                .parser
                .parse_identifier()
                .map_err(|e| DataFusionError::SQL(Box::new(e), None))?;
            statements.push(KoiosStatement::RefreshSource(name.value));
        } else {
            statements.push(KoiosStatement::Sql(Box::new(parser.parse_statement()?)));
        }
        expecting_delimiter = true;
    }
    Ok(statements)
}

/// Catalog queries of clients go through [`crate::pgcatalog::rewrite_catalog_query`].
fn parse_catalog_query(sql: &str) -> Option<Vec<KoiosStatement>> {
    Some(
        crate::pgcatalog::rewrite_catalog_query(sql)?
            .into_iter()
            .map(|s| KoiosStatement::Sql(Box::new(DfStatement::Statement(Box::new(s)))))
            .collect(),
    )
}

fn word_is(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.value.eq_ignore_ascii_case(word) && w.quote_style.is_none())
}

/// A statement ready to run, possibly many times with different parameters.
// Plans dominate in number and size; boxing them would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Prepared {
    /// A DataFusion plan; `$n` placeholders are bound at execution.
    Plan {
        plan: LogicalPlan,
        /// Type of each `$n`, in order (`None` when nothing constrains it).
        param_types: Vec<Option<DataType>>,
        /// What the command tag says, e.g. `SELECT`, `INSERT`, `CREATE VIEW`.
        tag: String,
        /// DML and DDL report a row count instead of rows.
        counts_rows: bool,
        /// Output columns renamed to the names PostgreSQL would give them.
        renames: Arc<HashMap<String, String>>,
        /// PostgreSQL types of `$n` written as `$n::oid[]`, `$n::name` …,
        /// which Arrow types cannot tell from int4 or text.
        param_pg_types: Vec<Option<postgres_types::Type>>,
        /// The key of the session's plan cache for a read-only query whose
        /// functions are all immutable (see [`crate::plancache`]): its plan,
        /// or with parameters its generic plan.
        cache_key: Option<Arc<str>>,
        /// The statement with its literals lifted ([`crate::literals`]), for
        /// an extended-protocol query without parameters: a new text of a
        /// known shape runs on the shape's generic plan.
        shape: Option<Arc<literals::Shape>>,
    },
    /// Handled by the session itself.
    Command(Command),
}

impl Prepared {
    /// Schema of the rows this statement returns (empty for commands).
    pub fn output_schema(&self) -> SchemaRef {
        match self {
            Prepared::Plan {
                plan,
                counts_rows: false,
                renames,
                ..
            } => rename_fields(plan.schema().as_arrow(), renames),
            Prepared::Command(Command::Show(name)) => show_schema(name),
            Prepared::Command(Command::Fetch {
                schema: Some(schema),
                ..
            }) => Arc::clone(schema),
            _ => Arc::new(Schema::empty()),
        }
    }

    /// PostgreSQL types the SQL gave `$n` where Arrow's cannot say them.
    pub fn param_pg_types(&self) -> Vec<Option<postgres_types::Type>> {
        match self {
            Prepared::Plan { param_pg_types, .. } => param_pg_types.clone(),
            Prepared::Command(_) => Vec::new(),
        }
    }

    /// Types of the `$n` parameters.
    pub fn param_types(&self) -> Vec<Option<DataType>> {
        match self {
            Prepared::Plan { param_types, .. } => param_types.clone(),
            Prepared::Command(_) => Vec::new(),
        }
    }
}

/// Session-level commands answered without DataFusion.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Begin,
    Commit,
    Rollback,
    Set {
        name: String,
        value: String,
    },
    Show(String),
    Reset(Option<String>),
    RefreshSource(String),
    /// Accepted and ignored, answered with this tag (e.g. `UNLISTEN`).
    Ignored(String),
    /// `DISCARD ALL`: settings back to their defaults, cursors closed.
    DiscardAll,
    /// `DECLARE name CURSOR FOR query`.
    DeclareCursor {
        name: String,
        query: Box<ast::Query>,
    },
    /// `FETCH [count] FROM name`; `count` is `None` for `ALL`. `schema` is the
    /// cursor's, when it was open at prepare time.
    Fetch {
        name: String,
        count: Option<usize>,
        schema: Option<SchemaRef>,
    },
    /// `CLOSE name` / `CLOSE ALL`.
    CloseCursor(Option<String>),
}

/// What executing a statement produced.
pub enum Output {
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        tag: String,
        /// The same rows written straight as `DataRow` bodies, when the
        /// plan is one remote query (see [`crate::passthrough`]): the
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

/// PostgreSQL session parameters Koios keeps (name → default value).
/// Names are matched case-insensitively, as PostgreSQL does.
pub const PG_SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "on"),
    ("jit", "off"),
    ("default_table_access_method", "heap"),
    ("lc_messages", "C"),
    ("max_identifier_length", "63"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", crate::SERVER_VERSION),
    ("server_version_num", crate::SERVER_VERSION_NUM),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
];

/// Settings that are reported but cannot be changed.
const READ_ONLY_SETTINGS: &[&str] = &[
    "integer_datetimes",
    "server_encoding",
    "server_version",
    "server_version_num",
    "max_identifier_length",
];

/// Values a session holds for PostgreSQL parameters.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// The `search_path` schema that exists, once the session resolved it.
    current_schema: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            values: PG_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            current_schema: None,
        }
    }
}

impl Settings {
    /// The schema unqualified names resolve in, when `search_path` was set.
    pub fn current_schema(&self) -> Option<&str> {
        self.current_schema.as_deref()
    }

    /// Every parameter and its value, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Changes a parameter (as `SET` and `set_config` do).
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        if READ_ONLY_SETTINGS.contains(&name.as_str()) {
            return Err(DataFusionError::Plan(format!(
                "parameter \"{name}\" cannot be changed"
            )));
        }
        if !self.values.contains_key(&name) {
            return Err(unknown_setting(&name));
        }
        if name == "timezone" {
            validate_time_zone(value)?;
        }
        if name == "statement_timeout" {
            crate::server::parse_statement_timeout(value).map_err(DataFusionError::Plan)?;
        }
        self.values.insert(name, value.to_string());
        Ok(())
    }

    /// The session time zone used to render `timestamptz` values.
    pub fn time_zone(&self) -> &str {
        self.get("timezone").unwrap_or("UTC")
    }
}

/// One client's session.
pub struct Session {
    engine: Arc<Engine>,
    ctx: SessionContext,
    database: String,
    settings: Arc<Mutex<Settings>>,
    /// Open cursors (`DECLARE … CURSOR`), by name.
    cursors: tokio::sync::Mutex<HashMap<String, Cursor>>,
    /// Physical plans of the read-only queries this session ran.
    plans: Mutex<PlanCache>,
    /// A copy of the session's DataFusion state that statements are planned
    /// on, taken once instead of per statement (a copy holds every function
    /// registry); dropped with the plan cache whenever the state changes.
    planning: tokio::sync::Mutex<Option<SessionState>>,
}

/// An open cursor: the rest of its query's rows.
struct Cursor {
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    /// Rows read from the stream but not fetched yet.
    pending: Option<RecordBatch>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session whose unqualified names resolve in `database` (a catalog).
    pub fn new(engine: Arc<Engine>, database: &str) -> Self {
        Self::for_user(engine, database, "koios")
    }

    /// A session of `user` (shown by `current_user` and `pg_roles`).
    pub fn for_user(engine: Arc<Engine>, database: &str, user: &str) -> Self {
        let settings = Arc::new(Mutex::new(Settings::default()));
        let ctx = engine.new_context(database, Arc::clone(&settings), user);
        crate::pgfunctions::register(&ctx, database, user, Arc::clone(&settings));
        Self {
            ctx,
            database: database.to_string(),
            settings,
            cursors: Default::default(),
            plans: Mutex::new(PlanCache::new(engine.capabilities().clone())),
            planning: Default::default(),
            engine,
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// A snapshot of the session parameters.
    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the session parameters without copying them (on every query).
    pub fn with_settings<R>(&self, read: impl FnOnce(&Settings) -> R) -> R {
        read(&self.settings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sets a parameter the client sent at connection start (e.g. `application_name`).
    pub fn set_startup_parameter(&self, name: &str, value: &str) {
        let key = name.to_ascii_lowercase();
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        if settings.values.contains_key(&key) && !READ_ONLY_SETTINGS.contains(&key.as_str()) {
            settings.values.insert(key, value.to_string());
        }
    }

    /// The row type of an open cursor.
    pub async fn cursor_schema(&self, name: &str) -> Option<SchemaRef> {
        self.cursors
            .lock()
            .await
            .get(name)
            .map(|c| Arc::clone(&c.schema))
    }

    /// Makes unqualified names resolve in the first schema of `search_path`
    /// that exists in the session's database (PostgreSQL skips missing ones).
    fn follow_search_path(&self) {
        let path = crate::pgfunctions::search_path(&self.settings());
        let catalog = self.ctx.catalog(&self.database);
        let existing: Vec<String> = path
            .into_iter()
            .filter(|schema| {
                catalog
                    .as_ref()
                    .is_some_and(|c| schema != "pg_catalog" && c.schema_names().contains(schema))
            })
            .collect();
        let first = existing
            .first()
            .cloned()
            .unwrap_or_else(|| crate::engine::DEFAULT_SCHEMA.to_string());
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current_schema = Some(first.clone());
        // Several schemas: unqualified names are looked up in each, in order.
        let schema = if existing.len() > 1 {
            format!(
                "{}{}",
                crate::pgcatalog::SEARCH_PATH_PREFIX,
                existing.join(&crate::pgcatalog::SEARCH_PATH_SEPARATOR.to_string())
            )
        } else {
            first
        };
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().catalog.default_schema = schema;
    }

    /// Plans one statement. `client_types` are the parameter types the client
    /// declared (`None` where it left the choice to the server).
    pub async fn prepare(
        &self,
        statement: &KoiosStatement,
        client_types: &[Option<DataType>],
    ) -> Result<Prepared> {
        self.prepare_keyed(statement, client_types, None).await
    }

    /// Plans the one statement of the query string `text`, which is then
    /// its plan-cache key (so [`Session::run_cached`] finds it unparsed).
    pub async fn prepare_text(&self, statement: &KoiosStatement, text: &str) -> Result<Prepared> {
        self.prepare_keyed(statement, &[], Some(text)).await
    }

    async fn prepare_keyed(
        &self,
        statement: &KoiosStatement,
        client_types: &[Option<DataType>],
        text: Option<&str>,
    ) -> Result<Prepared> {
        let statement = match statement {
            KoiosStatement::RefreshSource(name) => {
                return Ok(Prepared::Command(Command::RefreshSource(name.clone())));
            }
            KoiosStatement::Sql(s) => s.as_ref(),
        };
        if let Some(mut command) = session_command(statement)? {
            if let Command::Fetch { name, schema, .. } = &mut command {
                *schema = self
                    .cursors
                    .lock()
                    .await
                    .get(name)
                    .map(|c| Arc::clone(&c.schema));
            }
            return Ok(Prepared::Command(command));
        }
        let (tag, counts_rows) = command_tag(statement);
        let cast_pg_types = placeholder_pg_types(statement);
        let written = statement;
        let mut statement = statement.clone();
        let renames = Arc::new(assign_output_names(&mut statement));
        let plan = {
            let mut planning = self.planning.lock().await;
            let state = planning.get_or_insert_with(|| self.ctx.state());
            state.mark_start_execution();
            state.statement_to_plan(statement).await?
        };
        let mut inferred = plan.get_parameter_types()?;
        for (id, dt) in placeholder_cast_types(&plan)? {
            let entry = inferred.entry(id).or_insert(None);
            if entry.is_none() {
                *entry = Some(dt);
            }
        }
        let count = inferred
            .keys()
            .filter_map(|k| k.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()))
            .max()
            .unwrap_or(0)
            .max(client_types.len());
        let param_types: Vec<Option<DataType>> = (1..=count)
            .map(|i| {
                client_types
                    .get(i - 1)
                    .cloned()
                    .flatten()
                    .or_else(|| inferred.get(&format!("${i}")).cloned().flatten())
            })
            .collect();
        let param_pg_types = (1..=param_types.len())
            .map(|i| cast_pg_types.get(&format!("${i}")).cloned())
            .collect();
        let cache_key = (!counts_rows && plancache::is_repeatable_query(&plan))
            .then(|| match text {
                Some(text) => Some(Arc::from(text)),
                None => literals::canonical_key(written).map(Arc::from),
            })
            .flatten();
        // Simple-protocol texts (`text`) were lifted before they were prepared.
        let shape = (cache_key.is_some() && param_types.is_empty() && text.is_none())
            .then(|| literals::lift(written).map(Arc::new))
            .flatten();
        Ok(Prepared::Plan {
            plan,
            param_types,
            tag,
            counts_rows,
            renames,
            param_pg_types,
            cache_key,
            shape,
        })
    }

    /// Runs a prepared statement with its parameter values.
    pub async fn execute(&self, prepared: &Prepared, params: Vec<ScalarValue>) -> Result<Output> {
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
                    let rows = passthrough::data_rows(&physical, None, self.engine.capabilities());
                    return rows_output(schema, tag, rows, physical.schema(), move || {
                        datafusion::physical_plan::execute_stream(physical, task)
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
                    let batches = frame.collect().await?;
                    Ok(Output::Done {
                        tag: tag.clone(),
                        rows: count_rows(tag, &batches),
                    })
                } else {
                    let schema = rename_fields(frame.schema().as_arrow(), renames);
                    let task = Arc::new(frame.task_ctx());
                    let physical = frame.create_physical_plan().await?;
                    let stream = crate::query_runtime::run(physical.schema(), move || {
                        datafusion::physical_plan::execute_stream(physical, task)
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
        let statements = parse_sql(sql)?;
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
        let generation = self.engine.catalog_generation();
        let (cached, task) = {
            let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
            let cached = plans.get(sql, generation)?;
            (cached, plans.task_context(|| self.ctx.task_ctx()))
        };
        Some(cached_output(
            cached,
            None,
            task,
            self.engine.capabilities(),
        ))
    }

    /// Runs the parameterized statement `key` (its text; `plan` its logical
    /// plan with placeholders) on its generic plan, made at its first
    /// execution, with `params` bound into the remote scans — no planning
    /// per execution. `None` when the statement has no generic plan (a
    /// placeholder is compared or computed outside a remote scan) or these
    /// values cannot be bound as they are: the caller plans the statement
    /// with the values in.
    async fn run_generic(
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
    fn known_generic(&self, key: &str) -> Option<Option<plancache::GenericPlan>> {
        let generation = self.engine.catalog_generation();
        self.plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generic(key, generation)
    }

    /// Plans `plan` with its placeholders left in and keeps the result as
    /// the generic plan of `key` — or notes that it has none.
    async fn make_generic(
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
    fn bind_generic(
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
        Some(cached_output(
            generic.cached.clone(),
            Some(QueryParams(params)),
            task,
            self.engine.capabilities(),
        ))
    }

    /// Runs the one statement of the simple-protocol query string `text`:
    /// on the generic plan of its shape when its literals can be lifted and
    /// bound into one (see [`crate::literals`]), else planned as written
    /// (and its plan cached by `text`).
    pub async fn run_text(&self, statement: &KoiosStatement, text: &str) -> Result<Output> {
        if let Some(output) = self.run_lifted(statement, text).await {
            return Ok(output);
        }
        let prepared = self.prepare_text(statement, text).await?;
        self.execute(&prepared, Vec::new()).await
    }

    /// `statement` on the generic plan of its shape, if it has one and its
    /// literals bind into it; `None` leaves it to be planned as written
    /// (which also reports any error). The plan with the values bound is
    /// cached by `text`, so the same text again is not even lifted.
    async fn run_lifted(&self, statement: &KoiosStatement, text: &str) -> Option<Output> {
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
    async fn run_shape(&self, shape: &literals::Shape, text: &str) -> Option<Output> {
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
    fn run_bound(
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
            return cached_output(
                cached.clone(),
                Some(values),
                task,
                self.engine.capabilities(),
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
        let rows = passthrough::data_rows(&bound, None, self.engine.capabilities());
        let plan_schema = bound.schema();
        rows_output(
            Arc::clone(&cached.schema),
            &cached.tag,
            rows,
            plan_schema,
            move || datafusion::physical_plan::execute_stream(bound, task),
        )
        .ok()
    }

    /// Drops every cached plan and the planning state (the session's
    /// settings or DataFusion state changed).
    async fn forget_plans(&self) {
        self.plans.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.planning.lock().await = None;
    }

    async fn run_command(&self, command: &Command) -> Result<Output> {
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
            Command::Begin => Ok(Output::TransactionStart),
            Command::Commit => Ok(Output::TransactionEnd("COMMIT".into())),
            Command::Rollback => Ok(Output::TransactionEnd("ROLLBACK".into())),
            Command::Ignored(tag) => Ok(done(tag)),
            Command::DiscardAll => {
                *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = Settings::default();
                self.follow_search_path();
                self.cursors.lock().await.clear();
                Ok(done("DISCARD ALL"))
            }
            Command::DeclareCursor { name, query } => {
                let mut cursors = self.cursors.lock().await;
                if cursors.contains_key(name) {
                    return Err(sql_error(
                        "42P03",
                        format!("cursor \"{name}\" already exists"),
                    ));
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
                    sql_error("34000", format!("cursor \"{name}\" does not exist"))
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
                            return Err(sql_error(
                                "34000",
                                format!("cursor \"{name}\" does not exist"),
                            ));
                        }
                    }
                }
                Ok(done(if name.is_some() {
                    "CLOSE CURSOR"
                } else {
                    "CLOSE CURSOR ALL"
                }))
            }
            Command::RefreshSource(name) => {
                self.engine.refresh_source(name).await?;
                Ok(done("REFRESH SOURCE"))
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
    async fn fetch(&mut self, count: Option<usize>) -> Result<Vec<RecordBatch>> {
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

/// An error with PostgreSQL's SQLSTATE `code`.
fn sql_error(code: &str, message: String) -> DataFusionError {
    koios_connector::RemoteError {
        sqlstate: Some(code.to_string()),
        message,
    }
    .into_datafusion()
}

fn not_supported<T>(what: &str) -> Result<T> {
    Err(DataFusionError::NotImplemented(format!(
        "{what} is not supported"
    )))
}

/// Rows a `FETCH` direction asks for (`None` = all). Cursors only move
/// forward (PostgreSQL's `NO SCROLL`).
fn fetch_count(direction: &ast::FetchDirection) -> Result<Option<usize>> {
    use ast::FetchDirection::*;
    let number = |value: &ast::ValueWithSpan| match &value.value {
        ast::Value::Number(n, _) => n
            .parse::<usize>()
            .map_err(|_| DataFusionError::Plan(format!("invalid FETCH count {n}"))),
        other => Err(DataFusionError::Plan(format!(
            "invalid FETCH count {other}"
        ))),
    };
    Ok(match direction {
        Count { limit } => Some(number(limit)?),
        Next => Some(1),
        Forward { limit } => Some(limit.as_ref().map(number).transpose()?.unwrap_or(1)),
        All | ForwardAll => None,
        _ => {
            return not_supported(
                "FETCH backward or to an absolute position (cursors are NO SCROLL)",
            );
        }
    })
}

fn show_schema(name: &str) -> SchemaRef {
    if name == "all" {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, false),
        ]))
    } else {
        Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))
    }
}

fn unknown_setting(name: &str) -> DataFusionError {
    DataFusionError::Plan(format!("unrecognized configuration parameter \"{name}\""))
}

fn validate_time_zone(value: &str) -> Result<()> {
    crate::pgtypes::parse_time_zone(value)
        .map(|_| ())
        .ok_or_else(|| {
            DataFusionError::Plan(format!(
                "invalid value for parameter \"TimeZone\": \"{value}\""
            ))
        })
}

/// Recognises the statements the session answers itself.
fn session_command(statement: &DfStatement) -> Result<Option<Command>> {
    let sql = match statement {
        DfStatement::Reset(ResetStatement::Variable(name)) => {
            let name = object_name(name);
            return Ok(if name.starts_with("datafusion.") {
                None
            } else if name == "all" {
                Some(Command::Reset(None))
            } else {
                Some(Command::Reset(Some(name)))
            });
        }
        DfStatement::Statement(s) => s.as_ref(),
        _ => return Ok(None),
    };
    Ok(match sql {
        SqlStatement::StartTransaction { .. } => Some(Command::Begin),
        SqlStatement::Commit { .. } => Some(Command::Commit),
        SqlStatement::Rollback {
            savepoint: None, ..
        } => Some(Command::Rollback),
        SqlStatement::Rollback {
            savepoint: Some(_), ..
        } => Some(Command::Ignored("ROLLBACK".into())),
        SqlStatement::Savepoint { .. } => Some(Command::Ignored("SAVEPOINT".into())),
        SqlStatement::ReleaseSavepoint { .. } => Some(Command::Ignored("RELEASE".into())),
        SqlStatement::Discard { .. } => Some(Command::DiscardAll),
        SqlStatement::UNLISTEN { .. } => Some(Command::Ignored("UNLISTEN".into())),
        // Drivers (psycopg) send it after a failed transaction. Protocol-level
        // statements live until they are re-parsed or the connection ends.
        SqlStatement::Deallocate { name, .. } if name.value.eq_ignore_ascii_case("all") => {
            Some(Command::Ignored("DEALLOCATE ALL".into()))
        }
        SqlStatement::Declare { stmts } => {
            let [declare] = stmts.as_slice() else {
                return not_supported("DECLARE of several cursors");
            };
            let (Some(query), [name]) = (&declare.for_query, declare.names.as_slice()) else {
                return not_supported("DECLARE without a cursor query");
            };
            Some(Command::DeclareCursor {
                name: name.value.clone(),
                query: query.clone(),
            })
        }
        SqlStatement::Fetch {
            name, direction, ..
        } => Some(Command::Fetch {
            name: name.value.clone(),
            count: fetch_count(direction)?,
            schema: None,
        }),
        SqlStatement::Close { cursor } => Some(Command::CloseCursor(match cursor {
            ast::CloseCursor::All => None,
            ast::CloseCursor::Specific { name } => Some(name.value.clone()),
        })),
        SqlStatement::Set(set) => match set {
            ast::Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = object_name(variable);
                if name.starts_with("datafusion.") {
                    None
                } else {
                    Some(Command::Set {
                        name,
                        value: values
                            .iter()
                            .map(setting_value)
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
            ast::Set::SetTimeZone { value, .. } => Some(Command::Set {
                name: "timezone".into(),
                value: setting_value(value),
            }),
            ast::Set::SetNames { charset_name, .. } => Some(Command::Set {
                name: "client_encoding".into(),
                value: charset_name.value.clone(),
            }),
            _ => {
                return Err(DataFusionError::NotImplemented(format!(
                    "this form of SET is not supported: {sql}"
                )));
            }
        },
        SqlStatement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            let name = match name.as_str() {
                "time zone" => "timezone".to_string(),
                "transaction isolation level" => "transaction_isolation".to_string(),
                _ => name,
            };
            if name.starts_with("datafusion.") {
                None
            } else {
                Some(Command::Show(name))
            }
        }
        _ => None,
    })
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.to_ascii_lowercase(),
            None => part.to_string().to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The text PostgreSQL would store for a `SET` value.
fn setting_value(expr: &SqlExpr) -> String {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        // `SET search_path TO "Mixed Case", public` shows the quotes back.
        SqlExpr::Identifier(ident) if ident.quote_style.is_some() => {
            crate::pgcatalog::quote_ident(&ident.value)
        }
        SqlExpr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

/// `$n::oid`, `$n::oid[]`, `$n::name`, `$n::regclass` …: PostgreSQL reports
/// these parameter types to clients (asyncpg needs `oid[]`, whose codec it
/// has built in, where Koios would say `int4[]`).
fn placeholder_pg_types(statement: &DfStatement) -> HashMap<String, postgres_types::Type> {
    use postgres_types::Type;
    struct Casts(HashMap<String, Type>);
    impl ast::Visitor for Casts {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &SqlExpr) -> std::ops::ControlFlow<()> {
            if let SqlExpr::Cast {
                expr: inner,
                data_type,
                ..
            } = expr
                && let SqlExpr::Value(ast::ValueWithSpan {
                    value: ast::Value::Placeholder(name),
                    ..
                }) = inner.as_ref()
            {
                let text = data_type.to_string().to_ascii_lowercase();
                let text = text.strip_prefix("pg_catalog.").unwrap_or(&text);
                let (base, array) = match text.strip_suffix("[]") {
                    Some(base) => (base, true),
                    None => (text, false),
                };
                let ty = match (base, array) {
                    ("oid", false) => Some(Type::OID),
                    ("oid", true) => Some(Type::OID_ARRAY),
                    ("name", false) => Some(Type::NAME),
                    ("name", true) => Some(Type::NAME_ARRAY),
                    ("regclass", false) => Some(Type::REGCLASS),
                    ("regtype", false) => Some(Type::REGTYPE),
                    ("regproc", false) => Some(Type::REGPROC),
                    ("regnamespace", false) => Some(Type::REGNAMESPACE),
                    _ => None,
                };
                if let Some(ty) = ty {
                    self.0.insert(name.clone(), ty);
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut casts = Casts(HashMap::new());
    if let DfStatement::Statement(statement) = statement {
        let _ = ast::Visit::visit(statement.as_ref(), &mut casts);
    }
    casts.0
}

/// Types of `$n` that appear only as `$n::type` (PostgreSQL infers the
/// parameter's type from such a cast; DataFusion leaves it open).
fn placeholder_cast_types(plan: &LogicalPlan) -> Result<Vec<(String, DataType)>> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Cast, Expr, TryCast};
    let mut found = Vec::new();
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                let cast = match e {
                    Expr::Cast(Cast { expr, field }) => Some((expr, field.data_type())),
                    Expr::TryCast(TryCast { expr, field }) => Some((expr, field.data_type())),
                    _ => None,
                };
                if let Some((inner, dt)) = cast
                    && let Expr::Placeholder(p) = inner.as_ref()
                    && p.field.is_none()
                {
                    found.push((p.id.clone(), dt.clone()));
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(found)
}

/// Prefix of the internal aliases given to unnamed output expressions.
const OUTPUT_ALIAS_PREFIX: &str = "__koios_output_";

/// Gives every unnamed, non-column output expression of a query a unique
/// internal alias and returns the name PostgreSQL would show for it.
///
/// PostgreSQL names `SELECT count(*), 1, 1` as `count`, `?column?`, `?column?`;
/// DataFusion names them after the expression text and rejects duplicates.
fn assign_output_names(statement: &mut DfStatement) -> HashMap<String, String> {
    let mut names = HashMap::new();
    if let DfStatement::Statement(sql) = statement
        && let SqlStatement::Query(query) = sql.as_mut()
    {
        let mut counter = 0;
        alias_set_expr(query.body.as_mut(), &mut counter, &mut names, true);
    }
    names
}

fn alias_set_expr(
    body: &mut ast::SetExpr,
    counter: &mut usize,
    names: &mut HashMap<String, String>,
    leftmost: bool,
) {
    match body {
        ast::SetExpr::Select(select) => {
            for item in select.projection.iter_mut() {
                if let ast::SelectItem::UnnamedExpr(expr) = item {
                    if matches!(
                        expr,
                        SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)
                    ) {
                        continue;
                    }
                    let alias = format!("{OUTPUT_ALIAS_PREFIX}{counter}");
                    *counter += 1;
                    if leftmost {
                        names.insert(alias.clone(), pg_column_name(expr));
                    }
                    *item = ast::SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: ast::Ident::new(alias),
                    };
                }
            }
        }
        ast::SetExpr::Query(query) => alias_set_expr(query.body.as_mut(), counter, names, leftmost),
        ast::SetExpr::SetOperation { left, right, .. } => {
            alias_set_expr(left.as_mut(), counter, names, leftmost);
            alias_set_expr(right.as_mut(), counter, names, false);
        }
        _ => {}
    }
}

/// PostgreSQL's FigureColname for the common expression shapes.
fn pg_column_name(expr: &SqlExpr) -> String {
    match expr {
        SqlExpr::Identifier(ident) => ident.value.clone(),
        SqlExpr::CompoundIdentifier(parts) => {
            parts.last().map(|i| i.value.clone()).unwrap_or_default()
        }
        SqlExpr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
            .unwrap_or_else(|| "?column?".into()),
        SqlExpr::Cast {
            expr, data_type, ..
        } => {
            let inner = pg_column_name(expr);
            if inner == "?column?" {
                pg_type_name(&data_type.to_string())
            } else {
                inner
            }
        }
        SqlExpr::Nested(inner) => pg_column_name(inner),
        SqlExpr::Case { .. } => "case".into(),
        SqlExpr::Exists { .. } => "exists".into(),
        SqlExpr::Array(_) => "array".into(),
        SqlExpr::Extract { .. } => "extract".into(),
        SqlExpr::Substring { .. } => "substring".into(),
        SqlExpr::Trim { .. } => "btrim".into(),
        SqlExpr::Position { .. } => "position".into(),
        SqlExpr::Ceil { .. } => "ceil".into(),
        SqlExpr::Floor { .. } => "floor".into(),
        SqlExpr::Overlay { .. } => "overlay".into(),
        _ => "?column?".into(),
    }
}

/// PostgreSQL's internal name of a type as written in a cast.
fn pg_type_name(written: &str) -> String {
    let lower = written.to_ascii_lowercase();
    let base = lower.split('(').next().unwrap_or(&lower).trim();
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "boolean" | "bool" => "bool",
        "double precision" | "double" | "float8" | "float" => "float8",
        "real" | "float4" => "float4",
        "character varying" | "varchar" => "varchar",
        "character" | "char" | "bpchar" => "bpchar",
        "decimal" | "numeric" => "numeric",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "time" | "time without time zone" => "time",
        other => other,
    }
    .to_string()
}

/// `schema` with internal output aliases replaced by their display names.
fn rename_fields(schema: &Schema, renames: &HashMap<String, String>) -> SchemaRef {
    if renames.is_empty() {
        return Arc::new(schema.clone());
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match renames.get(f.name()) {
            Some(name) => f.as_ref().clone().with_name(name),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The command tag PostgreSQL reports for a statement, and whether the
/// statement reports a row count rather than rows.
fn command_tag(statement: &DfStatement) -> (String, bool) {
    let sql = match statement {
        DfStatement::Statement(s) => s.as_ref(),
        DfStatement::Explain(_) => return ("EXPLAIN".into(), false),
        DfStatement::CreateExternalTable(_) => return ("CREATE EXTERNAL TABLE".into(), true),
        DfStatement::CopyTo(_) => return ("COPY".into(), true),
        DfStatement::Reset(_) => return ("RESET".into(), true),
    };
    let (tag, counts): (String, bool) = match sql {
        SqlStatement::Query(_) => ("SELECT".into(), false),
        SqlStatement::Insert(_) => ("INSERT".into(), true),
        SqlStatement::Update(_) => ("UPDATE".into(), true),
        SqlStatement::Delete(_) => ("DELETE".into(), true),
        SqlStatement::Explain { .. } => ("EXPLAIN".into(), false),
        SqlStatement::ShowVariable { .. }
        | SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. } => ("SHOW".into(), false),
        SqlStatement::CreateView(_) => ("CREATE VIEW".into(), true),
        SqlStatement::CreateTable(t) if t.query.is_some() => ("SELECT".into(), true),
        SqlStatement::CreateTable(_) => ("CREATE TABLE".into(), true),
        SqlStatement::CreateSchema { .. } => ("CREATE SCHEMA".into(), true),
        SqlStatement::Drop { object_type, .. } => (format!("DROP {object_type}"), true),
        SqlStatement::Set(_) => ("SET".into(), true),
        SqlStatement::Truncate(_) => ("TRUNCATE TABLE".into(), true),
        other => {
            let text = other.to_string();
            let word = text
                .split_whitespace()
                .next()
                .unwrap_or("OK")
                .to_ascii_uppercase();
            (word, true)
        }
    };
    (tag, counts)
}

/// Row count reported in the command tag of DML (`INSERT 0 n`) and CTAS.
fn count_rows(tag: &str, batches: &[RecordBatch]) -> Option<usize> {
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
/// its scans.
fn cached_output(
    cached: plancache::CachedPlan,
    params: Option<QueryParams>,
    task: Arc<TaskContext>,
    capabilities: &Capabilities,
) -> Result<Output> {
    let rows = passthrough::data_rows(&cached.plan, params.as_ref(), capabilities);
    let (schema, tag) = (Arc::clone(&cached.schema), cached.tag.clone());
    let plan_schema = cached.plan.schema();
    rows_output(schema, &tag, rows, plan_schema, move || {
        plancache::execute(&cached, task, params)
    })
}

/// The output of running a plan: its Arrow batches, which `batches` starts
/// on the query runtime (`plan_schema` is theirs), and its data rows if it
/// has them ([`passthrough::data_rows`]). With data rows the batches start
/// only if read, so a front end serving those costs no binding or stream
/// building.
fn rows_output(
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
                crate::query_runtime::run(schema, batches)
            })
        }
        None => crate::query_runtime::run(plan_schema, batches)?,
    };
    Ok(Output::Rows {
        schema,
        stream,
        tag: tag.to_string(),
        data_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_custom_commands() {
        let statements = parse_sql("select 1; ; REFRESH SOURCE pg; select ';'").expect("parses");
        assert_eq!(statements.len(), 3);
        assert!(matches!(&statements[1], KoiosStatement::RefreshSource(n) if n == "pg"));
        assert!(parse_sql("select 1 select 2").is_err());
        assert!(parse_sql("  ;; ").expect("parses").is_empty());
    }

    #[test]
    fn recognises_session_commands() {
        let command = |sql: &str| match &parse_sql(sql).expect("parses")[0] {
            KoiosStatement::Sql(s) => session_command(s).expect("known"),
            _ => None,
        };
        assert_eq!(command("BEGIN"), Some(Command::Begin));
        assert_eq!(
            command("SET application_name = 'x'"),
            Some(Command::Set {
                name: "application_name".into(),
                value: "x".into()
            })
        );
        assert_eq!(
            command("SET TIME ZONE 'Europe/Paris'"),
            Some(Command::Set {
                name: "timezone".into(),
                value: "Europe/Paris".into()
            })
        );
        assert_eq!(
            command("SHOW TimeZone"),
            Some(Command::Show("timezone".into()))
        );
        assert_eq!(command("SET datafusion.execution.batch_size = 10"), None);
        assert_eq!(command("SELECT 1"), None);
    }

    #[test]
    fn names_output_columns_like_postgres() {
        let mut statement = match parse_sql(
            "SELECT a, count(*), 1, 1::int, CAST(x AS text), CASE WHEN true THEN 1 END FROM t",
        )
        .expect("parses")
        .remove(0)
        {
            KoiosStatement::Sql(s) => *s,
            other => panic!("unexpected {other:?}"),
        };
        let names = assign_output_names(&mut statement);
        let mut shown: Vec<_> = names.values().cloned().collect();
        shown.sort();
        assert_eq!(shown, vec!["?column?", "case", "count", "int4", "x"]);
    }
}
