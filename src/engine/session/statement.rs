//! Parsing a query string into statements: SQL for DataFusion, Koios's own
//! statements (`CREATE SOURCE`, `REFRESH SOURCE name` …) and the session commands PostgreSQL
//! clients send (`BEGIN`, `SET`, `SHOW`, `DECLARE … CURSOR` …), which the
//! session answers itself.

use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::sql::parser::{DFParserBuilder, ResetStatement, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    self, Expr as SqlExpr, ObjectName, Statement as SqlStatement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::engine::error::codes;
use crate::engine::extension::SessionExtension;
use crate::engine::jobs::statements::{JobCommand, parse_job_statement, starts_job_statement};
use crate::engine::logical::statement::{
    LogicalStatement, parse_check_statement, parse_layout_clause, parse_mirror_alter,
    starts_check_statement, starts_layout_clause, starts_mirror_alter,
};
use crate::engine::migrate::statement::{
    MigrateStatement, parse_migrate_statement, starts_migrate_statement,
};
use crate::engine::remote_ddl::{CreateTableAs, RemoteDdl};
use crate::engine::settings::quote_ident;
use crate::engine::sources::statements::{
    SourceCommand, parse_source_statement, starts_source_statement,
};
use koios_connector::{sql_err, sql_error};

/// One statement of a query string.
#[derive(Debug, Clone)]
pub enum KoiosStatement {
    /// Anything DataFusion's parser understands.
    Sql(Box<DfStatement>),
    /// A source statement (`CREATE SOURCE`, `REFRESH SOURCE name` …).
    Source(SourceCommand),
    /// `CREATE TABLE … STRIPED …` (a logical table).
    Logical(LogicalStatement),
    /// `SHOW JOBS`, `PAUSE JOB n` …
    Job(JobCommand),
    /// `MIGRATE TABLE a TO b …`.
    Migrate(Box<MigrateStatement>),
}

/// Splits a query string into statements, after the front end had the
/// chance to rewrite it (a catalog query its clients send that DataFusion
/// cannot plan as written; see [`SessionExtension::rewrite_query`]).
pub fn parse_with(extension: &dyn SessionExtension, sql: &str) -> Result<Vec<KoiosStatement>> {
    match extension.rewrite_query(sql) {
        Some(statements) => Ok(statements
            .into_iter()
            .map(|s| KoiosStatement::Sql(Box::new(DfStatement::Statement(Box::new(s)))))
            .collect()),
        None => parse_sql(sql),
    }
}

/// Splits a query string into statements. Empty statements (`;;`) vanish.
pub fn parse_sql(sql: &str) -> Result<Vec<KoiosStatement>> {
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
        if starts_source_statement(&parser.parser) {
            statements.push(KoiosStatement::Source(parse_source_statement(
                &mut parser.parser,
            )?));
        } else if starts_migrate_statement(&parser.parser) {
            statements.push(KoiosStatement::Migrate(Box::new(parse_migrate_statement(
                &mut parser.parser,
            )?)));
        } else if starts_job_statement(&parser.parser) {
            statements.push(KoiosStatement::Job(parse_job_statement(
                &mut parser.parser,
            )?));
        } else if starts_check_statement(&parser.parser) {
            statements.push(KoiosStatement::Logical(parse_check_statement(
                &mut parser.parser,
            )?));
        } else if starts_mirror_alter(&parser.parser) {
            statements.push(KoiosStatement::Logical(parse_mirror_alter(
                &mut parser.parser,
            )?));
        } else {
            let statement = parser.parse_statement()?;
            match statement {
                DfStatement::Statement(sql) if starts_layout_clause(&parser.parser) => {
                    let SqlStatement::CreateTable(create) = *sql else {
                        return Err(DataFusionError::SQL(
                            Box::new(
                                datafusion::sql::sqlparser::parser::ParserError::ParserError(
                                    "STRIPED follows only CREATE TABLE (…)".into(),
                                ),
                            ),
                            None,
                        ));
                    };
                    statements.push(KoiosStatement::Logical(parse_layout_clause(
                        &mut parser.parser,
                        create,
                    )?));
                }
                statement => statements.push(KoiosStatement::Sql(Box::new(statement))),
            }
        }
        expecting_delimiter = true;
    }
    Ok(statements)
}

/// Session-level commands answered without DataFusion.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Begin,
    Commit,
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint(String),
    /// `ROLLBACK TO SAVEPOINT name`.
    RollbackTo(String),
    /// `RELEASE SAVEPOINT name`.
    Release(String),
    Set {
        name: String,
        value: String,
    },
    Show(String),
    Reset(Option<String>),
    /// A source statement other than `SHOW SOURCES`.
    Source(SourceCommand),
    /// DDL naming a source's tables, made in that backend.
    SchemaChange(RemoteDdl),
    /// `CREATE TABLE src.schema.t AS query`.
    CreateTableAs(Box<CreateTableAs>),
    /// Creating or dropping a logical table.
    Logical(LogicalStatement),
    /// `PAUSE JOB n`, `RESUME JOB n`, `CANCEL JOB n`.
    Job(JobCommand),
    /// `MIGRATE TABLE a TO b …`.
    Migrate(Box<MigrateStatement>),
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

/// Rows a `FETCH` direction asks for (`None` = all). Cursors only move
/// forward (PostgreSQL's `NO SCROLL`).
pub(super) fn fetch_count(direction: &ast::FetchDirection) -> Result<Option<usize>> {
    use ast::FetchDirection::*;
    let number = |value: &ast::ValueWithSpan| match &value.value {
        ast::Value::Number(n, _) => n
            .parse::<usize>()
            .map_err(|_| sql_error!(codes::SYNTAX_ERROR, "invalid FETCH count {n}")),
        other => sql_err!(codes::SYNTAX_ERROR, "invalid FETCH count {other}"),
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

pub(super) fn session_command(statement: &DfStatement) -> Result<Option<Command>> {
    let sql = match statement {
        DfStatement::Reset(ResetStatement::Variable(name)) => {
            let name = object_name(name);
            return Ok(if name.starts_with("datafusion.") {
                None
            } else if name == "all" {
                Some(Command::Reset(None))
            } else if name == "time.zone" {
                // `RESET TIME ZONE`.
                Some(Command::Reset(Some("timezone".into())))
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
            savepoint: Some(name),
            ..
        } => Some(Command::RollbackTo(name.value.clone())),
        SqlStatement::Savepoint { name } => Some(Command::Savepoint(name.value.clone())),
        SqlStatement::ReleaseSavepoint { name } => Some(Command::Release(name.value.clone())),
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
                } else if let [value] = values.as_slice()
                    && is_keyword(value, "default")
                {
                    // `SET x TO DEFAULT` is `RESET x`.
                    Some(Command::Reset(Some(name)))
                } else {
                    let keeps_quotes = LIST_SETTINGS.contains(&name.as_str());
                    Some(Command::Set {
                        value: values
                            .iter()
                            .map(|value| setting_value(value, keeps_quotes))
                            .collect::<Vec<_>>()
                            .join(", "),
                        name,
                    })
                }
            }
            // `LOCAL` and `DEFAULT` are the server's zone.
            ast::Set::SetTimeZone { value, .. }
                if is_keyword(value, "local") || is_keyword(value, "default") =>
            {
                Some(Command::Reset(Some("timezone".into())))
            }
            ast::Set::SetTimeZone { value, .. } => Some(Command::Set {
                name: "timezone".into(),
                value: time_zone_value(value),
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

pub(super) fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.to_ascii_lowercase(),
            None => part.to_string().to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether `expr` is the bare word `word` (`DEFAULT`, `LOCAL`).
fn is_keyword(expr: &SqlExpr, word: &str) -> bool {
    matches!(expr, SqlExpr::Identifier(ident) if ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case(word))
}

/// The zone `SET TIME ZONE value` names: a name or offset as written, a
/// number of hours east of UTC (`-7`, `5.5`) or an interval (`INTERVAL
/// '+05:30' HOUR TO MINUTE`) as an offset `±HH:MM`.
fn time_zone_value(value: &SqlExpr) -> String {
    let hours = |text: &str| -> Option<String> {
        let hours: f64 = text.trim().parse().ok()?;
        let minutes = (hours * 60.0).round() as i64;
        (minutes.abs() < 24 * 60).then(|| {
            let sign = if minutes < 0 { '-' } else { '+' };
            format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
        })
    };
    match value {
        SqlExpr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
            let text = v.value.to_string();
            hours(&text).unwrap_or(text)
        }
        SqlExpr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } if matches!(expr.as_ref(), SqlExpr::Value(v) if matches!(v.value, ast::Value::Number(..))) =>
        {
            let text = format!("-{expr}");
            hours(&text).unwrap_or(text)
        }
        SqlExpr::Interval(interval) => match interval.value.as_ref() {
            SqlExpr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(text) => {
                    let text = text.trim();
                    match text.strip_prefix(['+', '-']) {
                        Some(_) => text.to_string(),
                        None => format!("+{text}"),
                    }
                }
                other => other.to_string(),
            },
            other => other.to_string(),
        },
        other => setting_value(other, false),
    }
}

/// The settings whose value is a list of names, kept quoted where a name
/// needs it (PostgreSQL's `GUC_LIST_QUOTE`).
const LIST_SETTINGS: &[&str] = &["search_path", "temp_tablespaces"];

/// The text PostgreSQL would store for a `SET` value; a quoted name
/// (`SET TIME ZONE "Etc/UTC"`, as pgcli sends it) is its bare text unless
/// the setting is a list of names (`keeps_quotes`).
pub(super) fn setting_value(expr: &SqlExpr, keeps_quotes: bool) -> String {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        // `SET search_path TO "Mixed Case", public` shows the quotes back.
        SqlExpr::Identifier(ident) if ident.quote_style.is_some() && keeps_quotes => {
            quote_ident(&ident.value)
        }
        SqlExpr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

pub(super) fn not_supported<T>(what: &str) -> Result<T> {
    Err(DataFusionError::NotImplemented(format!(
        "{what} is not supported"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_custom_commands() {
        let statements = parse_sql("select 1; ; REFRESH SOURCE pg; select ';'").expect("parses");
        assert_eq!(statements.len(), 3);
        assert!(
            matches!(&statements[1], KoiosStatement::Source(SourceCommand::Refresh(n)) if n == "pg")
        );
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
}
