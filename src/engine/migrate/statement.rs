//! `MIGRATE TABLE`, read from PostgreSQL-dialect SQL:
//!
//! ```sql
//! MIGRATE TABLE my.shop.orders TO pg.public.orders
//!   [WITH (mode = 'create' | 'append' | 'replace', chunk_rows = 100000,
//!          parallel = 2, verify = true, wait = false)];
//! ```
//!
//! `mode`: `create` (the default) makes the destination with the
//! source's columns in the destination's types and fails if it exists;
//! `append` adds to an existing table; `replace` empties an existing
//! table first (or creates a missing one). The statement returns the
//! job's id at once, or with `wait = true` when the job has ended.

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{self, ObjectName};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use koios_connector::sql_err;
use serde::{Deserialize, Serialize};

use crate::engine::error::codes;

/// Rows a chunk holds by default (the unit of checkpoints and checks).
pub const DEFAULT_CHUNK_ROWS: u64 = 100_000;

/// Chunks copied at once by default.
pub const DEFAULT_PARALLEL: usize = 2;

/// What happens to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Create,
    Append,
    Replace,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::Append => "append",
            Mode::Replace => "replace",
        }
    }
}

/// The options of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateOptions {
    pub mode: Mode,
    pub chunk_rows: u64,
    pub parallel: usize,
    pub verify: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            mode: Mode::Create,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            parallel: DEFAULT_PARALLEL,
            verify: true,
        }
    }
}

/// `MIGRATE TABLE source TO destination [WITH (…)]`, names as written.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrateStatement {
    pub source: ObjectName,
    pub destination: ObjectName,
    pub options: MigrateOptions,
    /// Answer when the job has ended, not when it has started.
    pub wait: bool,
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.value.eq_ignore_ascii_case(word) && w.quote_style.is_none())
}

/// Whether the parser stands at `MIGRATE TABLE`.
pub fn starts_migrate_statement(parser: &Parser<'_>) -> bool {
    is_word(&parser.peek_nth_token(0).token, "migrate")
        && is_word(&parser.peek_nth_token(1).token, "table")
}

fn syntax(e: impl std::fmt::Display) -> datafusion::error::DataFusionError {
    koios_connector::sql_error!(codes::SYNTAX_ERROR, "syntax error: {e}")
}

/// Reads the `MIGRATE TABLE` statement the parser stands at.
pub fn parse_migrate_statement(parser: &mut Parser<'_>) -> Result<MigrateStatement> {
    parser.next_token();
    parser.next_token();
    let source = parser.parse_object_name(false).map_err(syntax)?;
    if !is_word(&parser.next_token().token, "to") {
        return sql_err!(
            codes::SYNTAX_ERROR,
            "syntax error: MIGRATE TABLE source.schema.table TO destination.schema.table [WITH (…)]"
        );
    }
    let destination = parser.parse_object_name(false).map_err(syntax)?;
    let mut options = MigrateOptions::default();
    let mut wait = false;
    if is_word(&parser.peek_token().token, "with") {
        parser.next_token();
        parser.expect_token(&Token::LParen).map_err(syntax)?;
        loop {
            let name = parser.parse_identifier().map_err(syntax)?;
            parser.expect_token(&Token::Eq).map_err(syntax)?;
            let value = parser.parse_value().map_err(syntax)?.value;
            let name = name.value.to_ascii_lowercase();
            if name == "wait" {
                wait = boolean(&name, &value)?;
            } else {
                set_option(&mut options, &name, &value)?;
            }
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        parser.expect_token(&Token::RParen).map_err(syntax)?;
    }
    Ok(MigrateStatement {
        source,
        destination,
        options,
        wait,
    })
}

fn set_option(options: &mut MigrateOptions, name: &str, value: &ast::Value) -> Result<()> {
    let number = |max: u64| match value {
        ast::Value::Number(n, _) => n.parse::<u64>().ok().filter(|n| (1..=max).contains(n)),
        _ => None,
    };
    match name {
        "mode" => {
            options.mode = match value {
                ast::Value::SingleQuotedString(m) => match m.to_ascii_lowercase().as_str() {
                    "create" => Mode::Create,
                    "append" => Mode::Append,
                    "replace" => Mode::Replace,
                    _ => return bad(name, value, "'create', 'append' or 'replace'"),
                },
                _ => return bad(name, value, "'create', 'append' or 'replace'"),
            }
        }
        "chunk_rows" => match number(100_000_000) {
            Some(n) => options.chunk_rows = n,
            None => return bad(name, value, "a whole number from 1 to 100000000"),
        },
        "parallel" => match number(16) {
            Some(n) => options.parallel = n as usize,
            None => return bad(name, value, "a whole number from 1 to 16"),
        },
        "verify" => options.verify = boolean(name, value)?,
        _ => {
            return sql_err!(
                codes::INVALID_PARAMETER_VALUE,
                "unknown option {name} of MIGRATE TABLE (it takes mode, chunk_rows, parallel, verify and wait)"
            );
        }
    }
    Ok(())
}

fn boolean(name: &str, value: &ast::Value) -> Result<bool> {
    match value {
        ast::Value::Boolean(b) => Ok(*b),
        ast::Value::SingleQuotedString(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        ast::Value::SingleQuotedString(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => sql_err!(
            codes::INVALID_PARAMETER_VALUE,
            "invalid value for {name}: {value} (it takes true or false)"
        ),
    }
}

fn bad(name: &str, value: &ast::Value, expected: &str) -> Result<()> {
    sql_err!(
        codes::INVALID_PARAMETER_VALUE,
        "invalid value for {name}: {value} (it takes {expected})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    fn parse(sql: &str) -> Result<MigrateStatement> {
        let dialect = PostgreSqlDialect {};
        let mut parser = Parser::new(&dialect).try_with_sql(sql).expect("tokenizes");
        assert!(starts_migrate_statement(&parser));
        parse_migrate_statement(&mut parser)
    }

    #[test]
    fn options_are_read_and_checked() {
        let statement = parse(
            "MIGRATE TABLE my.shop.t TO pg.public.t WITH (mode = 'append', chunk_rows = 500, parallel = 4, verify = false, wait = true)",
        )
        .expect("parses");
        assert_eq!(statement.source.to_string(), "my.shop.t");
        assert_eq!(statement.destination.to_string(), "pg.public.t");
        assert!(statement.wait);
        assert_eq!(
            statement.options,
            MigrateOptions {
                mode: Mode::Append,
                chunk_rows: 500,
                parallel: 4,
                verify: false
            }
        );
        assert_eq!(
            parse("migrate table a.b.c to d.e.f")
                .expect("parses")
                .options,
            MigrateOptions::default()
        );
        let error = parse("MIGRATE TABLE a.b.c TO d.e.f WITH (mode = 'merge')")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("'create', 'append' or 'replace'"), "{error}");
        let error = parse("MIGRATE TABLE a.b.c TO d.e.f WITH (speed = 1)")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("unknown option speed"), "{error}");
        assert!(parse("MIGRATE TABLE a.b.c d.e.f").is_err());
    }
}
