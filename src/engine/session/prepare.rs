//! Planning one statement: the plan, its parameter types, the command tag,
//! PostgreSQL's output column names and the plan-cache key.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, Expr as SqlExpr, Statement as SqlStatement};

use crate::engine::error::codes;
use crate::engine::jobs::statements::{JobCommand, SHOW_JOBS};
use crate::engine::literals;
use crate::engine::logical::statement::LogicalStatement;
use crate::engine::plancache::{self};
use crate::engine::remote_ddl::dml::check_dml;
use crate::engine::remote_ddl::{CreateTableAs, Names, keyed, parse_ddl, returning, upsert};
use koios_connector::ddl::SchemaChange;
use koios_connector::sql_err;

use super::Session;
use super::statement::{Command, KoiosStatement, parse_sql, session_command};
use crate::engine::sources::statements::SourceCommand;

/// What `SHOW SOURCES` runs.
const SHOW_SOURCES: &str = "SELECT name, kind, origin, url, state, since, last_error, \
     latency_ms, tables FROM koios.system.sources ORDER BY name";

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
        /// The types each `$n` is cast to in the SQL, as written (see
        /// [`placeholder_casts`]).
        param_casts: Vec<Vec<String>>,
        /// The key of the session's plan cache for a read-only query whose
        /// functions are all immutable (see [`crate::engine::plancache`]): its plan,
        /// or with parameters its generic plan.
        cache_key: Option<Arc<str>>,
        /// The statement with its literals lifted ([`crate::engine::literals`]), for
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
            Prepared::Command(Command::Logical(LogicalStatement::Check { .. })) => {
                crate::engine::logical::verify::check_schema()
            }
            Prepared::Command(Command::Migrate(_)) => crate::engine::migrate::answer_schema(),
            Prepared::Command(Command::Fetch {
                schema: Some(schema),
                ..
            }) => Arc::clone(schema),
            _ => Arc::new(Schema::empty()),
        }
    }

    /// The types the SQL casts each `$n` to, as written, in order.
    pub fn param_casts(&self) -> &[Vec<String>] {
        match self {
            Prepared::Plan { param_casts, .. } => param_casts,
            Prepared::Command(_) => &[],
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

pub(super) fn show_schema(name: &str) -> SchemaRef {
    if name == "all" {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, false),
        ]))
    } else {
        Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))
    }
}

/// The types each `$n` is cast to in the SQL (`$1::oid[]`), as written —
/// lower case, without `pg_catalog.` — in order. A front end may report
/// some of them to clients as the parameter's type (PostgreSQL says `oid[]`
/// where Arrow's types can only say `int4[]`).
pub(super) fn placeholder_casts(statement: &DfStatement) -> HashMap<String, Vec<String>> {
    struct Casts(HashMap<String, Vec<String>>);
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
                self.0
                    .entry(name.clone())
                    .or_default()
                    .push(text.to_string());
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
pub(super) fn placeholder_cast_types(plan: &LogicalPlan) -> Result<Vec<(String, DataType)>> {
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
pub(super) const OUTPUT_ALIAS_PREFIX: &str = "__koios_output_";

/// Gives every unnamed, non-column output expression of a query a unique
/// internal alias and returns the name PostgreSQL would show for it.
///
/// PostgreSQL names `SELECT count(*), 1, 1` as `count`, `?column?`, `?column?`;
/// DataFusion names them after the expression text and rejects duplicates.
pub(super) fn assign_output_names(statement: &mut DfStatement) -> HashMap<String, String> {
    let mut names = HashMap::new();
    if let DfStatement::Statement(sql) = statement
        && let SqlStatement::Query(query) = sql.as_mut()
    {
        let mut counter = 0;
        alias_set_expr(query.body.as_mut(), &mut counter, &mut names, true);
    }
    names
}

pub(super) fn alias_set_expr(
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
pub(super) fn pg_column_name(expr: &SqlExpr) -> String {
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
pub(super) fn pg_type_name(written: &str) -> String {
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
pub(super) fn rename_fields(schema: &Schema, renames: &HashMap<String, String>) -> SchemaRef {
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
pub(super) fn command_tag(statement: &DfStatement) -> (String, bool) {
    let sql = match statement {
        DfStatement::Statement(s) => s.as_ref(),
        DfStatement::Explain(_) => return ("EXPLAIN".into(), false),
        DfStatement::CreateExternalTable(_) => return ("CREATE EXTERNAL TABLE".into(), true),
        DfStatement::CopyTo(_) => return ("COPY".into(), true),
        DfStatement::Reset(_) => return ("RESET".into(), true),
    };
    let (tag, counts): (String, bool) = match sql {
        SqlStatement::Query(_) => ("SELECT".into(), false),
        // Rows and then `INSERT 0 n` (the front end appends the count).
        SqlStatement::Insert(insert) if insert.returning.is_some() => ("INSERT 0".into(), false),
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
        SqlStatement::CreateDatabase { .. } => ("CREATE DATABASE".into(), true),
        SqlStatement::CreateIndex(_) => ("CREATE INDEX".into(), true),
        SqlStatement::CreateFunction(_) => ("CREATE FUNCTION".into(), true),
        SqlStatement::DropFunction(_) => ("DROP FUNCTION".into(), true),
        SqlStatement::AlterTable(_) => ("ALTER TABLE".into(), true),
        SqlStatement::Prepare { .. } => ("PREPARE".into(), true),
        SqlStatement::Execute { .. } => ("EXECUTE".into(), true),
        SqlStatement::Deallocate { .. } => ("DEALLOCATE".into(), true),
        SqlStatement::ShowCreate { .. } | SqlStatement::ShowFunctions { .. } => {
            ("SHOW".into(), false)
        }
        SqlStatement::Copy { .. } => ("COPY".into(), true),
        // Anything else is refused when planned, before a tag is sent.
        _ => ("OK".into(), true),
    };
    (tag, counts)
}

impl Session {
    /// `statement` as changes to a source's tables, if it is DDL naming
    /// them (see [`crate::engine::remote_ddl`]).
    fn remote_ddl(&self, statement: &DfStatement) -> Result<Option<Command>> {
        let DfStatement::Statement(statement) = statement else {
            return Ok(None);
        };
        // Queries (almost every statement) pay nothing more.
        if !matches!(
            statement.as_ref(),
            SqlStatement::CreateTable(_)
                | SqlStatement::Drop { .. }
                | SqlStatement::Truncate(_)
                | SqlStatement::AlterTable(_)
                | SqlStatement::CreateSchema { .. }
                | SqlStatement::Update(_)
                | SqlStatement::Delete(_)
        ) {
            return Ok(None);
        }
        let current_schema = self.with_settings(|s| {
            s.current_schema()
                .unwrap_or(crate::engine::DEFAULT_SCHEMA)
                .to_string()
        });
        let is_source = |name: &str| self.engine.is_source(name);
        let names = Names {
            database: &self.database,
            current_schema: &current_schema,
            is_source: &is_source,
        };
        if let Some(logical) =
            crate::engine::logical::ddl::logical_ddl(statement, &names, &self.engine)?
        {
            return Ok(Some(Command::Logical(logical)));
        }
        check_dml(statement, &names)?;
        let Some(mut parsed) = parse_ddl(statement, &names)? else {
            return Ok(None);
        };
        if let Some(query) = parsed.as_query.take() {
            let Some(SchemaChange::CreateTable(definition)) = parsed.changes.pop() else {
                return Err(datafusion::error::DataFusionError::Internal(
                    "CREATE TABLE AS without its table".into(),
                ));
            };
            return Ok(Some(Command::CreateTableAs(Box::new(CreateTableAs {
                source: parsed.source,
                definition,
                query,
            }))));
        }
        Ok(Some(Command::SchemaChange(
            parsed.evaluate_defaults(&self.ctx.state())?,
        )))
    }

    /// Plans `statement` (and the statement an `EXPLAIN` wraps): DataFusion's
    /// plan, or Koios's own for the writes DataFusion does not plan as Koios
    /// runs them ([`Session::plan_write`]).
    async fn plan_statement(
        &self,
        state: &SessionState,
        statement: DfStatement,
    ) -> Result<LogicalPlan> {
        if let DfStatement::Explain(explain) = &statement {
            if let Some(plan) = self.plan_write(state, &explain.statement).await? {
                return LogicalPlanBuilder::from(plan)
                    .explain(explain.options.verbose, explain.options.analyze)?
                    .build();
            }
        } else if let Some(plan) = self.plan_write(state, &statement).await? {
            return Ok(plan);
        }
        state.statement_to_plan(statement).await
    }

    /// The plan of an upsert, an insert with `RETURNING` or leaving columns
    /// to the backend, an `UPDATE … FROM`, or an `UPDATE`/`DELETE` whose
    /// rows a subquery chooses, on a source's table; `None` for anything
    /// else.
    async fn plan_write(
        &self,
        state: &SessionState,
        statement: &DfStatement,
    ) -> Result<Option<LogicalPlan>> {
        let capabilities = self.engine.capabilities();
        if let Some(conflict) = upsert::split_conflict(statement)? {
            // DataFusion plans the insert; its conflict clause is Koios's.
            let insert = state.statement_to_plan(conflict.insert.clone()).await?;
            return upsert::plan_statement(conflict, insert, state, capabilities).map(Some);
        }
        if let Some(insert) = returning::split_insert(statement) {
            // DataFusion plans the insert; what the backend fills and
            // returns is Koios's.
            let planned = state.statement_to_plan(insert.insert.clone()).await?;
            return returning::plan_statement(
                insert,
                planned,
                state,
                capabilities,
                &pg_column_name,
            )
            .map(Some);
        }
        if let Some(plain) = keyed::without_from(statement) {
            // Its target planned alone, its rows as a query, changed by key.
            let plain = state.statement_to_plan(plain).await?;
            let key = keyed::key_of(&plain, capabilities)?;
            let (query, change) = keyed::rows_query(statement, &key)?;
            let Some(KoiosStatement::Sql(query)) = parse_sql(&query)?.pop() else {
                return sql_err!(codes::INTERNAL_ERROR, "UPDATE … FROM without its query");
            };
            let rows = state.statement_to_plan(*query).await?;
            return keyed::plan_rows_change(plain, rows, change).map(Some);
        }
        if keyed::chooses_by_query(statement) {
            // Rows chosen through other tables: changed by key.
            let planned = state.statement_to_plan(statement.clone()).await?;
            return keyed::plan(planned, statement, capabilities).map(Some);
        }
        Ok(None)
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

    pub(super) async fn prepare_keyed(
        &self,
        statement: &KoiosStatement,
        client_types: &[Option<DataType>],
        text: Option<&str>,
    ) -> Result<Prepared> {
        let statement = match statement {
            KoiosStatement::Source(SourceCommand::Show) => {
                // The system table, ordered: one place builds the rows.
                let query = parse_sql(SHOW_SOURCES)?.remove(0);
                return Box::pin(self.prepare_keyed(&query, client_types, None)).await;
            }
            KoiosStatement::Source(command) => {
                return Ok(Prepared::Command(Command::Source(command.clone())));
            }
            KoiosStatement::Logical(statement) => {
                return Ok(Prepared::Command(Command::Logical(statement.clone())));
            }
            KoiosStatement::Job(JobCommand::Show) => {
                let query = parse_sql(SHOW_JOBS)?.remove(0);
                return Box::pin(self.prepare_keyed(&query, client_types, None)).await;
            }
            KoiosStatement::Job(command) => {
                return Ok(Prepared::Command(Command::Job(*command)));
            }
            KoiosStatement::Migrate(statement) => {
                return Ok(Prepared::Command(Command::Migrate(statement.clone())));
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
        if let Some(command) = self.remote_ddl(statement)? {
            return Ok(Prepared::Command(command));
        }
        let (tag, counts_rows) = command_tag(statement);
        let casts = placeholder_casts(statement);
        let written = statement;
        let mut statement = statement.clone();
        let renames = Arc::new(assign_output_names(&mut statement));
        let plan = {
            let mut planning = self.planning.lock().await;
            let state = planning.get_or_insert_with(|| self.ctx.state());
            state.mark_start_execution();
            self.plan_statement(state, statement).await?
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
        let param_casts = (1..=param_types.len())
            .map(|i| casts.get(&format!("${i}")).cloned().unwrap_or_default())
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
            param_casts,
            cache_key,
            shape,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::session::parse_sql;

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

    #[test]
    fn command_tags_come_from_the_parsed_statement() {
        let tag = |sql: &str| match parse_sql(sql).expect("parses").remove(0) {
            KoiosStatement::Sql(s) => command_tag(&s),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(tag("select 1"), ("SELECT".into(), false));
        assert_eq!(tag("insert into t values (1)"), ("INSERT".into(), true));
        assert_eq!(tag("create table t as select 1"), ("SELECT".into(), true));
        assert_eq!(tag("drop view v"), ("DROP VIEW".into(), true));
        assert_eq!(tag("create database d"), ("CREATE DATABASE".into(), true));
        assert_eq!(
            tag("  /* c */ prepare p as select 1"),
            ("PREPARE".into(), true)
        );
    }
}
